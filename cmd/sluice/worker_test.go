package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
)

func TestWorkerUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"worker", "jobs"}, "give one of --exec and --webhook"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--webhook", "http://x"}, "give one of --exec and --webhook"},
		{[]string{"worker", "--exec", "/bin/true"}, "missing QUEUE"},
		{[]string{"worker", "bad name", "--exec", "/bin/true"}, "worker:"},
		{[]string{"worker", "jobs", "--exec", "a | b"}, "needs a shell"},
		{[]string{"worker", "jobs", "--exec", "/no/such/program"}, "no such file"},
		{[]string{"worker", "jobs", "--exec", "no-such-program-anywhere x"}, "not found"},
		{[]string{"worker", "jobs", "--exec", "a 'b"}, "unterminated"},
		{[]string{"worker", "jobs", "--exec", `sh -c 'echo {item}'`, "--arg"}, "an item would run as code"},
		{[]string{"worker", "jobs", "--exec", `cat {item}`, "--arg", "--batch", "5"}, "a batch goes to stdin"},
		{[]string{"worker", "jobs", "--webhook", "ftp://x"}, "want an http"},
		{[]string{"worker", "jobs", "--webhook", "http://x", "--arg"}, "--arg goes with --exec"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--batch", "1001"}, "--batch 1001"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--concurrency", "0"}, "--concurrency"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--prefetch", "-1"}, "--prefetch -1"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--prefetch", "1001"}, "--prefetch 1001"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--url", "http://x", "--redis", "redis://x"}, "select different places"},
		{[]string{"worker", "jobs", "--exec", "/bin/true", "--url", "localhost:8000"}, "--url"},
	} {
		r := cli(t, nil, "", tc.args...).want(t, exitUsage)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: stderr lacks %q:\n%s", tc.args, tc.want, r.stderr)
		}
	}
	r := cli(t, nil, "", "worker", "-h").want(t, exitOK)
	for _, w := range []string{"examples:", "--exec string", "--webhook string", "--shutdown-timeout duration", "--prefetch int", "exit status:"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("worker -h lacks %q", w)
		}
	}
}

// startWorker runs `sluice worker` in-process until the returned stop,
// which returns its exit status.
func startWorker(t *testing.T, env map[string]string, args ...string) (stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"worker"}, args...), strings.NewReader(""), io.Discard, stderr, func(k string) string { return env[k] })
	}()
	var code *int
	stop = func() int {
		if code == nil {
			cancel()
			select {
			case c := <-done:
				code = &c
			case <-time.After(30 * time.Second):
				t.Fatalf("worker did not stop:\n%s", stderr.String())
			}
		}
		return *code
	}
	t.Cleanup(func() { stop() })
	return stderr, stop
}

func TestWorkerOnAnEngine(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		cli(t, nil, "", args([]string{"queue", "add", "wq", `{"a":1}`}, conn)...).want(t, exitOK)
		cli(t, nil, "", args([]string{"queue", "add", "wq", `{"a":2}`}, conn)...).want(t, exitOK)
		cli(t, nil, "", args([]string{"queue", "add", "wq", `{"fail":true}`}, conn)...).want(t, exitOK)
		stderr, stop := startWorker(t, nil, args([]string{"wq", "--exec", `sh -c 'grep -q fail && { echo no >&2; exit 1; }; exit 0'`,
			"--max-deliveries", "1", "--progress", "20ms", "--concurrency", "2", "--prefetch", "3"}, conn)...)
		stderr.waitFor(t, "processed=2 failed=1 dead_lettered=1", 20*time.Second)
		if code := stop(); code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		out := stderr.String()
		for _, w := range []string{"concurrency=2 prefetch=3", `msg="run failed; dead-lettered"`, `reason="exit status 1: no"`, "dead_lettered=true", `msg="worker stopped" processed=2`} {
			if !strings.Contains(out, w) {
				t.Errorf("log lacks %q:\n%s", w, out)
			}
		}
		r := cli(t, nil, "", args([]string{"dlq", "list", "wq", "--kind", "failed"}, conn)...).want(t, exitOK)
		if !strings.Contains(r.stdout, "exit status 1: no") {
			t.Errorf("failed DLQ: %s", r.stdout)
		}
	})
}

func TestWorkerURLMode(t *testing.T) {
	c, ts := testService(t, func(cfg *server.Config) { cfg.APIKeys = []string{"s3cret"} })
	q := c.Queue("remote")
	for range 5 {
		if _, err := q.Add(context.Background(), map[string]int{"x": 1}, nil); err != nil {
			t.Fatal(err)
		}
	}

	// A wrong key stops the worker at start: exit 2, as any refusal of
	// the service is (a configuration mistake).
	r := cli(t, map[string]string{"SLUICE_API_KEY": "wrong"}, "", "worker", "remote", "--url", ts.URL, "--exec", "/bin/true")
	r.want(t, exitUsage)
	if !strings.Contains(r.stderr, "401") || strings.Contains(r.stderr, "wrong") {
		t.Errorf("stderr: %s", r.stderr)
	}

	const metricsAddr = "127.0.0.1:19201"
	stderr, stop := startWorker(t, map[string]string{"SLUICE_API_KEY": "s3cret"}, "remote", "--url", ts.URL, "--exec", "/bin/true",
		"--concurrency", "3", "--metrics-addr", metricsAddr)
	eventuallyTrue(t, "5 acked", func() bool {
		s, err := q.Stats(context.Background())
		return err == nil && s.Acked == 5
	})
	eventuallyTrue(t, "metrics", func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `sluice_worker_processed_total{queue="remote"} 5`)
	})
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if conn, err := net.Dial("tcp", metricsAddr); err == nil {
		conn.Close()
		t.Fatal("the metrics listener is still open after the worker stopped")
	}
	if strings.Contains(stderr.String(), "s3cret") {
		t.Fatal("the API key is in the log")
	}
}

