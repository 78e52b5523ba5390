package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// receiveIDs receives n deliveries of queue and returns their ids.
func receiveIDs(t *testing.T, b *bundle, queue string, n int, query string) []string {
	t.Helper()
	m := b.expect(http.StatusOK, "POST", fmt.Sprintf("/v1/queues/%s/receive?timeout=1s&count=%d%s", queue, n, query), nil)
	ds := m["deliveries"].([]any)
	if len(ds) != n {
		t.Fatalf("receive %d: %v", n, m)
	}
	ids := make([]string, n)
	for i, d := range ds {
		ids[i] = d.(map[string]any)["id"].(string)
	}
	return ids
}

// deadlineOf parses an RFC 3339 UTC time of a reply.
func deadlineOf(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") {
		t.Fatalf("time %q: want RFC 3339 UTC (%v)", s, err)
	}
	return at
}

func TestExtend(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "POST", "/v1/queues/ext/batch", `[1, 2]`)
		ids := receiveIDs(t, b, "ext", 2, "&lease=1s")

		before := time.Now()
		m := b.expect(http.StatusOK, "POST", "/v1/queues/ext/extend/"+ids[0]+"?lease=1h", nil)
		after := time.Now()
		at := deadlineOf(t, m["deadline"])
		if m["id"] != ids[0] || at.Before(before.Add(time.Hour).Truncate(time.Millisecond)) || at.After(after.Add(time.Hour)) {
			t.Fatalf("extend = %v (between %v and %v)", m, before.Add(time.Hour), after.Add(time.Hour))
		}
		// The lease the listing shows is the extended one.
		m = b.expect(http.StatusOK, "GET", "/v1/queues/ext/deliveries", nil)
		for _, d := range m["deliveries"].([]any) {
			d := d.(map[string]any)
			if d["id"] == ids[0] && deadlineOf(t, d["deadline"]).Before(before.Add(30*time.Minute)) {
				t.Fatalf("delivery after extend: %v", d)
			}
		}

		// Without lease: the default (30s here: the queue declares none).
		before = time.Now()
		m = b.expect(http.StatusOK, "POST", "/v1/queues/ext/extend/"+ids[1], nil)
		after = time.Now()
		if at := deadlineOf(t, m["deadline"]); at.Before(before.Add(30*time.Second).Truncate(time.Millisecond)) || at.After(after.Add(30*time.Second)) {
			t.Fatalf("extend without lease = %v", m)
		}

		// Errors: unknown or settled ids, bad leases, bad names.
		b.expectError(http.StatusNotFound, "POST", "/v1/queues/ext/extend/no-such-id", nil)
		b.expectError(http.StatusNotFound, "POST", "/v1/queues/ext/extend/1.1.0000000000000000?lease=5s", nil)
		b.expect(http.StatusNoContent, "POST", "/v1/queues/ext/ack/"+ids[1], nil)
		b.expectError(http.StatusNotFound, "POST", "/v1/queues/ext/extend/"+ids[1], nil)
		for _, lease := range []string{"0s", "0", "-1s", "25h", "forever", "1e3"} {
			b.expectError(http.StatusBadRequest, "POST", "/v1/queues/ext/extend/"+ids[0]+"?lease="+lease, nil)
		}
		b.expectError(http.StatusBadRequest, "POST", "/v1/queues/dlq:ext/extend/"+ids[0], nil)
		b.expectError(http.StatusMethodNotAllowed, "GET", "/v1/queues/ext/extend/"+ids[0], nil)
	})
}

// Without lease, extend renews for the queue's declared lease.
func TestExtendUsesDeclaredLease(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "PUT", "/v1/queues/dext", `{"lease": "90s"}`)
		b.expect(http.StatusOK, "POST", "/v1/queues/dext/items", `"x"`)
		id := receiveIDs(t, b, "dext", 1, "&lease=1s")[0]
		before := time.Now()
		m := b.expect(http.StatusOK, "POST", "/v1/queues/dext/extend/"+id, nil)
		after := time.Now()
		if at := deadlineOf(t, m["deadline"]); at.Before(before.Add(90*time.Second).Truncate(time.Millisecond)) || at.After(after.Add(90*time.Second)) {
			t.Fatalf("extend under declared lease 90s = %v", m)
		}
	})
}

func TestRelease(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "POST", "/v1/queues/rel/items", `{"n": 1}`)
		id := receiveIDs(t, b, "rel", 1, "&max_deliveries=1")[0]
		resp := b.send("POST", "/v1/queues/rel/release/"+id, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("release: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		b.expectError(http.StatusNotFound, "POST", "/v1/queues/rel/release/"+id, nil)
		b.expectError(http.StatusNotFound, "POST", "/v1/queues/rel/release/no-such-id", nil)
		b.expectError(http.StatusBadRequest, "POST", "/v1/queues/overflow:rel/release/"+id, nil)

		// The release did not count: with one delivery allowed, the item is
		// delivered again with the same attempt number, not dead-lettered.
		m := b.expect(http.StatusOK, "POST", "/v1/queues/rel/receive?timeout=5s&max_deliveries=1", nil)
		d := m["deliveries"].([]any)[0].(map[string]any)
		if d["attempt"] != 1.0 || d["item"].(map[string]any)["n"] != 1.0 {
			t.Fatalf("delivery after release = %v", d)
		}
		if m := b.expect(http.StatusOK, "GET", "/v1/queues/rel", nil); m["failed_length"] != 0.0 {
			t.Fatalf("a release dead-lettered: %v", m)
		}
	})
}

