package wal

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// The crash test runs this test binary a second time as a child process
// that appends numbered records (rewriting the log every few hundred) and
// prints each number once Append returned. The parent kills it with
// SIGKILL at an arbitrary moment, possibly mid-write or mid-rewrite.
const (
	crashChildEnv  = "SLUICE_WAL_CRASH_CHILD_DIR"
	crashPolicyEnv = "SLUICE_WAL_CRASH_CHILD_POLICY"
	crashRewriteAt = 300
)

func crashChild(dir, policy string) int {
	opts := Options{}
	if policy == FsyncAlways.String() {
		opts.Fsync = FsyncAlways
	}
	l, err := Open(dir, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var state [][]byte
	if _, err := l.Replay(func(r []byte) error {
		state = append(state, append([]byte(nil), r...))
		return nil
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	for i := len(state); ; i++ {
		r := []byte(strconv.Itoa(i))
		if err := l.Append(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		state = append(state, r)
		fmt.Fprintln(out, i)
		if err := out.Flush(); err != nil {
			return 2
		}
		if i%crashRewriteAt == crashRewriteAt-1 {
			// Single writer, so the cut is exact without a lock.
			err := l.Rewrite(func(emit func([]byte) error) error {
				for _, s := range state {
					if err := emit(s); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
	}
}

// TestCrashRecovery kills a writing process repeatedly and checks that each
// restart loads a gap-free prefix holding every record whose Append had
// returned, under either policy: Append returns only after write(2).
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			acked := -1
			for round := 0; round < 4; round++ {
				// Each round kills the child after a different number of
				// acknowledgements so crashes land at varied points.
				last := runAndKill(t, dir, policy, 150+round*170)
				if last > acked {
					acked = last
				}
				recs := loadAll(t, dir)
				for i, r := range recs {
					if string(r) != strconv.Itoa(i) {
						t.Fatalf("round %d: record %d is %q: the log is not a gap-free prefix", round, i, r)
					}
				}
				if len(recs) <= acked {
					t.Fatalf("round %d: %d records survived, but %d had been acknowledged", round, len(recs), acked+1)
				}
			}
		})
	}
}

// runAndKill starts a child appending to dir, waits for it to acknowledge
// n more records, kills it, and returns the last number it acknowledged.
func runAndKill(t *testing.T, dir string, policy FsyncPolicy, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashPolicyEnv+"="+policy.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	last := -1
	for seen := 0; seen < n && sc.Scan(); seen++ {
		v, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		last = v
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: the exit status is expected to be an error
	if last < 0 {
		t.Fatal("child acknowledged nothing")
	}
	return last
}

func loadAll(t *testing.T, dir string) [][]byte {
	t.Helper()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recs, _, err := replayAll(l)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
