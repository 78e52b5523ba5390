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
