package wal

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
)

// The concurrent crash test runs this test binary as a child in which
// crashWriters goroutines append records "wNN-IIIIIIII" (each continuing
// after what the log already holds) and print each record's name on stdout
// only after its Append returned: every line the parent reads is an
// acknowledged record. One more goroutine compacts the log every 500
// acknowledgements with a frozen cut, taken while no Enqueue is running, so rewrites and
// their switch to a new file are part of what a kill can interrupt.
const (
	crashWritersEnv = "SLUICE_WAL_CRASH_WRITERS_DIR"
	crashWriters    = 8
)

func concurrentCrashChild(dir, policy string) int {
	opts := Options{}
	if policy == FsyncAlways.String() {
		opts.Fsync = FsyncAlways
	}
	l, err := Open(dir, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// state[w] is writer w's records so far, in order; a writer extends
	// its own under gate's read lock, the compactor reads all under its
	// write lock.
	var gate sync.RWMutex
	state := make([][][]byte, crashWriters)
	if _, err := l.Replay(func(r []byte) error {
		var w, i int
		if _, err := fmt.Sscanf(string(r), "w%02d-%08d", &w, &i); err != nil || w >= crashWriters {
			return fmt.Errorf("unexpected record %q", r)
		}
		state[w] = append(state[w], bytes.Clone(r))
		return nil
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var outMu sync.Mutex
	printed := 0
	compact := make(chan struct{}, 1)
	fail := make(chan error, crashWriters+1)
	for w := range crashWriters {
		go func() {
			for i := len(state[w]); ; i++ {
				r := writerRec(w, i)
				gate.RLock()
				pos, err := l.Enqueue(r)
				if err == nil {
					state[w] = append(state[w], r)
				}
				gate.RUnlock()
				if err == nil {
					err = l.Wait(pos)
				}
				if err != nil {
					fail <- err
					return
				}
				// One write(2) per line: a line the parent reads whole was
				// printed after its record was acknowledged.
				outMu.Lock()
				_, err = os.Stdout.Write(append(r, '\n'))
				printed++
				if printed%500 == 0 {
					select {
					case compact <- struct{}{}:
					default:
					}
				}
				outMu.Unlock()
				if err != nil {
					fail <- err
					return
				}
			}
		}()
	}
	go func() {
		for range compact {
			gate.Lock()
			rw, err := l.BeginRewrite()
			var snap [][]byte
			for _, recs := range state {
				snap = append(snap, recs...)
			}
			gate.Unlock()
			if err == nil {
				for _, r := range snap {
					if err = rw.Emit(r); err != nil {
						break
					}
				}
				if err == nil {
					err = rw.Commit()
				}
			}
			if err != nil {
				fail <- err
				return
			}
		}
	}()
	fmt.Fprintln(os.Stderr, <-fail)
	return 2
}

// TestConcurrentCrashKeepsAcknowledged kills a child whose writers append
// concurrently at a random moment, several times, and checks after each
// kill that every record the child acknowledged is in the log exactly
// once, each writer's records in order without gaps. Under FsyncEverySec
// too: a process crash must lose nothing acknowledged, since an Append
// returns only after write(2).
func TestConcurrentCrashKeepsAcknowledged(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			acked := make(map[string]bool)
			for round := range 4 {
				kill := 100 + rand.IntN(1500)
				for _, r := range killConcurrentChild(t, dir, policy, kill) {
					acked[r] = true
				}
				recs := loadAll(t, dir)
				next := make([]int, crashWriters)
				for _, r := range recs {
					var w, i int
					if _, err := fmt.Sscanf(string(r), "w%02d-%08d", &w, &i); err != nil || w >= crashWriters {
						t.Fatalf("round %d: unexpected record %q", round, r)
					}
					if i != next[w] {
						t.Fatalf("round %d: writer %d: record %d follows %d: lost or duplicated", round, w, i, next[w]-1)
					}
					next[w]++
				}
				for r := range acked {
					var w, i int
					_, _ = fmt.Sscanf(r, "w%02d-%08d", &w, &i)
					if i >= next[w] {
						t.Fatalf("round %d (killed after %d acknowledgements): acknowledged record %s is missing; writer %d has %d records",
							round, kill, r, w, next[w])
					}
				}
			}
		})
	}
}

