package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestDetections(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		m := b.expect(200, "POST", "/detections", `{"camera_id": 1, "label": "person"}`)
		if m["status"] != "queued" || m["queue_length"] != 1.0 {
			t.Fatalf("POST /detections = %v", m)
		}
		b.expect(200, "POST", "/detections", `{"camera_id": 2}`)

		// What a Python consumer or redis-cli sees is the docs/compat.md bytes.
		items, err := b.client.Queue(DetectionsQueue).Peek(context.Background(), 0, -1)
		if err != nil || len(items) != 2 || items[0].Stored() != `{"camera_id": 1, "label": "person"}` {
			t.Fatalf("stored %v (%v)", items, err)
		}

		m = b.expect(200, "GET", "/detections/next?timeout=1", nil)
		if m["camera_id"] != 1.0 || m["label"] != "person" {
			t.Fatalf("next = %v", m)
		}
		b.expect(200, "GET", "/detections/next", nil)
		if m := b.expect(200, "GET", "/detections/next?timeout=0", nil); m["status"] != "empty" {
			t.Fatalf("empty next = %v", m)
		}

		b.expectError(400, "POST", "/detections", `[1, 2]`)
		b.expectError(400, "POST", "/detections", `"text"`)
		b.expectError(400, "POST", "/detections", `{"a": `)
		b.expectError(400, "POST", "/detections", ``)
		b.expectError(400, "POST", "/detections", `{} {}`)
		b.expectError(400, "GET", "/detections/next?timeout=abc", nil)
		b.expectError(400, "GET", "/detections/next?timeout=-1", nil)
		b.expectError(400, "GET", "/detections/next?timeout=100000", nil)
	})
}

func TestDetectionsRejected(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.QueueMaxSize = 1
		c.QueueOverflowPolicy = sluice.PolicyReject
	}, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/detections", `{"n": 1}`)
		m := b.expect(429, "POST", "/detections", `{"n": 2}`)
		if m["status"] != "rejected" || !strings.Contains(m["error"].(string), "is full (1/1)") {
			t.Fatalf("rejected reply = %v", m)
		}
		if _, body := b.do("GET", "/metrics", nil); !strings.Contains(string(body), `sluice_queue_rejected_total{queue="`+DetectionsQueue+`"} 1`) {
			t.Fatalf("metrics lack rejected_total 1: %s", body)
		}
	})
}

// QUEUE_MAX_SIZE <= 0 and ?max_size= 0 or -1 mean unbounded, and an
// unbounded queue's max_size reads -1.
func TestUnboundedQueues(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) { c.QueueMaxSize = 0 }, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/open/items", `1`)
		m := b.expect(200, "GET", "/v1/queues/open", nil)
		if m["max_size"] != -1.0 || m["fill_ratio"] != 0.0 || m["is_full"] != false {
			t.Fatalf("unbounded queue info = %v", m)
		}
	})
	engines(t, func(c *Config) {
		c.QueueMaxSize = 1
		c.QueueOverflowPolicy = sluice.PolicyReject
	}, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/small/items", `1`)
		b.expect(429, "POST", "/v1/queues/small/items", `2`)
		b.expect(200, "POST", "/v1/queues/small/items?max_size=0", `2`)
		if m := b.expect(200, "POST", "/v1/queues/small/items?max_size=-1", `3`); m["queue_length"] != 3.0 {
			t.Fatalf("unbounded add = %v", m)
		}
		b.expectError(400, "POST", "/v1/queues/small/items?max_size=-2", `4`)
	})
}

