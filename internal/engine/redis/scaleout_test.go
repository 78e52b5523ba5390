package redis

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// TestScaleOutRates measures the aggregate add and receive+ack rates over
// many queues on one primary (the Sentinel setup's, which has a replica
// like each cluster primary) and on the 3-primary cluster, and prints a
// table. It needs both URLs and SLUICE_TEST_SCALEOUT_BENCH=1. Every server
// and the clients share the machine's cores, so the numbers say more about
// those cores than about the topologies.
func TestScaleOutRates(t *testing.T) {
	if os.Getenv("SLUICE_TEST_SCALEOUT_BENCH") != "1" {
		t.Skip("a benchmark; set SLUICE_TEST_SCALEOUT_BENCH=1 to run it")
	}
	const (
		queues  = 64
		workers = 64
		phase   = 3 * time.Second
	)
	type row struct {
		name                   string
		add, durable, received float64
	}
	var rows []row
	for _, tc := range []struct{ name, env string }{
		{"1 primary (Sentinel)", "SLUICE_TEST_SENTINEL_URL"},
		{"3 primaries (Cluster)", "SLUICE_TEST_CLUSTER_URL"},
	} {
		m := connectEnv(t, tc.env)
		e := m.engine(t, Options{})
		durableEngine := m.engine(t, Options{MinReplicasAck: 1})
		ctx := context.Background()
		rate := func(body func(w int) (int, error)) float64 {
			var done atomic.Int64
			var wg sync.WaitGroup
			deadline := time.Now().Add(phase)
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						n, err := body(w)
						if err != nil {
							t.Errorf("%s: %v", tc.name, err)
							return
						}
						done.Add(int64(n))
					}
				}()
			}
			wg.Wait()
			return float64(done.Load()) / time.Since(start).Seconds()
		}
		item := benchItem
		add := rate(func(w int) (int, error) {
			_, err := e.QueueAdd(ctx, engine.AddParams{Queue: fmt.Sprintf("q%d", w%queues), Items: []string{item}, Policy: engine.PolicyDLQ, MaxSize: 1 << 40})
			return 1, err
		})
		durable := rate(func(w int) (int, error) {
			_, err := durableEngine.QueueAdd(ctx, engine.AddParams{Queue: fmt.Sprintf("q%d", w%queues), Items: []string{item}, Policy: engine.PolicyDLQ, MaxSize: 1 << 40})
			return 1, err
		})
		recv := rate(func(w int) (int, error) {
			q := fmt.Sprintf("q%d", w%queues)
			ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: q, Count: 1, Lease: time.Minute, MaxDeliveries: 3})
			if err != nil {
				return 0, err
			}
			for _, d := range ds {
				if err := e.QueueAck(ctx, q, d.ID); err != nil {
					return 0, err
				}
			}
			return len(ds), nil
		})
		rows = append(rows, row{tc.name, add, durable, recv})
	}
	t.Logf("%d queues, %d goroutines, %s per phase, GOMAXPROCS %d, %d CPUs", queues, workers, phase, runtime.GOMAXPROCS(0), runtime.NumCPU())
	t.Logf("%-24s %12s %22s %16s", "topology", "adds/s", "adds/s (WAIT 1 replica)", "receive+ack/s")
	for _, r := range rows {
		t.Logf("%-24s %12.0f %22.0f %16.0f", r.name, r.add, r.durable, r.received)
	}
}