// killConcurrentChild starts the concurrent child on dir, kills it with
// SIGKILL once it has acknowledged n records, and returns every record it
// acknowledged, including lines it printed before the kill that the
// parent had not read yet.
func killConcurrentChild(t *testing.T, dir string, policy FsyncPolicy, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashWritersEnv+"="+dir, crashPolicyEnv+"="+policy.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	var acked []string
	readLine := func() bool {
		line, err := rd.ReadString('\n')
		if err != nil {
			// EOF after the kill; a line without its newline was not
			// printed whole, so it does not count.
			return false
		}
		acked = append(acked, line[:len(line)-1])
		return true
	}
	for len(acked) < n {
		if !readLine() {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for readLine() {
	}
	_, _ = io.Copy(io.Discard, rd)
	_ = cmd.Wait() // killed: the exit status is expected to be an error
	if len(acked) < n {
		t.Fatalf("child acknowledged %d records before it stopped, want at least %d", len(acked), n)
	}
	return acked
}

// TestAppendReturnsAfterWrite reads the log file from outside after each
// Append: under either policy, whether the file is mapped (FsyncEverySec
// on Linux) or written with write(2), the record must already be in the
// file where the log says it is, since a process crash right after the
// answer must not lose it.
func TestAppendReturnsAfterWrite(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		for _, mapped := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/mapped=%v", policy, mapped), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				l, _ := openT(t, dir, Options{Fsync: policy, SyncInterval: 1 << 40, NoMap: !mapped})
				for i := range 50 {
					at := l.Size()
					frame := appendFrame(nil, rec(i))
					if err := l.Append(rec(i)); err != nil {
						t.Fatal(err)
					}
					data, err := os.ReadFile(l.path)
					if err != nil {
						t.Fatal(err)
					}
					if int64(len(data)) < at+int64(len(frame)) || !bytes.Equal(data[at:at+int64(len(frame))], frame) {
						t.Fatalf("record %d acknowledged but not in the file at %d (%d bytes)", i, at, len(data))
					}
				}
				l.mu.Lock()
				isMapped := l.mapped != nil
				l.mu.Unlock()
				if want := mapped && policy == FsyncEverySec && runtime.GOOS == "linux"; isMapped != want {
					t.Fatalf("file mapped = %v, want %v", isMapped, want)
				}
			})
		}
	}
}

// TestEnqueueBuffersWaitWrites checks the split API on a file written with
// write(2): Enqueue only buffers (so it is cheap under a caller's lock),
// Wait writes everything up to its position, including records other
// callers enqueued before it. (A mapped file gets its records copied in
// by Enqueue itself, which is as cheap.)
func TestEnqueueBuffersWaitWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{SyncInterval: 1 << 40, NoMap: true})
	before, err := os.ReadFile(l.path)
	if err != nil {
		t.Fatal(err)
	}
	p0, err := l.Enqueue(rec(0))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := l.Enqueue(rec(1), rec(2))
	if err != nil {
		t.Fatal(err)
	}
	if p1 <= p0 {
		t.Fatalf("positions %d then %d: not increasing", p0, p1)
	}
	mid, err := os.ReadFile(l.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mid, before) {
		t.Fatalf("Enqueue wrote to the file (%d bytes, was %d)", len(mid), len(before))
	}
	if err := l.Wait(p1); err != nil {
		t.Fatal(err)
	}
	// The earlier position is covered by the later write.
	if err := l.Wait(p0); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(l.path)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(appendFrame(nil, rec(0)), appendFrame(nil, rec(1))...), appendFrame(nil, rec(2))...)
	if !bytes.Equal(after[len(before):], want) {
		t.Fatalf("file after Wait holds %q, want %q", after[len(before):], want)
	}
}

// TestWaitersShareOneWrite holds a file written with write(2) while
// appenders queue up, as a slow write or fsync would: when it is free, the
// one waiter that leads writes every record gathered meanwhile in one
// write(2) (and one fsync under FsyncAlways), and the others return
// without writing.
func TestWaitersShareOneWrite(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, _ := openT(t, dir, Options{Fsync: policy, SyncInterval: 1 << 40, NoMap: true})
			const appenders = 8
			frame := int64(len(appendFrame(nil, writerRec(0, 0))))
			l.mu.Lock()
			base, writes := l.appended, l.writes
			l.mu.Unlock()

			l.fileMu.Lock()
			var wg sync.WaitGroup
			for w := range appenders {
				wg.Go(func() {
					if err := l.Append(writerRec(w, 0)); err != nil {
						t.Error(err)
					}
				})
			}
			// Wait, on the log's own condition, until every appender has
			// enqueued its record and waits.
			l.mu.Lock()
			for l.appended < base+appenders*frame {
				l.mu.Unlock()
				runtime.Gosched()
				l.mu.Lock()
			}
			l.mu.Unlock()
			l.fileMu.Unlock()
			wg.Wait()

			l.mu.Lock()
			got := l.writes - writes
			l.mu.Unlock()
			if got != 1 {
				t.Fatalf("%d appenders queued behind a busy file took %d writes, want 1", appenders, got)
			}
			checkWriters(t, reopen(t, l, dir), appenders, 1)
		})
	}
}
