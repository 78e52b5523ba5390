package engine

import (
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/internal/compattest"
)

// The expected entries are what CPython's json.dumps wrote for the same
// dicts (scripts/compat-fixtures.py).
func TestOverflowEnvelopeMatchesPython(t *testing.T) {
	overflow, _ := compattest.Envelopes(t)
	for _, tc := range overflow {
		if got := OverflowEnvelope(tc.Queue, tc.Stored); got != tc.Dumps {
			t.Errorf("OverflowEnvelope(%q, %q)\n got %s\nwant %s", tc.Queue, tc.Stored, got, tc.Dumps)
		}
	}
}

func TestFailedEnvelopeMatchesPython(t *testing.T) {
	_, failed := compattest.Envelopes(t)
	for _, tc := range failed {
		e := FailedEntry{Queue: tc.Queue, Stored: tc.Stored, Error: tc.Error, AttemptCount: tc.AttemptCount,
			FirstFailedAt: tc.FirstFailedAt, LastFailedAt: tc.LastFailedAt}
		if got := FailedEnvelope(e); got != tc.Dumps {
			t.Errorf("FailedEnvelope(%+v)\n got %s\nwant %s", e, got, tc.Dumps)
		}
	}
}

func TestPyJSONStringMatchesPython(t *testing.T) {
	for _, tc := range compattest.JSON(t) {
		var s string
		if tc.Inputs[0][0] != '"' || json.Unmarshal([]byte(tc.Inputs[0]), &s) != nil {
			continue // not a string
		}
		if got := PyJSONString(s); got != tc.Dumps {
			t.Errorf("%s: PyJSONString(%q) = %s, want %s", tc.Name, s, got, tc.Dumps)
		}
	}
}

func FuzzPyJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "é", "😀", "\x00\xff", `"\`, "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := PyJSONString(s)
		var back string
		if err := json.Unmarshal([]byte(q), &back); err != nil {
			t.Fatalf("PyJSONString(%q) = %s: %v", s, q, err)
		}
		want := string([]rune(s)) // invalid UTF-8 becomes U+FFFD, as in Go's decoding
		if back != want {
			t.Fatalf("round trip %q -> %s -> %q", s, q, back)
		}
		for i := 0; i < len(q); i++ {
			if q[i] < 0x20 || q[i] >= 0x7f {
				t.Fatalf("PyJSONString(%q) = %q: byte 0x%02x is outside json.dumps's ASCII output", s, q, q[i])
			}
		}
	})
}
