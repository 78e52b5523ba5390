package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func (b *bundle) dial(path string, header ...string) *websocket.Conn {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.ts.URL, "http")+path, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		b.t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	c.SetReadLimit(4 << 20)
	b.t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("ws write: %v", err)
	}
}

func wsRead(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("ws read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("ws message %s: %v", data, err)
	}
	return m
}

// wsSync sends a ping and waits for the pong: every message the server
// sent before it has been read, and every command sent before it handled.
func wsSync(t *testing.T, c *websocket.Conn) {
	t.Helper()
	wsSend(t, c, `{"type":"ping"}`)
	if m := wsRead(t, c); m["type"] != "pong" {
		t.Fatalf("want pong, got %v", m)
	}
}

// wsClosed reads until the connection ends and returns its close status.
func wsClosed(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("connection not closed")
			}
			return websocket.CloseStatus(err)
		}
	}
}

func TestWebSocketPubSub(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		if m := b.expect(200, "POST", "/v1/channels/nobody/messages", `{"x": 1}`); m["receivers"] != 0.0 {
			t.Fatalf("publish without subscribers = %v", m)
		}
		c1 := b.dial("/v1/ws?channels=alerts,news")
		c2 := b.dial("/v1/ws?channels=alerts")
		wsSync(t, c1)
		wsSync(t, c2)
		if got := counter(t, b.srv.metrics.wsClients); got != 2 {
			t.Fatalf("websocket clients gauge = %v", got)
		}
		// One engine subscription per channel, however many clients.
		if got := counter(t, b.srv.metrics.engineSubs); got != 2 {
			t.Fatalf("engine subscriptions = %v", got)
		}

		m := b.expect(200, "POST", "/v1/channels/alerts/messages", `{"level": "high"}`)
		if m["receivers"] != 1.0 {
			t.Fatalf("publish = %v, want 1 receiver (the shared subscription)", m)
		}
		for _, c := range []*websocket.Conn{c1, c2} {
			got := wsRead(t, c)
			if got["channel"] != "alerts" || got["data"].(map[string]any)["level"] != "high" {
				t.Fatalf("message = %v", got)
			}
		}
		b.expect(200, "POST", "/v1/channels/news/messages", `"plain"`)
		if got := wsRead(t, c1); got["channel"] != "news" || got["data"] != "plain" {
			t.Fatalf("message = %v", got)
		}

		wsSend(t, c2, `{"type":"subscribe","channels":["news"]}`)
		if got := wsRead(t, c2); got["type"] != "subscribed" {
			t.Fatalf("subscribe reply = %v", got)
		}
		wsSend(t, c1, `{"type":"unsubscribe","channels":["news"]}`)
		if got := wsRead(t, c1); got["type"] != "unsubscribed" {
			t.Fatalf("unsubscribe reply = %v", got)
		}
		b.expect(200, "POST", "/v1/channels/news/messages", `2`)
		if got := wsRead(t, c2); got["channel"] != "news" || got["data"] != 2.0 {
			t.Fatalf("message = %v", got)
		}
		wsSync(t, c1) // c1 got nothing before its pong
		waitFor(t, "fan-out counter", func() bool { return counter(t, b.srv.metrics.fannedOut) == 4 })

		wsSend(t, c1, `{"type":"dance"}`)
		if got := wsRead(t, c1); got["type"] != "error" {
			t.Fatalf("unknown type reply = %v", got)
		}
		wsSend(t, c1, `not json`)
		if got := wsRead(t, c1); got["type"] != "error" {
			t.Fatalf("invalid JSON reply = %v", got)
		}
		wsSend(t, c1, `{"type":"subscribe","channels":[]}`)
		if got := wsRead(t, c1); got["type"] != "error" {
			t.Fatalf("empty subscribe reply = %v", got)
		}

		_ = c1.Close(websocket.StatusNormalClosure, "")
		_ = c2.Close(websocket.StatusNormalClosure, "")
		waitFor(t, "clients gone", func() bool {
			return counter(t, b.srv.metrics.wsClients) == 0 && counter(t, b.srv.metrics.engineSubs) == 0
		})
	})
}

func TestSeedWebSocket(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		c := b.dial("/ws/events")
		// The Python service's clients send nothing and get no replies; wait until
		// the three subscriptions exist instead.
		waitFor(t, "subscriptions", func() bool { return counter(t, b.srv.metrics.engineSubs) == 3 })
		for _, ch := range []string{"camera_events", "risk_alerts", "system_status"} {
			b.expect(200, "POST", "/v1/channels/"+ch+"/messages", `{"type": "motion", "camera_id": 7}`)
			if got := wsRead(t, c); got["type"] != "motion" || got["camera_id"] != 7.0 {
				t.Fatalf("%s: seed message = %v", ch, got)
			}
		}
	})
}

func TestWebSocketRejectsBadChannels(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expectError(400, "GET", "/v1/ws?channels=a,,b", nil)
		b.expectError(400, "GET", "/v1/events?channels=", nil)
		b.expectError(400, "GET", "/v1/events?channels=sp%20ace", nil)
		b.expectError(400, "POST", "/v1/channels/sp%20ace/messages", `1`)
		b.expectError(400, "POST", "/v1/channels/ok/messages", `{`)
		// A plain GET without the upgrade is refused by the handshake.
		if code, _ := b.do("GET", "/v1/ws?channels=a", nil); code < 400 || code >= 500 {
			t.Fatalf("non-upgrade request: %d", code)
		}
	})
}

