package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output %q is not the expected JSON: %v", s, err)
	}
	return v
}

func TestQueueAddAndGet(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		r := cli(t, nil, "", args([]string{"queue", "add", "jobs", `{"id": 1}`}, conn)...).want(t, exitOK)
		res := decode[sluice.AddResult](t, r.stdout)
		if !res.Success || res.QueueLength != 1 {
			t.Fatalf("add result %+v", res)
		}
		// Flags after the positional arguments, and a plain string.
		cli(t, nil, "", args([]string{"queue", "add", "jobs", "hello world", "--string"}, conn)...).want(t, exitOK)
		// The item from stdin.
		cli(t, nil, "[1, 2]\n", args([]string{"queue", "add", "jobs", "-"}, conn)...).want(t, exitOK)

		r = cli(t, nil, "", args([]string{"queue", "len", "jobs"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != "3" {
			t.Fatalf("len printed %q", r.stdout)
		}
		for _, want := range []string{`{"id":1}`, `"hello world"`, `[1,2]`} {
			r = cli(t, nil, "", args([]string{"queue", "get", "jobs", "--timeout", "1s"}, conn)...).want(t, exitOK)
			if strings.TrimSpace(r.stdout) != want {
				t.Fatalf("get printed %q, want %s", r.stdout, want)
			}
		}
		r = cli(t, nil, "", args([]string{"queue", "get", "jobs", "--timeout", "0"}, conn)...).want(t, exitEmpty)
		if r.stdout != "" {
			t.Fatalf("an empty get printed %q", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"queue", "get", "jobs", "--timeout", "0.05"}, conn)...).want(t, exitEmpty)
		if r.stdout != "" {
			t.Fatalf("an empty blocking get printed %q", r.stdout)
		}
	})
}

func TestQueueAddRejected(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		add := []string{"queue", "add", "capped", `{"n": 1}`, "--policy", "reject", "--max-size", "1"}
		cli(t, nil, "", args(add, conn)...).want(t, exitOK)
		r := cli(t, nil, "", args(add, conn)...).want(t, exitRejected)
		res := decode[sluice.AddResult](t, r.stdout)
		want := "Queue 'capped' is full (1/1). Item rejected to prevent data loss."
		if res.Success || res.Error != want || !res.HadBackpressure {
			t.Fatalf("rejected add printed %+v", res)
		}
		// The dlq policy moves the oldest item out instead.
		r = cli(t, nil, "", args([]string{"queue", "add", "capped", `{"n": 2}`, "--policy", "dlq", "--max-size", "1"}, conn)...).want(t, exitOK)
		if res := decode[sluice.AddResult](t, r.stdout); res.MovedToDLQCount != 1 || res.Warning == "" {
			t.Fatalf("dlq add printed %+v", res)
		}
	})
}

func TestQueueEnvironmentDefaults(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		env := map[string]string{"QUEUE_MAX_SIZE": "2", "QUEUE_OVERFLOW_POLICY": "reject", "QUEUE_BACKPRESSURE_THRESHOLD": "0.5"}
		for range 2 {
			cli(t, env, "", args([]string{"queue", "add", "env", "{}"}, conn)...).want(t, exitOK)
		}
		cli(t, env, "", args([]string{"queue", "add", "env", "{}"}, conn)...).want(t, exitRejected)
		r := cli(t, env, "", args([]string{"queue", "pressure", "env"}, conn)...).want(t, exitOK)
		p := decode[sluice.Pressure](t, r.stdout)
		if p.CurrentLength != 2 || p.MaxSize != 2 || !p.IsFull || !p.IsAtPressureThreshold || p.OverflowPolicy != sluice.PolicyReject {
			t.Fatalf("pressure %+v", p)
		}
		// A flag overrides the environment.
		r = cli(t, env, "", args([]string{"queue", "pressure", "env", "--max-size", "8", "--threshold", "0.9"}, conn)...).want(t, exitOK)
		p = decode[sluice.Pressure](t, r.stdout)
		if p.MaxSize != 8 || p.FillRatio != 0.25 || p.IsFull || p.IsAtPressureThreshold {
			t.Fatalf("pressure with flags %+v", p)
		}
		r = cli(t, env, "", args([]string{"queue", "pressure", "env", "--max-size", "0"}, conn)...).want(t, exitOK)
		if p := decode[sluice.Pressure](t, r.stdout); p.MaxSize != sluice.Unbounded || p.FillRatio != 0 || p.IsFull {
			t.Fatalf("unbounded pressure %+v", p)
		}
	})
}

