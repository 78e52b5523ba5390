package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/wal"
)

// dump renders everything a test stored, through the public methods, so
// two engines can be compared.
func dump(t *testing.T, e *Engine, queues []string, cacheKeys []string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	names, _ := e.QueueNames(ctx)
	fmt.Fprintf(&b, "names %q\n", names)
	for _, q := range queues {
		items, _ := e.QueueRange(ctx, q, 0, -1)
		ovf, _ := e.DLQRange(ctx, q, engine.DLQOverflow, 0, -1)
		failed, _ := e.DLQRange(ctx, q, engine.DLQFailed, 0, -1)
		inflight, _ := e.QueueInFlight(ctx, q)
		scheduled, _ := e.QueueScheduled(ctx, q)
		fmt.Fprintf(&b, "%s %q ovf %q failed %q inflight %d scheduled %d\n", q, items, ovf, failed, inflight, scheduled)
		stats, _ := e.QueueStats(ctx, q)
		page, _ := e.QueueDeliveries(ctx, q, "", engine.MaxDeliveriesPage)
		fmt.Fprintf(&b, "%s stats %+v deliveries %+v\n", q, stats, page)
	}
	for _, k := range cacheKeys {
		v, ok, _ := e.CacheGet(ctx, k)
		ttl, _, _ := e.CacheTTL(ctx, k)
		fmt.Fprintf(&b, "cache %s %q %v %v\n", k, v, ok, ttl)
	}
	return b.String()
}

func reopen(t *testing.T, e *Engine) *Engine {
	t.Helper()
	opts := e.opts
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return newEngine(t, opts)
}

// TestDurableStateSurvivesReopenAndCompaction builds every kind of state,
// then checks that a reopened engine, and one reopened after a compaction,
// hold exactly the same.
func TestDurableStateSurvivesReopenAndCompaction(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Dir: t.TempDir(), Now: clock.Now, Keys: keyspaceWithPrefix("app:")})
	ctx := context.Background()
	add := func(q string, policy engine.Policy, maxSize int64, items ...string) {
		if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: q, Items: items, Policy: policy, MaxSize: maxSize}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", engine.PolicyDLQ, 3, "1", "2", "3", "4", "5")
	add("b", engine.PolicyDropOldest, 2, "x", "y", "z")
	add("c", engine.PolicyReject, 0, "c1", "c2", "c3", "c4")
	// Scheduled items, one of them evicted to make room.
	for _, item := range []string{"s1", "s2"} {
		if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "d", Items: []string{item}, Policy: engine.PolicyDLQ, MaxSize: 1, NotBefore: clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.QueuePop(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.QueuePushFront(ctx, "c", []string{"back"}); err != nil {
		t.Fatal(err)
	}
	p := engine.ReceiveParams{Queue: "c", Count: 2, Lease: time.Minute, MaxDeliveries: 1}
	ds, err := e.QueueReceive(ctx, p)
	if err != nil || len(ds) != 2 {
		t.Fatal(ds, err)
	}
	if _, err := e.QueueNack(ctx, engine.NackParams{Queue: "c", ID: ds[0].ID, Error: "bad", MaxDeliveries: 1}); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []struct {
		k, v string
		ttl  time.Duration
	}{{"k1", "v1", 0}, {"k2", "v2", time.Hour}, {"k3", "v3", time.Hour}} {
		if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: kv.k, Value: kv.v, TTL: kv.ttl}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CacheDelete(ctx, "k3"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.LockAcquire(ctx, "L", "tok", time.Hour); !ok {
		t.Fatal("lock")
	}
	queues := []string{"a", "b", "c", "d"}
	keys := []string{"k1", "k2", "k3", "L"}
	want := dump(t, e, queues, keys)
	if !strings.Contains(want, "d [] ovf") || !strings.Contains(want, "scheduled 1\n") {
		t.Fatalf("state before reopen lacks the scheduled item:\n%s", want)
	}

	e = reopen(t, e)
	if got := dump(t, e, queues, keys); got != want {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", got, want)
	}
	if err := e.store.compact(); err != nil {
		t.Fatalf("compact: %v", err)
	}
	e = reopen(t, e)
	if got := dump(t, e, queues, keys); got != want {
		t.Fatalf("after compaction and reopen:\n%s\nwant:\n%s", got, want)
	}
	// Fencing counters and delivery ids continue where they were.
	if err := e.LockRelease(ctx, "L", "tok"); err != nil {
		t.Fatal(err)
	}
	if f, ok, _ := e.LockAcquire(ctx, "L", "tok2", time.Hour); !ok || f != 2 {
		t.Fatalf("fence after reopen = %d, want 2", f)
	}
	if err := engine.Ack(ctx, e, "c", ds[1].ID); err != nil {
		t.Fatalf("ack of a lease held across restarts: %v", err)
	}
	more, _ := e.QueueReceive(ctx, p)
	for _, d := range more {
		if d.ID == ds[0].ID || d.ID == ds[1].ID {
			t.Fatalf("delivery id %s reused after restart", d.ID)
		}
	}
}

// TestLeaseDeadlineSurvivesRestart: an item leased before a restart comes
// back only once its lease has run out.
func TestLeaseDeadlineSurvivesRestart(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Dir: t.TempDir(), Now: clock.Now})
	ctx := context.Background()
	mustAdd(t, e, "q", "job")
	p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: 30 * time.Second, MaxDeliveries: 3}
	if ds, _ := e.QueueReceive(ctx, p); len(ds) != 1 {
		t.Fatal("no delivery")
	}
	e = reopen(t, e)
	if ds, _ := e.QueueReceive(ctx, p); len(ds) != 0 {
		t.Fatalf("leased item delivered again before its lease ran out: %+v", ds)
	}
	clock.Advance(31 * time.Second)
	ds, _ := e.QueueReceive(ctx, p)
	if len(ds) != 1 || ds[0].Item != "job" || ds[0].Attempt != 2 {
		t.Fatalf("after the lease ran out: %+v", ds)
	}
}

