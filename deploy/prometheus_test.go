package deploy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPrometheusFiresAlert runs the real thing: sluice serve (the binary,
// built as releases are), a Prometheus scraping it every second with the
// rules of prometheus/alerts.yml, a queue filled past the rules'
// threshold, then past its bound, and the alerts seen firing through
// Prometheus's HTTP API.
//
// The rules are loaded with every `for:` shortened to 1s (a copy in the
// test's directory): their expressions are the shipped ones, only the time
// a condition must hold before firing differs.
func TestPrometheusFiresAlert(t *testing.T) {
	t.Parallel()
	promBin := tool(t, "prometheus", "prometheus")
	bin := sluiceBinary(t)
	dir := t.TempDir()

	sluiceAddr := freeAddr(t)
	serve := exec.Command(bin, "serve", "--log-format", "json")
	// Queues bounded at 10 items, so that 9 fill one to 0.9, past the
	// rule's 0.8, and refusing adds past the bound.
	serve.Env = []string{"SLUICE_ADDR=" + sluiceAddr, "QUEUE_MAX_SIZE=10", "QUEUE_OVERFLOW_POLICY=reject"}
	startProcess(t, "sluice serve", serve)
	base := "http://" + sluiceAddr
	waitFor(t, 20*time.Second, "sluice serve answers /health/live", func() (bool, string) {
		code, body := get(base + "/health/live")
		return code == 200, body
	})

	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	short := regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 1s"))
	writeFile(t, filepath.Join(dir, "alerts.yml"), string(short))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: [%q]
`, sluiceAddr))
	promAddr := freeAddr(t)
	prom := exec.Command(promBin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn")
	startProcess(t, "prometheus", prom)

	add := func(i, want int) {
		t.Helper()
		resp, err := http.Post(base+"/v1/queues/full/items", "application/json",
			strings.NewReader(fmt.Sprintf(`{"n": %d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("add %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	firing := func(alert string) {
		t.Helper()
		start := time.Now()
		waitFor(t, 30*time.Second, alert+" firing for queue full", func() (bool, string) {
			code, body := get("http://" + promAddr + "/api/v1/alerts")
			if code != http.StatusOK {
				return false, fmt.Sprintf("%d %s", code, body)
			}
			var r struct {
				Data struct {
					Alerts []struct {
						Labels map[string]string `json:"labels"`
						State  string            `json:"state"`
					} `json:"alerts"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				return false, err.Error()
			}
			for _, a := range r.Data.Alerts {
				if a.Labels["alertname"] == alert && a.Labels["queue"] == "full" && a.Labels["job"] == "sluice" && a.State == "firing" {
					return true, ""
				}
			}
			return false, body
		})
		t.Logf("%s firing after %v", alert, time.Since(start).Round(100*time.Millisecond))
	}

	for i := range 9 {
		add(i, http.StatusOK)
	}
	firing("SluiceQueueNearFull")
	// The 10th fills the queue, the 11th is refused: the counter the
	// rejection rule reads grows between two scrapes.
	add(9, http.StatusOK)
	add(10, http.StatusTooManyRequests)
	firing("SluiceQueueRejecting")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
