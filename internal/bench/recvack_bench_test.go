package bench

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// Receive+ack through the public package on the in-memory engine, the
// path of `sluice bench queue`'s receive+ack cases, for profiling: each
// benchmark fills its queue before the timer starts, so it measures the
// drain alone.

var receiveAckLease = &sluice.ReceiveOptions{Lease: time.Minute}

// receiveAckQueue opens an in-memory client and fills a queue with n items.
func receiveAckQueue(b *testing.B, n int) *sluice.Queue {
	b.Helper()
	ctx := context.Background()
	c, err := sluice.Open(ctx, "mem://", &sluice.Config{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	q := c.QueueWith("bench", sluice.QueueSettings{MaxSize: notFull})
	raw := json.RawMessage(item(200))
	batch := make([]any, 1000)
	for i := range batch {
		batch[i] = raw
	}
	for left := n; left > 0; left -= len(batch) {
		if _, err := q.AddBatch(ctx, batch[:min(len(batch), left)], nil); err != nil {
			b.Fatal(err)
		}
	}
	return q
}

// receiveAckOnce receives n items and acks them: one by one with
// Delivery.Ack when n is 1, with one AckBatch otherwise.
func receiveAckOnce(ctx context.Context, q *sluice.Queue, n int) error {
	ds, err := q.ReceiveBatch(ctx, n, time.Second, receiveAckLease)
	if err != nil {
		return err
	}
	if len(ds) != n {
		return errors.New("receive found the pre-filled queue short")
	}
	if n == 1 {
		return ds[0].Ack(ctx)
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	_, err = q.AckBatch(ctx, ids...)
	return err
}

// BenchmarkReceiveAckMemory receives one item and acks it per iteration.
func BenchmarkReceiveAckMemory(b *testing.B) {
	q := receiveAckQueue(b, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := receiveAckOnce(ctx, q, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveAck4Memory is BenchmarkReceiveAckMemory from 4
// goroutines, as many as the CLI's consumers.
func BenchmarkReceiveAck4Memory(b *testing.B) {
	q := receiveAckQueue(b, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += consumers {
				if err := receiveAckOnce(ctx, q, 1); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkReceiveAck100Memory receives 100 items and acks them in one
// batch per iteration.
func BenchmarkReceiveAck100Memory(b *testing.B) {
	q := receiveAckQueue(b, 100*b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := receiveAckOnce(ctx, q, 100); err != nil {
			b.Fatal(err)
		}
	}
}