func TestAckBatch(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "POST", "/v1/queues/ab/batch", `[1, 2, 3]`)
		ids := receiveIDs(t, b, "ab", 3, "")
		b.expect(http.StatusNoContent, "POST", "/v1/queues/ab/ack/"+ids[2], nil)

		body := map[string]any{"ids": []string{ids[0], "no-such-id", ids[1], ids[2]}}
		m := b.expect(http.StatusOK, "POST", "/v1/queues/ab/ack", body)
		if m["acked"] != 2.0 {
			t.Fatalf("ack batch = %v", m)
		}
		want := []bool{true, false, true, false}
		rs := m["results"].([]any)
		if len(rs) != len(want) {
			t.Fatalf("ack batch results = %v", rs)
		}
		for i, r := range rs {
			r := r.(map[string]any)
			if r["id"] != body["ids"].([]string)[i] || r["acked"] != want[i] {
				t.Fatalf("result %d = %v, want acked %v", i, r, want[i])
			}
		}
		if m := b.expect(http.StatusOK, "GET", "/v1/queues/ab", nil); m["in_flight"] != 0.0 {
			t.Fatalf("in flight after the acks: %v", m)
		}
		// Acked again: nothing to ack, still 200.
		if m := b.expect(http.StatusOK, "POST", "/v1/queues/ab/ack", `{"ids": ["`+ids[0]+`"]}`); m["acked"] != 0.0 {
			t.Fatalf("second ack batch = %v", m)
		}

		tooMany := make([]string, maxAckBatch+1)
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("1.1.%016x", i)
		}
		for _, bad := range []any{
			``, `{`, `[]`, `"ids"`, `{}`, `{"ids": []}`, `{"ids": null}`, `{"ids": "a"}`,
			`{"ids": [1]}`, `{"ids": [""]}`, `{"ids": ["a"], "more": 1}`, `{"ids": ["a"]} {}`,
			map[string]any{"ids": tooMany},
		} {
			b.expectError(http.StatusBadRequest, "POST", "/v1/queues/ab/ack", bad)
		}
		// The most ids there may be.
		if m := b.expect(http.StatusOK, "POST", "/v1/queues/ab/ack", map[string]any{"ids": tooMany[:maxAckBatch]}); m["acked"] != 0.0 {
			t.Fatalf("ack of %d unknown ids = %v", maxAckBatch, m["acked"])
		}
		b.expectError(http.StatusBadRequest, "POST", "/v1/queues/dlq:ab/ack", `{"ids": ["a"]}`)
		b.expectError(http.StatusMethodNotAllowed, "GET", "/v1/queues/ab/ack", nil)
	})
}

func TestNackAnswer(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "POST", "/v1/queues/na/items", `1`)
		id := receiveIDs(t, b, "na", 1, "")[0]
		before := time.Now()
		m := b.expect(http.StatusOK, "POST", "/v1/queues/na/nack/"+id+"?delay=1h", nil)
		after := time.Now()
		at := deadlineOf(t, m["redeliver_at"])
		if m["id"] != id || m["outcome"] != "redelivered" ||
			at.Before(before.Add(time.Hour).Truncate(time.Millisecond)) || at.After(after.Add(time.Hour)) {
			t.Fatalf("nack with delay 1h = %v", m)
		}
		b.expectError(http.StatusNotFound, "POST", "/v1/queues/na/nack/"+id, nil)
		for _, q := range []string{"delay=-1s", "delay=25h", "max_deliveries=0", "max_deliveries=1001", "reason=" + strings.Repeat("r", 1025)} {
			b.expectError(http.StatusBadRequest, "POST", "/v1/queues/na/nack/"+id+"?"+q, nil)
		}
	})
}

