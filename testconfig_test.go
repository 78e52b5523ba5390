package sluice_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// movableClock is a time source a test moves by hand.
type movableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *movableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *movableClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestConfigTestTimeDrivesEmbeddedDeadlines: with Config.Test.Time set, an
// embedded client's leases and cache TTLs run out when the test moves that
// clock, not when real time passes.
func TestConfigTestTimeDrivesEmbeddedDeadlines(t *testing.T) {
	ctx := context.Background()
	clock := &movableClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, err := sluice.Open(ctx, "mem://", &sluice.Config{Test: sluice.TestConfig{Time: clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	if err := c.Cache().Set(ctx, "k", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	q := c.Queue("work")
	if _, err := q.Add(ctx, "job", nil); err != nil {
		t.Fatal(err)
	}
	opts := sluice.ReceiveOptions{Lease: time.Hour, MaxDeliveries: 3}
	if _, ok, err := q.Receive(ctx, 0, &opts); err != nil || !ok {
		t.Fatalf("first receive: %v %v", ok, err)
	}
	if _, ok, err := q.Receive(ctx, 0, &opts); err != nil || ok {
		t.Fatalf("receive under a live lease: %v %v, want nothing", ok, err)
	}

	clock.advance(time.Hour + time.Second)
	if _, ok, err := c.Cache().Get(ctx, "k"); err != nil || ok {
		t.Errorf("cache entry an hour later: %v %v, want expired", ok, err)
	}
	d, ok, err := q.Receive(ctx, 0, &opts)
	if err != nil || !ok || d.Attempt != 2 {
		t.Fatalf("receive after the lease ran out: %+v %v %v, want the job again at attempt 2", d, ok, err)
	}
}
