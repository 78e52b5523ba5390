package deploy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
)

// metricName matches the Sluice metric names a PromQL expression (or a
// file of them) refers to.
var metricName = regexp.MustCompile(`\bsluice_[a-z0-9_]+\b`)

// referenced returns the distinct Sluice metric names in text, sorted.
func referenced(text string) []string {
	names := metricName.FindAllString(text, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// checkExposed fails the test for every name that a server under load
// does not expose on /metrics, so that the rules and the dashboard cannot
// drift from the metrics: a renamed or removed metric fails here. The
// server is polled until every name shows (some appear only once the
// maintainer has swept).
func checkExposed(t *testing.T, what string, names []string) {
	t.Helper()
	if len(names) == 0 {
		t.Fatalf("%s refers to no sluice_ metric", what)
	}
	url := metricsServer(t)
	var missing []string
	waitFor(t, 20*time.Second, what+": every metric it uses on /metrics", func() (bool, string) {
		code, body := get(url)
		if code != 200 {
			return false, body
		}
		exposed := map[string]bool{}
		for _, line := range strings.Split(body, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, _, _ := strings.Cut(line, "{")
			name, _, _ = strings.Cut(name, " ")
			exposed[name] = true
		}
		missing = missing[:0]
		for _, n := range names {
			if !exposed[n] {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0, "missing: " + strings.Join(missing, ", ")
	})
}

// metricsServer runs the service in-process on the embedded engine, with
// its maintainer, after the requests that make every series exist: items
// in a queue, a request timed by the latency histogram, a refusal by a
// limit. It returns the URL of /metrics.
func metricsServer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := sluice.Open(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Limits.MaxQueues = 1
	cfg.ShutdownTimeout = 5 * time.Second
	srv, err := server.New(c, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.RunMaintainer(ctx, &sluice.MaintainerOptions{Interval: 20 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		ts.Close()
		_ = c.Close()
	})
	for _, add := range []struct {
		queue string
		want  int
	}{{"jobs", 200}, {"jobs", 200}, {"more", http.StatusInsufficientStorage}} {
		resp, err := http.Post(ts.URL+"/v1/queues/"+add.queue+"/items", "application/json", strings.NewReader(`{"a": 1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != add.want {
			t.Fatalf("add to %s: %d, want %d", add.queue, resp.StatusCode, add.want)
		}
	}
	return ts.URL + "/metrics"
}

// TestAlertRulesUseExposedMetrics: every metric alerts.yml names is one
// the service exposes.
func TestAlertRulesUseExposedMetrics(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkExposed(t, "prometheus/alerts.yml", referenced(string(rules)))
}
