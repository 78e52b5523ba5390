package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
	"github.com/sluicehq/sluice/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// processLocal are the sluice_queue_ metrics of sluice serve that count
// what one server process saw, not what the engine keeps: the library
// collector cannot have them.
var processLocal = map[string]bool{
	"sluice_queue_overflow_total": true,
	"sluice_queue_put_back_total": true,
}

// TestCollectorMatchesServe: on the same engine, the collector exports
// exactly the engine-kept series of sluice serve's /metrics, with the same
// names, help, types, labels and values, so that dashboards and alert
// rules work on both (the service registers this collector; the test
// keeps it from growing a second one).
func TestCollectorMatchesServe(t *testing.T) {
	ctx := context.Background()
	c, err := sluice.Open(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := server.DefaultConfig()
	cfg.QueueMaxSize = 3
	srv, err := server.New(c, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	served := httptest.NewServer(srv.Handler())
	defer served.Close()

	// Some of everything: adds past the bound under two policies, a
	// delivery nacked to the failed DLQ, one in flight.
	jobs := c.QueueWith("jobs", sluice.QueueSettings{MaxSize: 3, Policy: sluice.PolicyDLQ})
	for i := range 5 {
		if _, err := jobs.Add(ctx, i, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		d, ok, err := jobs.Receive(ctx, time.Second, &sluice.ReceiveOptions{Lease: time.Minute, MaxDeliveries: 1})
		if err != nil || !ok {
			t.Fatalf("Receive: %v, %v", ok, err)
		}
		if i == 0 {
			if dead, err := d.Nack(ctx, nil); err != nil || !dead {
				t.Fatalf("Nack: dead-lettered %v, %v", dead, err)
			}
		}
	}
	strict := c.QueueWith("strict", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyReject})
	for range 2 {
		_, _ = strict.Add(ctx, "x", nil)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(c, &metrics.CollectorOptions{Defaults: sluice.QueueSettings{MaxSize: 3}}))
	lib := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer lib.Close()

	fromServe := families(t, served.URL+"/metrics")
	fromLib := families(t, lib.URL)
	if len(fromLib) == 0 {
		t.Fatal("the collector exported nothing")
	}
	for name, lines := range fromServe {
		if processLocal[name] || !strings.HasPrefix(name, "sluice_queue_") && !strings.HasPrefix(name, "sluice_engine_") {
			continue
		}
		if got, ok := fromLib[name]; !ok {
			t.Errorf("sluice serve exports %s, the collector does not", name)
		} else if !slices.Equal(got, lines) {
			t.Errorf("%s differs:\nserve:\n%s\ncollector:\n%s", name, strings.Join(lines, "\n"), strings.Join(got, "\n"))
		}
	}
	for name := range fromLib {
		if _, ok := fromServe[name]; !ok {
			t.Errorf("the collector exports %s, sluice serve does not", name)
		}
	}
	if !slices.Contains(fromLib["sluice_queue_rejected_total"], `sluice_queue_rejected_total{queue="strict"} 1`) {
		t.Errorf("rejections not counted: %q", fromLib["sluice_queue_rejected_total"])
	}
}

// families fetches a text exposition and returns its lines by family:
// HELP, TYPE, then the samples, sorted.
func families(t *testing.T, url string) map[string][]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var family string
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" {
			family = f[2]
		}
		if line != "" && family != "" {
			out[family] = append(out[family], line)
		}
	}
	for _, lines := range out {
		slices.Sort(lines[2:])
	}
	return out
}
