package embedded

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/wal"
)

// The concurrent crash child: crashAdders goroutines add items to one
// queue, crashAckers goroutines receive and ack them, all through the
// engine with the given fsync policy. A line "add ITEM", "recv N ITEM" or
// "ack N ITEM" (N: the acker) is printed, in one write, only after the
// call returned: every line the parent reads is an acknowledged change.
const (
	concCrashEnv       = "SLUICE_MEMORY_CONC_CRASH_DIR"
	concCrashPolicyEnv = "SLUICE_MEMORY_CONC_CRASH_POLICY"
	concCrashRoundEnv  = "SLUICE_MEMORY_CONC_CRASH_ROUND"
	crashAdders        = 8
	crashAckers        = 4
	crashQueue         = "conc"
)

func concurrentCrashChild(dir, policyName, round string) {
	policy := wal.FsyncEverySec
	if policyName == wal.FsyncAlways.String() {
		policy = wal.FsyncAlways
	}
	e, err := New(Options{Dir: dir, Fsync: policy, CompactMinBytes: 256 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range crashAdders {
		wg.Go(func() {
			for i := 0; ; i++ {
				item := fmt.Sprintf("r%s-w%d-%d", round, w, i)
				if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: crashQueue, Items: []string{item}, Policy: engine.PolicyReject}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				fmt.Println("add " + item)
			}
		})
	}
	for a := range crashAckers {
		wg.Go(func() {
			for {
				ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: crashQueue, Count: 1, Lease: time.Hour, MaxDeliveries: 1 << 20, Timeout: time.Second})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				for _, d := range ds {
					fmt.Printf("recv %d %s\n", a, d.Item)
					if err := engine.Ack(ctx, e, crashQueue, d.ID); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
					fmt.Printf("ack %d %s\n", a, d.Item)
				}
			}
		})
	}
	wg.Wait()
}

// TestConcurrentCrashKeepsAcknowledgedChanges kills the concurrent child
// with SIGKILL at a random moment, several times per policy, and checks
// after each kill that every acknowledged add is in the log exactly once
// (waiting or leased), unless it was received and its ack is acknowledged
// or may have been logged just before the kill, and that no acknowledged
// ack comes back. Under "everysec" as under "always": a process crash must
// lose nothing that was acknowledged.
func TestConcurrentCrashKeepsAcknowledgedChanges(t *testing.T) {
	if dir := os.Getenv(concCrashEnv); dir != "" {
		concurrentCrashChild(dir, os.Getenv(concCrashPolicyEnv), os.Getenv(concCrashRoundEnv))
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, policy := range []wal.FsyncPolicy{wal.FsyncEverySec, wal.FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			added := make(map[string]bool)
			acked := make(map[string]bool)
			// Items received whose ack was not acknowledged when the child
			// died: the ack may be in the log, so the item may be gone.
			inFlight := make(map[string]bool)
			for round := range 3 {
				kill := 300 + rand.IntN(2000)
				pending := make(map[string]string) // acker -> item received, not acked
				for _, line := range killEngineChild(t, dir, policy, round, kill) {
					f := strings.Fields(line)
					switch {
					case len(f) == 2 && f[0] == "add":
						added[f[1]] = true
					case len(f) == 3 && f[0] == "recv":
						pending[f[1]] = f[2]
					case len(f) == 3 && f[0] == "ack":
						acked[f[2]] = true
						delete(pending, f[1])
					default:
						t.Fatalf("child printed %q", line)
					}
				}
				for _, item := range pending {
					inFlight[item] = true
				}
				seen := survivors(t, dir)
				for item, n := range seen {
					if n > 1 {
						t.Fatalf("round %d: item %s is in the log %d times", round, item, n)
					}
					if acked[item] {
						t.Fatalf("round %d: item %s came back after its ack was acknowledged", round, item)
					}
				}
				for item := range added {
					if seen[item] == 0 && !acked[item] && !inFlight[item] {
						t.Fatalf("round %d (killed after %d acknowledgements): acknowledged add %s is lost", round, kill, item)
					}
				}
				t.Logf("round %d: killed after %d acknowledgements; %d adds and %d acks acknowledged so far, %d items held",
					round, kill, len(added), len(acked), len(seen))
			}
		})
	}
}

