package sluice_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestBatchConsumerSizeAndIdleTimeout(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := c.Queue("images_to_process")
		items := make([]any, 25)
		for i := range items {
			items[i] = i
		}
		if _, err := q.AddBatch(ctx, items, nil); err != nil {
			t.Fatal(err)
		}
		batches := make(chan []sluice.Item, 10)
		bc, err := q.NewBatchConsumer(func(_ context.Context, b []sluice.Item) error {
			batches <- b
			return nil
		}, &sluice.BatchConsumerOptions{Size: 10, IdleTimeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bc.Run(ctx) }()
		var sizes []int
		next := 0
		for total := 0; total < 25; {
			b := <-batches
			sizes = append(sizes, len(b))
			for _, it := range b {
				if it.String() != strconv.Itoa(next) {
					t.Fatalf("out of order: got %s, want %d", it, next)
				}
				next++
			}
			total += len(b)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(sizes) != 3 || sizes[0] != 10 || sizes[1] != 10 || sizes[2] != 5 {
			t.Fatalf("batch sizes %v, want [10 10 5] (last one handed over after the idle timeout)", sizes)
		}
	})
}

func TestBatchConsumerShutdownHandsBackCollectedItems(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		q := c.Queue("handback")
		if _, err := q.AddBatch(ctx, []any{"a", "b", "c"}, nil); err != nil {
			t.Fatal(err)
		}
		// Size 10 with a long idle timeout: the consumer collects a, b, c and
		// waits for more; the shutdown must put them back, in order.
		bc, err := q.NewBatchConsumer(func(context.Context, []sluice.Item) error {
			t.Error("handler called for an incomplete batch")
			return nil
		}, &sluice.BatchConsumerOptions{Size: 10, IdleTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bc.Run(ctx) }()
		// Wait until the consumer has taken all three.
		for {
			n, err := q.Len(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			runtime.Gosched()
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got, err := q.Peek(context.Background(), 0, -1)
		if err != nil || len(got) != 3 || got[0].String() != "a" || got[2].String() != "c" {
			t.Fatalf("after shutdown the queue holds %v (%v), want [a b c]", got, err)
		}
	})
}

func TestAcknowledgedBatchConsumerRetriesThenDeadLetters(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := c.Queue("flaky")
		if _, err := q.AddBatch(ctx, []any{"ok-1", "poison", "ok-2"}, nil); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		handled := map[string]int{}
		bc, err := q.NewBatchConsumer(func(_ context.Context, b []sluice.Item) error {
			mu.Lock()
			defer mu.Unlock()
			for _, it := range b {
				handled[it.String()]++
				if it.String() == "poison" {
					return errors.New("cannot process poison")
				}
			}
			return nil
		}, &sluice.BatchConsumerOptions{
			Size: 1, IdleTimeout: 5 * time.Millisecond, Acknowledged: true, RetryDelay: time.Millisecond,
			Receive: sluice.ReceiveOptions{MaxDeliveries: 3, Lease: time.Minute},
			OnError: func([]sluice.Item, error) {},
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bc.Run(ctx) }()
		// Wait (through the API) until every item is settled: the good ones
		// acked, the poison one in the failed DLQ.
		for {
			n, err := q.DLQ(sluice.DLQFailed).Len(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			p, err := q.Pressure(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 && p.CurrentLength == 0 && p.InFlight == 0 {
				break
			}
			runtime.Gosched()
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if handled["poison"] != 3 || handled["ok-1"] != 1 || handled["ok-2"] != 1 {
			t.Fatalf("handled %v, want poison 3 times and the others once", handled)
		}
		entries, _, _ := q.DLQ(sluice.DLQFailed).List(context.Background(), 0, 1)
		if len(entries) != 1 || entries[0].Error != "cannot process poison" || entries[0].AttemptCount != 3 {
			t.Fatalf("dead letter: %+v", entries)
		}
	})
}

func TestAcknowledgedShutdownReleasesWithoutCountingDeliveries(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		q := c.QueueWith("last-chance", sluice.QueueSettings{MaxDeliveries: 1})
		if _, err := q.AddBatch(ctx, []any{"a", "b"}, nil); err != nil {
			t.Fatal(err)
		}
		// Size 10 and a long idle timeout: the consumer holds a and b under
		// lease, waiting for more, when the shutdown comes.
		bc, err := q.NewBatchConsumer(func(context.Context, []sluice.Item) error {
			t.Error("handler called for an incomplete batch")
			return nil
		}, &sluice.BatchConsumerOptions{Size: 10, IdleTimeout: time.Hour, Acknowledged: true,
			OnError: func(items []sluice.Item, err error) { t.Errorf("consumer reported %v for %v", err, items) }})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bc.Run(ctx) }()
		for {
			p, err := q.Pressure(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if p.InFlight == 2 {
				break
			}
			runtime.Gosched()
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n, _ := q.DLQ(sluice.DLQFailed).Len(context.Background()); n != 0 {
			t.Fatalf("shutdown dead-lettered %d unhandled items", n)
		}
		ds, err := q.ReceiveBatch(context.Background(), 2, 0, nil)
		if err != nil || len(ds) != 2 {
			t.Fatalf("after release: %d deliveries, %v", len(ds), err)
		}
		got := map[string]int{}
		for _, d := range ds {
			got[d.Item.String()] = d.Attempt
		}
		if got["a"] != 1 || got["b"] != 1 {
			t.Fatalf("after release: %v, want a and b again at attempt 1", got)
		}
	})
}

// TestAcknowledgedBatchConsumerHandlesEveryItemOnce: concurrent batches,
// prefetch and batched acks hand every item to exactly one batch, and
// every ack is sent by the time Run returns.
func TestAcknowledgedBatchConsumerHandlesEveryItemOnce(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := c.Queue("every")
		const total = 500
		addN(t, q, total)
		h := newHandled(total)
		bc, err := q.NewBatchConsumer(func(_ context.Context, b []sluice.Item) error {
			if len(b) > 10 {
				t.Errorf("batch of %d, want at most 10", len(b))
			}
			h.add(b...)
			return nil
		}, &sluice.BatchConsumerOptions{Size: 10, IdleTimeout: 10 * time.Millisecond, Concurrency: 3, Prefetch: 4, Acknowledged: true})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bc.Run(ctx) }()
		<-h.all
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		h.checkOnce(t)
		s, err := q.Stats(context.Background())
		if err != nil || s.Length != 0 || s.InFlight != 0 || s.Acked != total || s.Delivered != total {
			t.Fatalf("stats %+v (%v); want %d delivered and acked, none left", s, err, total)
		}
	})
}

