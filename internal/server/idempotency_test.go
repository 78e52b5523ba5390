package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice"
)

// post sends body to path with the given Idempotency-Key values (none:
// no header) and returns status, replay header and body.
func (b *bundle) post(path, body string, keys ...string) (int, string, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, b.ts.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Idempotency-Replayed"), data, err
}

func (b *bundle) mustPost(path, body string, keys ...string) (int, string, []byte) {
	b.t.Helper()
	status, replayed, data, err := b.post(path, body, keys...)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	return status, replayed, data
}

func (b *bundle) queueLen(name string) int64 {
	b.t.Helper()
	n, err := b.client.Queue(name).Len(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

func TestIdempotencyKeyReplaysFirstAnswer(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		for _, c := range []struct{ path, queue, body string }{
			{"/v1/queues/jobs/items", "jobs", `{"id": 1}`},
			{"/v1/queues/jobs/batch", "jobs", `[{"id": 2}, 3]`},
			{"/detections", DetectionsQueue, `{"camera_id": 1}`},
		} {
			status, replayed, first := b.mustPost(c.path, c.body, "key:"+c.path)
			if status != 200 || replayed != "" {
				t.Fatalf("POST %s: %d, replayed %q: %s", c.path, status, replayed, first)
			}
			n := b.queueLen(c.queue)
			status, replayed, again := b.mustPost(c.path, c.body, "key:"+c.path)
			if status != 200 || replayed != "true" || !bytes.Equal(again, first) {
				t.Errorf("repeat of POST %s = %d, replayed %q, %s; want 200, true, %s", c.path, status, replayed, again, first)
			}
			if got := b.queueLen(c.queue); got != n {
				t.Errorf("%s: length %d after the repeat, want %d (nothing written)", c.queue, got, n)
			}
		}
		// Without the header every POST adds.
		b.mustPost("/v1/queues/plain/items", `1`)
		_, replayed, _ := b.mustPost("/v1/queues/plain/items", `1`)
		if replayed != "" || b.queueLen("plain") != 2 {
			t.Errorf("adds without a key: replayed %q, length %d; want no header, 2", replayed, b.queueLen("plain"))
		}
	})
}

func TestIdempotencyReplayKeepsARejection(t *testing.T) {
	// The answer is the first one even when the queue has changed: a
	// rejected add stays rejected for its key, though there is room now.
	t.Parallel()
	engines(t, func(c *Config) {
		c.QueueMaxSize = 1
		c.QueueOverflowPolicy = sluice.PolicyReject
	}, func(t *testing.T, b *bundle) {
		b.mustPost("/v1/queues/q/items", `1`, "a")
		status, _, first := b.mustPost("/v1/queues/q/items", `2`, "b")
		if status != 429 {
			t.Fatalf("add to a full queue: %d %s", status, first)
		}
		b.expect(200, "DELETE", "/v1/queues/q/items", nil)
		status, replayed, again := b.mustPost("/v1/queues/q/items", `2`, "b")
		if status != 429 || replayed != "true" || !bytes.Equal(again, first) {
			t.Errorf("repeat = %d, replayed %q, %s; want 429, true, %s", status, replayed, again, first)
		}
		if n := b.queueLen("q"); n != 0 {
			t.Errorf("length %d, want 0", n)
		}
		if got := counter(t, b.srv.metrics.overflow.WithLabelValues("q", "reject")); got != 1 {
			t.Errorf("overflow counter = %v, want 1 (a replay is not counted again)", got)
		}
		if _, body := b.do("GET", "/metrics", nil); !strings.Contains(string(body), `sluice_queue_rejected_total{queue="q"} 1`) {
			t.Errorf("metrics lack rejected_total 1 (a replay is not counted again)")
		}
	})
}

func TestIdempotencyKeyMisuse(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.mustPost("/v1/queues/q/items", `{"id": 1}`, "k")
		b.expectError(422, "POST", "/v1/queues/q/items", `{"id": 2}`, "Idempotency-Key", "k")
		b.expectError(422, "POST", "/v1/queues/q/batch", `[{"id": 1}, {"id": 1}]`, "Idempotency-Key", "k")
		for _, bad := range []string{"", strings.Repeat("k", 256), "tab\there", "é"} {
			b.expectError(400, "POST", "/v1/queues/q/items", `{"id": 3}`, "Idempotency-Key", bad)
			b.expectError(400, "POST", "/v1/queues/q/batch", `[1]`, "Idempotency-Key", bad)
			b.expectError(400, "POST", "/detections", `{"id": 3}`, "Idempotency-Key", bad)
		}
		status, _, data := b.mustPost("/v1/queues/q/items", `1`, "k1", "k2")
		if status != 400 || !strings.Contains(string(data), `"error"`) {
			t.Errorf("two keys: %d %s, want a 400 JSON error", status, data)
		}
		if n := b.queueLen("q"); n != 1 {
			t.Errorf("length %d after refused adds, want 1", n)
		}
		b.mustPost("/v1/queues/q/items", `1`, strings.Repeat("k", 255))
		b.mustPost("/v1/queues/q/items", `1`, " !~{}:")
		if n := b.queueLen("q"); n != 3 {
			t.Errorf("length %d after adds with the longest and oddest keys, want 3", n)
		}
	})
}

func TestIdempotencyConcurrentDuplicatesWriteOnce(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		const n = 16
		var wg sync.WaitGroup
		type reply struct {
			status   int
			replayed string
			err      error
		}
		replies := make([]reply, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				status, replayed, _, err := b.post("/v1/queues/race/batch", `[1, 2, 3]`, "same")
				replies[i] = reply{status, replayed, err}
			}()
		}
		close(start)
		wg.Wait()
		fresh := 0
		for _, r := range replies {
			if r.err != nil || r.status != 200 {
				t.Fatalf("POST: %d, %v", r.status, r.err)
			}
			if r.replayed != "true" {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("%d of %d concurrent duplicates wrote, want 1", fresh, n)
		}
		if got := b.queueLen("race"); got != 3 {
			t.Errorf("length %d, want 3", got)
		}
	})
}