// killEngineChild runs the concurrent child on dir, SIGKILLs it once it
// printed n lines, and returns every whole line it printed.
func killEngineChild(t *testing.T, dir string, policy wal.FsyncPolicy, round, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentCrashKeepsAcknowledgedChanges$", "-test.count=1")
	cmd.Env = append(os.Environ(), concCrashEnv+"="+dir, concCrashPolicyEnv+"="+policy.String(), fmt.Sprintf("%s=%d", concCrashRoundEnv, round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(out)
	var lines []string
	next := func() bool {
		line, err := rd.ReadString('\n')
		if err != nil {
			return false // a line cut short was not printed whole
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "add ") || strings.HasPrefix(line, "recv ") || strings.HasPrefix(line, "ack ") {
			lines = append(lines, line)
		}
		return true
	}
	for len(lines) < n {
		if !next() {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for next() {
	}
	_ = cmd.Wait() // killed: an error is expected
	if len(lines) < n {
		t.Fatalf("child printed %d acknowledgements before it stopped, want %d", len(lines), n)
	}
	return lines
}

// survivors opens a copy of the log in dir (so the next round starts from
// what the crash left), with a clock past every lease, and counts each
// item it still holds: waiting, or leased and due again.
func survivors(t *testing.T, dir string) map[string]int {
	t.Helper()
	cp := t.TempDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no log in %s: %v", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(Options{Dir: cp, Now: (&fakeClock{t: time.Now().Add(2 * time.Hour)}).Now})
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer e.Close()
	ctx := context.Background()
	seen := make(map[string]int)
	for {
		ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: crashQueue, Count: 1000, Lease: time.Hour, MaxDeliveries: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return seen
		}
		for _, d := range ds {
			seen[d.Item]++
		}
	}
}

// TestWriterWaitsForTheLogWithoutTheQueueLock holds one add in its wait
// for the log (as a slow fsync would) and checks that another add to the
// same queue goes through meanwhile and writes both records: writers of
// one queue share the log's writes and fsyncs instead of queueing on its
// lock.
func TestWriterWaitsForTheLogWithoutTheQueueLock(t *testing.T) {
	for _, policy := range []wal.FsyncPolicy{wal.FsyncEverySec, wal.FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			e := newEngine(t, Options{Dir: dir, Fsync: policy})
			ctx := context.Background()
			waiting, release := holdFirstWait(e)
			first := make(chan error, 1)
			go func() {
				_, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{"first-add"}, Policy: engine.PolicyReject})
				first <- err
			}()
			<-waiting
			// The first add holds no lock now: this one completes, and its
			// wait writes the first add's record too.
			if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{"second-add"}, Policy: engine.PolicyReject}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(logFile(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "first-add") || !strings.Contains(string(data), "second-add") {
				t.Fatalf("after the second add returned the log file holds %q, want both items", data)
			}
			close(release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			e = reopen(t, e)
			if got := mustRange(t, e, "q"); !equalStrings(got, []string{"first-add", "second-add"}) {
				t.Fatalf("after reopen: %q", got)
			}
		})
	}
}

// A repeat of an idempotency key answers from the first add's record: it
// must not answer before that add's change is in the log, or a crash in
// between takes back an add the repeat reported.
func TestIdempotentReplayWaitsForTheFirstAdd(t *testing.T) {
	for _, policy := range []wal.FsyncPolicy{wal.FsyncEverySec, wal.FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			e := newEngine(t, Options{Dir: dir, Fsync: policy})
			ctx := context.Background()
			waiting, release := holdFirstWait(e)
			add := engine.AddParams{Queue: "q", Items: []string{"first-add"}, Policy: engine.PolicyReject,
				IdempotencyKey: "k", IdempotencyWindow: time.Hour}
			first := make(chan error, 1)
			go func() {
				_, err := e.QueueAdd(ctx, add)
				first <- err
			}()
			<-waiting
			res, err := e.QueueAdd(ctx, add)
			if err != nil || len(res) != 1 || !res[0].Replayed {
				t.Fatalf("repeat: %+v, %v; want a replay", res, err)
			}
			data, err := os.ReadFile(logFile(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "first-add") {
				t.Fatal("the repeat was answered before the first add's record reached the log file")
			}
			close(release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// holdFirstWait stops the first change that waits for the log, before its
// wait: waiting is closed once it is held, and closing release lets it go.
func holdFirstWait(e *Engine) (waiting, release chan struct{}) {
	waiting, release = make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	e.store.beforeWait = func() {
		if held.CompareAndSwap(false, true) {
			close(waiting)
			<-release
		}
	}
	return waiting, release
}
