package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/remote"
	"github.com/sluicehq/sluice/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openMem(t *testing.T) *sluice.Client {
	t.Helper()
	c, err := sluice.Open(context.Background(), "mem://", &sluice.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fill adds n items {"n": i} to q.
func fill(t *testing.T, q *sluice.Queue, n int) {
	t.Helper()
	for i := range n {
		if _, err := q.Add(context.Background(), map[string]int{"n": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// running is a worker running in the background.
type running struct {
	w    *Worker
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.Lease == 0 {
		cfg.Lease = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.wait(t); err != nil {
			t.Error(err)
		}
	})
	return r
}

// wait stops the worker and returns Run's error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// eventually polls cond until it holds, failing after 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shell(t *testing.T, script string, env ...string) *Exec {
	t.Helper()
	return &Exec{Argv: []string{"/bin/sh", "-c", script}, Env: env, KillGrace: 200 * time.Millisecond, Stderr: io.Discard}
}

// bothSources runs f with a Source on the library's queue and with one
// through the HTTP API of a service on the same engine.
func bothSources(t *testing.T, f func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source)) {
	t.Run("library", func(t *testing.T) {
		f(t, openMem(t), FromQueue)
	})
	t.Run("service", func(t *testing.T) {
		c := openMem(t)
		rc := serve(t, c)
		f(t, c, func(q *sluice.Queue) Source { return FromRemote(rc, q.Name(), q.HandleSettings().MaxDeliveries) })
	})
}

// serve runs the HTTP service on c for the test and returns a client of it.
func serve(t *testing.T, c *sluice.Client) *remote.Client {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.ShutdownTimeout = 10 * time.Second
	srv, err := server.New(c, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
		hc.CloseIdleConnections()
	})
	rc, err := remote.New(ts.URL, "", hc)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func stats(t *testing.T, q *sluice.Queue) sluice.QueueStats {
	t.Helper()
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExecAcksEveryItem(t *testing.T) {
	c := openMem(t)
	q := c.Queue("jobs")
	fill(t, q, 20)
	dir := t.TempDir()
	// Each run leaves its metadata and its stdin in a file of its own.
	run := shell(t, `printf '%s %s\n' "$SLUICE_QUEUE" "$SLUICE_ATTEMPT" > "$DIR/$SLUICE_DELIVERY_ID"; cat >> "$DIR/$SLUICE_DELIVERY_ID"`, "DIR="+dir)
	r := start(t, Config{Queue: "jobs", Source: FromQueue(q), Runner: run, Concurrency: 4})
	eventually(t, "20 processed", func() bool { return r.w.Counts().Processed == 20 })
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	s := stats(t, q)
	if s.Length != 0 || s.InFlight != 0 || s.Acked != 20 || s.Nacked != 0 {
		t.Fatalf("stats %+v", s)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 20 {
		t.Fatalf("%d runs left a file, want 20", len(files))
	}
	seen := map[int]bool{}
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(dir, f.Name()))
		head, item, _ := strings.Cut(string(b), "\n")
		if head != "jobs 1" {
			t.Errorf("metadata %q, want \"jobs 1\"", head)
		}
		var v struct{ N int }
		if err := json.Unmarshal([]byte(item), &v); err != nil {
			t.Fatalf("stdin %q: %v", item, err)
		}
		seen[v.N] = true
	}
	if len(seen) != 20 {
		t.Fatalf("items seen %v", seen)
	}
}

func TestPlaceholders(t *testing.T) {
	c := openMem(t)
	q := c.Queue("ph")
	if _, err := q.Add(context.Background(), "it's $(rm -rf /) `x`", nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	argv, err := SplitCommand(`/bin/sh -c 'printf "%s|%s|%s" "$1" "$2" "$3" > "$0"' ` + out + ` {item} {attempt} q={queue}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPlaceholders(argv, false); err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Queue: "ph", Source: FromQueue(q), Runner: &Exec{Argv: argv, Placeholders: true}})
	eventually(t, "processed", func() bool { return r.w.Counts().Processed == 1 })
	b, _ := os.ReadFile(out)
	if want := `"it's $(rm -rf /) ` + "`x`" + `"|1|q=ph`; string(b) != want {
		t.Fatalf("arguments %q, want %q", b, want)
	}
}

func TestCheckPlaceholdersRefusesCode(t *testing.T) {
	for _, cmd := range []string{`sh -c 'echo {item}'`, `python3 -c 'print({item})'`, `node -e {id}`, `{item} x`, `bash -lc 'x {item}'`, `sh -ec "{attempt}"`} {
		argv, err := SplitCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckPlaceholders(argv, false); !errors.Is(err, ErrCommand) {
			t.Errorf("%s: got %v, want ErrCommand", cmd, err)
		}
	}
	if err := CheckPlaceholders([]string{"cat", "{item}"}, true); !errors.Is(err, ErrCommand) {
		t.Errorf("batch {item}: got %v", err)
	}
	if err := CheckPlaceholders([]string{"cat", "--queue={queue}"}, true); err != nil {
		t.Errorf("batch {queue}: %v", err)
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		`python detect.py --x 1`:       {"python", "detect.py", "--x", "1"},
		`sh -c 'a | b > "c"'`:          {"sh", "-c", `a | b > "c"`},
		`echo "a \"b\" \$c" d\ e ''`:   {"echo", `a "b" $c`, "d e", ""},
		"  tab\tsep\n ":                {"tab", "sep"},
		`x=$HOME 'it'"'"'s'`:           {"x=$HOME", "it's"},
		`/bin/true`:                    {"/bin/true"},
		`a"b c"d`:                      {"ab cd"},
		`node -e 'console.log(1)' foo`: {"node", "-e", "console.log(1)", "foo"},
	} {
		got, err := SplitCommand(in)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{``, `  `, `a 'b`, `a "b`, `a | b`, `a > f`, `a; b`, `a && b`, `echo $(id)`, "echo `id`"} {
		if _, err := SplitCommand(in); !errors.Is(err, ErrCommand) {
			t.Errorf("SplitCommand(%q): got %v, want ErrCommand", in, err)
		}
	}
}

func TestFailingItemIsDeadLettered(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.QueueWithDefaults("fail", sluice.QueueSettings{MaxDeliveries: 3})
		fill(t, q, 1)
		run := shell(t, `echo "attempt $SLUICE_ATTEMPT failed" >&2; exit 3`)
		r := start(t, Config{Queue: "fail", Source: src(q), Runner: run, RetryDelay: time.Millisecond, RetryMax: 2 * time.Millisecond})
		eventually(t, "dead-lettered", func() bool { return r.w.Counts().DeadLettered == 1 })
		if got := r.w.Counts(); got.Failed != 3 || got.Processed != 0 {
			t.Fatalf("counts %+v, want 3 failed", got)
		}
		entries, _, err := q.DLQ(sluice.DLQFailed).List(context.Background(), 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Error != "exit status 3: attempt 3 failed" || entries[0].AttemptCount != 3 {
			t.Fatalf("failed DLQ %+v", entries)
		}
	})
}

func TestDeclaredMaxDeliveriesWins(t *testing.T) {
	c := openMem(t)
	if err := c.DeclareQueue(context.Background(), "decl", sluice.QueueSettings{MaxDeliveries: 1}); err != nil {
		t.Fatal(err)
	}
	q := c.QueueWithDefaults("decl", sluice.QueueSettings{MaxDeliveries: 4})
	fill(t, q, 1)
	r := start(t, Config{Queue: "decl", Source: FromQueue(q), Runner: &Exec{Argv: []string{"/bin/false"}}, RetryDelay: time.Millisecond})
	eventually(t, "dead-lettered", func() bool { return r.w.Counts().DeadLettered == 1 })
	if got := r.w.Counts().Failed; got != 1 {
		t.Fatalf("%d failed runs, want 1 (the declared max deliveries)", got)
	}
}

func TestRetryDelayDoublesUpToTheCap(t *testing.T) {
	w := &Worker{cfg: Config{RetryDelay: time.Second, RetryMax: 10 * time.Second}}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 100: 10 * time.Second} {
		if got := w.retryDelay(attempt); got != want {
			t.Errorf("attempt %d: %v, want %v", attempt, got, want)
		}
	}
}

func TestBoundReason(t *testing.T) {
	long := "exit status 1: " + strings.Repeat("é", 2000) + "THE END"
	got := boundReason(long)
	if len(got) > MaxReason || !strings.HasPrefix(got, "exit status 1: ") || !strings.HasSuffix(got, "THE END") || !strings.Contains(got, " ... ") {
		t.Fatalf("boundReason: %d bytes %q", len(got), got)
	}
	if got := boundReason("bad \xff byte"); got != "bad \uFFFD byte" {
		t.Fatalf("boundReason: %q", got)
	}
}

func TestSlowItemKeepsItsLease(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.Queue("slow")
		fill(t, q, 1)
		dir := t.TempDir()
		const lease = 300 * time.Millisecond
		run := shell(t, `echo "$SLUICE_ATTEMPT" >> "$DIR/attempts"; while [ ! -e "$DIR/go" ]; do sleep 0.02; done`, "DIR="+dir)
		r := start(t, Config{Queue: "slow", Source: src(q), Runner: run, Lease: lease, Concurrency: 2})
		// The engine's own record: the lease's deadline moves on, past three
		// leases after the delivery, and it is still the first delivery.
		eventually(t, "the lease extended past 3 leases", func() bool {
			page, err := q.Deliveries(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Deliveries) != 1 {
				return false
			}
			d := page.Deliveries[0]
			if d.Attempt != 1 || d.Waiting {
				t.Fatalf("delivery %+v: want attempt 1 under lease", d)
			}
			return d.Deadline.Sub(d.DeliveredAt) > 3*lease
		})
		if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		eventually(t, "processed", func() bool { return r.w.Counts().Processed == 1 })
		s := stats(t, q)
		if s.Delivered != 1 || s.Redelivered != 0 || s.Acked != 1 {
			t.Fatalf("stats %+v: want one delivery, acked", s)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "attempts")); string(b) != "1\n" {
			t.Fatalf("attempts %q", b)
		}
	})
}

