package remote

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// fakeService answers the worker routes as the handler says, recording
// each request as "METHOD path?query body".
func fakeService(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) (*Client, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(b)))
		mu.Unlock()
		h(w, r)
	}))
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		ts.Close()
		hc.CloseIdleConnections()
	})
	c, err := New(ts.URL, "k", hc)
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, `{"error":"lease not found or expired"}`)
}

func TestReceiveAndSettle(t *testing.T) {
	ctx := context.Background()
	c, seen := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/receive"):
			_, _ = io.WriteString(w, `{"deliveries":[{"id":"a.1","item":{"x":1},"attempt":2}]}`)
		case strings.Contains(r.URL.Path, "/nack/"):
			_, _ = io.WriteString(w, `{"id":"a.1","outcome":"dead_lettered"}`)
		case strings.Contains(r.URL.Path, "/extend/gone"), strings.Contains(r.URL.Path, "/release/gone"):
			notFound(w)
		case strings.Contains(r.URL.Path, "/extend/"):
			_, _ = io.WriteString(w, `{"id":"a.1","deadline":"2030-01-02T03:04:05Z"}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	ds, err := c.Receive(ctx, "jobs", ReceiveParams{Count: 5, Wait: 1500 * time.Millisecond, Lease: 300 * time.Millisecond, MaxDeliveries: 3})
	if err != nil || len(ds) != 1 || ds[0].ID != "a.1" || string(ds[0].Item) != `{"x":1}` || ds[0].Attempt != 2 {
		t.Fatalf("receive: %+v %v", ds, err)
	}
	res, err := c.Nack(ctx, "jobs", "a.1", NackParams{Delay: 2 * time.Second, Reason: "exit status 1: no & yes"})
	if err != nil || res.Outcome != OutcomeDeadLettered {
		t.Fatalf("nack: %+v %v", res, err)
	}
	deadline, err := c.Extend(ctx, "jobs", "a.1", time.Minute)
	if err != nil || !deadline.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("extend: %v %v", deadline, err)
	}
	if _, err := c.Extend(ctx, "jobs", "gone", 0); !errors.Is(err, sluice.ErrLeaseNotFound) {
		t.Fatalf("extend gone: %v", err)
	}
	if err := c.Release(ctx, "jobs", "gone"); !errors.Is(err, sluice.ErrLeaseNotFound) {
		t.Fatalf("release gone: %v", err)
	}
	if err := c.Release(ctx, "jobs", "a.1"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /v1/queues/jobs/receive?count=5&lease=300ms&max_deliveries=3&timeout=1500ms",
		"POST /v1/queues/jobs/nack/a.1?delay=2000ms&reason=exit+status+1%3A+no+%26+yes",
		"POST /v1/queues/jobs/extend/a.1?lease=60000ms",
		"POST /v1/queues/jobs/extend/gone",
		"POST /v1/queues/jobs/release/gone",
		"POST /v1/queues/jobs/release/a.1",
	}
	if got := seen(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAckBatch(t *testing.T) {
	c, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct{ IDs []string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		_, _ = io.WriteString(w, `{"acked":1,"results":[{"id":"b","acked":false},{"id":"a","acked":true}]}`)
	})
	acked, err := c.AckBatch(context.Background(), "jobs", []string{"a", "b"})
	if err != nil || len(acked) != 2 || !acked[0] || acked[1] {
		t.Fatalf("AckBatch: %v %v", acked, err)
	}
}

// TestAckBatchOnAnOlderService: without the batch route, one ack per id.
func TestAckBatchOnAnOlderService(t *testing.T) {
	c, seen := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/queues/jobs/ack/a":
			w.WriteHeader(http.StatusNoContent)
		default:
			notFound(w)
		}
	})
	acked, err := c.AckBatch(context.Background(), "jobs", []string{"a", "b"})
	if err != nil || len(acked) != 2 || !acked[0] || acked[1] {
		t.Fatalf("AckBatch: %v %v", acked, err)
	}
	if got := seen(); len(got) != 3 || !strings.HasPrefix(got[0], `POST /v1/queues/jobs/ack {"ids":["a","b"]}`) {
		t.Fatalf("requests %q", got)
	}
}

func TestNackOnAnOlderService(t *testing.T) {
	c, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	res, err := c.Nack(context.Background(), "jobs", "a", NackParams{})
	if err != nil || res.Outcome != "" {
		t.Fatalf("nack: %+v %v", res, err)
	}
}

func TestQueueDeliverySettings(t *testing.T) {
	c, _ := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"settings":{"lease":"45s","lease_ms":45000,"max_deliveries":5},"declared":{"lease_ms":45000}}`)
	})
	s, err := c.QueueDeliverySettings(context.Background(), "jobs")
	if err != nil || s.Lease != 45*time.Second || s.MaxDeliveries != 5 || s.DeclaredMaxDeliveries != 0 {
		t.Fatalf("%+v %v", s, err)
	}
}
