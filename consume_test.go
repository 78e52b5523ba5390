package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// consumeUntil runs q.Consume on a goroutine the test owns and returns a
// stop that cancels it and returns what Consume returned.
func consumeUntil(t *testing.T, q *sluice.Queue, h sluice.Handler, opts *sluice.ConsumeOptions) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, h, opts) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Error("Consume did not return within 30s of its ctx ending")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// handled counts how often each item was handled; all is closed once
// every one of total items was.
type handled struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
	all   chan struct{}
}

func newHandled(total int) *handled {
	return &handled{seen: make(map[string]int, total), total: total, all: make(chan struct{})}
}

func (h *handled) add(items ...sluice.Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range items {
		h.seen[it.String()]++
	}
	if len(h.seen) == h.total && len(items) > 0 {
		select {
		case <-h.all:
		default:
			close(h.all)
		}
	}
}

// checkOnce fails t for every item handled more than once.
func (h *handled) checkOnce(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for item, n := range h.seen {
		if n != 1 {
			t.Errorf("item %s handled %d times", item, n)
		}
	}
}

func addN(t *testing.T, q *sluice.Queue, n int) {
	t.Helper()
	items := make([]any, n)
	for i := range items {
		items[i] = i
	}
	if _, err := q.AddBatch(context.Background(), items, &sluice.AddOptions{MaxSize: sluice.Unbounded}); err != nil {
		t.Fatal(err)
	}
}

// TestConsumeHandlesEveryItemOnce: many handlers, prefetch and batched
// acks hand every item to exactly one handler call, and every ack is sent
// by the time Consume returns.
func TestConsumeHandlesEveryItemOnce(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("work")
		const total = 500
		addN(t, q, total)
		h := newHandled(total)
		stop := consumeUntil(t, q, func(_ context.Context, d *sluice.Delivery) error {
			h.add(d.Item)
			return nil
		}, &sluice.ConsumeOptions{Concurrency: 4, Prefetch: 20})
		<-h.all
		if err := stop(); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		h.checkOnce(t)
		p := pressure(t, q)
		s, err := q.Stats(ctx)
		if err != nil || p.CurrentLength != 0 || p.InFlight != 0 || s.Acked != total || s.Delivered != total {
			t.Fatalf("after Consume: length %d, in flight %d, stats %+v (%v); want 0, 0, %d delivered and acked",
				p.CurrentLength, p.InFlight, s, err, total)
		}
	})
}

// TestConsumeNacksFailuresUntilDeadLettered: a handler error nacks the
// item with the error as the reason; at MaxDeliveries it moves to the
// failed DLQ, and the other items are acked.
func TestConsumeNacksFailuresUntilDeadLettered(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("work")
		for _, v := range []string{"ok", "bad", "boom"} {
			if _, err := q.Add(ctx, v, nil); err != nil {
				t.Fatal(err)
			}
		}
		var errs []error
		var mu sync.Mutex
		stop := consumeUntil(t, q, func(_ context.Context, d *sluice.Delivery) error {
			switch d.Item.String() {
			case "bad":
				return fmt.Errorf("model failed on attempt %d", d.Attempt)
			case "boom":
				panic("a bug in the handler")
			}
			return nil
		}, &sluice.ConsumeOptions{Concurrency: 2, MaxDeliveries: 2,
			RetryDelay: func(int) time.Duration { return 0 },
			OnError: func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}})
		dlq := q.DLQ(sluice.DLQFailed)
		waitUntil(t, "both failing items dead-lettered", func() bool {
			n, err := dlq.Len(ctx)
			return err == nil && n == 2
		})
		if err := stop(); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		entries, _, err := dlq.List(ctx, 0, 10)
		if err != nil || len(entries) != 2 {
			t.Fatalf("failed DLQ: %v, %v", entries, err)
		}
		reasons := entries[0].Error + " | " + entries[1].Error
		if !strings.Contains(reasons, "model failed on attempt 2") || !strings.Contains(reasons, "handler panicked: a bug in the handler") {
			t.Errorf("DLQ reasons %q, want the handler's error and the panic", reasons)
		}
		s, err := q.Stats(ctx)
		if err != nil || s.Acked != 1 || s.Nacked != 4 || s.DeadLettered != 2 {
			t.Errorf("stats %+v (%v); want 1 acked, 4 nacked, 2 dead-lettered", s, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(errs) != 2 || !strings.Contains(errs[0].Error(), "panicked") {
			t.Errorf("OnError got %v; want the two panics", errs)
		}
	})
}

