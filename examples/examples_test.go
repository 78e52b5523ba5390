// Package examples tests the example workers and producer against a real
// `sluice serve` and a real Redis. The examples are programs in other
// languages; this package has only tests.
package examples

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// need skips the test when a tool is missing, except under CI, where the
// examples must run: .ci/run installs the tools.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (CI=true: .ci/run installs it)", tool)
			}
			t.Skipf("%s is not installed: this example is not tested", tool)
		}
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// sluiceBinary builds cmd/sluice once for the package's tests.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "sluice-examples-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/sluice").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var addrInLog = regexp.MustCompile(`addr=(127\.0\.0\.1:[0-9]+)`)

// serve starts `sluice serve` on the embedded engine and a free port and
// returns its base URL; the service is stopped when the test ends.
func serve(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(sluiceBinary(t), "serve", "--addr", "127.0.0.1:0", "--sweep-interval", "100ms")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrInLog.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		return "http://" + addr
	case <-time.After(30 * time.Second):
		t.Fatal("sluice serve did not log its address within 30s")
	}
	return ""
}

// api sends one request to the service and decodes its JSON answer.
func api(t *testing.T, method, url string, body any, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
}

// queueInfo is what the test reads of GET /v1/queues/{name}.
type queueInfo struct {
	Length   int64 `json:"current_length"`
	InFlight int64 `json:"in_flight"`
	Failed   int64 `json:"failed_length"`
	Stats    struct {
		Acked        int64 `json:"acked_total"`
		Redelivered  int64 `json:"redelivered_total"`
		DeadLettered int64 `json:"dead_lettered_total"`
	} `json:"stats"`
}

// report is one line a worker prints per item.
type report struct {
	ID      string          `json:"id"`
	Attempt int             `json:"attempt"`
	Item    json.RawMessage `json:"item"`
	Outcome string          `json:"outcome"`
}

// worker is a running example worker: its reports arrive on lines.
type worker struct {
	cmd    *exec.Cmd
	lines  chan report
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

func startWorker(t *testing.T, argv []string, base, queue string) *worker {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SLUICE_URL=" + base, "QUEUE=" + queue,
		"LEASE=1", "WAIT=1", "MAX_DELIVERIES=2", "BACKOFF_BASE=0.1", "BACKOFF_MAX=1",
	}
	w := &worker{cmd: cmd, lines: make(chan report, 100), stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stderr.Write(p)
	})
	cmd.WaitDelay = 5 * time.Second // a helper process (sleep) may hold stderr a moment
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r.Outcome = "unparsable line: " + sc.Text()
			}
			w.lines <- r
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return w
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (w *worker) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.String()
}

// waitLog polls the worker's log until it holds s, for at most 30 s.
func (w *worker) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not log %q within 30s; its log:\n%s", s, w.log())
		}
		time.Sleep(20 * time.Millisecond) // polling observable state, not synchronising
	}
}

// next waits for the worker's next report.
func (w *worker) next(t *testing.T) report {
	t.Helper()
	select {
	case r, ok := <-w.lines:
		if !ok {
			t.Fatalf("the worker ended early; its log:\n%s", w.log())
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("no report from the worker within 30s; its log:\n%s", w.log())
	}
	return report{}
}

// waitFor polls the queue until cond holds, for at most 30 s.
func waitFor(t *testing.T, base, queue string, what string, cond func(queueInfo) bool) queueInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info queueInfo
		api(t, http.MethodGet, base+"/v1/queues/"+queue, nil, &info)
		if cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s: %+v", what, info)
		}
		time.Sleep(50 * time.Millisecond) // polling observable state, not synchronising
	}
}