// TestTornTailIsCutOff: a record cut short by a crash is dropped, and
// everything before it is kept.
func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{Dir: dir, Fsync: wal.FsyncAlways})
	mustAdd(t, e, "q", "kept")
	mustAdd(t, e, "q", "torn")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(files) != 1 {
		t.Fatalf("log files: %v", files)
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(files[0], st.Size()-2); err != nil {
		t.Fatal(err)
	}
	e = newEngine(t, Options{Dir: dir})
	if !e.ReplayReport().Truncated {
		t.Error("replay did not report the torn tail")
	}
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"kept"}) {
		t.Fatalf("queue = %q, want [kept]", got)
	}
}

const crashEnv = "SLUICE_MEMORY_CRASH_DIR"

// TestCrashKeepsEveryAcknowledgedAdd runs a producer in a child process
// with fsync=always, kills it with SIGKILL mid-run, and checks that every
// add the child saw succeed is in the reopened log, once, in order.
func TestCrashKeepsEveryAcknowledgedAdd(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsEveryAcknowledgedAdd$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the child does not outlive the test.
	defer func() { _ = cmd.Process.Kill() }()
	var printed []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, err := strconv.Atoi(sc.Text())
		if err != nil {
			continue // test framework chatter
		}
		printed = append(printed, id)
		if len(printed) == 500 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = cmd.Wait()
	if len(printed) < 500 {
		t.Fatalf("child printed only %d ids before exiting", len(printed))
	}
	e := newEngine(t, Options{Dir: dir})
	got := mustRange(t, e, "crash")
	// Every printed id, in order; at most one more (the add in flight at
	// the kill, logged but not yet printed), and it must be the next id.
	if len(got) < len(printed) || len(got) > len(printed)+1 {
		t.Fatalf("log holds %d items, child acknowledged %d", len(got), len(printed))
	}
	for i, id := range printed {
		if got[i] != strconv.Itoa(id) {
			t.Fatalf("item %d is %q, want %d", i, got[i], id)
		}
	}
	if len(got) == len(printed)+1 && got[len(printed)] != strconv.Itoa(printed[len(printed)-1]+1) {
		t.Fatalf("extra item %q is not the add in flight", got[len(printed)])
	}
	t.Logf("child acknowledged %d adds before SIGKILL; log holds %d", len(printed), len(got))
}

