package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/redistest"
)

// TestRunHTTPLoadSmall checks that the load generator measures what it
// says, with a load far too small to say anything about speed.
func TestRunHTTPLoadSmall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	target := memoryTarget(t)
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, rc, prefix)
	rep, err := serveAndMeasure(ctx, target.client, httpLoadConfig{
		Clients: 2, Duration: 200 * time.Millisecond,
		FanoutClients: 3, FanoutRate: 50, FanoutDuration: 200 * time.Millisecond,
		RedisURL: redistest.URL(), KeyPrefix: prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Engine != "embedded" || rep.Post.Requests == 0 || rep.Post.Non2xx != 0 || rep.Post.Errors != 0 {
		t.Fatalf("post phase: %+v", rep)
	}
	if rep.Next.Requests == 0 || rep.NextItems == 0 || rep.NextItems > rep.Post.Requests+2*httpRounds {
		// (+2 a round: a post cut off by the end of its phase, one per
		// client, is stored, not counted)
		t.Fatalf("next phase: %+v, %d items", rep.Next, rep.NextItems)
	}
	if rep.BaselineRPush == nil || rep.BaselineRPush.Requests == 0 || rep.BaselineScript == nil || rep.BaselineScript.Requests == 0 {
		t.Fatalf("baseline: %+v %+v", rep.BaselineRPush, rep.BaselineScript)
	}
	f := rep.Fanout
	if f == nil || f.Published != 10 || f.Expected != 30 || f.Received != 30 || f.P99 <= 0 || f.Closed != 0 {
		t.Fatalf("fan-out: %+v", f)
	}
	if s := rep.String(); !strings.Contains(s, "POST /detections") || !strings.Contains(s, "fan-out") {
		t.Fatalf("report text:\n%s", s)
	}
}

// TestHTTPLoad is the full measurement, run on demand (`sluice bench
// http` runs the same from the command line):
//
//	SLUICE_BENCH_HTTP=1 go test -run TestHTTPLoad$ -v -timeout 20m ./internal/bench/
//
// SLUICE_BENCH_DURATION (default 10s) sets each phase's length,
// SLUICE_BENCH_ENGINES (default redis,memory) the engines, and
// SLUICE_BENCH_SKIP_FANOUT=1 skips the fan-out (measured on Redis only).
// SLUICE_BENCH_URL measures a server running elsewhere (such as `sluice
// serve` in another process) instead.
func TestHTTPLoad(t *testing.T) {
	if os.Getenv("SLUICE_BENCH_HTTP") == "" {
		t.Skip("set SLUICE_BENCH_HTTP=1 to run the HTTP benchmark")
	}
	d := 10 * time.Second
	if v := os.Getenv("SLUICE_BENCH_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	engines := []string{"redis", "memory"}
	if v := os.Getenv("SLUICE_BENCH_ENGINES"); v != "" {
		engines = strings.Split(v, ",")
	}
	external := os.Getenv("SLUICE_BENCH_URL")
	if external != "" {
		engines = []string{"redis"}
	}
	for _, engine := range engines {
		if engine == "embedded" {
			engine = "memory" // the name the older test took
		}
		t.Run(engine, func(t *testing.T) {
			o := Options{Engine: engine, RedisURL: redistest.URL(), Duration: d}
			h := HTTPOptions{URL: external}
			if engine != "redis" || os.Getenv("SLUICE_BENCH_SKIP_FANOUT") != "" {
				h.FanoutClients = -1
			}
			// HTTP fails when any request failed or was answered other
			// than 2xx: only 2xx answers are throughput.
			rep, err := HTTP(context.Background(), o, h)
			if err != nil {
				t.Fatalf("%v\n%s", err, rep)
			}
			if rep.Post.Requests == 0 || rep.Next.Requests == 0 {
				t.Fatalf("a request phase measured nothing:\n%s", rep)
			}
			t.Logf("\n%s", rep)
		})
	}
}

// TestDriveCountsOnly2xx checks that answers other than 2xx are not
// throughput: they are counted apart and make the phase fail.
func TestDriveCountsOnly2xx(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, `{"error":"full"}`, http.StatusInsufficientStorage)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	hc := loadClient(2)
	defer hc.CloseIdleConnections()
	cfg := httpLoadConfig{Clients: 2, Duration: 200 * time.Millisecond}
	st, err := drive(context.Background(), hc, cfg, http.MethodPost, srv.URL, http.Header{}, []byte("{}"), nil)
	if err == nil || !strings.Contains(err.Error(), "507") {
		t.Fatalf("drive with 507 answers: error %v, want one naming the 507", err)
	}
	if st.Requests == 0 || st.Non2xx == 0 || st.Errors != 0 {
		t.Fatalf("stats %+v: want 2xx and non-2xx answers counted apart", st)
	}
	if st.Requests+st.Non2xx > n.Load() {
		t.Fatalf("stats %+v count more answers than the %d the server gave", st, n.Load())
	}

	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	st, err = drive(context.Background(), hc, cfg, http.MethodGet, ok.URL, http.Header{}, nil, nil)
	if err != nil || st.Requests == 0 || st.Non2xx != 0 {
		t.Fatalf("drive with 200 answers: %+v, %v", st, err)
	}
}

// TestHTTPBareBaseline: without Redis the service is measured beside a
// bare handler appending to a slice, in the same rounds.
func TestHTTPBareBaseline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	target := memoryTarget(t)
	rep, err := serveAndMeasure(ctx, target.client, httpLoadConfig{Clients: 2, Duration: 150 * time.Millisecond, FanoutClients: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BaselineBare == nil || rep.BaselineBare.Requests == 0 || rep.BaselineRPush != nil || rep.Post.Requests == 0 {
		t.Fatalf("report: %+v, bare %+v", rep, rep.BaselineBare)
	}
	if s := rep.String(); !strings.Contains(s, "service / slice baseline") {
		t.Fatalf("report text:\n%s", s)
	}
}

// memoryTarget is an in-memory engine for one test, closed at its end.
func memoryTarget(t *testing.T) *target {
	t.Helper()
	tg, err := openTarget(context.Background(), short("memory"), "http", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tg.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tg
}
