package redis

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// BenchmarkScaleOut measures the aggregate add, durable add and
// receive+ack rates over many queues from many goroutines, on one primary
// (the Sentinel setup's, which has a replica like each cluster primary)
// and on the 3-primary cluster:
//
//	go test -run '^$' -bench BenchmarkScaleOut -benchtime 3s ./internal/engine/redis/
//
// with SLUICE_TEST_SENTINEL_URL and SLUICE_TEST_CLUSTER_URL set (it skips
// a topology without its URL). Every server and the clients share the
// machine's cores, so the numbers say more about those cores than about
// the topologies.
func BenchmarkScaleOut(b *testing.B) {
	const queues, workers = 64, 64
	for _, tc := range []struct{ name, env string }{
		{"sentinel-1-primary", "SLUICE_TEST_SENTINEL_URL"},
		{"cluster-3-primaries", "SLUICE_TEST_CLUSTER_URL"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := connectEnv(b, tc.env)
			b.Logf("%d queues, %d goroutines, GOMAXPROCS %d, %d CPUs", queues, workers, runtime.GOMAXPROCS(0), runtime.NumCPU())
			// run spreads b.N operations over the workers, each worker on
			// queue w%queues, and reports the aggregate rate.
			run := func(b *testing.B, op func(w int) error) {
				var next atomic.Int64
				b.SetParallelism((workers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					w := int(next.Add(1) - 1)
					for pb.Next() {
						if err := op(w); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			}
			add := func(e *Engine) func(w int) error {
				return func(w int) error {
					_, err := e.QueueAdd(b.Context(), engine.AddParams{Queue: fmt.Sprintf("q%d", w%queues), Items: []string{benchItem}, Policy: engine.PolicyDLQ, MaxSize: 1 << 40})
					return err
				}
			}
			b.Run("add", func(b *testing.B) { run(b, add(m.engine(b, Options{}))) })
			b.Run("add-wait-1-replica", func(b *testing.B) { run(b, add(m.engine(b, Options{MinReplicasAck: 1}))) })
			b.Run("receive+ack", func(b *testing.B) {
				e := m.engine(b, Options{})
				// b.N items, spread over the queues, are there first; a
				// worker whose queue is empty takes from the next one.
				batch := make([]string, b.N/queues+1)
				for i := range batch {
					batch[i] = benchItem
				}
				for q := range queues {
					if _, err := e.QueueAdd(b.Context(), engine.AddParams{Queue: fmt.Sprintf("q%d", q), Items: batch, Policy: engine.PolicyReject}); err != nil {
						b.Fatal(err)
					}
				}
				run(b, func(w int) error {
					for i := range queues {
						q := fmt.Sprintf("q%d", (w+i)%queues)
						ds, err := e.QueueReceive(b.Context(), engine.ReceiveParams{Queue: q, Count: 1, Lease: time.Minute, MaxDeliveries: 3})
						if err != nil {
							return err
						}
						if len(ds) == 1 {
							return engine.Ack(b.Context(), e, q, ds[0].ID)
						}
					}
					return fmt.Errorf("every queue is empty")
				})
			})
		})
	}
}
