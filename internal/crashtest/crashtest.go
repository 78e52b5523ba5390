// Package crashtest kills consumers with SIGKILL in tests and checks what
// they leave behind: every item was either handled before the kill or
// comes back once the dead consumer's leases run out.
package crashtest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// Total is how many items KilledLosesNothing puts in the queue.
const Total = 2000

// KilledLosesNothing puts the numbers 0 to Total-1 in the queue "work" of
// a durable embedded engine in a fresh directory, runs the test binary's
// test (the consumer, which prints each item it handled on a line of its
// stdout before its handler returns) with env(dir) added to its
// environment, kills it -9 once it handled a third of them, and checks
// that every item was handled or comes back once the dead consumer's
// leases (which should be short) run out.
func KilledLosesNothing(t *testing.T, test string, env func(dir string) string) {
	t.Helper()
	dir := t.TempDir()
	c, err := sluice.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, Total)
	for i := range items {
		items[i] = i
	}
	if _, err := c.Queue("work").AddBatch(context.Background(), items, &sluice.AddOptions{MaxSize: sluice.Unbounded}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+test+"$") //nolint:gosec // the test binary runs one of its own tests as the consumer
	cmd.Env = append(os.Environ(), env(dir))
	handled := KillAfter(t, cmd, Total/3)

	c, err = sluice.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	CheckNoneLost(t, c.Queue("work"), Total, handled, 2*time.Second)
}

// KillAfter starts cmd, which prints the number of each item it handled
// on a line of its stdout before the handler returns, kills it -9 once it
// printed n distinct numbers, and returns every number it printed before
// it died.
func KillAfter(t testing.TB, cmd *exec.Cmd, n int) map[int]bool {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	handled := make(map[int]bool, n)
	sc := bufio.NewScanner(out)
	for len(handled) < n && sc.Scan() { // the length first: a line scanned is recorded
		if i, err := strconv.Atoi(sc.Text()); err == nil {
			handled[i] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // what it printed before it died
		if i, err := strconv.Atoi(sc.Text()); err == nil {
			handled[i] = true
		}
	}
	_ = cmd.Wait()
	if len(handled) < n {
		t.Fatalf("the consumer handled %d items before it was killed; want at least %d", len(handled), n)
	}
	return handled
}

// CheckNoneLost receives and acks everything q holds, or gets back
// within wait of the last receive (a dead consumer's leases running out
// meanwhile), and fails t for any item 0 to total-1 (q's items are those numbers) that is
// neither there nor in handled.
func CheckNoneLost(t testing.TB, q *sluice.Queue, total int, handled map[int]bool, wait time.Duration) {
	t.Helper()
	seen := make(map[int]bool, total)
	for {
		ds, err := q.ReceiveBatch(context.Background(), 500, wait, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		ids := make([]string, len(ds))
		for j, d := range ds {
			i, err := strconv.Atoi(d.Item.String())
			if err != nil {
				t.Fatalf("item %q is not a number", d.Item.String())
			}
			seen[i] = true
			ids[j] = d.ID
		}
		acked, err := q.AckBatch(context.Background(), ids...)
		if err != nil {
			t.Fatal(err)
		}
		for j, ok := range acked {
			if !ok {
				t.Fatalf("ack of %s found no lease", ids[j])
			}
		}
	}
	for i := range total {
		if !handled[i] && !seen[i] {
			t.Fatalf("item %d was neither handled by the killed consumer nor delivered again: lost (handled %d, redelivered or left %d)",
				i, len(handled), len(seen))
		}
	}
}
