package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluicehq/sluice/internal/keyspace"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"embedded", "redis"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			b := start(t, openClient(t, engine), nil)
			m := b.expect(200, "GET", "/health", nil)
			if m["status"] != "healthy" || m["connected"] != true || m["engine"] != engine {
				t.Fatalf("health = %v", m)
			}
			if engine == "redis" && m["redis_version"] == nil {
				t.Fatalf("health lacks redis_version: %v", m)
			}
			b.expect(200, "GET", "/health/live", nil)
			b.expect(200, "GET", "/health/ready", nil)
		})
	}
	t.Run("closed engine", func(t *testing.T) {
		t.Parallel()
		c := openClient(t, "embedded")
		b := start(t, c, nil)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		m := b.expect(503, "GET", "/health", nil)
		if m["status"] != "unhealthy" || m["connected"] != false || m["error"] == nil {
			t.Fatalf("unhealthy = %v", m)
		}
		b.expect(503, "GET", "/health/ready", nil)
		b.expect(200, "GET", "/health/live", nil)
		// Engine trouble is a 503, never a client's fault.
		b.expectError(503, "POST", "/detections", `{"a": 1}`)
	})
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	b.expectError(404, "GET", "/nope", nil)
	b.expectError(404, "GET", "/v1/queues/a/b/c", nil)
	msg := b.expectError(405, "DELETE", "/detections", nil)
	if !strings.Contains(msg, "POST") {
		t.Fatalf("405 message %q does not say what is allowed", msg)
	}
	// HEAD reaches GET routes, but never one that pops an item.
	if code, _ := b.do("HEAD", "/detections/next?timeout=0", nil); code != 405 {
		t.Fatalf("HEAD /detections/next: %d", code)
	}
	if code, _ := b.do("HEAD", "/v1/queues/x/next", nil); code != 405 {
		t.Fatalf("HEAD /v1/queues/x/next: %d", code)
	}
	if code, _ := b.do("HEAD", "/v1/queues/x", nil); code != 200 {
		t.Fatalf("HEAD /v1/queues/x: %d", code)
	}
	resp := b.send("PUT", "/v1/queues/x/items", "1")
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("405: %d, Allow %q, type %q", resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"))
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) { c.MaxBodyBytes = 64 }, func(t *testing.T, b *bundle) {
		big := `{"pad": "` + strings.Repeat("x", 100) + `"}`
		b.expectError(413, "POST", "/detections", big)
		b.expectError(413, "POST", "/v1/queues/q/items", big)
		b.expectError(413, "POST", "/v1/queues/q/batch", "["+big+"]")
		b.expectError(413, "PUT", "/v1/cache/k", big)
		b.expectError(413, "POST", "/v1/channels/c/messages", big)
		b.expectError(413, "POST", "/v1/locks/l", `{"ttl_ms": 1000, "wait_ms": 0, "token": "`+strings.Repeat("t", 80)+`"}`)
		if n, err := b.client.Queue("q").Len(context.Background()); err != nil || n != 0 {
			t.Fatalf("a refused body was stored: %d (%v)", n, err)
		}
		b.expect(200, "POST", "/v1/queues/q/items", `{"small": 1}`)
	})
}