func TestQueuePeekAndClear(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		for _, item := range []string{`{"i": 0}`, `{"i": 1}`, `{"i": 2}`} {
			cli(t, nil, "", args([]string{"queue", "add", "peeked", item}, conn)...).want(t, exitOK)
		}
		r := cli(t, nil, "", args([]string{"queue", "peek", "peeked"}, conn)...).want(t, exitOK)
		if got := strings.TrimSpace(r.stdout); got != `[{"i":0},{"i":1},{"i":2}]` {
			t.Fatalf("peek printed %s", got)
		}
		r = cli(t, nil, "", args([]string{"queue", "peek", "peeked", "--start", "1", "--end", "-1"}, conn)...).want(t, exitOK)
		if got := strings.TrimSpace(r.stdout); got != `[{"i":1},{"i":2}]` {
			t.Fatalf("peek 1..-1 printed %s", got)
		}
		// Peek does not remove.
		r = cli(t, nil, "", args([]string{"queue", "len", "peeked"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != "3" {
			t.Fatalf("len after peek %q", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"queue", "clear", "peeked"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != `{"cleared":true}` {
			t.Fatalf("clear printed %q", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"queue", "clear", "peeked"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != `{"cleared":false}` {
			t.Fatalf("second clear printed %q", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"queue", "peek", "peeked"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != `[]` {
			t.Fatalf("peek of an empty queue printed %q", r.stdout)
		}
	})
}

// dlqPage is the part of `dlq list` output the tests look at.
type dlqPage struct {
	Items []struct {
		Index         int64           `json:"index"`
		Item          json.RawMessage `json:"item"`
		OriginalQueue string          `json:"original_queue"`
		Reason        string          `json:"reason"`
	} `json:"items"`
	Total int64 `json:"total"`
}

func TestDLQCommands(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		for i := range 3 {
			item := fmt.Sprintf(`{"n": %d}`, i)
			cli(t, nil, "", args([]string{"queue", "add", "work", item, "--policy", "dlq", "--max-size", "1"}, conn)...).want(t, exitOK)
		}
		r := cli(t, nil, "", args([]string{"dlq", "stats", "work"}, conn)...).want(t, exitOK)
		if s := decode[dlqStatsOutput](t, r.stdout); s.Overflow != 2 || s.Failed != 0 || s.Queue != "work" {
			t.Fatalf("stats %+v", s)
		}
		r = cli(t, nil, "", args([]string{"dlq", "list", "work", "--limit", "1"}, conn)...).want(t, exitOK)
		page := decode[dlqPage](t, r.stdout)
		if page.Total != 2 || len(page.Items) != 1 || string(page.Items[0].Item) != `{"n":0}` ||
			page.Items[0].OriginalQueue != "work" || page.Items[0].Reason != "queue_overflow" {
			t.Fatalf("list printed %s", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"dlq", "list", "work", "--kind", "failed"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != `{"items":[],"total":0}` {
			t.Fatalf("empty failed DLQ printed %q", r.stdout)
		}

		r = cli(t, nil, "", args([]string{"dlq", "requeue", "work", "--count", "1", "--max-size", "10"}, conn)...).want(t, exitOK)
		if rq := decode[sluice.RequeueResult](t, r.stdout); rq.Requeued != 1 || rq.Remaining != 1 {
			t.Fatalf("requeue printed %+v", rq)
		}
		r = cli(t, nil, "", args([]string{"queue", "peek", "work"}, conn)...).want(t, exitOK)
		if got := strings.TrimSpace(r.stdout); got != `[{"n":2},{"n":0}]` {
			t.Fatalf("queue after requeue %s", got)
		}
		r = cli(t, nil, "", args([]string{"dlq", "purge", "work", "--kind", "overflow"}, conn)...).want(t, exitOK)
		if strings.TrimSpace(r.stdout) != `{"purged":1}` {
			t.Fatalf("purge printed %q", r.stdout)
		}
		r = cli(t, nil, "", args([]string{"dlq", "stats", "work"}, conn)...).want(t, exitOK)
		if s := decode[dlqStatsOutput](t, r.stdout); s.Overflow != 0 {
			t.Fatalf("stats after purge %+v", s)
		}
	})
}

// TestQueueGetWaitsForAnAdd starts a blocking get and adds while it may be
// waiting; whichever runs first, the get ends with the item.
func TestQueueGetWaitsForAnAdd(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, c, prefix)
	conn := []string{"--redis", redistest.URL(), "--key-prefix", prefix}
	got := make(chan result, 1)
	go func() {
		got <- cli(t, nil, "", args([]string{"queue", "get", "later", "--timeout", "20s"}, conn)...)
	}()
	cli(t, nil, "", args([]string{"queue", "add", "later", `{"late": true}`}, conn)...).want(t, exitOK)
	r := (<-got).want(t, exitOK)
	if strings.TrimSpace(r.stdout) != `{"late":true}` {
		t.Fatalf("get printed %q", r.stdout)
	}
}

// A queue name that is a DLQ's key is refused by every command (exit 2,
// saying why) instead of reading or changing the DLQ.
func TestReservedQueueNames(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		cli(t, nil, "", args([]string{"queue", "add", "work", "1", "--policy", "dlq", "--max-size", "1"}, conn)...).want(t, exitOK)
		cli(t, nil, "", args([]string{"queue", "add", "work", "2", "--policy", "dlq", "--max-size", "1"}, conn)...).want(t, exitOK)
		for _, cmd := range [][]string{
			{"queue", "add", "dlq:overflow:work", "1"},
			{"queue", "get", "dlq:overflow:work", "--timeout", "0"},
			{"queue", "len", "dlq:overflow:work"},
			{"queue", "peek", "dlq:overflow:work"},
			{"queue", "clear", "dlq:overflow:work"},
			{"queue", "len", "dlq:work"},
			{"queue", "len", "overflow:work"},
			{"dlq", "stats", "dlq:overflow:work"},
			{"dlq", "purge", "dlq:work", "--kind", "failed"},
		} {
			r := cli(t, nil, "", args(cmd, conn)...).want(t, exitUsage)
			if !strings.Contains(r.stderr, "reserved") {
				t.Errorf("%q: stderr %q does not say the name is reserved", cmd, r.stderr)
			}
		}
		r := cli(t, nil, "", args([]string{"dlq", "stats", "work"}, conn)...).want(t, exitOK)
		if s := decode[dlqStatsOutput](t, r.stdout); s.Overflow != 1 {
			t.Fatalf("stats after the refused commands %+v", s)
		}
	})
}

func TestQueueAddDelay(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		r := cli(t, nil, "", args([]string{"queue", "add", "later", `{"n": 1}`, "--delay", "1h"}, conn)...).want(t, exitOK)
		if res := decode[sluice.AddResult](t, r.stdout); !res.Success || res.QueueLength != 1 {
			t.Fatalf("scheduled add printed %+v", res)
		}
		r = cli(t, nil, "", args([]string{"queue", "pressure", "later"}, conn)...).want(t, exitOK)
		if p := decode[sluice.Pressure](t, r.stdout); p.CurrentLength != 0 || p.Scheduled != 1 {
			t.Fatalf("pressure of a queue with one scheduled item: %+v", p)
		}
		cli(t, nil, "", args([]string{"queue", "get", "later", "--timeout", "0"}, conn)...).want(t, exitEmpty)
		cli(t, nil, "", args([]string{"queue", "add", "later", "1", "--delay", "-1s"}, conn)...).want(t, exitUsage)
	})
}
