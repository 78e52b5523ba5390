package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// A queue declared at 100 refuses a POST without max_size past 100 (the
// service's own default bound is 10000): the length stays 100.
func TestDeclaredBoundHoldsForAddsWithoutMaxSize(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		if err := b.client.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxSize: 100, Policy: sluice.PolicyReject}); err != nil {
			t.Fatal(err)
		}
		items := make([]any, 100)
		for i := range items {
			items[i] = i
		}
		if _, err := b.client.Queue("q").AddBatch(ctx, items, nil); err != nil {
			t.Fatal(err)
		}
		b.expect(http.StatusTooManyRequests, "POST", "/v1/queues/q/items", `{"n":101}`)
		m := b.expect(http.StatusOK, "GET", "/v1/queues/q", nil)
		if m["current_length"] != 100.0 || m["max_size"] != 100.0 || m["is_full"] != true {
			t.Fatalf("info after the refused add: %v", m)
		}
		// A looser explicit bound conflicts with the declared one.
		msg := b.expectError(http.StatusConflict, "POST", "/v1/queues/q/items?max_size=1000", `{"n":102}`)
		if !strings.Contains(msg, "declared") || strings.Contains(msg, "sluice:") {
			t.Errorf("conflict message %q", msg)
		}
	})
}

// After a rejected add on a queue declared at 2, the queue's pressure says
// max_size 2 and is_full, and /metrics a fill ratio of 1 (they said 10000,
// false and 0.0002).
func TestDeclaredBoundInPressureAndMetrics(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "PUT", "/v1/queues/small", `{"max_size": 2, "policy": "reject"}`)
		b.expect(http.StatusOK, "POST", "/v1/queues/small/items", `1`)
		b.expect(http.StatusOK, "POST", "/v1/queues/small/items", `2`)
		b.expect(http.StatusTooManyRequests, "POST", "/v1/queues/small/items", `3`)
		m := b.expect(http.StatusOK, "GET", "/v1/queues/small", nil)
		if m["max_size"] != 2.0 || m["is_full"] != true || m["fill_ratio"] != 1.0 || m["overflow_policy"] != "reject" {
			t.Fatalf("info: %v", m)
		}
		_, metrics := b.do("GET", "/metrics", nil)
		if want := `sluice_queue_fill_ratio{queue="small"} 1`; !strings.Contains(string(metrics), want+"\n") {
			t.Fatalf("metrics lack %q", want)
		}
		list := b.expect(http.StatusOK, "GET", "/v1/queues", nil)
		found := false
		for _, q := range list["queues"].([]any) {
			if q := q.(map[string]any); q["queue_name"] == "small" {
				found = q["max_size"] == 2.0 && q["is_full"] == true && q["declared"] == true && q["paused"] == false
			}
		}
		if !found {
			t.Fatalf("list: %v", list)
		}
	})
}

func TestDeclareRoute(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		body := `{"max_size": 50, "policy": "drop_oldest", "pressure_threshold": 0.5, "lease": "2s", "max_deliveries": 3}`
		m := b.expect(http.StatusOK, "PUT", "/v1/queues/jobs", body)
		again := b.expect(http.StatusOK, "PUT", "/v1/queues/jobs", body) // idempotent
		if fmt.Sprint(m) != fmt.Sprint(again) {
			t.Errorf("declaring twice answered differently: %v / %v", m, again)
		}
		declared := m["declared"].(map[string]any)
		if declared["max_size"] != 50.0 || declared["policy"] != "drop_oldest" || declared["lease"] != "2s" ||
			declared["lease_ms"] != 2000.0 || declared["max_deliveries"] != 3.0 || declared["pressure_threshold"] != 0.5 {
			t.Fatalf("declared: %v", declared)
		}
		sources := m["sources"].(map[string]any)
		for _, f := range []string{"max_size", "policy", "pressure_threshold", "lease", "max_deliveries"} {
			if sources[f] != "declared" {
				t.Errorf("source of %s: %v", f, sources[f])
			}
		}
		// A redeclare replaces: fields not given are no longer declared.
		m = b.expect(http.StatusOK, "PUT", "/v1/queues/jobs", `{"max_size": 10}`)
		if s := m["sources"].(map[string]any); s["policy"] != "config" || s["lease"] != "default" || s["max_size"] != "declared" {
			t.Fatalf("sources after redeclare: %v", s)
		}
		if m["settings"].(map[string]any)["policy"] != "dlq" || m["paused"] != false {
			t.Fatalf("settings after redeclare: %v", m)
		}

		for _, bad := range []string{
			``, `[]`, `{"max_size": -2}`, `{"max_size": "ten"}`, `{"policy": "maybe"}`, `{"pressure_threshold": 2}`,
			`{"lease": "soon"}`, `{"lease": "1.5ms"}`, `{"max_deliveries": -1}`, `{"colour": "blue"}`,
		} {
			b.expectError(http.StatusBadRequest, "PUT", "/v1/queues/jobs", bad)
		}
		b.expectError(http.StatusBadRequest, "PUT", "/v1/queues/bad%20name", `{}`)
	})
}