// drain receives everything the queue holds right now and acks it,
// returning the items' numbers and attempts.
func drain(t *testing.T, q *sluice.Queue) map[int]int {
	t.Helper()
	out := map[int]int{}
	for {
		ds, err := q.ReceiveBatch(context.Background(), 100, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return out
		}
		for _, d := range ds {
			var v struct{ N int }
			if err := d.Item.Decode(&v); err != nil {
				t.Fatal(err)
			}
			out[v.N] = d.Attempt
			if err := d.Ack(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestShutdownLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish bool // the running items finish within the shutdown timeout
	}{{"running items finish", true}, {"running items are killed", false}} {
		bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
			t.Log(tc.name)
			q := c.Queue("stop")
			const total = 10
			fill(t, q, total)
			dir := t.TempDir()
			run := shell(t, `cat > "$DIR/$SLUICE_DELIVERY_ID.item"; while [ ! -e "$DIR/go" ]; do sleep 0.02; done; cat "$DIR/$SLUICE_DELIVERY_ID.item" >> "$DIR/done"; echo >> "$DIR/done"`, "DIR="+dir)
			cfg := Config{Queue: "stop", Source: src(q), Runner: run, Concurrency: 3, ShutdownTimeout: time.Hour}
			if !tc.finish {
				cfg.ShutdownTimeout = time.Millisecond
			}
			r := start(t, cfg)
			eventually(t, "3 running", func() bool {
				files, _ := filepath.Glob(filepath.Join(dir, "*.item"))
				return len(files) == 3 && r.w.Counts().Running == 3
			})
			r.stop()
			if tc.finish {
				if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.wait(t); err != nil {
				t.Fatal(err)
			}
			got := r.w.Counts()
			rest := drain(t, q)
			wantAcked := int64(0)
			if tc.finish {
				wantAcked = 3
			}
			if got.Processed != wantAcked || got.Failed != 0 || int64(len(rest)) != total-wantAcked {
				t.Fatalf("counts %+v, %d items left; want %d acked and the rest back", got, len(rest), wantAcked)
			}
			for n, attempt := range rest {
				if attempt != 1 {
					t.Errorf("item %d comes back as attempt %d: a shutdown counted it", n, attempt)
				}
			}
			s := stats(t, q)
			if s.Acked != total || s.Nacked != 0 || s.DeadLettered != 0 || s.Length != 0 || s.InFlight != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestKillEndsTheShutdown: Kill (a second signal) does not wait for the
// shutdown timeout.
func TestKillEndsTheShutdown(t *testing.T) {
	c := openMem(t)
	q := c.Queue("kill")
	fill(t, q, 1)
	dir := t.TempDir()
	r := start(t, Config{Queue: "kill", Source: FromQueue(q), Runner: shell(t, `touch "$DIR/started"; while :; do sleep 0.02; done`, "DIR="+dir), ShutdownTimeout: time.Hour})
	eventually(t, "running", func() bool {
		_, err := os.Stat(filepath.Join(dir, "started"))
		return err == nil && r.w.Counts().Running == 1
	})
	r.stop()
	r.w.Kill()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := r.w.Counts(); got.Released != 1 || got.Failed != 0 {
		t.Fatalf("counts %+v", got)
	}
	if rest := drain(t, q); len(rest) != 1 || rest[0] != 1 {
		t.Fatalf("left %v, want item 0 back as attempt 1", rest)
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	c := openMem(t)
	q := c.QueueWithDefaults("slowpoke", sluice.QueueSettings{MaxDeliveries: 1})
	fill(t, q, 1)
	dir := t.TempDir()
	// Both the shell and its child ignore SIGTERM: SIGKILL after the grace
	// has to take the whole group.
	run := shell(t, `trap "" TERM; sleep 1000 & echo $! > "$DIR/pid"; wait`, "DIR="+dir)
	r := start(t, Config{Queue: "slowpoke", Source: FromQueue(q), Runner: run, Timeout: 300 * time.Millisecond})
	eventually(t, "dead-lettered", func() bool { return r.w.Counts().DeadLettered == 1 })
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the grandchild gone", func() bool { return !alive(pid) })
	entries, _, err := q.DLQ(sluice.DLQFailed).List(context.Background(), 0, 1)
	if err != nil || len(entries) != 1 || entries[0].Error != "timeout after 300ms" {
		t.Fatalf("failed DLQ %+v %v", entries, err)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper is dead).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

func TestBatchExec(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.Queue("batch")
		fill(t, q, 25)
		out := filepath.Join(t.TempDir(), "out")
		run := shell(t, `cat >> "$OUT"; echo " $SLUICE_BATCH_SIZE" >> "$OUT"`, "OUT="+out)
		r := start(t, Config{Queue: "batch", Source: src(q), Runner: run, Batch: 10, Idle: 100 * time.Millisecond})
		eventually(t, "25 processed", func() bool { return r.w.Counts().Processed == 25 })
		b, _ := os.ReadFile(out)
		seen := map[int]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			arr, size, _ := strings.Cut(line, " ")
			var items []struct{ N int }
			if err := json.Unmarshal([]byte(arr), &items); err != nil {
				t.Fatalf("stdin %q: %v", arr, err)
			}
			if len(items) > 10 || strconv.Itoa(len(items)) != size {
				t.Fatalf("batch of %d, SLUICE_BATCH_SIZE %s", len(items), size)
			}
			for _, it := range items {
				seen[it.N] = true
			}
		}
		if len(seen) != 25 {
			t.Fatalf("items seen: %d", len(seen))
		}
	})
}

func TestBatchFailureNacksTheBatch(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.QueueWithDefaults("bfail", sluice.QueueSettings{MaxDeliveries: 1})
		fill(t, q, 3)
		r := start(t, Config{Queue: "bfail", Source: src(q), Runner: shell(t, `cat > /dev/null; exit 1`), Batch: 3, Idle: time.Second})
		eventually(t, "3 dead-lettered", func() bool { return r.w.Counts().DeadLettered == 3 })
	})
}

func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, fmt.Sprintf("%s %s %s %s", r.Header.Get("Sluice-Queue"), r.Header.Get("Sluice-Attempt"), r.Header.Get("Content-Type"), b))
		mu.Unlock()
		if calls.Add(1) == 1 {
			http.Error(w, "not now", http.StatusServiceUnavailable)
		}
	}))
	defer ts.Close()
	c := openMem(t)
	q := c.Queue("hook")
	fill(t, q, 1)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	r := start(t, Config{Queue: "hook", Source: FromQueue(q), Runner: &Webhook{URL: ts.URL, Client: hc}, RetryDelay: time.Millisecond})
	eventually(t, "processed", func() bool { return r.w.Counts().Processed == 1 })
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{`hook 1 application/json {"n": 0}`, `hook 2 application/json {"n": 0}`}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Fatalf("requests %q, want %q", bodies, want)
	}
	if got := r.w.Counts(); got.Failed != 1 {
		t.Fatalf("counts %+v", got)
	}
}