func crashChild(dir string) {
	e, err := New(Options{Dir: dir, Fsync: wal.FsyncAlways})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	// The parent kills the child long before this bound; it only stops a
	// child whose parent is gone.
	for i := 0; i < 10_000_000; i++ {
		if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "crash", Items: []string{strconv.Itoa(i)}, Policy: engine.PolicyReject}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println(i) // os.Stdout is unbuffered: printed means acknowledged
	}
	os.Exit(0)
}

// TestCompactionDuringConcurrentWrites compacts repeatedly while writers
// add and pop, then checks the reopened log against what each writer did.
func TestCompactionDuringConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{Dir: dir, CompactMinBytes: 1})
	ctx := context.Background()
	const writers, each = 8, 3000
	want := make([][]string, writers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	compactions := 0
	var cerr error
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.store.compact(); err != nil {
				cerr = err
				return
			}
			compactions++
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := fmt.Sprintf("w%d", w)
			var model []string
			for i := 0; i < each; i++ {
				item := fmt.Sprintf("%d-%d", w, i)
				if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: q, Items: []string{item}, Policy: engine.PolicyReject}); err != nil {
					t.Error(err)
					return
				}
				model = append(model, item)
				if i%3 == 2 {
					got, ok, err := e.QueuePop(ctx, q, 0)
					if err != nil || !ok || got != model[0] {
						t.Errorf("pop = %q %v %v, want %q", got, ok, err, model[0])
						return
					}
					model = model[1:]
				}
			}
			want[w] = model
		}()
	}
	wg.Wait()
	close(stop)
	cwg.Wait()
	if cerr != nil {
		t.Fatalf("compaction: %v", cerr)
	}
	if compactions == 0 {
		t.Fatal("no compaction ran during the writes")
	}
	e = reopen(t, e)
	for w := 0; w < writers; w++ {
		if got := mustRange(t, e, fmt.Sprintf("w%d", w)); !equalStrings(got, want[w]) {
			t.Fatalf("writer %d: %d items after reopen, want %d", w, len(got), len(want[w]))
		}
	}
	names, _ := e.QueueNames(ctx)
	sort.Strings(names)
	if len(names) != writers {
		t.Fatalf("names after reopen: %q", names)
	}
	t.Logf("%d compactions ran during %d writes", compactions, writers*each)
}

// TestLargeRecordIsSplitAndReplayed: one call whose record exceeds a log
// record's size goes as a group of parts and replays whole.
func TestLargeRecordIsSplitAndReplayed(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20 MB")
	}
	e := newEngine(t, Options{Dir: t.TempDir()})
	big := strings.Repeat("b", 1<<20)
	items := make([]string, 20)
	for i := range items {
		items[i] = strconv.Itoa(i) + big
	}
	mustAdd(t, e, "big", items...)
	e = reopen(t, e)
	got := mustRange(t, e, "big")
	if !equalStrings(got, items) {
		t.Fatalf("replayed %d items, want the 20 added", len(got))
	}
}

// TestLogIsCompactedWhenItOutgrowsTheState: churn (adds then pops) grows
// the log while the state stays small; the size check compacts it.
func TestLogIsCompactedWhenItOutgrowsTheState(t *testing.T) {
	e := newEngine(t, Options{Dir: t.TempDir(), CompactMinBytes: 64 << 10})
	ctx := context.Background()
	mustAdd(t, e, "keep", "survivor")
	item := strings.Repeat("c", 100)
	for i := 0; i < 2000; i++ {
		mustAdd(t, e, "churn", item)
		if _, _, err := e.QueuePop(ctx, "churn", 0); err != nil {
			t.Fatal(err)
		}
	}
	before := e.store.log.Size()
	if before < 64<<10 {
		t.Fatalf("log is only %d bytes after the churn", before)
	}
	e.store.maybeCompact()
	after := e.store.log.Size()
	if after*10 > before {
		t.Fatalf("log went from %d to %d bytes; expected a compaction", before, after)
	}
	// A small log is left alone.
	e.store.maybeCompact()
	if got := e.store.log.Size(); got != after {
		t.Fatalf("a second check rewrote the log again (%d -> %d bytes)", after, got)
	}
	e = reopen(t, e)
	if got := mustRange(t, e, "keep"); !equalStrings(got, []string{"survivor"}) {
		t.Fatalf("after compaction and reopen: %q", got)
	}
	t.Logf("log compacted from %d to %d bytes", before, after)
}