// Replies that hand out or settle items must not be cached.
func TestNoStore(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	b.expect(http.StatusOK, "POST", "/v1/queues/ns/batch", `[1, 2, 3]`)
	for _, c := range []struct {
		method, path string
		store        bool
	}{
		{"GET", "/v1/queues/ns/next", false},
		{"GET", "/detections/next?timeout=0", false},
		{"POST", "/v1/queues/ns/receive", false},
		{"POST", "/v1/queues/ns/ack/no-such-id", false},
		{"POST", "/v1/queues/ns/nack/no-such-id", false},
		{"POST", "/v1/queues/ns/extend/no-such-id", false},
		{"POST", "/v1/queues/ns/release/no-such-id", false},
		{"GET", "/v1/queues/ns/deliveries", false},
		{"GET", "/v1/queues/ns", true},
		{"GET", "/v1/queues/ns/items", true},
	} {
		resp := b.send(c.method, c.path, nil)
		resp.Body.Close()
		if got := resp.Header.Get("Cache-Control"); (got == "no-store") == c.store {
			t.Errorf("%s %s: Cache-Control %q", c.method, c.path, got)
		}
	}
	resp := b.send("POST", "/v1/queues/ns/ack", `{"ids": ["x"]}`)
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("POST ack batch: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

// preflight sends a browser's CORS preflight.
func preflight(b *bundle, path, origin, method string) *http.Response {
	b.t.Helper()
	resp := b.send("OPTIONS", path, nil, "Origin", origin, "Access-Control-Request-Method", method,
		"Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
	resp.Body.Close()
	return resp
}

func TestCORS(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	b := start(t, openClient(t, "embedded"), func(c *Config) {
		c.CORSOrigins = []string{app, "http://localhost:5173"}
		c.APIKeys = []string{"k"}
	})
	// A preflight carries no API key, and is answered all the same.
	resp := preflight(b, "/v1/queues/c/receive", app, "POST")
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	for _, name := range []string{"Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Headers"), name) {
			t.Errorf("preflight allows no %s: %q", name, h.Get("Access-Control-Allow-Headers"))
		}
	}
	if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("preflight: Vary %q", h.Values("Vary"))
	}
	// The call itself: the origin is allowed to read the reply.
	resp = b.send("POST", "/v1/queues/c/items", `1`, "Origin", app, "X-API-Key", "k")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("cross-origin add: %d %v", resp.StatusCode, resp.Header)
	}
	// An error reply too, so that the page can read why.
	resp = b.send("POST", "/v1/queues/c/items", `1`, "Origin", app)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("cross-origin add without a key: %d %v", resp.StatusCode, resp.Header)
	}

	// Another origin gets no CORS headers, on a preflight or a call.
	for _, r := range []*http.Response{
		preflight(b, "/v1/queues/c/receive", "https://evil.example", "POST"),
		preflight(b, "/v1/queues/c/receive", "https://app.example.com.evil.example", "POST"),
		b.send("GET", "/health", nil, "Origin", "https://evil.example"),
	} {
		r.Body.Close()
		for k := range r.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s %s from another origin: %s: %q", r.Request.Method, r.Request.URL.Path, k, r.Header.Get(k))
			}
		}
		if r.Request.Method == http.MethodOptions && r.StatusCode < 400 {
			t.Errorf("preflight from another origin: %d", r.StatusCode)
		}
	}
	// A preflight for a route that does not take the method is not
	// approved.
	if r := preflight(b, "/v1/queues/c/receive", app, "DELETE"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight of DELETE receive: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight(b, "/nowhere", app, "GET"); r.StatusCode != http.StatusNotFound {
		t.Errorf("preflight of an unknown route: %d", r.StatusCode)
	}
}

func TestCORSAnyOrigin(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.CORSOrigins = []string{"*"} })
	resp := preflight(b, "/v1/queues/c/ack", "https://any.example", "POST")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight under *: %d %v", resp.StatusCode, resp.Header)
	}
	// No Origin, no CORS headers; without configured origins, none either.
	resp = b.send("GET", "/health/live", nil)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("same-origin request got %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	plain := start(t, openClient(t, "embedded"), nil)
	resp = preflight(plain, "/v1/queues/c/ack", "https://any.example", "POST")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Vary") != "" {
		t.Fatalf("preflight without CORS origins: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestCORSOriginsValidated(t *testing.T) {
	t.Parallel()
	for _, o := range []string{"", "app.example.com", "https://app.example.com/", "https://a.example/x", "ftp://a.example", "https://"} {
		cfg := DefaultConfig()
		cfg.CORSOrigins = []string{o}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "CORSOrigins") {
			t.Errorf("CORSOrigins %q: %v", o, err)
		}
	}
	cfg := DefaultConfig()
	cfg.WebSocketOrigins = []string{"[x"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "WebSocketOrigins") {
		t.Errorf("WebSocketOrigins [x: %v", err)
	}
}

func TestWebSocketOrigins(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.WebSocketOrigins = []string{"*.example.com"} })
	c := b.dial("/v1/ws?channels=a", "Origin", "https://app.example.com")
	_ = c.Close(websocket.StatusNormalClosure, "")
	c = b.dial("/ws/events", "Origin", "https://app.example.com")
	_ = c.Close(websocket.StatusNormalClosure, "")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, origin := range []string{"https://evil.example", "https://example.com.evil.example"} {
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.ts.URL, "http")+"/v1/ws?channels=a",
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("WebSocket from %s: %v, status %d; want 403", origin, err, status)
		}
	}
}
