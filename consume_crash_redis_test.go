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
	"github.com/sluicehq/sluice/internal/redistest"
)

// consumeRedisChildEnv makes the test binary a consumer of Redis that a
// test kills; it holds the key prefix of the test's queue.
const consumeRedisChildEnv = "SLUICE_TEST_CONSUME_REDIS_CHILD"

// TestConsumeKilledOnRedisLosesNothing kills -9 a process in the middle of
// Consume on Redis, where items received together share a batch lease:
// prefetched items, running handlers and acks waiting to be sent die with
// it. Every item is then either one the dead process handled or one a new
// consumer receives once the leases run out, and the leases the dead
// process held leave no state behind once everything is settled.
func TestConsumeKilledOnRedisLosesNothing(t *testing.T) {
	if prefix := os.Getenv(consumeRedisChildEnv); prefix != "" {
		consumeRedisChild(prefix)
		return
	}
	const total = 3000
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, rc, prefix)
	c := open(t, redistest.URL(), &sluice.Config{KeyPrefix: prefix})
	addN(t, c.Queue("work"), total)

	cmd := exec.Command(os.Args[0], "-test.run=^TestConsumeKilledOnRedisLosesNothing$")
	cmd.Env = append(os.Environ(), consumeRedisChildEnv+"="+prefix)
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

	ctx := context.Background()
	q := c.Queue("work")
	seen := make(map[int]bool, total)
	for {
		// The dead consumer's leases (300 ms) run out while this waits.
		ds, err := q.ReceiveBatch(ctx, 500, 2*time.Second, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		ids := make([]string, len(ds))
		for i, d := range ds {
			n, err := strconv.Atoi(d.Item.String())
			if err != nil {
				t.Fatalf("item %q", d.Item.String())
			}
			seen[n] = true
			ids[i] = d.ID
		}
		acked, err := q.AckBatch(ctx, ids...)
		if err != nil {
			t.Fatal(err)
		}
		for i, ok := range acked {
			if !ok {
				t.Fatalf("ack of %s found no lease", ids[i])
			}
		}
	}
	for i := range total {
		if !handled[i] && !seen[i] {
			t.Fatalf("item %d was neither handled by the killed consumer nor delivered again: lost (handled %d, redelivered or left %d)",
				i, len(handled), len(seen))
		}
	}
	// Everything is settled: no lease and no delivery state is left.
	keys, err := rc.Do(ctx, rc.B().Keys().Pattern(prefix+"sluice#*work").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "#leases:") || strings.Contains(k, "#jobs:") || strings.Contains(k, "#batches:") {
			t.Errorf("%s is left after every item was settled", k)
		}
	}
}

// consumeRedisChild consumes the queue under prefix until it is killed,
// printing each item it handled before the handler returns.
func consumeRedisChild(prefix string) {
	c, err := sluice.Open(context.Background(), redistest.URL(), &sluice.Config{KeyPrefix: prefix})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	err = c.Queue("work").Consume(context.Background(), func(_ context.Context, d *sluice.Delivery) error {
		fmt.Println(d.Item.String())
		return nil
	}, &sluice.ConsumeOptions{Concurrency: 4, Prefetch: 200, Lease: 300 * time.Millisecond})
	fmt.Fprintln(os.Stderr, "consume returned:", err)
	os.Exit(4)
}