// TestConsumeShutdownReleasesPrefetched: when ctx ends, the running item
// finishes and is acked, and the prefetched ones go back to the queue with
// their attempt uncounted.
func TestConsumeShutdownReleasesPrefetched(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("work")
		addN(t, q, 11)
		started := make(chan struct{})
		finish := make(chan struct{})
		var handled []string
		var mu sync.Mutex
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- q.Consume(cctx, func(_ context.Context, d *sluice.Delivery) error {
				mu.Lock()
				handled = append(handled, d.Item.String())
				first := len(handled) == 1
				mu.Unlock()
				if first {
					close(started)
					<-finish
				}
				return nil
			}, &sluice.ConsumeOptions{Concurrency: 1, Prefetch: 10})
		}()
		<-started
		// All 11 are leased: 1 running, 10 prefetched.
		waitUntil(t, "the prefetch to lease every item", func() bool {
			return pressure(t, q).InFlight == 11
		})
		// The shutdown starts while the handler runs, and waits for it.
		cancel()
		close(finish)
		if err := <-done; err != nil {
			t.Fatalf("Consume: %v", err)
		}
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		// Released items wait as deliverable, outside the list and not in
		// flight: the receive below gets them at once.
		if p := pressure(t, q); n != 1 || p.InFlight != 0 {
			t.Fatalf("after shutdown: handled %d, in flight %d; want 1, 0", n, p.InFlight)
		}
		ds, err := q.ReceiveBatch(ctx, 10, 0, nil)
		if err != nil || len(ds) != 10 {
			t.Fatalf("ReceiveBatch = %d, %v", len(ds), err)
		}
		for _, d := range ds {
			if d.Attempt != 1 {
				t.Fatalf("released item %s is on attempt %d; a release must not count", d.Item.String(), d.Attempt)
			}
		}
		if s, err := q.Stats(ctx); err != nil || s.Acked != 1 || s.Nacked != 0 {
			t.Errorf("stats %+v (%v); want 1 acked, no nack", s, err)
		}
	})
}

// TestConsumeExtendsLeases: an item whose handler runs past its lease is
// neither redelivered nor lost: the lease is extended while it runs.
func TestConsumeExtendsLeases(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("slow")
		addN(t, q, 1)
		const lease = 300 * time.Millisecond
		started := make(chan struct{})
		finish := make(chan struct{})
		stop := consumeUntil(t, q, func(_ context.Context, d *sluice.Delivery) error {
			close(started)
			<-finish
			return nil
		}, &sluice.ConsumeOptions{Lease: lease})
		<-started
		first := deadlineOf(t, q)
		// Three renewals at least: the lease would have run out long since.
		waitUntil(t, "the lease to be extended past three leases", func() bool {
			return deadlineOf(t, q).Sub(first) >= 3*lease
		})
		// Meanwhile nobody else could take it.
		if _, ok, err := q.Receive(ctx, 0, nil); ok || err != nil {
			t.Fatalf("another Receive got the item (%v, %v) while it was being handled", ok, err)
		}
		close(finish)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if s, err := q.Stats(ctx); err != nil || s.Acked != 1 || s.Delivered != 1 || s.Redelivered != 0 {
			t.Fatalf("stats %+v (%v); want one delivery, acked", s, err)
		}
	})
}

func deadlineOf(t *testing.T, q *sluice.Queue) time.Time {
	t.Helper()
	page, err := q.Deliveries(context.Background(), nil)
	if err != nil || len(page.Deliveries) != 1 {
		t.Fatalf("Deliveries = %+v, %v; want one", page, err)
	}
	return page.Deliveries[0].Deadline
}

func TestConsumeRefusesBadOptions(t *testing.T) {
	c := open(t, "", nil)
	q := c.Queue("q")
	h := func(context.Context, *sluice.Delivery) error { return nil }
	for _, o := range []*sluice.ConsumeOptions{
		{Concurrency: -1}, {Concurrency: sluice.MaxConsumePrefetch + 1}, {Prefetch: -2},
		{AckInterval: -time.Second}, {Lease: -time.Second},
	} {
		if err := q.Consume(context.Background(), h, o); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("Consume(%+v) = %v, want ErrInvalidArgument", *o, err)
		}
	}
	if err := q.Consume(context.Background(), nil, nil); !errors.Is(err, sluice.ErrInvalidArgument) {
		t.Errorf("Consume without a handler = %v", err)
	}
}

// TestConsumeEndsWhenTheClientCloses: a closed client is the one error
// Consume returns after it started.
func TestConsumeEndsWhenTheClientCloses(t *testing.T) {
	c, err := sluice.Open(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	q := c.Queue("q")
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(context.Background(), func(context.Context, *sluice.Delivery) error { return nil }, nil)
	}()
	c.Close()
	if err := <-done; !errors.Is(err, sluice.ErrClosed) {
		t.Fatalf("Consume after Close = %v, want ErrClosed", err)
	}
}
