package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir, os.Getenv(crashPolicyEnv)))
	}
	if dir := os.Getenv(crashWritersEnv); dir != "" {
		os.Exit(concurrentCrashChild(dir, os.Getenv(crashPolicyEnv)))
	}
	goleak.VerifyTestMain(m)
}

// openT opens a log in dir, replays it and closes it when the test ends.
func openT(t testing.TB, dir string, opts Options) (*Log, [][]byte) {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	recs, rep, err := replayAll(l)
	if err != nil {
		_ = l.Close()
		t.Fatalf("Replay: %v", err)
	}
	if rep.Truncated {
		_ = l.Close()
		t.Fatalf("unexpected torn tail: %+v", rep)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return l, recs
}

func replayAll(l *Log) ([][]byte, ReplayReport, error) {
	var recs [][]byte
	rep, err := l.Replay(func(rec []byte) error {
		recs = append(recs, bytes.Clone(rec))
		return nil
	})
	return recs, rep, err
}

// reopen closes l and returns every record a fresh Open replays.
func reopen(t *testing.T, l *Log, dir string) [][]byte {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, recs := openT(t, dir, Options{})
	return recs
}

func rec(i int) []byte { return fmt.Appendf(nil, "record-%06d", i) }

func equalRecs(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, recs := openT(t, dir, Options{Fsync: policy})
			if len(recs) != 0 {
				t.Fatalf("new log replayed %d records", len(recs))
			}
			var want [][]byte
			for i := 0; i < 100; i++ {
				want = append(want, rec(i))
			}
			want = append(want, []byte{}, bytes.Repeat([]byte{0xAB}, 100_000))
			if err := l.Append(want[:10]...); err != nil {
				t.Fatal(err)
			}
			for _, r := range want[10:] {
				if err := l.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			wantSize := int64(headerSize)
			for _, r := range want {
				wantSize += frameHeaderSize + int64(len(r))
			}
			if got := l.Size(); got != wantSize {
				t.Fatalf("Size = %d, want %d", got, wantSize)
			}
			equalRecs(t, reopen(t, l, dir), want)
		})
	}
}

func TestAppendRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec(1)); !errors.Is(err, ErrNotReplayed) {
		t.Fatalf("Append before Replay = %v, want ErrNotReplayed", err)
	}
	if _, err := l.Replay(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Replay(nil); err == nil {
		t.Fatal("second Replay succeeded")
	}
	big := make([]byte, MaxRecordSize+1)
	if err := l.Append(rec(1), big); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("oversized Append = %v, want ErrRecordTooLarge", err)
	}
	if err := l.Append(rec(2)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec(3)); !errors.Is(err, ErrClosed) || !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close = %v, want ErrClosed", err)
	}
	// The rejected batch left nothing behind: only rec(2) is in the log.
	_, recs := openT(t, dir, Options{})
	equalRecs(t, recs, [][]byte{rec(2)})
}

func TestLockPreventsSecondOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	if _, err := Open(t.TempDir(), Options{Fsync: FsyncPolicy(7)}); err == nil {
		t.Fatal("Open accepted an unknown fsync policy")
	}
}

