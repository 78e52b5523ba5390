package embedded

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/wal"
)

// TestMemoryPerQueuedItem measures what a queued item costs beyond its
// payload, with a million items in one queue. It measures about 29 bytes
// (the string header in the queue's slice and the payload's allocation
// rounded up to its size class); the budget of 64 leaves room for the
// runtime's variation while still catching a per-item allocation added to
// the queue (a pointer and a small object cost 24 bytes or more).
func TestMemoryPerQueuedItem(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 200 MB")
	}
	e := newEngine(t, Options{})
	ctx := context.Background()
	const n, payload = 1_000_000, 100
	pad := strings.Repeat("x", payload-8)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	batch := make([]string, 0, 1000)
	for i := 0; i < n; i++ {
		// Each item is its own allocation, as a decoded request would be.
		batch = append(batch, fmt.Sprintf("%08d", i)+pad)
		if len(batch) == cap(batch) {
			if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "mem", Items: batch, Policy: engine.PolicyReject}); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	batch = nil //nolint:wastedassign // the batch must not be live when the heap is measured below
	runtime.GC()
	runtime.ReadMemStats(&after)
	perItem := float64(after.HeapAlloc-before.HeapAlloc) / n
	overhead := perItem - payload
	t.Logf("%d items of %d bytes: %.1f bytes per item, %.1f bytes over the payload", n, payload, perItem, overhead)
	const budget = 64
	if overhead > budget {
		t.Errorf("%.1f bytes of overhead per item; the budget is %d", overhead, budget)
	}
	if got := mustLen(t, e, "mem"); got != n {
		t.Fatalf("queue holds %d items", got)
	}
	runtime.KeepAlive(e)
}

var benchItem = strings.Repeat("p", 64)

// BenchmarkAddGet is one add and one pop per iteration (two operations).
func BenchmarkAddGet(b *testing.B) {
	e := newEngine(b, Options{})
	ctx := context.Background()
	items := []string{benchItem}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: items, Policy: engine.PolicyDLQ, MaxSize: 10000}); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := e.QueuePop(ctx, "q", 0); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkAddGet50 runs add+pop pairs from 50 goroutines, on one shared
// queue and on a queue per goroutine.
func BenchmarkAddGet50(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := "own-queues"
		if shared {
			name = "shared-queue"
		}
		b.Run(name, func(b *testing.B) {
			e := newEngine(b, Options{})
			ctx := context.Background()
			items := []string{benchItem}
			const workers = 50
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					q := "q"
					if !shared {
						q = "q" + strconv.Itoa(w)
					}
					for i := w; i < b.N; i += workers {
						if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: q, Items: items, Policy: engine.PolicyDLQ, MaxSize: 10000}); err != nil {
							b.Error(err)
							return
						}
						if _, _, err := e.QueuePop(ctx, q, 0); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// BenchmarkAddBatch100 adds 100 items per call (and drains them).
func BenchmarkAddBatch100(b *testing.B) {
	e := newEngine(b, Options{})
	ctx := context.Background()
	items := make([]string, 100)
	for i := range items {
		items[i] = benchItem
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: items, Policy: engine.PolicyDLQ, MaxSize: 10000}); err != nil {
			b.Fatal(err)
		}
		for range len(items) {
			if _, _, err := e.QueuePop(ctx, "q", 0); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchDurableAdd(b *testing.B, fsync wal.FsyncPolicy, workers int) {
	e := newEngine(b, Options{Dir: b.TempDir(), Fsync: fsync})
	ctx := context.Background()
	items := []string{benchItem}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := "q" + strconv.Itoa(w%8)
			for i := w; i < b.N; i += workers {
				if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: q, Items: items, Policy: engine.PolicyDropOldest, MaxSize: 100000}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkDurableAddEverysec(b *testing.B) { benchDurableAdd(b, wal.FsyncEverySec, 1) }

func BenchmarkDurableAddAlways(b *testing.B) { benchDurableAdd(b, wal.FsyncAlways, 1) }

// BenchmarkDurableAddAlways50 shows group commit: 50 producers share fsyncs.
func BenchmarkDurableAddAlways50(b *testing.B) { benchDurableAdd(b, wal.FsyncAlways, 50) }

// BenchmarkDurableAddEverysec16: 16 producers (two per queue) share the
// log's writes.
func BenchmarkDurableAddEverysec16(b *testing.B) { benchDurableAdd(b, wal.FsyncEverySec, 16) }

// BenchmarkDurableAddAlways16 is the same under always: one queue's
// producers share fsyncs as well.
func BenchmarkDurableAddAlways16(b *testing.B) { benchDurableAdd(b, wal.FsyncAlways, 16) }