func TestAuth(t *testing.T) {
	t.Parallel()
	engines(t, func(c *Config) { c.APIKeys = []string{"k1", "second-key"} }, func(t *testing.T, b *bundle) {
		b.expectError(401, "POST", "/detections", `{"a": 1}`)
		b.expectError(401, "GET", "/v1/queues", nil)
		b.expectError(401, "GET", "/v1/queues", nil, "X-API-Key", "wrong")
		b.expectError(401, "GET", "/v1/queues", nil, "Authorization", "Bearer k")
		b.expectError(401, "GET", "/v1/queues?api_key=k1", nil)
		b.expect(200, "POST", "/detections", `{"a": 1}`, "X-API-Key", "k1")
		b.expect(200, "GET", "/v1/queues", nil, "Authorization", "Bearer second-key")
		b.expect(200, "GET", "/v1/queues", nil, "Authorization", "bearer k1")
		// Unknown routes stay 404 whoever asks.
		b.expectError(404, "GET", "/nope", nil)
		// Health and metrics are open.
		b.expect(200, "GET", "/health", nil)
		b.expect(200, "GET", "/health/live", nil)
		if code, _ := b.do("GET", "/metrics", nil); code != 200 {
			t.Fatalf("metrics without key: %d", code)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsURL := "ws" + strings.TrimPrefix(b.ts.URL, "http")
		_, resp, err := websocket.Dial(ctx, wsURL+"/v1/ws?channels=a", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("websocket without key: %v %v", err, resp)
		}
		c := b.dial("/v1/ws?channels=a&api_key=k1")
		wsSync(t, c)
		c = b.dial("/ws/events", "X-API-Key", "second-key")
		_ = c.Close(websocket.StatusNormalClosure, "")
		resp2 := b.send("GET", "/v1/events?channels=a&api_key=second-key", nil)
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusOK {
			t.Fatalf("SSE with api_key: %d", resp2.StatusCode)
		}
	})
}

func TestCache(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expectError(404, "GET", "/v1/cache/camera:1:status", nil)
		b.expect(204, "PUT", "/v1/cache/camera:1:status?ttl=300", `{"online": true, "fps": 30}`)
		m := b.expect(200, "GET", "/v1/cache/camera:1:status", nil)
		if m["online"] != true || m["fps"] != 30.0 {
			t.Fatalf("cache get = %v", m)
		}
		ttl, ok, err := b.client.Cache().TTL(context.Background(), keyspace.ServiceCacheKey("camera:1:status"))
		if err != nil || !ok || ttl <= 0 || ttl > 300*time.Second {
			t.Fatalf("ttl = %v %v %v", ttl, ok, err)
		}
		if code, body := b.do("HEAD", "/v1/cache/camera:1:status", nil); code != 200 || len(body) != 0 {
			t.Fatalf("HEAD: %d %q", code, body)
		}
		if code, _ := b.do("HEAD", "/v1/cache/missing", nil); code != 404 {
			t.Fatalf("HEAD missing: %d", code)
		}
		b.expect(204, "PUT", "/v1/cache/s", `"text"`)
		if code, body := b.do("GET", "/v1/cache/s", nil); code != 200 || string(body) != "\"text\"\n" {
			t.Fatalf("string value: %d %s", code, body)
		}
		if m := b.expect(200, "DELETE", "/v1/cache/camera:1:status", nil); m["deleted"] != true {
			t.Fatalf("delete = %v", m)
		}
		if m := b.expect(200, "DELETE", "/v1/cache/camera:1:status", nil); m["deleted"] != false {
			t.Fatalf("second delete = %v", m)
		}
		b.expectError(404, "GET", "/v1/cache/camera:1:status", nil)
		b.expectError(400, "PUT", "/v1/cache/k?ttl=-5", `1`)
		b.expectError(400, "PUT", "/v1/cache/k?ttl=soon", `1`)
		b.expectError(400, "PUT", "/v1/cache/k", `{"x":`)
		// A space is the library's to allow (names_test.go: one rule).
		b.expect(204, "PUT", "/v1/cache/sp%20ace", `1`)
	})
}

