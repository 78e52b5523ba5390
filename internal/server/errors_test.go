package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// recordingHandler keeps every log record, for tests that count lines.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// lines returns the records with message msg, as attribute maps.
func (h *recordingHandler) lines(msg string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		m := map[string]any{}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.Any()
			return true
		})
		out = append(out, m)
	}
	return out
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// outageServer is a server on a Redis reached through a proxy the test
// can stop, logging to a recorder, with a clock of the test's.
type outageServer struct {
	*bundle
	proxy *redistest.Proxy
	logs  *recordingHandler
	clock *fakeClock
}

func startOutageServer(t *testing.T) *outageServer {
	t.Helper()
	redistest.Client(t) // skips (or fails under CI) when Redis is down
	proxy := redistest.NewProxy(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, redistest.Client(t), prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sluice.Open(ctx, proxy.URL(), &sluice.Config{KeyPrefix: prefix, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cfg := testConfig()
	// Reads are retried by the Redis client until their deadline.
	cfg.WriteTimeout = time.Second
	logs := &recordingHandler{}
	srv, err := New(c, cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv.logs.now = clock.Now
	return &outageServer{bundle: serveBundle(t, c, srv), proxy: proxy, logs: logs, clock: clock}
}

// leaks lists what an error body must never show.
func leaks(body string, addr string) []string {
	var found []string
	for _, s := range []string{addr, "127.0.0.1", "dial", "tcp", "redisconn", "rueidis", "codec:", "EOF"} {
		if strings.Contains(body, s) {
			found = append(found, s)
		}
	}
	return found
}

// TestEngineOutageIs503 stops the Redis under a running service: every
// route that needs the engine answers 503 with Retry-After and a JSON
// message that names no address, and the health routes keep answering.
func TestEngineOutageIs503(t *testing.T) {
	t.Parallel()
	b := startOutageServer(t)
	b.expect(200, "POST", "/v1/queues/q/items", `"before"`)
	b.proxy.Stop()

	for _, r := range []struct{ method, path, body string }{
		{"POST", "/detections", `{"a": 1}`},
		{"GET", "/detections/next?timeout=0", ""},
		{"GET", "/v1/queues", ""},
		{"GET", "/v1/queues/q", ""},
		{"POST", "/v1/queues/q/items", `1`},
		{"GET", "/v1/queues/q/items", ""},
		{"DELETE", "/v1/queues/q/items", ""},
		{"POST", "/v1/queues/q/batch", `[1, 2]`},
		{"GET", "/v1/queues/q/next", ""},
		{"POST", "/v1/queues/q/receive", ""},
		{"POST", "/v1/queues/q/ack/1.1.0123456789abcdef", ""},
		{"POST", "/v1/queues/q/nack/1.1.0123456789abcdef", ""},
		{"POST", "/v1/queues/q/ack/b1.1.0123456789abcdef", ""},
		{"GET", "/v1/queues/q/dlq", ""},
		{"DELETE", "/v1/queues/q/dlq?kind=overflow", ""},
		{"POST", "/v1/queues/q/dlq/requeue", ""},
		{"POST", "/v1/channels/c/messages", `1`},
		{"PUT", "/v1/cache/k", `1`},
		{"GET", "/v1/cache/k", ""},
		{"DELETE", "/v1/cache/k", ""},
		{"POST", "/v1/locks/l", `{"ttl_ms": 1000}`},
		{"POST", "/v1/locks/l/refresh", `{"token": "t", "ttl_ms": 1000}`},
		{"DELETE", "/v1/locks/l?token=t", ""},
	} {
		var body any
		if r.body != "" {
			body = r.body
		}
		resp := b.send(r.method, r.path, body)
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		switch {
		case resp.StatusCode != http.StatusServiceUnavailable:
			t.Errorf("%s %s: status %d, want 503; body %s", r.method, r.path, resp.StatusCode, data)
		case resp.Header.Get("Retry-After") != "2":
			t.Errorf("%s %s: Retry-After %q, want 2", r.method, r.path, resp.Header.Get("Retry-After"))
		case json.Unmarshal(data, &m) != nil || !strings.Contains(m["error"], "retry later"):
			t.Errorf("%s %s: body %s, want {\"error\": \"... retry later\"}", r.method, r.path, data)
		case len(leaks(string(data), b.proxy.Addr())) > 0:
			t.Errorf("%s %s: body %s shows %v", r.method, r.path, data, leaks(string(data), b.proxy.Addr()))
		}
	}

	for _, path := range []string{"/health", "/health/ready"} {
		_, data := b.do("GET", path, nil)
		m := b.expect(503, "GET", path, nil)
		if l := leaks(string(data), b.proxy.Addr()); len(l) > 0 || m["error"] != "engine unavailable" {
			t.Errorf("GET %s during the outage: %s (shows %v)", path, data, l)
		}
	}
	b.expect(200, "GET", "/health/live", nil)
	// The operator's log has the cause.
	if lines := b.logs.lines("request failed"); len(lines) == 0 || !strings.Contains(fmt.Sprint(lines[0]["err"]), b.proxy.Addr()) &&
		!strings.Contains(fmt.Sprint(lines[0]["err"]), "EOF") {
		t.Errorf("log lines of the failures: %v", lines)
	}
}

// TestFailureLogIsRateLimited floods a service whose Redis is gone: one
// line per kind of failure and interval, with the count of the others.
func TestFailureLogIsRateLimited(t *testing.T) {
	t.Parallel()
	b := startOutageServer(t)
	b.proxy.Stop()
	const flood = 300
	for range flood {
		b.expectError(503, "POST", "/v1/queues/q/items", `1`)
	}
	lines := b.logs.lines("request failed")
	if len(lines) != 1 {
		t.Fatalf("%d log lines for %d identical failures within one interval, want 1: %v", len(lines), flood, lines)
	}
	if lines[0]["kind"] != "engine_unavailable" || lines[0]["suppressed"] != nil {
		t.Fatalf("first line: %v", lines[0])
	}

	b.clock.Advance(defaultLogInterval)
	b.expectError(503, "POST", "/v1/queues/q/items", `1`)
	lines = b.logs.lines("request failed")
	if len(lines) != 2 || lines[1]["suppressed"] != int64(flood-1) {
		t.Fatalf("after the interval: %v; want a second line with suppressed=%d", lines, flood-1)
	}

	// Repeats still held back when the server stops are reported then.
	for range 5 {
		b.expectError(503, "POST", "/v1/queues/q/items", `1`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Other kinds may have repeats held back too (the queue limit's
	// listing fails during the outage, at most once a second of real
	// time); the failed adds' kind must be reported exactly once.
	var held []map[string]any
	for _, l := range b.logs.lines("repeated log lines held back") {
		if l["kind"] == "engine_unavailable" {
			held = append(held, l)
		}
	}
	if len(held) != 1 || held[0]["suppressed"] != int64(5) {
		t.Fatalf("at shutdown: %v; want one engine_unavailable line with suppressed=5", held)
	}
}

func TestLogLimiter(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Unix(0, 0)}
	l := newLogLimiter(10 * time.Second)
	l.now = clock.Now
	steps := []struct {
		advance time.Duration
		key     string
		ok      bool
		n       int64
	}{
		{0, "a", true, 0},
		{0, "a", false, 0},
		{0, "b", true, 0}, // another kind has its own window
		{9 * time.Second, "a", false, 0},
		{time.Second, "a", true, 2},
		{time.Second, "a", false, 0},
		{time.Hour, "a", true, 1},
		{0, "b", true, 0},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		ok, n := l.allow(s.key)
		if ok != s.ok || n != s.n {
			t.Fatalf("step %d (%s): allow = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.n)
		}
	}
}

// rawServer serves through Run, whose listener rewrites net/http's own
// replies, and returns its address.
func rawServer(t *testing.T) string {
	t.Helper()
	srv, err := New(openClient(t, "embedded"), testConfig(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawExchange writes req (and then body, from another goroutine, as a
// client streaming a body does) on a new connection and reads the reply.
func rawExchange(t *testing.T, addr, req string, body []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := conn.Write([]byte(req)); err == nil && body != nil {
			_, _ = conn.Write(body)
		}
	}()
	defer func() { conn.Close(); <-wrote }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body of the reply to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	return resp, data
}

func wantJSONError(t *testing.T, what string, resp *http.Response, data []byte, status int, text string) {
	t.Helper()
	var m map[string]string
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(data, &m) != nil || !strings.Contains(m["error"], text) {
		t.Errorf("%s: %d %q %s; want %d JSON with an error mentioning %q", what, resp.StatusCode, resp.Header.Get("Content-Type"), data, status, text)
	}
}

// Requests net/http refuses before any handler runs are answered in JSON,
// and a refused POST still gets its answer (not a reset) while it sends
// its body.
func TestMalformedRequestsGetJSON(t *testing.T) {
	t.Parallel()
	addr := rawServer(t)
	for _, c := range []struct {
		name, req string
		body      []byte
		status    int
		text      string
	}{
		{"bad escape", "GET /v1/queues/%zz/items HTTP/1.1\r\nHost: x\r\n\r\n", nil, 400, "%25"},
		{"bad escape POST", "POST /v1/queues/%zz/items HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n",
			make([]byte, 4<<20), 400, "%25"},
		{"bad name POST", "POST /v1/queues/bad!name/items HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n",
			make([]byte, 4<<20), 400, `queue name "bad!name" has`},
		{"no host", "GET /health HTTP/1.1\r\n\r\n", nil, 400, "Host"},
		{"transfer encoding", "POST /v1/queues/q/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", nil, 501, "transfer encoding"},
		{"huge header", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20+4096) + "\r\n\r\n", nil, 431, "Header"},
	} {
		resp, data := rawExchange(t, addr, c.req, c.body)
		wantJSONError(t, c.name, resp, data, c.status, c.text)
	}

	// On a kept-alive connection: good requests are untouched, a bad one
	// after them is answered in JSON too.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(data) != "{\"status\":\"alive\"}\n" {
		t.Fatalf("good request: %d %s", resp.StatusCode, data)
	}
	fmt.Fprintf(conn, "GET /v1/%%gg HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantJSONError(t, "bad request after a good one", resp, data, 400, "%25")
}

func TestJSONEarlyError(t *testing.T) {
	t.Parallel()
	const h = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	for in, want := range map[string]string{
		"HTTP/1.1 400 Bad Request" + h + "400 Bad Request":                                                             "%25",
		"HTTP/1.1 400 Bad Request: missing required Host header" + h + "400 Bad Request: missing required Host header": "malformed request: missing required Host header",
		"HTTP/1.1 501 Not Implemented" + h + "Unsupported transfer encoding":                                           "request refused: Unsupported transfer encoding",
		"HTTP/1.1 431 Request Header Fields Too Large" + h + "431 Request Header Fields Too Large":                     "request refused: Request Header Fields Too Large",
	} {
		out, ok := jsonEarlyError([]byte(in))
		if !ok {
			t.Errorf("%q not rewritten", in)
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(out))), nil)
		if err != nil {
			t.Fatalf("rewritten %q: %v", out, err)
		}
		data, _ := io.ReadAll(resp.Body)
		wantJSONError(t, in, resp, data, resp.StatusCode, want)
		if resp.Header.Get("Connection") != "" || !resp.Close {
			t.Errorf("%q: the rewritten reply must keep Connection: close", in)
		}
	}
	// Handlers' replies pass untouched, whatever they hold.
	for _, in := range []string{
		"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nok",
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request and more",
		"\x81\x05HTTP/",
		"HTTP/1.1 ",
	} {
		if out, ok := jsonEarlyError([]byte(in)); ok {
			t.Errorf("%q rewritten as %q", in, out)
		}
	}
}

func TestWebSocketRoutesWithoutUpgrade(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	for _, path := range []string{"/v1/ws?channels=a", "/ws/events"} {
		resp := b.send("GET", path, nil)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantJSONError(t, path, resp, data, http.StatusUpgradeRequired, "WebSocket")
		if resp.Header.Get("Upgrade") != "websocket" {
			t.Errorf("%s: 426 without Upgrade: websocket", path)
		}
	}
	// The WebSocket library's own refusals become JSON too.
	upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket"}
	for _, c := range []struct {
		name   string
		header []string
		status int
		text   string
	}{
		{"version", append(upgrade, "Sec-WebSocket-Version", "8", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), 400, "version"},
		{"key", append(upgrade, "Sec-WebSocket-Version", "13"), 400, "Sec-WebSocket-Key"},
		{"origin", append(upgrade, "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Origin", "https://evil.example"), 403, "not authorized"},
	} {
		resp := b.send("GET", "/v1/ws", nil, c.header...)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantJSONError(t, c.name, resp, data, c.status, c.text)
	}
}