// eventuallyTrue polls cond until it holds, failing after 20 s.
func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStatusLine: on a terminal the status line is cleared before a log
// record and drawn again after it.
func TestStatusLine(t *testing.T) {
	var b strings.Builder
	u := &statusUI{out: &b, tty: true}
	u.draw("3 processed")
	if _, err := u.Write([]byte("level=INFO msg=x\n")); err != nil {
		t.Fatal(err)
	}
	if want := "\r\x1b[K3 processed\r\x1b[Klevel=INFO msg=x\n3 processed"; b.String() != want {
		t.Fatalf("%q, want %q", b.String(), want)
	}
	b.Reset()
	plain := &statusUI{out: &b}
	_, _ = plain.Write([]byte("level=INFO msg=x\n"))
	if b.String() != "level=INFO msg=x\n" {
		t.Fatalf("not a terminal: %q", b.String())
	}
}

// TestWorkerSIGTERMLosesNothing runs `sluice worker` as a process against
// a service and stops it with SIGTERM while three items run: they are
// killed after the shutdown timeout (or at a second SIGTERM) and released,
// and every item is back in the queue as its first attempt.
func TestWorkerSIGTERMLosesNothing(t *testing.T) {
	t.Run("shutdown timeout", func(t *testing.T) { workerSIGTERM(t, false) })
	t.Run("second signal", func(t *testing.T) { workerSIGTERM(t, true) })
}

func workerSIGTERM(t *testing.T, twice bool) {
	c, ts := testService(t, nil)
	q := c.Queue("sig")
	const total = 10
	for i := range total {
		if _, err := q.Add(context.Background(), map[string]int{"n": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	shutdownTimeout := "50ms"
	if twice {
		shutdownTimeout = "1h"
	}
	cmd := exec.Command(os.Args[0], "worker", "sig", "--url", ts.URL, "--concurrency", "3", "--shutdown-timeout", shutdownTimeout, "--kill-grace", "1s",
		"--exec", `sh -c 'echo $$ > "$0/$SLUICE_DELIVERY_ID"; while :; do sleep 0.05; done' `+dir)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stderr syncBuffer
	stderr.changed = make(chan struct{}, 1)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	eventuallyTrue(t, "3 runs", func() bool {
		files, _ := os.ReadDir(dir)
		pids = pids[:0]
		for _, f := range files {
			b, _ := os.ReadFile(filepath.Join(dir, f.Name()))
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				pids = append(pids, pid)
			}
		}
		return len(pids) == 3
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if twice {
		stderr.waitFor(t, "stopping", 20*time.Second)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, stderr.String())
	}
	out := stderr.String()
	// The 3 killed runs, and the 3 items leased ahead (--prefetch is
	// --concurrency by default).
	if !strings.Contains(out, "released=6") || strings.Count(out, `why="killed by the shutdown"`) != 3 {
		t.Errorf("log lacks released=6, or 3 items killed by the shutdown:\n%s", out)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z") {
				t.Errorf("run %d outlived the worker", pid)
			}
		}
	}
	seen := map[int]bool{}
	for {
		ds, err := q.ReceiveBatch(context.Background(), 100, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			var v struct{ N int }
			if err := d.Item.Decode(&v); err != nil || d.Attempt != 1 || seen[v.N] {
				t.Fatalf("item %s attempt %d (seen before: %v): %v", d.Item, d.Attempt, seen[v.N], err)
			}
			seen[v.N] = true
		}
	}
	if len(seen) != total {
		t.Fatalf("%d items back in the queue, want %d\n%s", len(seen), total, out)
	}
}

// TestWorkerWebhookBatches: --webhook with --batch POSTs JSON arrays and
// acks them as a whole.
func TestWorkerWebhookBatches(t *testing.T) {
	c, ts := testService(t, nil)
	var items, posts atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]int
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil || len(batch) > 5 || r.Header.Get("Sluice-Batch-Size") != strconv.Itoa(len(batch)) {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		items.Add(int64(len(batch)))
		posts.Add(1)
	}))
	defer hook.Close()
	q := c.Queue("hooked")
	for i := range 12 {
		if _, err := q.Add(context.Background(), map[string]int{"n": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	stderr, stop := startWorker(t, nil, "hooked", "--url", ts.URL, "--webhook", hook.URL, "--batch", "5", "--idle", "50ms")
	eventuallyTrue(t, "12 acked", func() bool {
		s, err := q.Stats(context.Background())
		return err == nil && s.Acked == 12
	})
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if items.Load() != 12 || posts.Load() < 3 {
		t.Fatalf("%d items in %d posts", items.Load(), posts.Load())
	}
}

// TestWorkerChildEnvHasNoAPIKey: a program run per item inherits the
// worker's environment but not the key it talks to the service with.
func TestWorkerChildEnvHasNoAPIKey(t *testing.T) {
	env := childEnv([]string{"PATH=/bin", "SLUICE_API_KEY=s3cret", "SLUICE_URL=http://h:8000", "HOME=/root"})
	got := strings.Join(env, " ")
	if strings.Contains(got, "s3cret") || got != "PATH=/bin SLUICE_URL=http://h:8000 HOME=/root" {
		t.Fatalf("child environment %q", got)
	}
}

// testService runs the service on an in-memory engine for the test, over
// HTTP, with mutate's changes to the default configuration, and stops it
// at the test's end.
func testService(t *testing.T, mutate func(*server.Config)) (*sluice.Client, *httptest.Server) {
	t.Helper()
	c, err := sluice.Open(context.Background(), "mem://", &sluice.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := server.New(c, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
		c.Close()
	})
	return c, ts
}
