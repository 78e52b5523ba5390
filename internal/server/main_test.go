package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bundle is one running server under test.
type bundle struct {
	t      *testing.T
	client *sluice.Client
	srv    *Server
	ts     *httptest.Server
	hc     *http.Client
}

// engines runs f against a server on the embedded engine and on Redis.
func engines(t *testing.T, mutate func(*Config), f func(t *testing.T, b *bundle)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		f(t, start(t, openClient(t, "embedded"), mutate))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		f(t, start(t, openClient(t, "redis"), mutate))
	})
}

func openClient(t *testing.T, engine string) *sluice.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		c   *sluice.Client
		err error
	)
	switch engine {
	case "embedded":
		c, err = sluice.Open(ctx, "", &sluice.Config{Logger: quietLogger()})
	case "redis":
		rc := redistest.Client(t) // skips (or fails under CI) when Redis is down
		prefix := redistest.Prefix(t)
		redistest.Cleanup(t, rc, prefix)
		c, err = sluice.Open(ctx, redistest.URL(), &sluice.Config{KeyPrefix: prefix, Logger: quietLogger()})
	}
	if err != nil {
		t.Fatalf("open %s engine: %v", engine, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return c
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is DefaultConfig with waits short enough for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

func start(t *testing.T, c *sluice.Client, mutate func(*Config)) *bundle {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(c, cfg, quietLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return serveBundle(t, c, srv)
}

// serveBundle serves srv over HTTP for the test and shuts it down at
// cleanup.
func serveBundle(t *testing.T, c *sluice.Client, srv *Server) *bundle {
	t.Helper()
	// Every exchange is validated against openapi.json (openapi_test.go).
	ts := httptest.NewServer(specChecked(t, srv.Handler()))
	// A transport of its own: closing the idle connections of the shared
	// default transport at cleanup broke other tests' requests in flight.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
		hc.CloseIdleConnections()
	})
	return &bundle{t: t, client: c, srv: srv, ts: ts, hc: hc}
}

// do sends a request and returns the status and body.
func (b *bundle) do(method, path string, body any, header ...string) (int, []byte) {
	b.t.Helper()
	resp := b.send(method, path, body, header...)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

func (b *bundle) send(method, path string, body any, header ...string) *http.Response {
	b.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, b.ts.URL+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// try is do for other goroutines than the test's: it reports errors.
func (b *bundle) try(method, path string) (int, []byte, error) {
	req, err := http.NewRequest(method, b.ts.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// doAsync sends req in the background, for a test that cancels it midway;
// the channel yields the client's error.
func (b *bundle) doAsync(req *http.Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		resp, err := b.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	return done
}

// expect sends a request, checks the status and decodes the JSON reply.
func (b *bundle) expect(status int, method, path string, body any, header ...string) map[string]any {
	b.t.Helper()
	got, data := b.do(method, path, body, header...)
	if got != status {
		b.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, got, status, data)
	}
	if len(data) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		b.t.Fatalf("%s %s: reply is not a JSON object: %v: %s", method, path, err, data)
	}
	return m
}

// expectError checks a JSON error reply.
func (b *bundle) expectError(status int, method, path string, body any, header ...string) string {
	b.t.Helper()
	m := b.expect(status, method, path, body, header...)
	msg, ok := m["error"].(string)
	if !ok || msg == "" {
		b.t.Fatalf("%s %s: want {\"error\": ...}, got %v", method, path, m)
	}
	return msg
}

// counter reads a counter or gauge of the server's registry.
func counter(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// waitFor polls cond until it holds; the deadline only bounds a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