func TestQueueAddAndInspect(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		m := b.expect(200, "POST", "/v1/queues/jobs/items", `{"id": 1}`)
		if m["success"] != true || m["queue_length"] != 1.0 || m["had_backpressure"] != false {
			t.Fatalf("add = %v", m)
		}
		b.expect(200, "POST", "/v1/queues/jobs/items", `"plain text"`)
		m = b.expect(200, "POST", "/v1/queues/jobs/batch", `[{"id": 2}, 3, "four"]`)
		if res := m["results"].([]any); len(res) != 3 || res[2].(map[string]any)["queue_length"] != 5.0 {
			t.Fatalf("batch = %v", m)
		}
		if m := b.expect(200, "POST", "/v1/queues/jobs/batch", `[]`); len(m["results"].([]any)) != 0 {
			t.Fatalf("empty batch = %v", m)
		}

		m = b.expect(200, "GET", "/v1/queues/jobs/items?start=0&end=-1", nil)
		want := `[{"id":1},"plain text",{"id":2},3,"four"]`
		if got, _ := json.Marshal(m["items"]); string(got) != want {
			t.Fatalf("peek = %s, want %s", got, want)
		}
		if m := b.expect(200, "GET", "/v1/queues/jobs/items?start=1&end=1", nil); len(m["items"].([]any)) != 1 {
			t.Fatalf("peek 1..1 = %v", m)
		}

		m = b.expect(200, "GET", "/v1/queues/jobs", nil)
		if m["queue_name"] != "jobs" || m["current_length"] != 5.0 || m["max_size"] != 10000.0 ||
			m["in_flight"] != 0.0 || m["dlq_length"] != 0.0 || m["failed_length"] != 0.0 ||
			m["overflow_policy"] != "dlq" {
			t.Fatalf("info = %v", m)
		}
		m = b.expect(200, "GET", "/v1/queues", nil)
		found := false
		for _, q := range m["queues"].([]any) {
			if q.(map[string]any)["queue_name"] == "jobs" {
				found = true
			}
		}
		if !found {
			t.Fatalf("queue list %v lacks jobs", m)
		}

		m = b.expect(200, "GET", "/v1/queues/jobs/next?timeout=1s", nil)
		if got, _ := json.Marshal(m["item"]); string(got) != `{"id":1}` {
			t.Fatalf("next = %v", m)
		}
		m = b.expect(200, "GET", "/v1/queues/jobs/next", nil)
		if m["item"] != "plain text" {
			t.Fatalf("next = %v", m)
		}

		if m := b.expect(200, "DELETE", "/v1/queues/jobs/items", nil); m["cleared"] != true {
			t.Fatalf("clear = %v", m)
		}
		if m := b.expect(200, "DELETE", "/v1/queues/jobs/items", nil); m["cleared"] != false {
			t.Fatalf("second clear = %v", m)
		}
		if code, body := b.do("GET", "/v1/queues/jobs/next?timeout=0.05", nil); code != 204 || len(body) != 0 {
			t.Fatalf("empty next: %d %s", code, body)
		}
	})
}

func TestQueueOverflowPolicies(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/small/items?max_size=1&policy=reject", `1`)
		m := b.expect(429, "POST", "/v1/queues/small/items?max_size=1&policy=reject", `2`)
		if m["success"] != false || m["had_backpressure"] != true || !strings.Contains(m["error"].(string), "Item rejected") {
			t.Fatalf("rejected = %v", m)
		}
		m = b.expect(200, "POST", "/v1/queues/small/items?max_size=1&policy=dlq", `3`)
		if m["moved_to_dlq_count"] != 1.0 || m["warning"] != "Moved 1 items to DLQ due to overflow" {
			t.Fatalf("dlq add = %v", m)
		}
		m = b.expect(200, "POST", "/v1/queues/small/items?max_size=1&policy=drop_oldest", `4`)
		if m["dropped_count"] != 1.0 {
			t.Fatalf("drop_oldest add = %v", m)
		}
		if got := counter(t, b.srv.metrics.overflow.WithLabelValues("small", "reject")); got != 1 {
			t.Fatalf("overflow{reject} = %v", got)
		}
		_, body := b.do("GET", "/metrics", nil)
		for _, want := range []string{`sluice_queue_rejected_total{queue="small"} 1`, `sluice_queue_moved_to_dlq_total{queue="small"} 1`,
			`sluice_queue_dropped_total{queue="small"} 1`, `sluice_queue_added_total{queue="small"} 3`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		b.expectError(400, "POST", "/v1/queues/small/items?policy=nope", `1`)
		b.expectError(400, "POST", "/v1/queues/small/items?max_size=x", `1`)
		b.expectError(400, "POST", "/v1/queues/small/batch?policy=nope", `[1]`)
	})
}