func TestDeclareCountsAgainstMaxQueues(t *testing.T) {
	engines(t, func(c *Config) { c.Limits.MaxQueues = 1 }, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "PUT", "/v1/queues/one", `{"max_size": 5}`)
		b.expect(http.StatusOK, "PUT", "/v1/queues/one", `{"max_size": 6}`) // exists: allowed
		b.expectError(http.StatusInsufficientStorage, "PUT", "/v1/queues/two", `{"max_size": 5}`)
	})
}

func TestPauseResumeDeleteRoutes(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "POST", "/v1/queues/work/items", `"a"`)
		b.expect(http.StatusOK, "POST", "/v1/queues/work/items", `"b"`)
		if m := b.expect(http.StatusOK, "POST", "/v1/queues/work/pause", nil); m["paused"] != true {
			t.Fatalf("pause: %v", m)
		}
		b.expect(http.StatusNoContent, "GET", "/v1/queues/work/next", nil)
		if m := b.expect(http.StatusOK, "GET", "/v1/queues/work", nil); m["paused"] != true {
			t.Fatalf("info of a paused queue: %v", m)
		}
		b.expect(http.StatusOK, "POST", "/v1/queues/work/resume", nil)
		b.expect(http.StatusOK, "POST", "/v1/queues/work/receive", nil)

		m := b.expect(http.StatusConflict, "DELETE", "/v1/queues/work", nil)
		if m["in_flight"] != 1.0 || !strings.Contains(m["error"].(string), "in flight") {
			t.Fatalf("delete with an item in flight: %v", m)
		}
		b.expectError(http.StatusBadRequest, "DELETE", "/v1/queues/work?force=perhaps", nil)
		m = b.expect(http.StatusOK, "DELETE", "/v1/queues/work?force=true", nil)
		if d := m["deleted"].(map[string]any); d["items"] != 1.0 || d["in_flight"] != 1.0 {
			t.Fatalf("forced delete: %v", m)
		}
		if m := b.expect(http.StatusOK, "GET", "/v1/queues/work", nil); m["current_length"] != 0.0 || m["in_flight"] != 0.0 {
			t.Fatalf("info after delete: %v", m)
		}
	})
}

// A receive without lease or max_deliveries gets the declared ones.
func TestReceiveUsesDeclaredLease(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "PUT", "/v1/queues/leased", `{"lease": "90s", "max_deliveries": 1}`)
		b.expect(http.StatusOK, "POST", "/v1/queues/leased/items", `"x"`)
		m := b.expect(http.StatusOK, "POST", "/v1/queues/leased/receive", nil)
		id := m["deliveries"].([]any)[0].(map[string]any)["id"].(string)
		// One delivery allowed: a nack dead-letters the item.
		if m := b.expect(http.StatusOK, "POST", "/v1/queues/leased/nack/"+id, nil); m["outcome"] != "dead_lettered" || m["redeliver_at"] != nil {
			t.Fatalf("nack under declared max_deliveries 1: %v", m)
		}
		if n, err := b.client.Queue("leased").DLQ(sluice.DLQFailed).Len(context.Background()); err != nil || n != 1 {
			t.Fatalf("failed DLQ after one nack under declared max_deliveries 1: %d, %v", n, err)
		}
	})
}

// Overflow of a declared queue is counted under its declared policy, not
// the service's default.
func TestOverflowCountedUnderDeclaredPolicy(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "PUT", "/v1/queues/tiny", `{"max_size": 1, "policy": "drop_oldest"}`)
		b.expect(http.StatusOK, "POST", "/v1/queues/tiny/items", `1`)
		b.expect(http.StatusOK, "POST", "/v1/queues/tiny/items", `2`)
		if n := counter(t, b.srv.metrics.overflow.WithLabelValues("tiny", "drop_oldest")); n != 1 {
			t.Fatalf("overflow{policy=drop_oldest} = %v, want 1", n)
		}
		if _, body := b.do("GET", "/metrics", nil); !strings.Contains(string(body), `sluice_queue_dropped_total{queue="tiny"} 1`) {
			t.Fatalf("metrics lack dropped_total 1")
		}
	})
}
