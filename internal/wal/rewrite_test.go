package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestRewriteReplacesLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	for i := 0; i < 100; i++ {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	before := l.Size()
	snapshot := [][]byte{[]byte("state: 100 records")}
	err := l.Rewrite(func(emit func([]byte) error) error {
		for _, r := range snapshot {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec(100)); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{snapshot[0], rec(100)}
	wantSize := int64(headerSize) + 2*frameHeaderSize + int64(len(want[0])+len(want[1]))
	if got := l.Size(); got != wantSize || got >= before {
		t.Fatalf("Size after rewrite = %d, want %d (was %d)", got, wantSize, before)
	}
	equalRecs(t, reopen(t, l, dir), want)
	gens, temps, err := listDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gens, []uint64{2}) || len(temps) != 0 {
		t.Fatalf("directory holds generations %v and temps %v, want only generation 2", gens, temps)
	}
}

// TestRewriteDuringConcurrentAppends runs the frozen-cut protocol while
// writers append: every record must end up in the final log exactly once,
// in each writer's order, and survive reopening.
func TestRewriteDuringConcurrentAppends(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, _ := openT(t, dir, Options{Fsync: policy})

			// state mirrors what the log describes; the RWMutex is the
			// caller's lock that makes each change and its Append atomic
			// with respect to the cut.
			var (
				cut   sync.RWMutex
				stMu  sync.Mutex
				state [][]byte
			)
			const writers, each = 6, 300
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Go(func() {
					for i := 0; i < each; i++ {
						r := writerRec(w, i)
						cut.RLock()
						err := l.Append(r)
						if err == nil {
							stMu.Lock()
							state = append(state, r)
							stMu.Unlock()
						}
						cut.RUnlock()
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			rewrites := 0
			wg.Go(func() {
				for range 5 {
					cut.Lock()
					rw, err := l.BeginRewrite()
					stMu.Lock()
					snap := slices.Clone(state)
					stMu.Unlock()
					cut.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
					for _, r := range snap {
						if err := rw.Emit(r); err != nil {
							t.Error(err)
							return
						}
					}
					if err := rw.Commit(); err != nil {
						t.Error(err)
						return
					}
					rewrites++
				}
			})
			wg.Wait()
			if rewrites != 5 {
				t.Fatalf("%d rewrites committed, want 5", rewrites)
			}
			checkWriters(t, reopen(t, l, dir), writers, each)
		})
	}
}

func TestRewriteAbortKeepsLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	if err := l.Append(rec(0)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("snapshot failed")
	err := l.Rewrite(func(emit func([]byte) error) error {
		if err := emit([]byte("partial")); err != nil {
			return err
		}
		if err := l.Append(rec(1)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Rewrite = %v, want the snapshot's error", err)
	}
	if err := l.Append(rec(2)); err != nil {
		t.Fatal(err)
	}
	equalRecs(t, reopen(t, l, dir), [][]byte{rec(0), rec(1), rec(2)})
	if _, temps, _ := listDir(dir); len(temps) != 0 {
		t.Fatalf("aborted rewrite left %v", temps)
	}
}

func TestRewriteStateErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	rw, err := l.BeginRewrite()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginRewrite(); !errors.Is(err, ErrRewriteInProgress) {
		t.Fatalf("second BeginRewrite = %v, want ErrRewriteInProgress", err)
	}
	if err := rw.Emit(make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("oversized Emit = %v", err)
	}
	if err := rw.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := rw.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
	if err := rw.Emit(rec(0)); err == nil {
		t.Fatal("Emit after Commit succeeded")
	}
	if err := rw.Abort(); err == nil {
		t.Fatal("Abort after Commit succeeded")
	}
	// A new rewrite may start once the previous one finished.
	rw2, err := l.BeginRewrite()
	if err != nil {
		t.Fatal(err)
	}
	if err := rw2.Abort(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseAbandonsRewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	if err := l.Append(rec(0)); err != nil {
		t.Fatal(err)
	}
	rw, err := l.BeginRewrite()
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Emit([]byte("snapshot")); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rw.Commit(); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	_, recs := openT(t, dir, Options{})
	equalRecs(t, recs, [][]byte{rec(0), rec(1)})
	if _, temps, _ := listDir(dir); len(temps) != 0 {
		t.Fatalf("abandoned rewrite left %v", temps)
	}
}

// TestOpenAfterInterruptedRewrite recreates what a crash leaves at each
// stage of a rewrite and checks Open loads the right generation.
func TestOpenAfterInterruptedRewrite(t *testing.T) {
	t.Parallel()
	_, oldLog, _ := writeLog(t, [][]byte{rec(0), rec(1)})
	newLog := appendFrame(encodeHeader(), []byte("snapshot"))
	cases := []struct {
		name  string
		files map[string][]byte
		want  [][]byte
	}{
		{"crash while writing the new file", map[string][]byte{
			genName(1): oldLog, tmpName(2): newLog[:len(newLog)-3],
		}, [][]byte{rec(0), rec(1)}},
		{"crash before rename", map[string][]byte{
			genName(1): oldLog, tmpName(2): newLog,
		}, [][]byte{rec(0), rec(1)}},
		{"crash after rename, before removing the old file", map[string][]byte{
			genName(1): oldLog, genName(2): newLog,
		}, [][]byte{[]byte("snapshot")}},
	}
	for _, c := range cases {
		dir := t.TempDir()
		for name, data := range c.files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, recs := openT(t, dir, Options{})
		equalRecs(t, recs, c.want)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		gens, temps, err := listDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(gens) != 1 || len(temps) != 0 {
			t.Fatalf("%s: left generations %v and temps %v", c.name, gens, temps)
		}
	}
}

// TestFuzzyCutWithSequenceNumbers shows the no-pause protocol: the snapshot
// is taken after the switch point, so some records are both in it and in
// the tail, and replay skips them by sequence number.
func TestFuzzyCutWithSequenceNumbers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	seqRec := func(n byte) []byte { return []byte{'r', n} }
	for n := byte(1); n <= 3; n++ {
		if err := l.Append(seqRec(n)); err != nil {
			t.Fatal(err)
		}
	}
	err := l.Rewrite(func(emit func([]byte) error) error {
		// Record 4 lands after the switch point but before the snapshot
		// is taken, so the snapshot (state through 4) and the tail both
		// hold it.
		if err := l.Append(seqRec(4)); err != nil {
			return err
		}
		return emit([]byte{'s', 4})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(seqRec(5)); err != nil {
		t.Fatal(err)
	}
	var applied []byte
	var last byte
	for _, r := range reopen(t, l, dir) {
		switch {
		case r[0] == 's':
			last = r[1]
			applied = append(applied, 's')
		case r[1] > last:
			last = r[1]
			applied = append(applied, r[1])
		}
	}
	if !bytes.Equal(applied, []byte{'s', 5}) {
		t.Fatalf("applied %v, want snapshot then record 5", applied)
	}
}

// A rewrite whose new file was renamed into place but whose directory
// fsync failed has superseded the old file: Open reads the new one. An
// append acknowledged in the old file after that would be lost, so the
// log refuses appends instead.
func TestRewriteDirectorySyncFailureStopsAppends(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	if err := l.Append(rec(0)); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected directory fsync failure")
	l.syncDir = func(string) error { return injected }
	err := l.Rewrite(func(emit func([]byte) error) error { return emit(rec(0)) })
	if !errors.Is(err, injected) {
		t.Fatalf("Rewrite = %v, want the directory fsync's failure", err)
	}
	acked := [][]byte{rec(0)}
	if err := l.Append(rec(1)); err == nil {
		acked = append(acked, rec(1))
	}
	// Close reports the log's failure, if it has one; it still releases
	// the directory.
	if err := l.Close(); err != nil && !errors.Is(err, injected) {
		t.Fatalf("Close: %v", err)
	}
	_, got := openT(t, dir, Options{})
	equalRecs(t, got, acked)
	if len(acked) > 1 {
		t.Fatal("an append was acknowledged after the rewrite superseded its file")
	}
}
