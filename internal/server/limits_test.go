package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawRequest opens a TCP connection to addr and writes head, a request's
// start line and headers (and any body bytes): what a client that never
// finishes its body sends.
func rawRequest(t *testing.T, addr, head string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// Only a hang trips this: every wait below ends on an event.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// readStatus reads one response's status line and headers.
func readStatus(t *testing.T, rd *bufio.Reader, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(rd, req)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp
}

func TestTrickledBodyAnswered408(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.BodyTimeout = 100 * time.Millisecond })
	addr := strings.TrimPrefix(b.ts.URL, "http://")
	for _, path := range []string{"/v1/queues/q/items", "/v1/queues/q/batch", "/v1/channels/c/messages", "/detections"} {
		// Headers, then one byte of a 100-byte body, then nothing.
		_, rd := rawRequest(t, addr, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		resp := readStatus(t, rd, &http.Request{Method: http.MethodPost})
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e errorBody
		if resp.StatusCode != http.StatusRequestTimeout || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Fatalf("POST %s with a trickled body: %d %s; want 408 with a JSON error", path, resp.StatusCode, body)
		}
	}
	if n, _ := b.client.Queue("q").Len(context.Background()); n != 0 {
		t.Fatalf("queue holds %d items after bodies that never arrived", n)
	}
}

// A read deadline on the body must not cut off what comes after it: a
// long poll whose short body has arrived keeps waiting past BodyTimeout.
func TestBodyTimeoutSparesLongPolls(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), func(c *Config) { c.BodyTimeout = 20 * time.Millisecond })
	if got, body := b.do("POST", "/v1/queues/q/receive?timeout=300ms", `{}`); got != http.StatusNoContent {
		t.Fatalf("receive with a body, waiting past BodyTimeout: %d %s; want 204", got, body)
	}
	if got, body := b.do("GET", "/v1/queues/q/next?timeout=300ms", nil); got != http.StatusNoContent {
		t.Fatalf("next waiting past BodyTimeout: %d %s; want 204", got, body)
	}
}

// A client holding a request open (its body half sent) must not hold the
// shutdown: Run closes it once ShutdownTimeout has passed and reports a
// clean stop.
func TestRunShutdownCutsStalledClients(t *testing.T) {
	t.Parallel()
	c := openClient(t, "embedded")
	cfg := testConfig()
	cfg.BodyTimeout = time.Hour // only the shutdown can end the request
	cfg.ShutdownTimeout = 200 * time.Millisecond
	srv, err := New(c, cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, ln) }()

	// "100 Continue" comes when the handler starts reading the body: from
	// then on the request is in progress, held by the client.
	conn, rd := rawRequest(t, ln.Addr().String(),
		"POST /v1/queues/q/items HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
	if resp := readStatus(t, rd, &http.Request{Method: http.MethodPost}); resp.StatusCode != http.StatusContinue {
		t.Fatalf("status %d, want 100", resp.StatusCode)
	}
	if _, err := io.WriteString(conn, "{"); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cutting off the stalled client", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return: a stalled client holds the shutdown")
	}
	// The connection was closed under the client.
	if _, err := rd.ReadByte(); err == nil {
		t.Fatal("stalled client's connection still open after Run returned")
	}
}

