package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice"
)

// The service's own cost of POST /detections on the embedded engine,
// beside a bare handler that appends the body to a slice under a mutex:
// both are called directly, without a network or an HTTP server, so the
// difference is what the service adds (routing, validation and rewrite of
// the JSON, the add, metrics, the answer).
const benchDetection = `{"camera_id": "cam-1", "ts": 1700000000.123, "objects": [{"label": "person", "score": 0.97}], "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

func BenchmarkDetectionAddHandler(b *testing.B) {
	c, err := sluice.Open(context.Background(), "", &sluice.Config{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := testConfig()
	cfg.QueueMaxSize = sluice.Unbounded
	srv, err := New(c, cfg, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	benchHandler(b, srv.Handler())
}

func BenchmarkDetectionAddBare(b *testing.B) {
	var mu sync.Mutex
	var items []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		items = append(items, string(body))
		n := len(items)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"queued","queue_length":`+itoa(n)+`}`)
	})
	benchHandler(b, h)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}

func benchHandler(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/detections", strings.NewReader(benchDetection))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK && w.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