func TestQueueBadInput(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		long := strings.Repeat("q", 201)
		for _, path := range []string{
			"/v1/queues/" + long, "/v1/queues/bad%23name", "/v1/queues/sp%20ace/items",
			"/v1/queues/a%2Fb/next",
		} {
			b.expectError(400, "GET", path, nil)
		}
		b.expectError(400, "POST", "/v1/queues/"+long+"/items", `1`)
		b.expectError(400, "POST", "/v1/queues/jobs/items", `{"a":`)
		b.expectError(400, "POST", "/v1/queues/jobs/items", ``)
		b.expectError(400, "POST", "/v1/queues/jobs/items", `1 2`)
		b.expectError(400, "POST", "/v1/queues/jobs/batch", `{"not": "an array"}`)
		b.expectError(400, "POST", "/v1/queues/jobs/batch", `[1,`)
		b.expectError(400, "GET", "/v1/queues/jobs/items?start=x", nil)
		b.expectError(400, "GET", "/v1/queues/jobs/next?timeout=forever", nil)
		b.expectError(400, "GET", "/v1/queues/jobs/next?timeout=-1s", nil)
		b.expectError(400, "GET", "/v1/queues/jobs/next?timeout=1h", nil)
		b.expectError(400, "POST", "/v1/queues/jobs/receive?count=0", nil)
		b.expectError(400, "POST", "/v1/queues/jobs/receive?lease=0s", nil)
		b.expectError(400, "POST", "/v1/queues/jobs/nack/x?delay=-1s", nil)
		b.expectError(400, "GET", "/v1/queues/jobs/dlq?kind=other", nil)
		b.expectError(400, "GET", "/v1/queues/jobs/dlq?limit=0", nil)
		b.expectError(400, "POST", "/v1/queues/jobs/dlq/requeue?count=-1", nil)
		b.expectError(400, "DELETE", "/v1/queues/jobs/dlq", nil)
	})
}