func TestWorkers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tools []string
		argv  []string
	}{
		{"python", []string{"python3"}, []string{"python3", "python/worker.py"}},
		{"node", []string{"node"}, []string{"node", "node/worker.mjs"}},
		{"shell", []string{"bash", "curl", "jq", "awk"}, []string{"bash", "shell/worker.sh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			need(t, tc.tools...)
			t.Parallel()
			base := serve(t)
			queue := "jobs-" + tc.name
			add := func(item string) {
				api(t, http.MethodPost, base+"/v1/queues/"+queue+"/items", json.RawMessage(item), nil)
			}
			for i := range 3 {
				add(fmt.Sprintf(`{"n": %d}`, i))
			}
			add(`{"fail": true}`)
			add(`{"sleep": 2}`) // twice the 1s lease: kept by extension
			w := startWorker(t, tc.argv, base, queue)

			// Items in order: three acked, the failing one nacked (it
			// comes back after its backoff), the slow one acked on its
			// first attempt, then the failing one dead-lettered.
			seen := map[string]report{}
			for len(seen) < 5 || seen[`{"fail":true}`].Outcome != "dead_lettered" {
				r := w.next(t)
				var compact bytes.Buffer
				_ = json.Compact(&compact, r.Item)
				key := compact.String()
				switch {
				case key == `{"fail":true}`:
					want := map[int]string{1: "redelivered", 2: "dead_lettered"}[r.Attempt]
					if r.Outcome != want {
						t.Fatalf("failing item, attempt %d: %q, want %q", r.Attempt, r.Outcome, want)
					}
				case r.Outcome != "acked" || r.Attempt != 1:
					t.Fatalf("%s: %q on attempt %d, want acked on attempt 1; log:\n%s", key, r.Outcome, r.Attempt, w.log())
				}
				seen[key] = r
			}
			info := waitFor(t, base, queue, "all settled", func(i queueInfo) bool { return i.InFlight == 0 && i.Length == 0 })
			if info.Failed != 1 || info.Stats.Acked != 4 || info.Stats.Redelivered != 0 || info.Stats.DeadLettered != 1 {
				t.Fatalf("after the first items: %+v", info)
			}

			// SIGTERM while an item is in hand: it is finished and acked,
			// the rest stays queued, the worker exits 0.
			add(`{"sleep": 2, "last": false}`)
			waitFor(t, base, queue, "the slow item leased", func(i queueInfo) bool { return i.InFlight == 1 })
			// Leased is not yet in hand: a worker stopped between the two
			// releases the item. Wait for the worker to start on it.
			var listing struct {
				Deliveries []struct {
					ID string `json:"id"`
				} `json:"deliveries"`
			}
			api(t, http.MethodGet, base+"/v1/queues/"+queue+"/deliveries", nil, &listing)
			if len(listing.Deliveries) != 1 {
				t.Fatalf("deliveries: %+v", listing)
			}
			w.waitLog(t, "working on "+listing.Deliveries[0].ID)
			for i := range 3 {
				add(fmt.Sprintf(`{"after": %d}`, i))
			}
			if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if r := w.next(t); r.Outcome != "acked" || r.Attempt != 1 {
				t.Fatalf("the item in hand at SIGTERM: %+v", r)
			}
			for r := range w.lines {
				t.Errorf("report after the item in hand: %+v", r)
			}
			if err := w.cmd.Wait(); err != nil {
				t.Fatalf("worker exit: %v; log:\n%s", err, w.log())
			}
			info = waitFor(t, base, queue, "nothing in flight", func(i queueInfo) bool { return i.InFlight == 0 })
			if info.Length != 3 || info.Stats.Acked != 5 || info.Failed != 1 {
				t.Fatalf("after SIGTERM (want 3 queued, 5 acked, 1 dead-lettered: nothing lost): %+v", info)
			}
		})
	}
}

// TestPythonProducer: producer.py writes what the original service wrote,
// and a Sluice client on the same Redis reads it, byte for byte as Sluice
// would have stored the same items.
func TestPythonProducer(t *testing.T) {
	need(t, "python3", "redis-server")
	addr, err := redistest.StartServer(t, func(port int) []string { return []string{"--port", strconv.Itoa(port)} })
	if err != nil {
		t.Fatal(err)
	}
	items := []string{`{"camera_id": 1, "label": "person", "score": 0.93}`, `{"text": "caf\u00e9 <b> & /"}`, `[1, 2, {"a": null}]`, `"just text"`}
	cmd := exec.Command("python3", "python/producer.py")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=redis://" + addr + "/0", "QUEUE=detections_queue"}
	cmd.Stdin = strings.NewReader(strings.Join(items, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("producer: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "1 2 3 4" {
		t.Fatalf("producer printed %q, want the lengths 1 2 3 4", out)
	}

	ctx := context.Background()
	client, err := sluice.Open(ctx, "redis://"+addr+"/0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	produced, mirror := client.Queue("detections_queue"), client.Queue("mirror")
	for _, it := range items {
		var v any
		if err := json.Unmarshal([]byte(it), &v); err != nil {
			t.Fatal(err)
		}
		if _, err := mirror.Add(ctx, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range items {
		got, ok, err := produced.Get(ctx, 0)
		if err != nil || !ok {
			t.Fatalf("item %d: %v %v", i, ok, err)
		}
		same, _, _ := mirror.Get(ctx, 0)
		if got.Stored() != same.Stored() {
			t.Errorf("item %d stored as %q by the producer, %q by Sluice", i, got.Stored(), same.Stored())
		}
		var a, b any
		_ = json.Unmarshal([]byte(want), &a)
		_ = got.Decode(&b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("item %d read as %v, want %v", i, b, a)
		}
	}
}