// TestSlowClientsCountedOnce holds sluice_pubsub_slow_clients_closed_total
// to clients: a client that falls behind on two channels, and stays listed
// while its handler leaves, is one slow client, not one per dropped batch.
func TestSlowClientsCountedOnce(t *testing.T) {
	t.Parallel()
	c := openClient(t, "embedded")
	m := newMetrics(c, testConfig(), quietLogger())
	h := newHub(c, m, quietLogger(), 0) // no linger: one batch per message
	defer h.close()
	ctx := context.Background()
	channels := []string{"a", "b"}
	slow := newSubscriber(1, 1<<20) // room for one batch, and never read
	fast := newSubscriber(1000, 1<<30)
	if err := h.subscribe(ctx, slow, channels); err != nil {
		t.Fatal(err)
	}
	if err := h.subscribe(ctx, fast, channels); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for _, ch := range channels {
			if _, err := c.Publish(ctx, ch, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ch := range channels {
		if _, err := c.Publish(ctx, ch, "end"); err != nil {
			t.Fatal(err)
		}
	}
	// A channel's pump offers each batch to every client before it reads
	// the next message: once the fast client has both "end"s, every
	// earlier batch was offered to the slow one.
	for ends := 0; ends < 2; {
		select {
		case batch := <-fast.out:
			fast.taken(batch)
			for _, f := range batch {
				if string(f.data) == `"end"` {
					ends++
				}
			}
		case <-time.After(20 * time.Second):
			t.Fatal("fast client never got both end markers")
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("slow client not disconnected")
	}
	if got := counter(t, m.slowClosed); got != 1 {
		t.Fatalf("slow_clients_closed_total = %v for one slow client, want 1", got)
	}
	select {
	case <-fast.done:
		t.Fatal("fast client disconnected")
	default:
	}
	h.unsubscribeAll(slow)
	h.unsubscribeAll(fast)
}

// Clients that never read are disconnected by what they leave buffered in
// bytes, even when the batch bound is far away, and each is counted once.
func TestNeverReadingClientsClosedByBytes(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.ClientBuffer = 1 << 20 // the batch bound never trips
		c.Limits.ClientBufferBytes = 64 << 10
	}, func(t *testing.T, b *bundle) {
		const clients = 3
		var conns []*websocket.Conn
		for range clients {
			ws := b.dial("/v1/ws?channels=firehose")
			wsSync(t, ws)
			conns = append(conns, ws)
		}
		msg := `"` + strings.Repeat("x", 32<<10) + `"`
		for i := 0; counter(t, b.srv.metrics.slowClosed) < clients; i++ {
			if i > 5000 {
				t.Fatalf("after %d messages only %v of %d never-reading clients disconnected", i, counter(t, b.srv.metrics.slowClosed), clients)
			}
			b.expect(200, "POST", "/v1/channels/firehose/messages", msg)
		}
		for i, ws := range conns {
			if got := wsClosed(t, ws); got != websocket.StatusPolicyViolation {
				t.Fatalf("client %d: close status %v, want 1008", i, got)
			}
		}
		waitFor(t, "clients to leave", func() bool { return counter(t, b.srv.metrics.wsClients) == 0 })
		b.expect(200, "POST", "/v1/channels/firehose/messages", msg)
		if got := counter(t, b.srv.metrics.slowClosed); got != clients {
			t.Fatalf("slow_clients_closed_total = %v, want %d (one per client)", got, clients)
		}
	})
}

func TestStreamClientLimit(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) { c.Limits.MaxStreamClients = 2 }, func(t *testing.T, b *bundle) {
		ws := b.dial("/v1/ws?channels=a")
		wsSync(t, ws)
		sse := b.send("GET", "/v1/events?channels=a", nil)
		defer sse.Body.Close()
		if sse.StatusCode != http.StatusOK {
			t.Fatalf("SSE within the limit: %d", sse.StatusCode)
		}
		for _, path := range []string{"/v1/events?channels=a", "/v1/ws?channels=a", "/ws/events"} {
			resp := b.send("GET", path, nil, "Connection", "Upgrade", "Upgrade", "websocket",
				"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e errorBody
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Fatalf("GET %s past the limit: %d %s (Retry-After %q); want 503 JSON with Retry-After",
					path, resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
		}
		// A place frees when a client leaves.
		_ = ws.Close(websocket.StatusNormalClosure, "")
		waitFor(t, "the client to leave", func() bool { return counter(t, b.srv.metrics.wsClients) == 0 })
		wsSync(t, b.dial("/v1/ws?channels=a"))
	})
}

func TestSubscriptionLimits(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.Limits.MaxSubscriptions = 2
		c.Limits.MaxChannelsPerClient = 3
	}, func(t *testing.T, b *bundle) {
		ws := b.dial("/v1/ws?channels=a,b")
		wsSync(t, ws)
		// Channels with listeners share their subscription: no new one.
		other := b.dial("/v1/ws?channels=a,b")
		wsSync(t, other)
		if got := counter(t, b.srv.metrics.engineSubs); got != 2 {
			t.Fatalf("engine subscriptions = %v, want 2", got)
		}
		wsSend(t, other, `{"type":"subscribe","channels":["c"]}`)
		if m := wsRead(t, other); m["type"] != "error" || !strings.Contains(m["error"].(string), "limit") {
			t.Fatalf("subscribe past MaxSubscriptions: %v", m)
		}
		wsSend(t, other, `{"type":"subscribe","channels":["x","y"]}`)
		if m := wsRead(t, other); m["type"] != "error" || !strings.Contains(m["error"].(string), "at most 3") {
			t.Fatalf("subscribe past MaxChannelsPerClient: %v", m)
		}
		if got := wsClosed(t, b.dial("/v1/ws?channels=c")); got != websocket.StatusTryAgainLater {
			t.Fatalf("connect past MaxSubscriptions: close status %v, want 1013", got)
		}
		b.expectError(http.StatusServiceUnavailable, "GET", "/v1/events?channels=c", nil)
		b.expectError(http.StatusBadRequest, "GET", "/v1/events?channels=a,b,c,d", nil)
		if got := counter(t, b.srv.metrics.engineSubs); got != 2 {
			t.Fatalf("engine subscriptions = %v after refusals, want 2", got)
		}
		// Existing subscriptions keep working.
		b.expect(200, "POST", "/v1/channels/a/messages", `1`)
		if m := wsRead(t, ws); m["data"] != 1.0 {
			t.Fatalf("message on a shared channel: %v", m)
		}
	})
}