func TestWebhookBatchAndReason(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var items []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&items); err != nil || r.Header.Get("Sluice-Batch-Size") != strconv.Itoa(len(items)) {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write(bytes.Repeat([]byte("x"), 5000))
	}))
	defer ts.Close()
	c := openMem(t)
	q := c.QueueWithDefaults("hookb", sluice.QueueSettings{MaxDeliveries: 1})
	fill(t, q, 4)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	r := start(t, Config{Queue: "hookb", Source: FromQueue(q), Runner: &Webhook{URL: ts.URL, Client: hc}, Batch: 4, Idle: time.Second})
	eventually(t, "dead-lettered", func() bool { return r.w.Counts().DeadLettered == 4 })
	entries, _, err := q.DLQ(sluice.DLQFailed).List(context.Background(), 0, 1)
	if err != nil || len(entries) != 1 {
		t.Fatal(entries, err)
	}
	if e := entries[0].Error; !strings.HasPrefix(e, "webhook answered 418 I'm a teapot: xxx") || len(e) > MaxReason {
		t.Fatalf("reason %d bytes: %.80q", len(e), e)
	}
}

func TestRemoteSource(t *testing.T) {
	c := openMem(t)
	cfg := server.DefaultConfig()
	cfg.ShutdownTimeout = 10 * time.Second
	srv, err := server.New(c, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
		hc.CloseIdleConnections()
	}()
	rc, err := remote.New(ts.URL, "", hc)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := rc.QueueDeliverySettings(context.Background(), "remote")
	if err != nil || settings.Lease != sluice.DefaultLease || settings.MaxDeliveries != sluice.DefaultMaxDeliveries {
		t.Fatalf("settings %+v %v", settings, err)
	}
	q := c.Queue("remote")
	fill(t, q, 6)
	// Odd items fail; with max deliveries 1 they are dead-lettered.
	run := shell(t, `grep -q '"n":[13579]' && exit 1; exit 0`)
	r := start(t, Config{Queue: "remote", Source: FromRemote(rc, "remote", 1), Runner: run, Concurrency: 2, Batch: 0})
	eventually(t, "all settled", func() bool { got := r.w.Counts(); return got.Processed+got.Failed == 6 })
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := r.w.Counts(); got.Processed != 3 || got.DeadLettered != 3 {
		t.Fatalf("counts %+v", got)
	}
	if s := stats(t, q); s.Acked != 3 || s.DeadLettered != 3 || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestWebhookTimeout: --timeout cancels the request and nacks the item.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client that left once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer ts.Close()
	defer close(release)
	c := openMem(t)
	q := c.QueueWithDefaults("hookslow", sluice.QueueSettings{MaxDeliveries: 1})
	fill(t, q, 1)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	r := start(t, Config{Queue: "hookslow", Source: FromQueue(q), Runner: &Webhook{URL: ts.URL, Client: hc}, Timeout: 200 * time.Millisecond})
	eventually(t, "dead-lettered", func() bool { return r.w.Counts().DeadLettered == 1 })
	entries, _, err := q.DLQ(sluice.DLQFailed).List(context.Background(), 0, 1)
	if err != nil || len(entries) != 1 || entries[0].Error != "timeout after 200ms" {
		t.Fatalf("failed DLQ %+v %v", entries, err)
	}
}

