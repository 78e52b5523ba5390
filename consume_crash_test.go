package sluice_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// consumeChildEnv makes the test binary a consumer that a test kills.
const consumeChildEnv = "SLUICE_TEST_CONSUME_CHILD"

// TestConsumeKilledLosesNothing kills -9 a process in the middle of
// Consume (prefetched items, running handlers, acks waiting to be sent)
// on the durable embedded engine: every item is then either one the dead
// process handled or one a new consumer receives once the leases run out.
func TestConsumeKilledLosesNothing(t *testing.T) {
	if dir := os.Getenv(consumeChildEnv); dir != "" {
		consumeChild(dir)
		return
	}
	killedLosesNothing(t, "TestConsumeKilledLosesNothing")
}

// TestBatchConsumerKilledLosesNothing is the same for the acknowledged
// batch consumer (prefetched batches, batches being handled, acks
// waiting to be sent).
func TestBatchConsumerKilledLosesNothing(t *testing.T) {
	if dir := os.Getenv(consumeChildEnv); dir != "" {
		batchConsumerChild(dir)
		return
	}
	killedLosesNothing(t, "TestBatchConsumerKilledLosesNothing")
}

// killedLosesNothing runs the test binary's test name as a consumer of a
// durable queue, kills it -9 once it handled a third of the items, and
// checks that every item was handled or comes back.
func killedLosesNothing(t *testing.T, name string) {
	const total = 2000
	dir := t.TempDir()
	c := open(t, "file://"+dir, nil)
	addN(t, c.Queue("work"), total)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$")
	cmd.Env = append(os.Environ(), consumeChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	handled := make(map[int]bool, total)
	sc := bufio.NewScanner(out)
	for len(handled) < total/3 && sc.Scan() { // the length first: a line scanned is recorded
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			handled[n] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // what it printed before it died
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			handled[n] = true
		}
	}
	_ = cmd.Wait()
	if len(handled) < total/3 {
		t.Fatalf("the consumer handled %d items before it was killed; want at least %d", len(handled), total/3)
	}

	c = open(t, "file://"+dir, nil)
	q := c.Queue("work")
	seen := make(map[int]bool, total)
	for {
		// The dead consumer's leases (300 ms) run out while this waits.
		ds, err := q.ReceiveBatch(context.Background(), 500, 2*time.Second, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			n, err := strconv.Atoi(d.Item.String())
			if err != nil {
				t.Fatalf("item %q", d.Item.String())
			}
			seen[n] = true
		}
	}
	for i := range total {
		if !handled[i] && !seen[i] {
			t.Fatalf("item %d was neither handled by the killed consumer nor delivered again: lost (handled %d, redelivered or left %d)",
				i, len(handled), len(seen))
		}
	}
}

// consumeChild consumes dir's queue until it is killed, printing each
// item it handled before the handler returns.
func consumeChild(dir string) {
	c, err := sluice.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	err = c.Queue("work").Consume(context.Background(), func(_ context.Context, d *sluice.Delivery) error {
		fmt.Println(d.Item.String())
		return nil
	}, &sluice.ConsumeOptions{Concurrency: 4, Prefetch: 50, Lease: 300 * time.Millisecond})
	fmt.Fprintln(os.Stderr, "consume returned:", err)
	os.Exit(4)
}

// batchConsumerChild is consumeChild with an acknowledged batch consumer:
// it prints each batch's items before the handler returns.
func batchConsumerChild(dir string) {
	c, err := sluice.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	bc, err := c.Queue("work").NewBatchConsumer(func(_ context.Context, items []sluice.Item) error {
		var b strings.Builder
		for _, it := range items {
			b.WriteString(it.String() + "\n")
		}
		fmt.Print(b.String())
		return nil
	}, &sluice.BatchConsumerOptions{Size: 20, IdleTimeout: 10 * time.Millisecond, Concurrency: 3, Prefetch: 3,
		Acknowledged: true, Receive: sluice.ReceiveOptions{Lease: 300 * time.Millisecond}})
	if err == nil {
		err = bc.Run(context.Background())
	}
	fmt.Fprintln(os.Stderr, "batch consumer returned:", err)
	os.Exit(4)
}
