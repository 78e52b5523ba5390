package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// Go benchmarks of the hot paths, for profiling (`go test -bench . -cpuprofile`);
// `sluice bench` is the tool for comparisons with raw Redis.

// benchClient opens a client of url with the settings of extra (nil:
// none), a quiet logger and, on Redis, a unique key prefix.
func benchClient(b *testing.B, url string, extra *sluice.Config) *sluice.Client {
	b.Helper()
	var base sluice.Config
	if extra != nil {
		base = *extra
	}
	base.Logger = quietLogger()
	if url != "" && url != "mem://" {
		c := redistest.Client(b)
		prefix := redistest.Prefix(b)
		redistest.Cleanup(b, c, prefix)
		base.KeyPrefix = prefix
	}
	client, err := sluice.Open(context.Background(), url, &base)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return client
}

func benchAddGet(b *testing.B, url string) {
	q := benchClient(b, url, nil).QueueWith("bench", sluice.QueueSettings{MaxSize: notFull})
	raw := json.RawMessage(item(200))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Add(ctx, raw, nil); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := q.Get(ctx, 0); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func benchAdd(b *testing.B, url string) {
	q := benchClient(b, url, nil).QueueWith("bench", sluice.QueueSettings{MaxSize: notFull})
	raw := json.RawMessage(item(200))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Add(ctx, raw, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAddGetMemory(b *testing.B) { benchAddGet(b, "mem://") }
func BenchmarkAddGetFile(b *testing.B)   { benchAddGet(b, "file://"+b.TempDir()) }
func BenchmarkAddGetRedis(b *testing.B)  { benchAddGet(b, redistest.URL()) }

func BenchmarkAddParallelMemory(b *testing.B) { benchAdd(b, "mem://") }
func BenchmarkAddParallelRedis(b *testing.B)  { benchAdd(b, redistest.URL()) }

func BenchmarkBatchAddRedis(b *testing.B) {
	q := benchClient(b, redistest.URL(), nil).QueueWith("bench", sluice.QueueSettings{MaxSize: notFull})
	raw := json.RawMessage(item(200))
	batch := make([]any, 100)
	for i := range batch {
		batch[i] = raw
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.AddBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkCacheGetCachedRedis(b *testing.B) {
	c := benchClient(b, redistest.URL(), clientSideCache)
	ctx := context.Background()
	if err := c.Cache().Set(ctx, "hot", json.RawMessage(item(200)), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := c.Cache().GetCached(ctx, "hot", time.Minute); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// benchAddSeq is one Add per iteration from one goroutine; keyed gives
// every add a fresh idempotency key (window idemWindow).
func benchAddSeq(b *testing.B, url string, keyed bool) {
	q := benchClient(b, url, nil).QueueWith("bench", sluice.QueueSettings{MaxSize: notFull})
	raw := json.RawMessage(item(200))
	ctx := context.Background()
	add := func(ctx context.Context, _ int) (int, error) { _, err := q.Add(ctx, raw, nil); return 1, err }
	if keyed {
		add = keyedAdd(q, raw, 1, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := add(ctx, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAddMemory(b *testing.B)      { benchAddSeq(b, "mem://", false) }
func BenchmarkAddKeyedMemory(b *testing.B) { benchAddSeq(b, "mem://", true) }
func BenchmarkAddRedis(b *testing.B)       { benchAddSeq(b, redistest.URL(), false) }
func BenchmarkAddKeyedRedis(b *testing.B)  { benchAddSeq(b, redistest.URL(), true) }

// BenchmarkReceiveAck100Redis is a consumer's batch path through the
// public API: ReceiveBatch of 100, then one AckBatch of them, for items of
// 200 bytes and of 4 KB (stored compressed).
func BenchmarkReceiveAck100Redis(b *testing.B) {
	for _, size := range []int{200, 4096} {
		b.Run(fmt.Sprint(size), func(b *testing.B) { benchReceiveAck100(b, size) })
	}
}

func benchReceiveAck100(b *testing.B, size int) {
	q := benchClient(b, redistest.URL(), nil).QueueWith("bench", sluice.QueueSettings{MaxSize: notFull})
	raw := json.RawMessage(item(size))
	batch := make([]any, 100)
	for i := range batch {
		batch[i] = raw
	}
	ctx := context.Background()
	ids := make([]string, 0, 100)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if _, err := q.AddBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ds, err := q.ReceiveBatch(ctx, 100, 0, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil || len(ds) != 100 {
			b.Fatal(len(ds), err)
		}
		ids = ids[:0]
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if _, err := q.AckBatch(ctx, ids...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
}