// runnerFunc is a Runner in Go, for tests that watch the runs.
type runnerFunc func(ctx context.Context, job Job) error

func (f runnerFunc) Run(ctx context.Context, job Job) error { return f(ctx, job) }

// TestPrefetchLeasesAhead: while a run is in progress, Prefetch runs'
// worth of items are leased ahead; a shutdown lets the run finish (acked)
// and releases the prefetched items, uncounted.
func TestPrefetchLeasesAhead(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.Queue("ahead")
		fill(t, q, 5)
		started := make(chan struct{})
		finish := make(chan struct{})
		var runs atomic.Int32
		r := start(t, Config{Queue: "ahead", Source: src(q), Concurrency: 1, Prefetch: 2,
			Runner: runnerFunc(func(context.Context, Job) error {
				if runs.Add(1) == 1 {
					close(started)
					<-finish
				}
				return nil
			})})
		<-started
		eventually(t, "1 running and 2 leased ahead", func() bool {
			s := stats(t, q)
			return s.InFlight == 3 && s.Length == 2
		})
		r.stop()
		close(finish)
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		if got := r.w.Counts(); got.Processed != 1 || got.Released != 2 || got.Failed != 0 || runs.Load() != 1 {
			t.Fatalf("counts %+v after %d runs; want 1 processed, 2 released", got, runs.Load())
		}
		rest := drain(t, q)
		if len(rest) != 4 {
			t.Fatalf("%d items left, want 4", len(rest))
		}
		for n, attempt := range rest {
			if attempt != 1 {
				t.Errorf("item %d comes back as attempt %d: a release counted it", n, attempt)
			}
		}
	})
}

