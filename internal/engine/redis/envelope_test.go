package redis

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/compattest"
	"github.com/sluicehq/sluice/internal/engine"
)

// TestEnvelopeLuaMatchesPython runs envelope.lua's functions in Redis on
// the inputs of the Python-generated fixtures (scripts/compat-fixtures.py)
// and compares what they build with what json.dumps wrote, byte for byte.
func TestEnvelopeLuaMatchesPython(t *testing.T) {
	t.Parallel()
	f := setup(t)
	overflowLua := rueidis.NewLuaScript(envelopeLua + `
local env = envelope()
return env.overflow(env.quote(ARGV[1]), ARGV[2])`)
	failedLua := rueidis.NewLuaScript(envelopeLua + `
local env = envelope()
return env.failed(env.quote(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6])`)
	overflow, failed := compattest.Envelopes(t)
	for _, tc := range overflow {
		got, err := overflowLua.Exec(f.ctx, f.raw, nil, []string{tc.Queue, tc.Stored}).ToString()
		if err != nil || got != tc.Dumps {
			t.Errorf("overflow envelope of %q in %q: %v\n got  %s\n want %s", tc.Stored, tc.Queue, err, got, tc.Dumps)
		}
	}
	for _, tc := range failed {
		args := []string{tc.Queue, tc.Stored, tc.Error, fmt.Sprint(tc.AttemptCount), tc.FirstFailedAt, tc.LastFailedAt}
		got, err := failedLua.Exec(f.ctx, f.raw, nil, args).ToString()
		if err != nil || got != tc.Dumps {
			t.Errorf("failed envelope of %q: %v\n got  %s\n want %s", args, err, got, tc.Dumps)
		}
	}
}

// TestOverflowEnvelopeMatchesPython pushes the fixtures' items out of
// their queues through QueueAdd and compares the overflow DLQ's entries
// with what json.dumps wrote.
func TestOverflowEnvelopeMatchesPython(t *testing.T) {
	t.Parallel()
	f := setup(t)
	overflow, _ := compattest.Envelopes(t)
	byQueue := map[string][]compattest.OverflowCase{}
	var queues []string
	for _, tc := range overflow {
		if byQueue[tc.Queue] == nil {
			queues = append(queues, tc.Queue)
		}
		byQueue[tc.Queue] = append(byQueue[tc.Queue], tc)
	}
	for _, q := range queues {
		cases := byQueue[q]
		items := make([]string, 0, len(cases)+1)
		for _, tc := range cases {
			items = append(items, tc.Stored)
		}
		// With room for one item, each add pushes the one before it out.
		f.add(t, q, engine.PolicyDLQ, 1, append(items, "last")...)
		got := f.dlq(t, q, engine.DLQOverflow)
		if len(got) != len(cases) {
			t.Fatalf("overflow DLQ of %q holds %d entries, want %d", q, len(got), len(cases))
		}
		for i, tc := range cases {
			if got[i] != tc.Dumps {
				t.Errorf("overflow entry of %q in %q:\n got  %s\n want %s", tc.Stored, q, got[i], tc.Dumps)
			}
		}
	}
}

// TestQuoteLuaMatchesGo compares envelope.lua's quoting with
// engine.PyJSONString on strings made to reach both of its paths:
// printable ASCII (quoted by cjson, with its '\/' undone) heavy in '/',
// '\' and '"', and strings with control bytes, DEL or non-ASCII bytes,
// valid UTF-8 or not.
func TestQuoteLuaMatchesGo(t *testing.T) {
	t.Parallel()
	f := setup(t)
	quoteLua := rueidis.NewLuaScript(envelopeLua + `
local env = envelope()
local out = {}
for i = 1, #ARGV do out[i] = env.quote(ARGV[i]) end
return out`)
	var printable strings.Builder
	for c := ' '; c <= '~'; c++ {
		printable.WriteRune(c)
	}
	cases := []string{"", "/", `\/`, `\\/`, `//\\""`, `a/b\c"d`, printable.String(), `{"url": "http://x/y"}`,
		"\x7f", "tab\there", "caf\u00e9/\\", "\xff\xfe/", "\U0001F600\"/", strings.Repeat(`/\"`, 1000)}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`/\"ab {}:,` + "\x00\x1f\x7f\xc3\xa9\xe2\x82")
	for range 300 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(' ' + r.IntN(95))
			}
		}
		cases = append(cases, string(b))
	}
	got, err := quoteLua.Exec(f.ctx, f.raw, nil, cases).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range cases {
		if want := engine.PyJSONString(s); got[i] != want {
			t.Errorf("quote of %q:\n got  %s\n want %s", s, got[i], want)
		}
	}
}