func TestReceiveAckNack(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		if code, _ := b.do("POST", "/v1/queues/work/receive", nil); code != 204 {
			t.Fatalf("receive on empty queue: %d", code)
		}
		b.expect(200, "POST", "/v1/queues/work/batch", `[{"n": 1}, {"n": 2}]`)

		m := b.expect(200, "POST", "/v1/queues/work/receive?timeout=1s&lease=30s&count=2", nil)
		ds := m["deliveries"].([]any)
		if len(ds) != 2 {
			t.Fatalf("receive = %v", m)
		}
		first := ds[0].(map[string]any)
		if first["attempt"] != 1.0 || first["item"].(map[string]any)["n"] != 1.0 {
			t.Fatalf("delivery = %v", first)
		}
		if m := b.expect(200, "GET", "/v1/queues/work", nil); m["in_flight"] != 2.0 {
			t.Fatalf("in_flight = %v", m)
		}

		id1 := first["id"].(string)
		b.expect(204, "POST", "/v1/queues/work/ack/"+id1, nil)
		b.expectError(404, "POST", "/v1/queues/work/ack/"+id1, nil)
		b.expectError(404, "POST", "/v1/queues/work/nack/no-such-id", nil)

		id2 := ds[1].(map[string]any)["id"].(string)
		before := time.Now()
		m = b.expect(200, "POST", "/v1/queues/work/nack/"+id2+"?reason=boom&delay=0", nil)
		if m["id"] != id2 || m["outcome"] != "redelivered" {
			t.Fatalf("nack = %v", m)
		}
		if at, err := time.Parse(time.RFC3339, m["redeliver_at"].(string)); err != nil || at.Before(before.Truncate(time.Second)) || at.Location() != time.UTC {
			t.Fatalf("nack redeliver_at %v: %v", m["redeliver_at"], err)
		}
		m = b.expect(200, "POST", "/v1/queues/work/receive?timeout=2s", nil)
		again := m["deliveries"].([]any)[0].(map[string]any)
		if again["attempt"] != 2.0 || again["item"].(map[string]any)["n"] != 2.0 {
			t.Fatalf("redelivery = %v", again)
		}
		// With one delivery allowed, a nack dead-letters the item.
		m = b.expect(200, "POST", "/v1/queues/work/nack/"+again["id"].(string)+"?max_deliveries=1&reason=boom", nil)
		if m["outcome"] != "dead_lettered" || m["redeliver_at"] != nil {
			t.Fatalf("nack that dead-letters = %v", m)
		}
		m = b.expect(200, "GET", "/v1/queues/work/dlq?kind=failed", nil)
		if m["total"] != 1.0 {
			t.Fatalf("failed DLQ = %v", m)
		}
		entry := m["items"].([]any)[0].(map[string]any)
		if entry["error"] != "boom" || entry["item"].(map[string]any)["n"] != 2.0 {
			t.Fatalf("failed entry = %v", entry)
		}
	})
}

func TestDLQRoutes(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		for i := range 4 {
			b.expect(200, "POST", "/v1/queues/dq/items?max_size=2&policy=dlq", fmt.Sprintf(`{"i": %d}`, i))
		}
		m := b.expect(200, "GET", "/v1/queues/dq/dlq?kind=overflow&start=0&limit=10", nil)
		items := m["items"].([]any)
		if m["total"] != 2.0 || len(items) != 2 {
			t.Fatalf("dlq = %v", m)
		}
		e := items[0].(map[string]any)
		if e["original_queue"] != "dq" || e["reason"] != "queue_overflow" || e["item"].(map[string]any)["i"] != 0.0 {
			t.Fatalf("entry = %v", e)
		}
		if m := b.expect(200, "GET", "/v1/queues/dq/dlq?start=1&limit=1", nil); len(m["items"].([]any)) != 1 || m["total"] != 2.0 {
			t.Fatalf("dlq page = %v", m)
		}
		if m := b.expect(200, "GET", "/v1/queues/dq", nil); m["dlq_length"] != 2.0 {
			t.Fatalf("info = %v", m)
		}

		b.expect(200, "GET", "/v1/queues/dq/next", nil) // make room for one
		m = b.expect(200, "POST", "/v1/queues/dq/dlq/requeue?kind=overflow&count=1", nil)
		if m["requeued"] != 1.0 || m["remaining"] != 1.0 {
			t.Fatalf("requeue = %v", m)
		}
		if m := b.expect(200, "DELETE", "/v1/queues/dq/dlq?kind=overflow", nil); m["purged"] != 1.0 {
			t.Fatalf("purge = %v", m)
		}
		if m := b.expect(200, "GET", "/v1/queues/dq/dlq", nil); m["total"] != 0.0 || len(m["items"].([]any)) != 0 {
			t.Fatalf("dlq after purge = %v", m)
		}
	})
}

