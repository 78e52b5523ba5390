package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
)

// sharedEngine is an embedded engine with data in every state the
// inspection commands show, and a service over it on a test server.
func sharedEngine(t *testing.T) (*sluice.Client, string) {
	t.Helper()
	ctx := context.Background()
	// Opened as the commands open an engine, with the environment's
	// settings (here: none set).
	s, err := loadSettings(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	client, err := sluice.Open(ctx, "mem://", s.config("", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	srv, err := server.New(client, server.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// jobs: waiting items, two leased, one waiting for redelivery.
	jobs := client.Queue("jobs")
	for i := range 6 {
		_, err := jobs.Add(ctx, map[string]any{"n": i, "text": "an item with some words in it"}, nil)
		must(err)
	}
	ds, err := jobs.ReceiveBatch(ctx, 3, 0, &sluice.ReceiveOptions{Lease: time.Hour, MaxDeliveries: 5})
	must(err)
	_, err = ds[2].Nack(ctx, &sluice.NackOptions{Delay: time.Hour})
	must(err)
	// small: declared, paused, full, with an overflow DLQ.
	must(client.DeclareQueue(ctx, "small", sluice.QueueSettings{MaxSize: 2, Policy: sluice.PolicyDLQ, Lease: 90 * time.Second, MaxDeliveries: 2}))
	small := client.Queue("small")
	for _, v := range []any{"plain text", 42, map[string]any{"a": []int{1, 2}}, "x"} {
		_, err := small.Add(ctx, v, nil)
		must(err)
	}
	must(small.Pause(ctx))
	// failing: one item in the failed DLQ.
	failing := client.Queue("failing")
	_, err = failing.Add(ctx, map[string]bool{"fail": true}, nil)
	must(err)
	d, ok, err := failing.Receive(ctx, 0, &sluice.ReceiveOptions{Lease: time.Minute, MaxDeliveries: 1})
	must(err)
	if !ok {
		t.Fatal("nothing received")
	}
	_, err = d.Nack(ctx, &sluice.NackOptions{Reason: "boom"})
	must(err)
	// A name with a hash tag: { and } are escaped in a URL's path.
	_, err = client.Queue("{cam}:1").Add(ctx, "tagged", nil)
	must(err)
	return client, ts.URL
}

// runIn runs the program with an engine already open and an empty
// environment; tty says whether stdout counts as a terminal.
func runIn(t *testing.T, engine *sluice.Client, tty bool, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }, tty: tty, engine: engine}
	code := e.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// Ages and times left are measured when each command runs.
var (
	ageJSON   = regexp.MustCompile(`"age_seconds":[0-9.e-]+`)
	durations = regexp.MustCompile(`-?[0-9][0-9.hms]*s\b`)
	spaces    = regexp.MustCompile(` +`)
	// "config" in a sources object, or as the SOURCE column of a table.
	configJSON  = regexp.MustCompile(`("(?:max_size|policy|pressure_threshold)":)"config"`)
	configTable = regexp.MustCompile(`(?m)^((?:max size|policy|pressure threshold) +\S+ +)config$`)
)

func TestInspectionSameThroughServiceAndEngine(t *testing.T) {
	client, url := sharedEngine(t)
	commands := [][]string{
		{"queue", "len", "jobs"},
		{"queue", "peek", "{cam}:1"},
		{"queue", "info", "{cam}:1", "--json"},
		{"queue", "peek", "small"},
		{"queue", "peek", "jobs", "--start", "1", "--end", "-1"},
		{"queue", "pressure", "small"},
		{"queue", "pressure", "jobs"},
		{"queue", "info", "small"},
		{"queue", "info", "jobs", "--json"},
		{"queue", "info", "small", "--json"},
		{"queue", "list"},
		{"queue", "list", "--json"},
		{"queue", "list", "--limit", "1", "--cursor", "failing"},
		{"queue", "list", "--limit", "2", "--json"},
		{"queue", "stats", "jobs"},
		{"queue", "stats", "jobs", "--json=false"},
		{"queue", "inflight", "jobs", "--json"},
		{"queue", "inflight", "jobs"},
		{"queue", "inflight", "jobs", "--limit", "1", "--json"},
		{"dlq", "stats", "small"},
		{"dlq", "stats", "failing", "--json=false"},
		{"dlq", "list", "small"},
		{"dlq", "list", "failing", "--kind", "failed"},
		{"queue", "info", "no-such-queue"},
		{"queue", "peek", "dlq:jobs"},
	}
	for _, tty := range []bool{false, true} {
		for _, cmd := range commands {
			viaEngine := runIn(t, client, tty, cmd...)
			viaService := runIn(t, client, tty, append(cmd, "--url", url)...)
			if viaEngine.code != viaService.code {
				t.Fatalf("tty=%v %q: exit %d through the engine, %d through the service\n%s\n%s", tty, cmd,
					viaEngine.code, viaService.code, viaEngine.stderr, viaService.stderr)
			}
			if viaEngine.code != 0 {
				continue // the engine and the service word errors their own way
			}
			// The service gives its queue handles the settings of its
			// environment (QueueWithDefaults), so it reports their source as
			// "config" where a command's own client reports "default".
			a := viaEngine.stdout
			b := configTable.ReplaceAllString(configJSON.ReplaceAllString(viaService.stdout, `${1}"default"`), "${1}default")
			if cmd[1] == "inflight" {
				a, b = normalizeTimes(a), normalizeTimes(b)
			}
			if a != b {
				t.Errorf("tty=%v %q differs\nengine:\n%s\nservice:\n%s", tty, cmd, a, b)
			}
		}
	}
	if r := runIn(t, client, false, "queue", "peek", "{cam}:1", "--url", url).want(t, 0); r.stdout != `["tagged"]`+"\n" {
		t.Fatalf("peek of a hash-tagged name: %q", r.stdout)
	}
	// The next page of a listing continues where the first ended, both ways.
	first := runIn(t, client, false, "queue", "inflight", "jobs", "--limit", "1", "--url", url, "--json")
	cursor := regexp.MustCompile(`"next_cursor":"([^"]+)"`).FindStringSubmatch(first.stdout)
	if cursor == nil {
		t.Fatalf("no next cursor: %s", first.stdout)
	}
	a := runIn(t, client, false, "queue", "inflight", "jobs", "--cursor", cursor[1], "--json").want(t, 0)
	b := runIn(t, client, false, "queue", "inflight", "jobs", "--cursor", cursor[1], "--json", "--url", url).want(t, 0)
	if normalizeTimes(a.stdout) != normalizeTimes(b.stdout) {
		t.Fatalf("second page differs\n%s\n%s", a.stdout, b.stdout)
	}
}

func normalizeTimes(s string) string {
	s = ageJSON.ReplaceAllString(s, `"age_seconds":0`)
	return spaces.ReplaceAllString(durations.ReplaceAllString(s, "D"), " ")
}

// The settle commands change the data: each way on its own engine.
func TestDLQChangesThroughService(t *testing.T) {
	client, url := sharedEngine(t)
	runIn(t, client, false, "dlq", "requeue", "failing", "--kind", "failed", "--url", url).want(t, 0)
	if r := runIn(t, client, false, "queue", "len", "failing", "--url", url).want(t, 0); r.stdout != "1\n" {
		t.Fatalf("after requeue: %q", r.stdout)
	}
	r := runIn(t, client, false, "dlq", "purge", "small", "--kind", "overflow", "--url", url).want(t, 0)
	if r.stdout != `{"purged":2}`+"\n" {
		t.Fatalf("purge: %q", r.stdout)
	}
	r = runIn(t, client, false, "dlq", "requeue", "small", "--policy", "reject", "--url", url).want(t, exitUsage)
	if !strings.Contains(r.stderr, "--policy is not available with --url") {
		t.Fatalf("requeue --policy: %q", r.stderr)
	}
}

func TestURLErrors(t *testing.T) {
	env := map[string]string{}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env, []string{"queue", "len", "q", "--url", "http://127.0.0.1:1", "--redis", "redis://127.0.0.1:6379"}, "--url and --redis select different places"},
		{env, []string{"queue", "len", "q", "--url", "http://127.0.0.1:1", "--data-dir", "x"}, "--url and --data-dir select different places"},
		{env, []string{"queue", "len", "q", "--url", "redis://127.0.0.1:6379"}, `--url: service URL "redis://127.0.0.1:6379": want http://host:port`},
		{env, []string{"queue", "len", "q", "--url", "http://user:secret@127.0.0.1:1"}, "pass the API key with --api-key"},
		{env, []string{"queue", "len", "q", "--api-key", "k"}, "--api-key is for --url"},
		{map[string]string{"SLUICE_URL": "http://127.0.0.1:1", "REDIS_URL": "redis://x"}, []string{"queue", "len", "q"}, "SLUICE_URL and REDIS_URL select different places"},
		{map[string]string{"SLUICE_URL": "ftp://x"}, []string{"queue", "stats", "q"}, "SLUICE_URL: service URL"},
		{env, []string{"queue", "pressure", "q", "--max-size", "3", "--url", "http://127.0.0.1:1"}, "--max-size is not available with --url"},
	} {
		r := cli(t, tc.env, "", tc.args...).want(t, exitUsage)
		if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "secret") {
			t.Errorf("%q: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
	// An unreachable service is a runtime error, not a usage error.
	r := cli(t, env, "", "queue", "len", "q", "--url", "http://127.0.0.1:1").want(t, exitFailure)
	if !strings.Contains(r.stderr, "connect") {
		t.Errorf("unreachable: %q", r.stderr)
	}
}

func TestURLSendsAPIKey(t *testing.T) {
	_, ts := testService(t, func(cfg *server.Config) { cfg.APIKeys = []string{"k1"} })
	r := cli(t, map[string]string{}, "", "queue", "len", "q", "--url", ts.URL).want(t, exitUsage)
	if !strings.Contains(r.stderr, "401") {
		t.Fatalf("without a key: %q", r.stderr)
	}
	cli(t, map[string]string{"SLUICE_URL": ts.URL, "SLUICE_API_KEY": "k1"}, "", "queue", "len", "q").want(t, 0)
	r = cli(t, map[string]string{"SLUICE_API_KEY": "wrong"}, "", "queue", "len", "q", "--url", ts.URL, "--api-key", "k1").want(t, 0)
	if r.stdout != "0\n" {
		t.Fatalf("len: %q", r.stdout)
	}
}

// TestTablesGolden pins the tables people read on a terminal; the same
// commands print JSON to a pipe.
func TestTablesGolden(t *testing.T) {
	client, url := sharedEngine(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"queue", "stats", "failing"}, `queue          failing
length         0
in flight      0
overflow dlq   0
failed dlq     1
added          1
rejected       0
moved to dlq   0
dropped        0
delivered      1
acked          0
nacked         1
dead-lettered  1
redelivered    0
`},
		{[]string{"dlq", "stats", "small"}, `QUEUE  OVERFLOW  FAILED
small  2         0
`},
		{[]string{"queue", "list", "--limit", "2", "--cursor", "failing"}, `QUEUE  LENGTH  MAX SIZE  FILL  IN FLIGHT  POLICY  DECLARED  PAUSED
jobs   3       10000     0%    3          dlq     no        no
small  2       2         100%  0          dlq     yes       yes
more: sluice queue list --cursor "small"
`},
	} {
		for _, via := range [][]string{nil, {"--url", url}} {
			r := runIn(t, client, true, append(tc.args, via...)...).want(t, 0)
			if r.stdout != tc.want {
				t.Errorf("%q %q:\n%s\nwant:\n%s", tc.args, via, r.stdout, tc.want)
			}
		}
		if r := runIn(t, client, false, tc.args...).want(t, 0); strings.HasPrefix(tc.args[1], "stats") && !strings.HasPrefix(r.stdout, "{") {
			t.Errorf("%q to a pipe: %s", tc.args, r.stdout)
		}
	}
}

// An item the service cut shows as the start of its text, marked cut.
func TestItemTextOfCutItem(t *testing.T) {
	cut := inflightRow{Item: []byte(`"{\"a\": \"` + strings.Repeat("x", 100) + `"`), ItemTruncated: true}
	if got := clipItem(itemText(cut)); !strings.HasPrefix(got, `{"a": "xxx`) || !strings.HasSuffix(got, "...") {
		t.Fatalf("cut item: %q", got)
	}
	whole := inflightRow{Item: []byte(`{"a": 1,  "b": [1, 2]}`)}
	if got := itemText(whole); got != `{"a":1,"b":[1,2]}` {
		t.Fatalf("whole item: %q", got)
	}
}
