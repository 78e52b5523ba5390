package server

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestUIServed(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	noRedirect := &http.Client{Transport: b.hc.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(b.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "ui/" {
		t.Errorf("GET /: %d to %q, want 302 to ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/style.css", "/ui/queue"} {
		resp := b.send("GET", path, nil, "Accept-Encoding", "gzip")
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, resp.StatusCode)
		}
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: security headers %v", path, h)
		}
		if h.Get("Set-Cookie") != "" {
			t.Errorf("GET %s sets a cookie", path)
		}
		if h.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s: Content-Encoding %q, want gzip", path, h.Get("Content-Encoding"))
		}
	}
	resp = b.send("GET", "/ui/app.js", nil)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	etag := resp.Header.Get("ETag")
	if st, _ := b.do("GET", "/ui/app.js", nil, "If-None-Match", etag); st != http.StatusNotModified {
		t.Errorf("GET with If-None-Match: %d, want 304", st)
	}
	b.expectError(http.StatusNotFound, "GET", "/ui/nope.js", nil)
	// Unknown paths elsewhere stay JSON 404s, other methods 405s.
	b.expectError(http.StatusNotFound, "GET", "/nope", nil)
	b.expectError(http.StatusNotFound, "POST", "/nope", nil)
}

func TestUIOff(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.UI = false })
	b.expectError(http.StatusNotFound, "GET", "/", nil)
	b.expectError(http.StatusNotFound, "GET", "/ui/", nil)
}

// TestUIWithKeys: the dashboard's files need no key (they hold no data),
// the API calls they make do.
func TestUIWithKeys(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.APIKeys = []string{"k1"} })
	if st, _ := b.do("GET", "/ui/", nil); st != http.StatusOK {
		t.Errorf("GET /ui/ with keys set: %d, want 200", st)
	}
	noRedirect := &http.Client{Transport: b.hc.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(b.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("GET / with keys set: %d, want 302", resp.StatusCode)
	}
	b.expectError(http.StatusUnauthorized, "GET", "/v1/queues", nil)
}

// TestCrossOriginWrites: a browser's state-changing request from another
// site is refused; the same request from the page's own origin, or from
// a client that is not a browser, is not.
func TestCrossOriginWrites(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	msg := b.expectError(http.StatusForbidden, "POST", "/v1/queues/jobs/items", `{"a":1}`,
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", "text/plain")
	if !strings.Contains(msg, "cross-origin") {
		t.Errorf("refusal %q", msg)
	}
	b.expectError(http.StatusForbidden, "DELETE", "/v1/queues/jobs/dlq?kind=failed", nil, "Origin", "https://evil.example")
	b.expect(http.StatusOK, "POST", "/v1/queues/jobs/items", `{"a":1}`, "Sec-Fetch-Site", "same-origin")
	b.expect(http.StatusOK, "POST", "/v1/queues/jobs/items", `{"a":2}`)
	// Reads are not affected.
	b.expect(http.StatusOK, "GET", "/v1/queues/jobs", nil, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
}

// TestCrossOriginWritesCORS: the origins the service lets call it
// (CORSOrigins) may change state too; under "*", every origin may.
func TestCrossOriginWritesCORS(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.CORSOrigins = []string{app} })
	b.expect(http.StatusOK, "POST", "/v1/queues/jobs/items", `1`, "Origin", app, "Sec-Fetch-Site", "cross-site")
	b.expectError(http.StatusForbidden, "POST", "/v1/queues/jobs/items", `1`, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	anyOrigin := start(t, openClient(t, "embedded"), func(c *Config) { c.CORSOrigins = []string{"*"} })
	anyOrigin.expect(http.StatusOK, "POST", "/v1/queues/jobs/items", `1`, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
}

// TestWebSocketKeySubprotocol: a browser sends its key as a subprotocol,
// never in the URL; the server selects "sluice", never echoing the key.
func TestWebSocketKeySubprotocol(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.APIKeys = []string{"k/1+x"} })
	url := "ws" + strings.TrimPrefix(b.ts.URL, "http") + "/v1/ws?channels=c"
	dial := func(protocols ...string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: b.hc, Subprotocols: protocols})
	}
	key := "sluice.key." + base64.RawURLEncoding.EncodeToString([]byte("k/1+x"))
	c, resp, err := dial("sluice", key)
	if err != nil {
		t.Fatalf("dial with the key as a subprotocol: %v", err)
	}
	if got := c.Subprotocol(); got != "sluice" {
		t.Errorf("selected subprotocol %q, want sluice", got)
	}
	if strings.Contains(resp.Header.Get("Sec-WebSocket-Protocol"), "key") {
		t.Errorf("the key was echoed: %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	c.Close(websocket.StatusNormalClosure, "")
	wrong := "sluice.key." + base64.RawURLEncoding.EncodeToString([]byte("nope"))
	if _, resp, err := dial("sluice", wrong); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial with a wrong key: %v, want 401", err)
	}
}

func TestLockLookup(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		m := b.expect(http.StatusOK, "GET", "/v1/locks/job-7", nil)
		if m["held"] != false || m["name"] != "job-7" || m["ttl_ms"] != nil {
			t.Errorf("free lock: %v", m)
		}
		acq := b.expect(http.StatusOK, "POST", "/v1/locks/job-7", map[string]any{"ttl_ms": 60000})
		m = b.expect(http.StatusOK, "GET", "/v1/locks/job-7", nil)
		ttl, _ := m["ttl_ms"].(float64)
		if m["held"] != true || ttl <= 0 || ttl > 60000 || m["expires_at"] == nil {
			t.Errorf("held lock: %v", m)
		}
		if _, ok := m["token"]; ok {
			t.Errorf("the lookup shows the token: %v", m)
		}
		for _, v := range m {
			if v == acq["token"] {
				t.Errorf("the lookup shows the token: %v", m)
			}
		}
		b.expect(http.StatusNoContent, "DELETE", "/v1/locks/job-7?token="+acq["token"].(string), nil)
		if m = b.expect(http.StatusOK, "GET", "/v1/locks/job-7", nil); m["held"] != false {
			t.Errorf("released lock: %v", m)
		}
		b.expectError(http.StatusBadRequest, "GET", "/v1/locks/"+strings.Repeat("x", 1100), nil)
	})
}

// TestHealthTopology: /health says how the engine is deployed, for the
// dashboard's header.
func TestHealthTopology(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		m := b.expect(http.StatusOK, "GET", "/health", nil)
		want := map[string]string{"embedded": "embedded", "redis": "standalone"}[m["engine"].(string)]
		if m["topology"] != want {
			t.Errorf("health %v: topology %v, want %s", m, m["topology"], want)
		}
	})
}
