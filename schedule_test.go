package sluice_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestAddDelayAndNotBefore(t *testing.T) {
	ctx := context.Background()
	clock := &movableClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := open(t, "mem://", &sluice.Config{Queue: sluice.QueueSettings{MaxSize: 3, Policy: sluice.PolicyReject}, Test: sluice.TestConfig{Time: clock.Now}})
	q := c.Queue("q")
	for _, o := range []*sluice.AddOptions{
		{Delay: -time.Second},
		{Delay: time.Second, NotBefore: clock.Now().Add(time.Second)},
	} {
		if _, err := q.Add(ctx, "x", o); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("Add with %+v = %v, want ErrInvalidArgument", o, err)
		}
	}
	if res, err := q.Add(ctx, "a", &sluice.AddOptions{Delay: time.Minute}); err != nil || res.QueueLength != 1 {
		t.Fatalf("Add with a delay = %+v, %v; want queue length 1", res, err)
	}
	if _, err := q.AddBatch(ctx, []any{"b", "c"}, &sluice.AddOptions{NotBefore: clock.Now().Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	p := pressure(t, q)
	if p.CurrentLength != 0 || p.Scheduled != 3 || !p.IsFull || p.FillRatio != 1 {
		t.Fatalf("pressure with three scheduled items = %+v; want length 0, scheduled 3, full", p)
	}
	if _, err := q.Add(ctx, "d", nil); !errors.Is(err, sluice.ErrQueueFull) {
		t.Fatalf("Add to a queue full of scheduled items = %v, want ErrQueueFull", err)
	}
	if _, ok, err := q.TryGet(ctx); err != nil || ok {
		t.Fatalf("TryGet before the time = %v, %v; want nothing", ok, err)
	}
	clock.advance(time.Minute)
	it, ok, err := q.TryGet(ctx)
	if err != nil || !ok {
		t.Fatalf("TryGet after a minute = %v, %v", ok, err)
	}
	if s, _ := sluice.As[string](it); s != "a" {
		t.Errorf("TryGet = %q, want a", s)
	}
	if p := pressure(t, q); p.Scheduled != 2 || p.CurrentLength != 0 {
		t.Errorf("pressure after the first is due = %+v; want 2 scheduled", p)
	}
	// A time already past adds at once.
	if _, err := q.Add(ctx, "now", &sluice.AddOptions{NotBefore: clock.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(ctx); err != nil || n != 1 {
		t.Errorf("Len = %d, %v; want 1", n, err)
	}
}