func TestLocks(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		m := b.expect(200, "POST", "/v1/locks/camera:7", `{"ttl_ms": 30000}`)
		token, _ := m["token"].(string)
		fence, _ := m["fencing_token"].(float64)
		exp, err := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
		if token == "" || fence < 1 || err != nil || time.Until(exp) <= 0 {
			t.Fatalf("acquire = %v (%v)", m, err)
		}
		b.expectError(409, "POST", "/v1/locks/camera:7", `{"ttl_ms": 30000, "wait_ms": 30}`)

		m = b.expect(200, "POST", "/v1/locks/camera:7/refresh", map[string]any{"token": token, "ttl_ms": 60000})
		// Any replica can refresh with the token alone; the fencing token
		// belongs to the acquisition and is not repeated.
		if m["token"] != token || m["expires_at"] == nil || m["fencing_token"] != nil {
			t.Fatalf("refresh = %v", m)
		}
		b.expectError(409, "POST", "/v1/locks/camera:7/refresh", `{"token": "other", "ttl_ms": 1000}`)
		b.expectError(409, "DELETE", "/v1/locks/camera:7?token=other", nil)
		b.expect(204, "DELETE", "/v1/locks/camera:7?token="+token, nil)
		b.expectError(409, "DELETE", "/v1/locks/camera:7?token="+token, nil)

		m = b.expect(200, "POST", "/v1/locks/camera:7", `{"ttl_ms": 1000, "wait_ms": 0}`)
		if m["fencing_token"].(float64) <= fence {
			t.Fatalf("fencing token did not increase: %v then %v", fence, m["fencing_token"])
		}

		for _, body := range []string{``, `{}`, `{"ttl_ms": -1}`, `{"ttl_ms": 0}`, `{"ttl_ms": 1000, "wait_ms": -1}`,
			`{"ttl_ms": 1000, "extra": 1}`, `{"ttl_ms": "soon"}`, `{"ttl_ms": true}`, `{"ttl_ms": 1000, "token": "mine"}`, `[1]`} {
			b.expectError(400, "POST", "/v1/locks/x", body)
		}
		b.expectError(400, "POST", "/v1/locks/x/refresh", `{"ttl_ms": 1000}`)
		b.expectError(400, "DELETE", "/v1/locks/x", nil)
		b.expectError(400, "POST", "/v1/locks/x", `{"ttl_ms": 1000, "wait_ms": 3600000}`)
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/mq/items?max_size=1&policy=dlq", `1`)
		b.expect(200, "POST", "/v1/queues/mq/items?max_size=1&policy=dlq", `2`)
		b.expect(200, "POST", "/detections", `{"a": 1}`)
		code, body := b.do("GET", "/metrics", nil)
		if code != 200 {
			t.Fatalf("metrics: %d", code)
		}
		text := string(body)
		for _, want := range []string{
			`sluice_queue_length{queue="mq"} 1`,
			`sluice_queue_length{queue="detections_queue"} 1`,
			`sluice_queue_fill_ratio{queue="detections_queue"} 0.0001`,
			`sluice_queue_overflow_total{policy="dlq",queue="mq"} 1`,
			`sluice_queue_moved_to_dlq_total{queue="mq"} 1`,
			`sluice_http_request_duration_seconds_count{code="200",method="POST",route="POST /detections"} 1`,
			`sluice_websocket_clients 0`,
			`sluice_pubsub_messages_fanned_out_total 0`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

func TestPanicBecomes500(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	b.srv.mux.HandleFunc("GET /test/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	msg := b.expectError(500, "GET", "/test/panic", nil)
	if msg != "internal server error" {
		t.Fatalf("500 message %q", msg)
	}
	if got := counter(t, b.srv.metrics.panics); got != 1 {
		t.Fatalf("panics = %v", got)
	}
	b.expect(200, "GET", "/health/live", nil)
}

// TestGracefulShutdown runs the real Run loop: a blocked get answers
// "empty", a WebSocket client is closed with 1001, Run returns nil and
// the listener is closed.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"embedded", "redis"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			c := openClient(t, engine)
			srv, err := New(c, testConfig(), quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			waiting := make(chan struct{}, 1)
			srv.hooks.waiting = func(*http.Request) {
				select {
				case waiting <- struct{}{}:
				default:
				}
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			runErr := make(chan error, 1)
			go func() { runErr <- srv.Run(ctx, ln) }()
			base := "http://" + ln.Addr().String()
			hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			defer hc.CloseIdleConnections()

			dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer dcancel()
			ws, _, err := websocket.Dial(dctx, "ws://"+ln.Addr().String()+"/v1/ws?channels=bye", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ws.CloseNow() }()
			wsSync(t, ws)

			var wg sync.WaitGroup
			var getBody string
			var getErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := hc.Get(base + "/detections/next?timeout=60")
				if err != nil {
					getErr = err
					return
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				getBody = string(data)
			}()
			<-waiting
			stop()

			if got := wsClosed(t, ws); got != websocket.StatusGoingAway {
				t.Fatalf("websocket close status %v, want 1001", got)
			}
			wg.Wait()
			if getErr != nil || getBody != "{\"status\":\"empty\"}\n" {
				t.Fatalf("blocked get during shutdown: %q %v", getBody, getErr)
			}
			if err := <-runErr; err != nil {
				t.Fatalf("Run = %v", err)
			}
			if _, err := hc.Get(base + "/health/live"); err == nil {
				t.Fatal("server still accepting after shutdown")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"addr", func(c *Config) { c.Addr = "8000" }, "Addr"},
		{"keys", func(c *Config) { c.APIKeys = []string{"a", " "} }, "APIKeys"},
		{"policy", func(c *Config) { c.QueueOverflowPolicy = "evict" }, "QueueOverflowPolicy"},
		{"threshold", func(c *Config) { c.QueueBackpressureThreshold = 1.5 }, "QueueBackpressureThreshold"},
		{"compression", func(c *Config) { c.CompressionThreshold = -1 }, "CompressionThreshold"},
		{"window", func(c *Config) { c.IdempotencyWindow = 0 }, "IdempotencyWindow"},
		{"body", func(c *Config) { c.MaxBodyBytes = 0 }, "MaxBodyBytes"},
		{"log", func(c *Config) { c.LogFormat = "xml" }, "LogFormat"},
		{"wait", func(c *Config) { c.PollInterval = 0 }, "PollInterval"},
		{"buffer", func(c *Config) { c.ClientBuffer = 0 }, "ClientBuffer"},
		{"limit", func(c *Config) { c.Limits.MaxQueues = -1 }, "Limits.MaxQueues"},
	} {
		cfg := DefaultConfig()
		tc.mutate(&cfg)
		err := cfg.Validate()
		// Config speaks of its fields: flags and environment variables
		// are the command's to name.
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.want || strings.Contains(err.Error(), "--") {
			t.Errorf("%s: Validate() = %v, want a ConfigError of field %s and no flag names", tc.name, err, tc.want)
		}
		if _, err := New(openClient(t, "embedded"), cfg, nil); err == nil {
			t.Errorf("%s: New accepted an invalid config", tc.name)
		}
	}
	if _, err := New(nil, DefaultConfig(), nil); err == nil {
		t.Error("New accepted a nil client")
	}
	var ve interface{ Unwrap() []error }
	cfg := DefaultConfig()
	cfg.LogFormat, cfg.MaxBodyBytes = "xml", 0
	if err := cfg.Validate(); !errors.As(err, &ve) || len(ve.Unwrap()) != 2 {
		t.Errorf("want both mistakes reported, got %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	cfg := DefaultConfig()
	cfg.LogFormat = "json"
	cfg.NewLogger(&buf, slog.LevelInfo).Info("hello", "k", 1)
	var m map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &m); err != nil || m["msg"] != "hello" {
		t.Fatalf("json log %q: %v", buf.String(), err)
	}
	buf.Reset()
	cfg.LogFormat = "text"
	cfg.NewLogger(&buf, slog.LevelInfo).Info("hello")
	if !strings.Contains(buf.String(), "msg=hello") {
		t.Fatalf("text log %q", buf.String())
	}
}

func TestQueueNamesInListAreQueues(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(200, "POST", "/v1/queues/a.b:c-d_{e}/items", `1`)
		m := b.expect(200, "GET", "/v1/queues/a.b:c-d_{e}", nil)
		if m["current_length"] != 1.0 {
			t.Fatalf("info = %v", m)
		}
		raw, _ := json.Marshal(b.expect(200, "GET", "/v1/queues", nil))
		if !strings.Contains(string(raw), `"a.b:c-d_{e}"`) {
			t.Fatalf("list = %s", raw)
		}
	})
}
