package embedded

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// fillQueue adds n copies of benchItem to queue in batches of 1000.
func fillQueue(b *testing.B, e *Engine, queue string, n int) {
	b.Helper()
	batch := make([]string, 1000)
	for i := range batch {
		batch[i] = benchItem
	}
	for left := n; left > 0; left -= len(batch) {
		if _, err := e.QueueAdd(context.Background(), engine.AddParams{Queue: queue, Items: batch[:min(len(batch), left)], Policy: engine.PolicyDLQ}); err != nil {
			b.Fatal(err)
		}
	}
}

func receiveAckParams(queue string, count int) engine.ReceiveParams {
	return engine.ReceiveParams{Queue: queue, Count: count, Lease: time.Minute, MaxDeliveries: 5}
}

// BenchmarkReceiveAck is one receive of one item and its ack per
// iteration, on a queue filled beforehand.
func BenchmarkReceiveAck(b *testing.B) {
	e := newEngine(b, Options{})
	ctx := context.Background()
	fillQueue(b, e, "q", b.N)
	p := receiveAckParams("q", 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ds, err := e.QueueReceive(ctx, p)
		if err != nil || len(ds) != 1 {
			b.Fatal(len(ds), err)
		}
		if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveAck4 is BenchmarkReceiveAck from 4 goroutines on one
// queue, as the CLI's receive+ack case runs it.
func BenchmarkReceiveAck4(b *testing.B) {
	e := newEngine(b, Options{})
	ctx := context.Background()
	fillQueue(b, e, "q", b.N)
	p := receiveAckParams("q", 1)
	const workers = 4
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += workers {
				ds, err := e.QueueReceive(ctx, p)
				if err != nil || len(ds) != 1 {
					b.Error(len(ds), err)
					return
				}
				if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkReceiveAck100 is one receive of 100 items and one batch ack of
// them per iteration.
func BenchmarkReceiveAck100(b *testing.B) {
	e := newEngine(b, Options{})
	ctx := context.Background()
	fillQueue(b, e, "q", 100*b.N)
	p := receiveAckParams("q", 100)
	ids := make([]string, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ds, err := e.QueueReceive(ctx, p)
		if err != nil || len(ds) != 100 {
			b.Fatal(len(ds), err)
		}
		for i, d := range ds {
			ids[i] = d.ID
		}
		if _, err := e.QueueAckBatch(ctx, "q", ids); err != nil {
			b.Fatal(err)
		}
	}
}
