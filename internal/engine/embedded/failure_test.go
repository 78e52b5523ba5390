package embedded

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/wal"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bufferLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func logFile(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(files) != 1 {
		t.Fatalf("log files: %v", files)
	}
	return files[0]
}

// A crash that tears the last part of a record split in parts leaves its
// first parts intact in the log. Open must drop them from the file too:
// otherwise the next records appended are read, at the following open, as
// the missing parts, and the log no longer opens.
func TestTornSplitRecordIsDroppedForGood(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 17 MB")
	}
	dir := t.TempDir()
	e := newEngine(t, Options{Dir: dir, Fsync: wal.FsyncAlways})
	mustAdd(t, e, "q", "before")
	mustAdd(t, e, "q", strings.Repeat("x", partSize+1<<20))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	path := logFile(t, dir)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-3); err != nil {
		t.Fatal(err)
	}

	logger, logs := bufferLogger()
	e = newEngine(t, Options{Dir: dir, Fsync: wal.FsyncAlways, Logger: logger})
	rep := e.ReplayReport()
	if !rep.Truncated || rep.DroppedBytes <= partSize {
		t.Errorf("replay report %+v: want the whole split record (over %d bytes) reported dropped", rep, partSize)
	}
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"before"}) {
		t.Fatalf("after the first reopen the queue holds %d items, want [before]", len(got))
	}
	if out := logs.String(); !strings.Contains(out, "dropped its parts") || !strings.Contains(out, "offset=") {
		t.Errorf("open did not report the dropped parts with their offset; log:\n%s", out)
	}
	mustAdd(t, e, "q", "after")

	e = reopen(t, e)
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"before", "after"}) {
		t.Fatalf("after the second reopen the queue holds %q, want [before after]", got)
	}
}

// withFileLimit runs fn with RLIMIT_FSIZE set to limit bytes, so that any
// write past that size fails with EFBIG (Go ignores SIGXFSZ). It is not
// for parallel tests: the limit is the whole process's.
func withFileLimit(t *testing.T, limit int64, fn func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	lim := syscall.Rlimit{Cur: uint64(limit), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatalf("restore RLIMIT_FSIZE: %v", err)
		}
	}()
	fn()
}

// After the log fails, no call may change memory: a pop that returned an
// error but removed its item would drain the queue silently, and an add
// that kept its item would duplicate it on retry. The failing pop itself
// is rolled back. Under either policy: "everysec" too waits for the write
// before answering, so the failure reaches the call whose record it lost.
func TestLogFailureRefusesChangesBeforeTouchingState(t *testing.T) {
	for _, policy := range []wal.FsyncPolicy{wal.FsyncEverySec, wal.FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) { logFailureRefusesChanges(t, policy) })
	}
}

func logFailureRefusesChanges(t *testing.T, policy wal.FsyncPolicy) {
	dir := t.TempDir()
	e := newEngine(t, Options{Dir: dir, Fsync: policy, noMap: true})
	ctx := context.Background()
	mustAdd(t, e, "q", "a", "b")
	ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Lease: time.Hour, MaxDeliveries: 3})
	if err != nil || len(ds) != 1 {
		t.Fatalf("QueueReceive = %v, %v", ds, err)
	}
	mustAdd(t, e, "q", "c")

	withFileLimit(t, e.store.log.Size(), func() {
		_, ok, err := e.QueuePop(ctx, "q", 0)
		if err == nil || ok || !errors.Is(err, syscall.EFBIG) {
			t.Fatalf("QueuePop with a failing log = %v, %v; want the write error", ok, err)
		}
		// The operation once, no queue name: the public package adds
		// the names.
		if want := "queue pop: log write failed; nothing was changed (the engine is read-only from now on): "; !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), `"q"`) {
			t.Errorf("failed pop error %q, want it to start %q and not name the queue", err, want)
		}
		if got := mustRange(t, e, "q"); !equalStrings(got, []string{"b", "c"}) {
			t.Fatalf("after the failed pop the queue is %q, want [b c]", got)
		}

		refused := func(what string, err error) {
			t.Helper()
			if err == nil || !errors.Is(err, syscall.EFBIG) || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("%s after the log failed = %v; want a read-only refusal wrapping the log failure", what, err)
			}
		}
		_, _, err = e.QueuePop(ctx, "q", 0)
		refused("QueuePop", err)
		_, err = e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{"d"}, Policy: engine.PolicyReject})
		refused("QueueAdd", err)
		refused("QueuePushFront", e.QueuePushFront(ctx, "q", []string{"e"}))
		_, err = e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Lease: time.Hour, MaxDeliveries: 3})
		refused("QueueReceive", err)
		refused("Ack", engine.Ack(ctx, e, "q", ds[0].ID))
		_, err = e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 3})
		refused("QueueNack", err)
		_, err = e.QueueClear(ctx, "q")
		refused("QueueClear", err)
		_, err = e.CacheSet(ctx, engine.CacheSetParams{Key: "k", Value: "v"})
		refused("CacheSet", err)
		_, _, err = e.LockAcquire(ctx, "L", "tok", time.Minute)
		refused("LockAcquire", err)

		if got := mustRange(t, e, "q"); !equalStrings(got, []string{"b", "c"}) {
			t.Errorf("after refused calls the queue is %q, want [b c]", got)
		}
		if n, _ := e.QueueInFlight(ctx, "q"); n != 1 {
			t.Errorf("in flight = %d, want the 1 lease untouched", n)
		}
		if h := e.Health(ctx); h.Status != "unhealthy" {
			t.Errorf("Health = %+v, want unhealthy", h)
		}
	})
}

