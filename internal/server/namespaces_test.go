package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// A cache key given over HTTP never addresses a queue or a DLQ: PUT
// /v1/cache/victim used to replace the queue victim with a string, losing
// its items and failing GET /v1/queues for everyone.
func TestCacheCannotReachQueue(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/victim/items?max_size=2&policy=dlq", `1`)
		b.expect(200, "POST", "/v1/queues/victim/items?max_size=2&policy=dlq", `2`)
		b.expect(200, "POST", "/v1/queues/victim/items?max_size=2&policy=dlq", `3`)
		b.expect(204, "PUT", "/v1/cache/victim", `{"mine": true}`)
		b.expect(204, "PUT", "/v1/cache/dlq:overflow:victim", `"x"`)
		if m := b.expect(200, "GET", "/v1/queues/victim", nil); m["current_length"] != 2.0 || m["dlq_length"] != 1.0 {
			t.Fatalf("queue after cache writes under its names: %v", m)
		}
		raw, _ := json.Marshal(b.expect(200, "GET", "/v1/queues", nil))
		if !strings.Contains(string(raw), `"victim"`) {
			t.Fatalf("list = %s", raw)
		}
		if m := b.expect(200, "GET", "/v1/cache/victim", nil); m["mine"] != true {
			t.Fatalf("cache entry = %v", m)
		}
		if m := b.expect(200, "DELETE", "/v1/cache/victim", nil); m["deleted"] != true {
			t.Fatalf("delete = %v", m)
		}
		if m := b.expect(200, "GET", "/v1/queues/victim", nil); m["current_length"] != 2.0 {
			t.Fatalf("queue after the cache entry's delete: %v", m)
		}
		// The entries live in the service's cache namespace.
		it, ok, err := b.client.Cache().Get(context.Background(), keyspace.ServiceCacheKey("dlq:overflow:victim"))
		if err != nil || !ok || it.String() != "x" {
			t.Fatalf("library read of the namespaced entry: %v %v %v", it, ok, err)
		}
	})
}

// A cache key given over HTTP never addresses a lock: GET /v1/cache/L used
// to return lock L's token, and DELETE /v1/cache/L to free a held lock.
func TestCacheCannotReachLock(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		m := b.expect(200, "POST", "/v1/locks/L", `{"ttl_ms": 60000}`)
		token, _ := m["token"].(string)
		b.expectError(404, "GET", "/v1/cache/L", nil)
		if m := b.expect(200, "DELETE", "/v1/cache/L", nil); m["deleted"] != false {
			t.Fatalf("cache delete under a lock's name = %v", m)
		}
		b.expect(204, "PUT", "/v1/cache/L", `1`)
		b.expectError(409, "POST", "/v1/locks/L", `{"ttl_ms": 60000}`)
		b.expect(204, "DELETE", "/v1/locks/L?token="+token, nil)
		// And a lock name never takes a cache entry's key.
		b.expect(204, "PUT", "/v1/cache/busy", `1`)
		b.expect(200, "POST", "/v1/locks/busy", `{"ttl_ms": 60000}`)
		if code, body := b.do("GET", "/v1/cache/busy", nil); code != 200 || string(body) != "1\n" {
			t.Fatalf("cache entry beside a lock of its name: %d %s", code, body)
		}
	})
}