// TestAcknowledgedBatchConsumerPrefetchesAndReleases: while a batch is
// handled the next one is leased (and its leases extended while it
// waits); on shutdown the running batch finishes and is acked, and the
// prefetched one goes back with its attempt uncounted.
func TestAcknowledgedBatchConsumerPrefetchesAndReleases(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := c.Queue("prefetch")
		addN(t, q, 6)
		const lease = 300 * time.Millisecond
		started := make(chan struct{})
		finish := make(chan struct{})
		var calls int
		bc, err := q.NewBatchConsumer(func(_ context.Context, b []sluice.Item) error {
			calls++ // Concurrency 1: one call at a time
			if calls == 1 {
				close(started)
				<-finish
			}
			return nil
		}, &sluice.BatchConsumerOptions{Size: 3, IdleTimeout: time.Hour, Concurrency: 1, Prefetch: 1, Acknowledged: true,
			Receive: sluice.ReceiveOptions{Lease: lease}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- bc.Run(ctx) }()
		<-started
		// 3 items in the running batch, 3 in the prefetched one.
		waitUntil(t, "the next batch leased while the first is handled", func() bool {
			return pressure(t, q).InFlight == 6
		})
		// Every lease, the waiting batch's too, is extended past three
		// leases from its delivery.
		waitUntil(t, "every lease extended past 3 leases", func() bool {
			page, err := q.Deliveries(context.Background(), nil)
			if err != nil || len(page.Deliveries) != 6 {
				t.Fatalf("Deliveries = %+v, %v; want 6", page, err)
			}
			for _, d := range page.Deliveries {
				if d.Attempt != 1 || d.Deadline.Sub(d.DeliveredAt) < 3*lease {
					return false
				}
			}
			return true
		})
		cancel()
		close(finish)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if calls != 1 {
			t.Fatalf("%d batches handled, want 1", calls)
		}
		ds, err := q.ReceiveBatch(context.Background(), 10, 0, nil)
		if err != nil || len(ds) != 3 {
			t.Fatalf("after shutdown: %d deliveries, %v; want the 3 prefetched", len(ds), err)
		}
		for _, d := range ds {
			if d.Attempt != 1 {
				t.Errorf("released item %s on attempt %d; a release must not count", d.Item, d.Attempt)
			}
		}
		if s, err := q.Stats(context.Background()); err != nil || s.Acked != 3 || s.Nacked != 0 || s.Redelivered != 0 {
			t.Fatalf("stats %+v (%v); want 3 acked, none nacked or redelivered", s, err)
		}
	})
}