// TestNextPutsBackOnDisconnect: an item popped for a client that hung up
// goes back to the head of the queue.
func TestNextPutsBackOnDisconnect(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		popped := make(chan struct{})
		b.srv.hooks.popped = func(r *http.Request) {
			close(popped)
			<-r.Context().Done() // the server has seen the client go
		}
		q := b.client.Queue("pb")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.ts.URL+"/v1/queues/pb/next?timeout=10s", nil)
		done := b.doAsync(req)
		if _, err := q.Add(context.Background(), map[string]int{"keep": 1}, nil); err != nil {
			t.Fatal(err)
		}
		b.expect(200, "POST", "/v1/queues/pb/items", `{"after": 2}`)
		<-popped
		cancel()
		if err := <-done; err == nil {
			t.Fatal("request succeeded after cancel")
		}
		waitFor(t, "put back", func() bool { return counter(t, b.srv.metrics.putBack.WithLabelValues("pb")) == 1 })
		items, err := q.Peek(context.Background(), 0, -1)
		if err != nil || len(items) != 2 || items[0].String() != `{"keep": 1}` {
			t.Fatalf("queue after put back: %v (%v)", items, err)
		}
	})
}

// TestWriteOutlivesClient: an add whose client hangs up mid-request is
// stored all the same, and the lost reply is counted.
func TestWriteOutlivesClient(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		wrote := make(chan struct{})
		b.srv.hooks.wrote = func(r *http.Request) {
			close(wrote)
			<-r.Context().Done()
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.ts.URL+"/v1/queues/wq/items", strings.NewReader(`{"x": 1}`))
		done := b.doAsync(req)
		<-wrote
		cancel()
		<-done
		waitFor(t, "undelivered count", func() bool {
			return counter(t, b.srv.metrics.undelivered.WithLabelValues("POST /v1/queues/{name}/items", "ok")) == 1
		})
		if n, err := b.client.Queue("wq").Len(context.Background()); err != nil || n != 1 {
			t.Fatalf("len = %d (%v), want the item stored", n, err)
		}
	})
}

// TestBlockingGetWaits: a get that waits over several poll steps still
// receives an item added meanwhile.
func TestBlockingGetWaits(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		waits := make(chan struct{}, 100)
		b.srv.hooks.waiting = func(*http.Request) {
			select {
			case waits <- struct{}{}:
			default:
			}
		}
		got := make(chan string, 1)
		go func() {
			code, body, err := b.try("GET", "/detections/next?timeout=20")
			got <- fmt.Sprintf("%d %s %v", code, body, err)
		}()
		<-waits
		<-waits // at least one step passed empty
		b.expect(200, "POST", "/detections", `{"late": true}`)
		select {
		case reply := <-got:
			if reply != "200 {\"late\":true}\n <nil>" {
				t.Fatalf("next = %q", reply)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("blocking get did not return the item")
		}
	})
}

// ?delay= schedules the added items: they count toward the bound at once
// and are handed out only when due.
func TestQueueAddDelay(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.QueueMaxSize = 2
		c.QueueOverflowPolicy = sluice.PolicyReject
	}, func(t *testing.T, b *bundle) {
		m := b.expect(200, "POST", "/v1/queues/later/items?delay=1h", `1`)
		if m["success"] != true || m["queue_length"] != 1.0 {
			t.Fatalf("scheduled add = %v", m)
		}
		// A bare number is seconds; the batch route takes it too.
		b.expect(200, "POST", "/v1/queues/later/batch?delay=3600", `[2]`)
		b.expect(429, "POST", "/v1/queues/later/items", `3`)
		m = b.expect(200, "GET", "/v1/queues/later", nil)
		if m["current_length"] != 0.0 || m["scheduled"] != 2.0 || m["is_full"] != true {
			t.Fatalf("info with two scheduled items = %v", m)
		}
		b.expect(204, "GET", "/v1/queues/later/next", nil)

		b.expect(200, "POST", "/v1/queues/soon/items?delay=50ms", `"x"`)
		m = b.expect(200, "GET", "/v1/queues/soon/next?timeout=10s", nil)
		if m["item"] != "x" {
			t.Fatalf("next of the due item = %v", m)
		}

		b.expectError(400, "POST", "/v1/queues/later/items?delay=soon", `4`)
		b.expectError(400, "POST", "/v1/queues/later/items?delay=-1s", `4`)
	})
}