// Every route taking a queue name refuses the names of DLQs and of
// Sluice's own keys, with a JSON 400 saying why.
func TestReservedQueueNames(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/foo/items?max_size=1&policy=dlq", `1`)
		b.expect(200, "POST", "/v1/queues/foo/items?max_size=1&policy=dlq", `2`)
		routes := []struct{ method, path, body string }{
			{"GET", "/v1/queues/%s", ""},
			{"POST", "/v1/queues/%s/items", `1`},
			{"GET", "/v1/queues/%s/items", ""},
			{"DELETE", "/v1/queues/%s/items", ""},
			{"POST", "/v1/queues/%s/batch", `[1]`},
			{"GET", "/v1/queues/%s/next?timeout=0", ""},
			{"POST", "/v1/queues/%s/receive?timeout=0s", ""},
			{"POST", "/v1/queues/%s/ack/1.1", ""},
			{"POST", "/v1/queues/%s/nack/1.1", ""},
			{"GET", "/v1/queues/%s/dlq", ""},
			{"DELETE", "/v1/queues/%s/dlq", ""},
			{"POST", "/v1/queues/%s/dlq/requeue", ""},
		}
		for _, tc := range []struct{ name, says string }{
			{"dlq:overflow:foo", "reserved for dead-letter queues"},
			{"dlq:foo", "reserved for dead-letter queues"},
			{"overflow:foo", "is reserved"},
			{"sluice%23queues", "reserved for Sluice's own keys"},
		} {
			for _, r := range routes {
				var body any
				if r.body != "" {
					body = r.body
				}
				path := strings.Replace(r.path, "%s", tc.name, 1)
				if msg := b.expectError(400, r.method, path, body); !strings.Contains(msg, tc.says) {
					t.Errorf("%s %s: error %q does not say %q", r.method, path, msg, tc.says)
				}
			}
		}
		if m := b.expect(200, "GET", "/v1/queues/foo", nil); m["current_length"] != 1.0 || m["dlq_length"] != 1.0 {
			t.Fatalf("foo after the refused calls: %v", m)
		}
	})
}

// One queue whose key holds another kind of value must not fail the
// listing (or the metrics scrape) for everyone: it is skipped and counted.
func TestListingSkipsBrokenKey(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		b.expect(200, "POST", "/v1/queues/good/items", `1`)
		b.expect(200, "POST", "/v1/queues/broken/items", `1`)
		b.expect(200, "DELETE", "/v1/queues/broken/items", nil)
		// A library user caches under the emptied queue's raw name, which
		// the queue registry still lists.
		if err := b.client.Cache().Set(ctx, "broken", "now a string", 0); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			raw, _ := json.Marshal(b.expect(200, "GET", "/v1/queues", nil))
			if !strings.Contains(string(raw), `"good"`) || strings.Contains(string(raw), `"broken"`) {
				t.Fatalf("list = %s", raw)
			}
		}
		if n := counter(t, b.srv.metrics.broken.skipped.WithLabelValues("queues")); n != 2 {
			t.Errorf("skipped in listings: %v, want 2", n)
		}
		code, body := b.do("GET", "/metrics", nil)
		if code != 200 || !strings.Contains(string(body), `sluice_queue_length{queue="good"} 1`) {
			t.Fatalf("metrics: %d\n%s", code, body)
		}
		// (The counter is read directly: a scrape gathers collectors
		// concurrently, so its own text may predate this increment.)
		if n := counter(t, b.srv.metrics.broken.skipped.WithLabelValues("metrics")); n != 1 {
			t.Errorf("skipped in the scrape: %v, want 1", n)
		}
	})
}

func TestBrokenKeysLoggedOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	bk := newBrokenKeys(slog.New(slog.NewTextHandler(&buf, nil)))
	wrong := errors.Join(errors.New("length of \"q\""), sluice.ErrWrongType)
	for range 3 {
		if !bk.skip("queues", "q", wrong) {
			t.Fatal("a wrong-type key was not skipped")
		}
	}
	if !bk.skip("queues", "dlq:x", sluice.ErrInvalidName) {
		t.Fatal("a name the rules refuse was not skipped")
	}
	if bk.skip("queues", "q", sluice.ErrClosed) {
		t.Fatal("an engine failure was taken for a broken key")
	}
	if n := strings.Count(buf.String(), "listing skips a queue"); n != 2 {
		t.Errorf("%d log lines for 2 broken keys:\n%s", n, buf.String())
	}
	if n := counter(t, bk.skipped.WithLabelValues("queues")); n != 4 {
		t.Errorf("counted %v skips, want 4", n)
	}
}