// A failing add cannot be taken back (it may have served a consumer), so
// its error must say where the item is: in memory, not durable.
func TestFailedAddSaysItIsInMemoryOnly(t *testing.T) {
	for _, policy := range []wal.FsyncPolicy{wal.FsyncEverySec, wal.FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) { failedAddSaysInMemoryOnly(t, policy) })
	}
}

func failedAddSaysInMemoryOnly(t *testing.T, policy wal.FsyncPolicy) {
	dir := t.TempDir()
	e := newEngine(t, Options{Dir: dir, Fsync: policy, noMap: true})
	ctx := context.Background()
	mustAdd(t, e, "q", "a")
	withFileLimit(t, e.store.log.Size(), func() {
		_, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{"b"}, Policy: engine.PolicyReject})
		if err == nil || !errors.Is(err, syscall.EFBIG) || !strings.Contains(err.Error(), "applied in memory but not durable") {
			t.Fatalf("QueueAdd with a failing log = %v; want an error saying the item is in memory only", err)
		}
		if got := mustRange(t, e, "q"); !equalStrings(got, []string{"a", "b"}) {
			t.Errorf("queue = %q, want [a b] as the error says", got)
		}
	})
	// Close reports the failure again: the log never recovered from it.
	if err := e.Close(); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("Close after the log failed = %v, want the write error", err)
	}
	e = newEngine(t, Options{Dir: dir})
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"a"}) {
		t.Errorf("after reopen the queue is %q, want [a]: the failed add was never durable", got)
	}
}

// Durations near math.MaxInt64 must mean "practically forever", not wrap
// to a deadline in the past.
func TestLongDurationsDoNotWrap(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	forever := time.Duration(math.MaxInt64)
	mustAdd(t, e, "q", "a", "b")
	ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Lease: forever, MaxDeliveries: 3})
	if err != nil || len(ds) != 1 {
		t.Fatalf("QueueReceive = %v, %v", ds, err)
	}
	again := func(what string) {
		t.Helper()
		got, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 5, Lease: time.Hour, MaxDeliveries: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range got {
			if d.Item == "a" {
				t.Fatalf("%s: item a redelivered at once (attempt %d)", what, d.Attempt)
			}
		}
	}
	again("lease of MaxInt64")
	if err := e.QueueExtend(ctx, "q", ds[0].ID, forever); err != nil {
		t.Fatalf("QueueExtend: %v", err)
	}
	again("extend by MaxInt64")
	if _, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, Delay: forever, MaxDeliveries: 3}); err != nil {
		t.Fatalf("QueueNack: %v", err)
	}
	again("nack delay of MaxInt64")

	if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "k", Value: "v", TTL: forever}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.CacheGet(ctx, "k"); !ok {
		t.Error("cache entry with a TTL of MaxInt64 expired at once")
	}
	if _, ok, _ := e.LockAcquire(ctx, "L", "t1", forever); !ok {
		t.Fatal("LockAcquire failed")
	}
	if _, ok, _ := e.LockAcquire(ctx, "L", "t2", time.Minute); ok {
		t.Error("lock held for MaxInt64 was free at once")
	}
}