// TestConcurrentAppendsKeepPerWriterOrder checks that group commit neither
// loses nor reorders a writer's records.
func TestConcurrentAppendsKeepPerWriterOrder(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, _ := openT(t, dir, Options{Fsync: policy})
			const writers, each = 8, 200
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Go(func() {
					for i := 0; i < each; i++ {
						if err := l.Append(writerRec(w, i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			checkWriters(t, reopen(t, l, dir), writers, each)
		})
	}
}

func writerRec(w, i int) []byte { return fmt.Appendf(nil, "w%02d-%08d", w, i) }

// checkWriters verifies every writer's records appear exactly once, in order.
func checkWriters(t *testing.T, recs [][]byte, writers, each int) {
	t.Helper()
	next := make([]int, writers)
	for _, r := range recs {
		var w, i int
		if _, err := fmt.Sscanf(string(r), "w%02d-%08d", &w, &i); err != nil {
			t.Fatalf("unexpected record %q: %v", r, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got record %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	for w, n := range next {
		if n != each {
			t.Fatalf("writer %d: %d records replayed, want %d", w, n, each)
		}
	}
}

// TestCloseFlushesEverySec checks records accepted under FsyncEverySec are
// on disk after Close without waiting for the timer.
func TestCloseFlushesEverySec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{Fsync: FsyncEverySec, SyncInterval: 1 << 40})
	var want [][]byte
	for i := 0; i < 1000; i++ {
		want = append(want, rec(i))
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	equalRecs(t, reopen(t, l, dir), want)
}

// TestSmallMaxPendingAppliesBackpressure exercises the path where Enqueue
// writes before it returns.
func TestSmallMaxPendingAppliesBackpressure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{MaxPending: 64})
	var want [][]byte
	for i := 0; i < 500; i++ {
		want = append(want, rec(i))
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	equalRecs(t, reopen(t, l, dir), want)
}

func TestOpenRejectsForeignFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, genName(1)), []byte("definitely not a log file"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Replay(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Replay of foreign file = %v, want ErrCorrupt", err)
	}
	if err := l.Append(rec(1)); !errors.Is(err, ErrNotReplayed) {
		t.Fatalf("Append after failed Replay = %v, want ErrNotReplayed", err)
	}
}

// TestWriteFailureIsSticky breaks the file under a log written with
// write(2): the failure must reach the appenders and stay, since what
// reached the disk is unknown.
func TestWriteFailureIsSticky(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, _ := openT(t, dir, Options{Fsync: policy, NoMap: true})
			if err := l.Append(rec(0)); err != nil {
				t.Fatal(err)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			l.fileMu.Lock()
			if err := l.file.Close(); err != nil {
				t.Fatal(err)
			}
			l.fileMu.Unlock()

			// Under either policy Append returns only after write(2), so
			// the failure reaches the appender whose record did not make it.
			err := l.Append(rec(1))
			if err == nil {
				t.Fatal("write to a closed file succeeded")
			}
			if err2 := l.Append(rec(2)); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("Append after failure = %v, want the sticky %v", err2, err)
			}
			if _, err := l.BeginRewrite(); err == nil {
				t.Fatal("BeginRewrite after failure succeeded")
			}
			if err := l.Close(); err == nil {
				t.Fatal("Close hid the write failure")
			}
			// What was synced before the failure is still there.
			_, recs := openT(t, dir, Options{})
			equalRecs(t, recs, [][]byte{rec(0)})
		})
	}
}

// TestPeriodicSyncAdvancesDurability drives the once-a-second fsync by
// hand rather than by waiting for the timer.
func TestPeriodicSyncAdvancesDurability(t *testing.T) {
	t.Parallel()
	l, _ := openT(t, t.TempDir(), Options{SyncInterval: 1 << 40})
	if err := l.Append(rec(0), rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.flush(false); err != nil {
		t.Fatal(err)
	}
	if err := l.syncWritten(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.synced != l.appended || l.written != l.appended {
		t.Fatalf("appended %d, written %d, synced %d", l.appended, l.written, l.synced)
	}
}

// BenchmarkAppendEverySec measures one appender writing 200-byte records
// under the default policy; ns/op is per record.
func BenchmarkAppendEverySec(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncEverySec})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendEverySecParallel is the same with GOMAXPROCS appenders.
func BenchmarkAppendEverySecParallel(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncEverySec})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendAlways50 has 50 goroutines appending 200-byte records
// with FsyncAlways; group commit lets them share fsyncs. ns/op is per
// record across all appenders.
func BenchmarkAppendAlways50(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncAlways})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	const appenders = 50
	work := make(chan struct{}, appenders)
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for range work {
				if err := l.Append(r); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for b.Loop() {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
}

// BenchmarkAppendAlwaysSingle is the baseline the group commit improves
// on: one appender, one fsync per record.
func BenchmarkAppendAlwaysSingle(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncAlways})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	for b.Loop() {
		if err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
}

// A copy of the lock's descriptor (what a process forked by another
// goroutine holds until it execs) must not keep the directory locked once
// the Log is closed: reopening right after Close succeeds.
func TestCloseReleasesLockHeldByACopiedDescriptor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	dup, err := syscall.Dup(int(l.lock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(dup)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close while a copy of the lock descriptor is open: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// The syncer fsyncs without fileMu while a rewrite may close the file it
// is syncing. Run under -race, this reported the unsynchronised read of
// the descriptor (f.Fd) against the rewrite's Close; an fsync that lost
// the race must not fail the log either.
func TestSyncWhileRewriteClosesTheFile(t *testing.T) {
	t.Parallel()
	l, _ := openT(t, t.TempDir(), Options{NoMap: true})
	defer l.Close()
	stop := make(chan struct{})
	synced := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				synced <- nil
				return
			default:
			}
			if err := l.Append([]byte("x")); err != nil {
				synced <- err
				return
			}
			if err := l.syncWritten(); err != nil {
				synced <- err
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		if err := l.Rewrite(func(emit func([]byte) error) error { return emit([]byte("snapshot")) }); err != nil {
			t.Fatalf("rewrite %d: %v", i, err)
		}
	}
	close(stop)
	if err := <-synced; err != nil {
		t.Fatalf("append or fsync beside the rewrites: %v", err)
	}
}
