package sluice_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/crashtest"
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
	crashtest.KilledLosesNothing(t, "TestConsumeKilledLosesNothing", func(dir string) string { return consumeChildEnv + "=" + dir })
}

// TestBatchConsumerKilledLosesNothing is the same for the acknowledged
// batch consumer (prefetched batches, batches being handled, acks
// waiting to be sent).
func TestBatchConsumerKilledLosesNothing(t *testing.T) {
	if dir := os.Getenv(consumeChildEnv); dir != "" {
		batchConsumerChild(dir)
		return
	}
	crashtest.KilledLosesNothing(t, "TestBatchConsumerKilledLosesNothing", func(dir string) string { return consumeChildEnv + "=" + dir })
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
