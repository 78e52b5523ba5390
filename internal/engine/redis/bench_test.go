package redis

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// producers is the number of concurrent goroutines of the parallel
// benchmarks, to compare with a service handling many requests at once.
const producers = 50

func parallel(b *testing.B, body func(pb *testing.PB)) {
	b.SetParallelism((producers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(body)
}

var benchItem = `{"camera_id": "cam-17", "score": 0.93, "label": "person", "ts": 1764108000.123}`

func BenchmarkRawRPUSH(b *testing.B) {
	f := setup(b)
	key := f.e.keys.Queue("q").List
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			if err := f.raw.Do(f.ctx, f.raw.B().Rpush().Key(key).Element(benchItem).Build()).Error(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkQueueAdd(b *testing.B) {
	for _, policy := range []engine.Policy{engine.PolicyReject, engine.PolicyDLQ, engine.PolicyDropOldest} {
		for _, full := range []bool{false, true} {
			name := string(policy) + "/not-full"
			if full {
				name = string(policy) + "/full"
			}
			b.Run(name, func(b *testing.B) {
				f := setup(b)
				limit := int64(1 << 40)
				if full {
					limit = 1000
					items := make([]string, limit)
					for i := range items {
						items[i] = benchItem
					}
					if _, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "q", Items: items, Policy: policy, MaxSize: limit}); err != nil {
						b.Fatal(err)
					}
				}
				params := engine.AddParams{Queue: "q", Items: []string{benchItem}, Policy: policy, MaxSize: limit}
				parallel(b, func(pb *testing.PB) {
					for pb.Next() {
						if _, err := f.e.QueueAdd(f.ctx, params); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkQueueAddBatch adds 100 items per call from one goroutine and
// reports items per second: into a bounded queue with room, and into a full
// queue under dlq (every item moves one item to the overflow DLQ).
func BenchmarkQueueAddBatch(b *testing.B) {
	for _, c := range []struct {
		name   string
		policy engine.Policy
		max    int64
	}{{"not-full", engine.PolicyReject, 1 << 40}, {"dlq-full", engine.PolicyDLQ, 1000}} {
		b.Run(c.name, func(b *testing.B) {
			f := setup(b)
			items := make([]string, 100)
			for i := range items {
				items[i] = benchItem
			}
			params := engine.AddParams{Queue: "q", Items: items, Policy: c.policy, MaxSize: c.max}
			start := time.Now()
			for b.Loop() {
				if _, err := f.e.QueueAdd(f.ctx, params); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(items))/time.Since(start).Seconds(), "items/s")
		})
	}
}

// BenchmarkQueueAddBatchParallel is the batch add from many producers.
func BenchmarkQueueAddBatchParallel(b *testing.B) {
	f := setup(b)
	items := make([]string, 100)
	for i := range items {
		items[i] = benchItem
	}
	params := engine.AddParams{Queue: "q", Items: items, Policy: engine.PolicyReject, MaxSize: 1 << 40}
	start := time.Now()
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.e.QueueAdd(f.ctx, params); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*len(items))/time.Since(start).Seconds(), "items/s")
}

func fill(b *testing.B, f fixture, n int) {
	b.Helper()
	items := make([]string, 1000)
	for i := range items {
		items[i] = benchItem
	}
	for n > 0 {
		k := min(n, len(items))
		if _, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "q", Items: items[:k], Policy: engine.PolicyReject}); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
}

func BenchmarkRawBLPOP(b *testing.B) {
	f := setup(b)
	fill(b, f, b.N)
	key := f.e.keys.Queue("q").List
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			if err := f.raw.Do(f.ctx, f.raw.B().Blpop().Key(key).Timeout(1).Build()).Error(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkQueuePop(b *testing.B) {
	f := setup(b)
	fill(b, f, b.N)
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, err := f.e.QueuePop(f.ctx, "q", time.Second); err != nil || !ok {
				b.Error(ok, err)
				return
			}
		}
	})
}

func BenchmarkReceiveAck(b *testing.B) {
	f := setup(b)
	fill(b, f, b.N)
	params := engine.ReceiveParams{Queue: "q", Count: 1, Lease: time.Minute, MaxDeliveries: 3}
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			ds, err := f.e.QueueReceive(f.ctx, params)
			if err != nil || len(ds) != 1 {
				b.Error(len(ds), err)
				return
			}
			if err := engine.Ack(f.ctx, f.e, "q", ds[0].ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOverflowEnvelope measures the Lua quoting on the path that
// moves items to the overflow DLQ, with a non-ASCII payload.
func BenchmarkOverflowEnvelope(b *testing.B) {
	f := setup(b)
	item := strings.Repeat("caf\u00e9 \U0001F600 ", 20)
	params := engine.AddParams{Queue: "q", Items: []string{item}, Policy: engine.PolicyDLQ, MaxSize: 1}
	for b.Loop() {
		if _, err := f.e.QueueAdd(f.ctx, params); err != nil {
			b.Fatal(err)
		}
	}
	if n, _ := f.e.DLQLen(f.ctx, "q", engine.DLQOverflow); n < int64(b.N-1) {
		b.Fatal(fmt.Sprint("overflow DLQ holds ", n))
	}
}

// BenchmarkQueueAddDeclared compares, in one run, a bounded add whose
// bound and policy come with the call with one whose queue declares them:
// the declared one costs the script one HMGET that finds the hash.
func BenchmarkQueueAddDeclared(b *testing.B) {
	for _, declared := range []bool{false, true} {
		name := "per-call"
		if declared {
			name = "declared"
		}
		b.Run(name, func(b *testing.B) {
			f := setup(b)
			limit := int64(1 << 40)
			if declared {
				s := engine.QueueSettings{MaxSize: limit, Policy: engine.PolicyReject, Set: engine.SetMaxSize | engine.SetPolicy}
				if _, err := f.e.QueueDeclare(f.ctx, "q", s); err != nil {
					b.Fatal(err)
				}
			}
			params := engine.AddParams{Queue: "q", Items: []string{benchItem}, Policy: engine.PolicyReject, MaxSize: limit}
			parallel(b, func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.e.QueueAdd(f.ctx, params); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkQueuePopPingPong passes one item back and forth between two
// queues, each side a blocking pop: every pop finds its queue empty (or
// about to be filled), so this measures the blocking path, which
// BenchmarkQueuePop, draining a filled queue, never takes. One op is one
// hop.
func BenchmarkQueuePopPingPong(b *testing.B) {
	f := setup(b)
	errs := make(chan error, 1)
	hop := func(from, to string, n int) error {
		for range n {
			item, ok, err := f.e.QueuePop(f.ctx, from, 5*time.Second)
			if err != nil || !ok {
				return fmt.Errorf("pop from %s: ok %v, err %v", from, ok, err)
			}
			if _, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: to, Items: []string{item}}); err != nil {
				return err
			}
		}
		return nil
	}
	b.ResetTimer()
	go func() { errs <- hop("ping", "pong", (b.N+1)/2) }()
	if _, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "ping", Items: []string{benchItem}}); err != nil {
		b.Fatal(err)
	}
	if err := hop("pong", "ping", b.N/2); err != nil {
		b.Error(err)
	}
	if err := <-errs; err != nil {
		b.Error(err)
	}
}

// BenchmarkReceiveAck100 leases 100 items in one call and acks them in
// one call: the batch path of a consumer, whose cost is Redis's time in
// the two scripts (see docs/benchmarks.md for their usec_per_call).
func BenchmarkReceiveAck100(b *testing.B) {
	f := setup(b)
	fill(b, f, 100*b.N)
	params := engine.ReceiveParams{Queue: "q", Count: 100, Lease: time.Minute, MaxDeliveries: 3}
	ids := make([]string, 0, 100)
	b.ResetTimer()
	for range b.N {
		ds, err := f.e.QueueReceive(f.ctx, params)
		if err != nil || len(ds) != 100 {
			b.Fatal(len(ds), err)
		}
		ids = ids[:0]
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		res, err := f.e.QueueAckBatch(f.ctx, "q", ids)
		if err != nil {
			b.Fatal(err)
		}
		for _, ok := range res {
			if !ok {
				b.Fatal("an ack of a live lease failed")
			}
		}
	}
}
