package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimalACL reads the README's minimal Redis ACL of a Sluice user (the
// line "ACL SETUSER sluice ..."), its password placeholder replaced.
func minimalACL(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(readme), "\n") {
		if rule, ok := strings.CutPrefix(line, "ACL SETUSER sluice "); ok {
			return strings.Fields(strings.Replace(rule, ">PASSWORD", ">sluice-secret", 1))
		}
	}
	t.Fatal(`README.md has no line "ACL SETUSER sluice ..."`)
	return nil
}

// TestServeWithMinimalACL runs sluice serve against a real redis-server as
// a user limited by the README's minimal ACL, under the key prefix "app:", and takes items through everything a
// deployment uses: adds, a receive, an ack, a nack to the failed DLQ, the
// maintainer's sweeps, statistics, listings, metrics and a publish. Redis
// logs every command the user was refused (ACL LOG): there must be none.
func TestServeWithMinimalACL(t *testing.T) {
	t.Parallel()
	redisBin := tool(t, "redis-server", "redis-server")
	cli := tool(t, "redis-cli", "redis-tools")
	bin := sluiceBinary(t)
	dir := t.TempDir()

	redisAddr := freeAddr(t)
	host, port, _ := strings.Cut(redisAddr, ":")
	redis := exec.Command(redisBin, append([]string{"--bind", host, "--port", port, "--save", "", "--appendonly", "no",
		"--dir", dir, "--user", "sluice"}, minimalACL(t)...)...)
	startProcess(t, "redis-server", redis)
	admin := func(args ...string) string {
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	waitFor(t, 10*time.Second, "redis-server answers", func() (bool, string) {
		out, err := exec.Command(cli, "-h", host, "-p", port, "ping").CombinedOutput()
		return err == nil && strings.TrimSpace(string(out)) == "PONG", string(out)
	})

	sluiceAddr := freeAddr(t)
	serve := exec.Command(bin, "serve", "--log-format", "json", "--sweep-interval", "100ms")
	serve.Env = []string{
		"SLUICE_ADDR=" + sluiceAddr, "SLUICE_KEY_PREFIX=app:",
		"REDIS_URL=redis://sluice@" + redisAddr + "/0", "REDIS_PASSWORD=sluice-secret",
	}
	p := startProcess(t, "sluice serve", serve)
	base := "http://" + sluiceAddr
	waitFor(t, 20*time.Second, "sluice serve is ready", func() (bool, string) {
		code, body := get(base + "/health/ready")
		return code == 200, body
	})

	do := func(method, path, body string, want ...int) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !slices.Contains(want, resp.StatusCode) {
			t.Fatalf("%s %s: %d %s, want %v", method, path, resp.StatusCode, b, want)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	receive := func() string {
		t.Helper()
		m := do("POST", "/v1/queues/jobs/receive?timeout=1s&lease=30s", "", 200)
		ds, _ := m["deliveries"].([]any)
		if len(ds) != 1 {
			t.Fatalf("receive: %v", m)
		}
		return ds[0].(map[string]any)["id"].(string)
	}
	do("PUT", "/v1/queues/jobs", `{"max_size": 100, "policy": "reject", "lease": "30s", "max_deliveries": 1}`, 200)
	for i := range 3 {
		do("POST", "/v1/queues/jobs/items", fmt.Sprintf(`{"n": %d}`, i), 200)
	}
	do("POST", "/v1/queues/jobs/ack/"+receive(), "", 204)
	do("POST", "/v1/queues/jobs/nack/"+receive(), "", 200, 204) // 204 before the nack reply had a body
	do("POST", "/detections", `{"camera": 1}`, 200)
	do("POST", "/v1/channels/news/messages", `{"message": "hello"}`, 200)
	stats := do("GET", "/v1/queues/jobs", "", 200)
	if stats["current_length"] != 1.0 || stats["failed_length"] != 1.0 {
		t.Fatalf("queue after ack and nack: %v", stats)
	}
	do("GET", "/v1/queues", "", 200)
	do("GET", "/v1/queues/jobs/dlq?kind=failed", "", 200)
	if code, body := get(base + "/metrics"); code != 200 || !strings.Contains(body, `sluice_queue_acked_total{queue="jobs"} 1`) {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	h := do("GET", "/health", "", 200)
	if h["status"] != "healthy" {
		t.Fatalf("health: %v", h)
	}
	// The maintainer (sweeping every 100ms as the same user) dead-letters
	// an expired lease that was the item's last delivery: its lock and
	// sweep scripts pass the ACL too.
	do("POST", "/v1/queues/jobs/receive?timeout=1s&lease=1s", "", 200)
	waitFor(t, 20*time.Second, "the maintainer dead-letters a spent lease", func() (bool, string) {
		m := do("GET", "/v1/queues/jobs", "", 200)
		st, _ := m["stats"].(map[string]any)
		return st["dead_lettered_total"] == 2.0, fmt.Sprint(st)
	})
	if keys := admin("--scan", "--pattern", "app:maintainer#sluice"); keys == "" {
		t.Error("no maintainer lock under the prefix")
	}
	p.stop(t)

	// Redis's log of refused commands: CONFIG GET only (the durability
	// check, optional), which sluice serve reports as a warning.
	lines := strings.Split(admin("acl", "log"), "\n")
	for i, l := range lines {
		if l == "object" && i+1 < len(lines) && lines[i+1] != "config|get" {
			t.Errorf("Redis refused %q to the Sluice user (ACL LOG):\n%s", lines[i+1], strings.Join(lines, "\n"))
		}
	}
	if h := fmt.Sprint(h["warnings"]); !strings.Contains(h, "CONFIG GET was refused") {
		t.Errorf("health warnings %s do not say that CONFIG GET was refused", h)
	}
	// Everything Sluice wrote is under its prefix.
	sc := bufio.NewScanner(strings.NewReader(admin("--scan")))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "app:") {
			t.Errorf("key %q outside the prefix", sc.Text())
		}
	}
}