func TestSSE(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		resp := b.send("GET", "/v1/events?channels=feed", nil)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("SSE status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		rd := bufio.NewReader(resp.Body)
		if line, _ := rd.ReadString('\n'); line != ": connected\n" {
			t.Fatalf("first line %q", line)
		}
		if got := counter(t, b.srv.metrics.sseClients); got != 1 {
			t.Fatalf("sse gauge = %v", got)
		}
		b.expect(200, "POST", "/v1/channels/feed/messages", `{"n": 1}`)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "data: ") {
				if line != "data: {\"channel\":\"feed\",\"data\":{\"n\":1}}\n" {
					t.Fatalf("event %q", line)
				}
				break
			}
		}
	})
}

func TestSlowClientClosedWith1008(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.ClientBuffer = 1
		c.MaxBodyBytes = 2 << 20
	}, func(t *testing.T, b *bundle) {
		slow := b.dial("/v1/ws?channels=firehose")
		wsSync(t, slow)
		big := `"` + strings.Repeat("x", 1<<20) + `"`
		// The slow client reads nothing: socket buffers fill, then its
		// message buffer, and the hub disconnects it.
		for i := 0; counter(t, b.srv.metrics.slowClosed) == 0; i++ {
			if i > 500 {
				t.Fatal("slow client never disconnected")
			}
			b.expect(200, "POST", "/v1/channels/firehose/messages", big)
		}
		if got := wsClosed(t, slow); got != websocket.StatusPolicyViolation {
			t.Fatalf("close status %v, want 1008", got)
		}
	})
}

func TestWebSocketIdleAndPing(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.IdleTimeout = 100 * time.Millisecond
		c.PingInterval = 20 * time.Millisecond
		c.PingTimeout = 5 * time.Second
	}, func(t *testing.T, b *bundle) {
		// Subscribed and answering pings (reading answers them): not idle.
		busy := b.dial("/v1/ws?channels=c1")
		idle := b.dial("/v1/ws")
		if got := wsClosed(t, idle); got != websocket.StatusNormalClosure {
			t.Fatalf("idle close status %v", got)
		}
		wsSync(t, busy)
		b.expect(200, "POST", "/v1/channels/c1/messages", `1`)
		if got := wsRead(t, busy); got["data"] != 1.0 {
			t.Fatalf("busy client message %v", got)
		}
	})
}

func TestWebSocketPingTimeout(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.PingTimeout = 200 * time.Millisecond
	}, func(t *testing.T, b *bundle) {
		c := b.dial("/v1/ws?channels=quiet")
		// The handshake completes before the server counts the client; a
		// pong means it is counted. From then on the client reads nothing,
		// so it answers no ping.
		wsSync(t, c)
		waitFor(t, "dead client dropped", func() bool { return counter(t, b.srv.metrics.wsClients) == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			_, _, err := c.Read(ctx)
			if err != nil {
				if ctx.Err() != nil {
					t.Fatal("not closed")
				}
				var ce websocket.CloseError
				if errors.As(err, &ce) && ce.Code != websocket.StatusGoingAway {
					t.Fatalf("close %v", ce)
				}
				return
			}
		}
	})
}

// TestWebSocketFrameSizes crosses each length encoding of a frame header.
func TestWebSocketFrameSizes(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	c := b.dial("/v1/ws?channels=sizes")
	wsSync(t, c)
	for _, n := range []int{0, 90, 125, 126, 200, 65535, 65536, 300000} {
		payload := `"` + strings.Repeat("y", n) + `"`
		b.expect(200, "POST", "/v1/channels/sizes/messages", payload)
		got := wsRead(t, c)
		if s, _ := got["data"].(string); len(s) != n {
			t.Fatalf("payload of %d bytes arrived as %d", n, len(s))
		}
	}
	wsSync(t, c)
}

func TestWSTextFrameHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n      int
		header int
	}{{0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}} {
		f := wsTextFrame(make([]byte, tc.n))
		if len(f) != tc.header+tc.n || f[0] != 0x81 {
			t.Fatalf("%d bytes: frame of %d bytes, first byte %#x", tc.n, len(f), f[0])
		}
		var n int
		switch f[1] {
		case 126:
			n = int(f[2])<<8 | int(f[3])
		case 127:
			for _, x := range f[2:10] {
				n = n<<8 | int(x)
			}
		default:
			n = int(f[1])
		}
		if n != tc.n {
			t.Fatalf("%d bytes: header says %d", tc.n, n)
		}
	}
}

// TestWebSocketCommandFlood: a client that sends commands faster than it
// reads replies is served, then closes cleanly.
func TestWebSocketCommandFlood(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	c := b.dial("/v1/ws?channels=flood")
	for range 200 {
		wsSend(t, c, `{"type":"ping"}`)
	}
	for range 200 {
		if m := wsRead(t, c); m["type"] != "pong" {
			t.Fatalf("reply %v", m)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client gone", func() bool { return counter(t, b.srv.metrics.wsClients) == 0 })
}