// ackCounter is a Source that records its Ack calls.
type ackCounter struct {
	Source
	mu    sync.Mutex
	calls []int // ids per call
}

func (a *ackCounter) Ack(ctx context.Context, ds []Delivery) ([]bool, error) {
	a.mu.Lock()
	a.calls = append(a.calls, len(ds))
	a.mu.Unlock()
	return a.Source.Ack(ctx, ds)
}

// TestAcksAreBatchedAndAsynchronous: runs go on without waiting for the
// acks of the previous ones, which wait (up to AckInterval) to share one
// call, and are all sent before Run returns.
func TestAcksAreBatchedAndAsynchronous(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.Queue("acks")
		fill(t, q, 5)
		var runs atomic.Int32
		acks := &ackCounter{Source: src(q)}
		r := start(t, Config{Queue: "acks", Source: acks, Concurrency: 2, AckInterval: time.Hour,
			Runner: runnerFunc(func(context.Context, Job) error {
				runs.Add(1)
				return nil
			})})
		// Every run ended, and none of them waited for its ack.
		eventually(t, "5 runs", func() bool { return runs.Load() == 5 })
		if got := r.w.Counts().Processed; got != 0 {
			t.Fatalf("%d acked before the ack interval or the stop", got)
		}
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		acks.mu.Lock()
		defer acks.mu.Unlock()
		if len(acks.calls) != 1 || acks.calls[0] != 5 {
			t.Fatalf("ack calls %v, want one of 5", acks.calls)
		}
		if s := stats(t, q); r.w.Counts().Processed != 5 || s.Acked != 5 || s.InFlight != 0 || s.Length != 0 {
			t.Fatalf("counts %+v, stats %+v; want 5 acked", r.w.Counts(), s)
		}
	})
}

func TestPrefetchBounds(t *testing.T) {
	q := openMem(t).Queue("bounds")
	base := Config{Source: FromQueue(q), Runner: runnerFunc(func(context.Context, Job) error { return nil }), Lease: time.Second}
	for _, p := range []int{-2, MaxPrefetch + 1} {
		cfg := base
		cfg.Prefetch = p
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("prefetch %d: %v, want ErrInvalidConfig", p, err)
		}
	}
	for p, want := range map[int]int{0: 3, -1: 0, 7: 7} {
		cfg := base
		cfg.Concurrency, cfg.Prefetch = 3, p
		if got := cfg.WithDefaults().Prefetch; got != want {
			t.Errorf("prefetch %d with concurrency 3: %d, want %d", p, got, want)
		}
	}
}
