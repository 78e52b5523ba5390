package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// service is a `sluice serve` running in-process for a test.
type service struct {
	base   string // http://host:port
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// startedAddr finds the listen address in the start line, in the text
// and the JSON log formats.
var startedAddr = regexp.MustCompile(`sluice starting.*\baddr"?[=:]"?([0-9.]+:[0-9]+)`)

// startService runs `sluice serve --addr 127.0.0.1:0 args...` until the
// test stops it (as SIGTERM would, by cancelling run's context).
func startService(t *testing.T, env map[string]string, args ...string) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{log: newSyncBuffer(), cancel: cancel, done: make(chan int, 1)}
	argv := append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)
	go func() {
		s.done <- run(ctx, argv, strings.NewReader(""), io.Discard, s.log, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	out := s.log.waitFor(t, "sluice starting", 20*time.Second)
	m := startedAddr.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no address in the start line:\n%s", out)
	}
	s.base = "http://" + m[1]
	return s
}

// stop shuts the service down gracefully and returns its exit code.
func (s *service) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // for the cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop; log:\n%s", s.log.String())
		return -1
	}
}

func (s *service) do(t *testing.T, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServeInMemorySaysNothingPersists(t *testing.T) {
	s := startService(t, nil)
	const warning = "a restart loses every item"
	if code, body := s.do(t, http.MethodGet, "/health", "", nil); code != http.StatusOK || !strings.Contains(body, `"engine":"embedded"`) || !strings.Contains(body, warning) {
		t.Fatalf("health: %d %s", code, body)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("serve exited %d after a graceful stop; log:\n%s", code, s.log.String())
	}
	if !strings.Contains(s.log.String(), warning) {
		t.Fatalf("no warning about persistence:\n%s", s.log.String())
	}
}

func TestServeDataDirPersists(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, map[string]string{"SLUICE_DATA_DIR": dir, "QUEUE_MAX_SIZE": "1", "QUEUE_OVERFLOW_POLICY": "reject"}, "--log-format", "json")
	if code, body := s.do(t, http.MethodPost, "/detections", `{"camera": "front"}`, nil); code != http.StatusOK {
		t.Fatalf("first detection: %d %s", code, body)
	}
	// QUEUE_MAX_SIZE and QUEUE_OVERFLOW_POLICY reach the service.
	if code, body := s.do(t, http.MethodPost, "/detections", `{"camera": "back"}`, nil); code != http.StatusTooManyRequests {
		t.Fatalf("second detection into a full queue: %d %s", code, body)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("serve exited %d; log:\n%s", code, s.log.String())
	}
	log := s.log.String()
	if strings.Contains(log, "nothing is persisted") || !strings.Contains(log, `"msg":"sluice starting"`) {
		t.Fatalf("unexpected log for a durable JSON-logging service:\n%s", log)
	}
	r := cli(t, nil, "", "queue", "get", "detections_queue", "--data-dir", dir).want(t, exitOK)
	if strings.TrimSpace(r.stdout) != `{"camera":"front"}` {
		t.Fatalf("the detection was not persisted: %q", r.stdout)
	}
}

func TestServeAPIKeys(t *testing.T) {
	s := startService(t, map[string]string{"SLUICE_API_KEYS": "from-env"}, "--api-keys", "k1, k2")
	if code, _ := s.do(t, http.MethodGet, "/v1/queues", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no key: %d", code)
	}
	// The flag replaces the environment's keys.
	if code, _ := s.do(t, http.MethodGet, "/v1/queues", "", map[string]string{"X-API-Key": "from-env"}); code != http.StatusUnauthorized {
		t.Fatalf("environment key after --api-keys: %d", code)
	}
	if code, body := s.do(t, http.MethodGet, "/v1/queues", "", map[string]string{"X-API-Key": "k2"}); code != http.StatusOK {
		t.Fatalf("good key: %d %s", code, body)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("serve exited %d", code)
	}
}

func TestServeNeverPrintsThePassword(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: opening fails, and the error must name
	// the host without the password.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out, errOut strings.Builder
	env := map[string]string{"REDIS_URL": "redis://admin:s3cr3t-pw@127.0.0.1:1/0"}
	code := run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
	if code != exitFailure {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitFailure, errOut.String())
	}
	if strings.Contains(errOut.String(), "s3cr3t-pw") || strings.Contains(out.String(), "s3cr3t-pw") {
		t.Fatalf("the password leaked: %s", errOut.String())
	}
	if !strings.Contains(errOut.String(), "127.0.0.1:1") {
		t.Fatalf("the error does not name the host: %s", errOut.String())
	}
}

func TestServeListenFailureExitsOne(t *testing.T) {
	s := startService(t, nil)
	addr := strings.TrimPrefix(s.base, "http://")
	r := cli(t, nil, "", "serve", "--addr", addr).want(t, exitFailure)
	if !strings.Contains(r.stderr, "listen on "+addr) {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

// TestServeStopsOnSignals runs the program as a process and stops it the
// way an init system does.
func TestServeStopsOnSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
			cmd.Env = append(os.Environ(), mainEnv+"=1")
			log := newSyncBuffer()
			cmd.Stderr = log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			log.waitFor(t, "sluice starting", 30*time.Second)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-waited:
				if err != nil {
					t.Fatalf("serve ended with %v after %v; log:\n%s", err, sig, log.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-waited
				t.Fatalf("serve did not stop on %v; log:\n%s", sig, log.String())
			}
		})
	}
}

// TestServeRunsTheMaintainer: with no consumer receiving, a spent lease
// (the fifth delivery of an item, the default max deliveries) still moves
// to the failed DLQ: `sluice serve` sweeps.
func TestServeRunsTheMaintainer(t *testing.T) {
	s := startService(t, nil, "--sweep-interval", "10ms")
	if code, body := s.do(t, http.MethodPost, "/v1/queues/w/items", `1`, nil); code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	for attempt := 1; attempt <= 5; attempt++ {
		// Each receive waits for the previous lease to run out.
		code, body := s.do(t, http.MethodPost, "/v1/queues/w/receive?lease=20ms&timeout=5s", "", nil)
		if code != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"attempt":%d`, attempt)) {
			t.Fatalf("receive %d: %d %s", attempt, code, body)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := s.do(t, http.MethodGet, "/v1/queues/w", "", nil)
		if strings.Contains(body, `"failed_length":1`) && strings.Contains(body, `"in_flight":0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spent lease was not dead-lettered within 10s: %s", body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("serve exited %d; log:\n%s", code, s.log.String())
	}
}

func TestServeRefusesANegativeSweepInterval(t *testing.T) {
	r := cli(t, nil, "", "serve", "--sweep-interval", "-1s")
	r.want(t, exitUsage)
	if !strings.Contains(r.stderr, "--sweep-interval") {
		t.Errorf("stderr does not name the flag: %q", r.stderr)
	}
}