// A snapshot must split an item too large for one record the way append
// does, or a single huge item would make every compaction fail.
func TestSnapshotSplitsHugeItems(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 17 MB records")
	}
	huge := strings.Repeat("h", partSize+1<<20)
	snap := []snapItem{{key: "q", list: []string{"small", huge, "tail"}}}
	var recs [][]byte
	if _, err := writeSnapshot(func(rec []byte) error {
		if len(rec) > partSize {
			t.Errorf("snapshot record of %d bytes, over the part size %d", len(rec), partSize)
		}
		recs = append(recs, bytes.Clone(rec))
		return nil
	}, snap, []string{"q"}); err != nil {
		t.Fatal(err)
	}
	// Replay feeds an engine before its sweeper runs; here the engine is
	// already running, so its sweeper must not tick while records go in.
	e := newEngine(t, Options{SweepInterval: 24 * time.Hour})
	var r replayer
	for i, rec := range recs {
		if err := r.feed(e, int64(i), rec); err != nil {
			t.Fatalf("replaying snapshot record %d: %v", i, err)
		}
	}
	if _, open := r.unfinished(); open {
		t.Fatal("snapshot ends inside a split record")
	}
	got := mustRange(t, e, "q")
	if len(got) != 3 || got[0] != "small" || got[1] != huge || got[2] != "tail" {
		t.Fatalf("snapshot replayed into %d items, want [small huge tail]", len(got))
	}
}

// A failed compaction is logged and retried after a growing pause, not
// every sweep.
func TestCompactionFailureIsLoggedAndBacksOff(t *testing.T) {
	logger, logs := bufferLogger()
	e := newEngine(t, Options{Dir: t.TempDir(), CompactMinBytes: 1, Logger: logger})
	mustAdd(t, e, "q", "a")
	// A rewrite already in progress makes the compaction fail.
	rw, err := e.store.log.BeginRewrite()
	if err != nil {
		t.Fatal(err)
	}
	e.store.maybeCompact()
	e.store.maybeCompact()
	if n := strings.Count(logs.String(), "log compaction failed"); n != 1 {
		t.Errorf("%d compaction failures logged for two checks within the back-off, want 1; log:\n%s", n, logs.String())
	}
	if err := rw.Abort(); err != nil {
		t.Fatal(err)
	}

	var b backoff
	now := time.Unix(1000, 0)
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for _, w := range want {
		if got := b.failed(now); got != w {
			t.Fatalf("back-off = %v, want %v", got, w)
		}
		if b.ready(now.Add(w-1)) || !b.ready(now.Add(w)) {
			t.Fatalf("after a %v back-off, ready at the wrong time", w)
		}
	}
	for range 30 {
		b.failed(now)
	}
	if b.wait != compactRetryMax {
		t.Errorf("back-off grew to %v, want it capped at %v", b.wait, compactRetryMax)
	}
	b.reset()
	if !b.ready(now) {
		t.Error("not ready after reset")
	}
}

// A released delivery goes back without counting, and that is logged: a
// reopened engine hands it out with the same attempt number.
func TestReleaseIsDurable(t *testing.T) {
	e := newEngine(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	mustAdd(t, e, "q", "x")
	p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: time.Hour, MaxDeliveries: 1}
	ds, err := e.QueueReceive(ctx, p)
	if err != nil || len(ds) != 1 || ds[0].Attempt != 1 {
		t.Fatalf("QueueReceive = %+v, %v", ds, err)
	}
	res, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 1, Release: true})
	if err != nil || res.DeadLettered {
		t.Fatalf("release at the last delivery = %+v, %v; want no dead-letter", res, err)
	}
	e = reopen(t, e)
	ds, err = e.QueueReceive(ctx, p)
	if err != nil || len(ds) != 1 || ds[0].Item != "x" || ds[0].Attempt != 1 {
		t.Fatalf("after reopen QueueReceive = %+v, %v; want x at attempt 1", ds, err)
	}
}
