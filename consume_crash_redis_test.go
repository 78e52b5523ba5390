package sluice_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/crashtest"
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
	handled := crashtest.KillAfter(t, cmd, total/3)
	// The dead consumer's leases (300 ms) run out while this waits.
	crashtest.CheckNoneLost(t, c.Queue("work"), total, handled, 2*time.Second)
	ctx := context.Background()
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