func TestQueueLimit(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) { c.Limits.MaxQueues = 3 }, func(t *testing.T, b *bundle) {
		for i := range 3 {
			b.expect(200, "POST", fmt.Sprintf("/v1/queues/q%d/items", i), `1`)
		}
		msg := b.expectError(http.StatusInsufficientStorage, "POST", "/v1/queues/q3/items", `1`)
		if !strings.Contains(msg, "queue limit") {
			t.Fatalf("queue limit error %q", msg)
		}
		b.expectError(http.StatusInsufficientStorage, "POST", "/v1/queues/q4/batch", `[1, 2]`)
		b.expectError(http.StatusInsufficientStorage, "POST", "/detections", `{"a": 1}`)
		// Existing queues keep working, and nothing was created.
		b.expect(200, "POST", "/v1/queues/q0/items", `2`)
		b.expect(200, "POST", "/v1/queues/q1/batch", `[3]`)
		m := b.expect(200, "GET", "/v1/queues", nil)
		if got := len(m["queues"].([]any)); got != 3 {
			t.Fatalf("GET /v1/queues lists %d queues, want 3", got)
		}
		if got := counter(t, b.srv.metrics.limitRefused.WithLabelValues("queues")); got != 3 {
			t.Fatalf("limit_refused_total{limit=queues} = %v, want 3", got)
		}
	})
}

func TestGuessedDeliveryIDRefused(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/work/batch", `["a", "b"]`)
		m := b.expect(200, "POST", "/v1/queues/work/receive?count=1", nil)
		id := m["deliveries"].([]any)[0].(map[string]any)["id"].(string)
		// The other client's delivery, b, got the next id in sequence in
		// the old scheme; none of these settle it.
		dot := strings.IndexByte(id, '.')
		var seq int
		if _, err := fmt.Sscan(id[:dot], &seq); err != nil {
			t.Fatalf("delivery id %q: %v", id, err)
		}
		other := b.expect(200, "POST", "/v1/queues/work/receive?count=1", nil)
		otherID := other["deliveries"].([]any)[0].(map[string]any)["id"].(string)
		for _, guess := range []string{fmt.Sprintf("%d.1", seq+1), fmt.Sprintf("%d.1%s", seq+1, id[strings.LastIndexByte(id, '.'):]), flipHex(otherID)} {
			b.expectError(http.StatusNotFound, "POST", "/v1/queues/work/ack/"+guess, nil)
			b.expectError(http.StatusNotFound, "POST", "/v1/queues/work/nack/"+guess, nil)
		}
		b.expect(http.StatusNoContent, "POST", "/v1/queues/work/ack/"+otherID, nil)
		b.expect(http.StatusNoContent, "POST", "/v1/queues/work/ack/"+id, nil)
	})
}

func flipHex(id string) string {
	if id[len(id)-1] == '0' {
		return id[:len(id)-1] + "1"
	}
	return id[:len(id)-1] + "0"
}

// The byte bound is on what waits for a slow client: a client that keeps
// up receives a message larger than the bound instead of being closed.
func TestLargeMessageReachesClientsThatKeepUp(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.Limits.ClientBufferBytes = 4 << 10
	}, func(t *testing.T, b *bundle) {
		ws := b.dial("/v1/ws?channels=big")
		wsSync(t, ws)
		big := strings.Repeat("y", 16<<10)
		b.expect(200, "POST", "/v1/channels/big/messages", `"`+big+`"`)
		if m := wsRead(t, ws); m["data"] != big {
			t.Fatalf("got %.80v, want the %d-byte message", m, len(big))
		}
		if got := counter(t, b.srv.metrics.slowClosed); got != 0 {
			t.Fatalf("slow_clients_closed_total = %v after one message to a reading client", got)
		}
	})
}

// An add that fails leaves no phantom queue holding a place under the
// queue limit.
func TestQueueLimitIgnoresFailedAdds(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) { c.Limits.MaxQueues = 3 }, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/real0/items", `1`)
		b.expect(200, "POST", "/v1/queues/real1/items", `1`)
		// The library refuses a key of more than 255 bytes, after the
		// service counted the name.
		long := strings.Repeat("k", 300)
		for i := range 5 {
			req, err := http.NewRequest(http.MethodPost, b.ts.URL+fmt.Sprintf("/v1/queues/never%d/items", i), strings.NewReader(`1`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Idempotency-Key", long)
			resp, err := b.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("add with a %d-byte key: status %d, want 400", len(long), resp.StatusCode)
			}
		}
		b.expect(200, "POST", "/v1/queues/real2/items", `1`)
	})
}
