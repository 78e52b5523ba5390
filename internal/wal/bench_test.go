package wal

import (
	"bytes"
	"sync"
	"testing"
)

// BenchmarkAppendEverySec measures one appender writing 200-byte records
// under the default policy; ns/op is per record.
func BenchmarkAppendEverySec(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncEverySec})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendEverySecParallel is the same with GOMAXPROCS appenders.
func BenchmarkAppendEverySecParallel(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncEverySec})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendAlways50 has 50 goroutines appending 200-byte records
// with FsyncAlways; group commit lets them share fsyncs. ns/op is per
// record across all appenders.
func BenchmarkAppendAlways50(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncAlways})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	const appenders = 50
	work := make(chan struct{}, appenders)
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for range work {
				if err := l.Append(r); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for b.Loop() {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
}

// BenchmarkAppendAlwaysSingle is the baseline the group commit improves
// on: one appender, one fsync per record.
func BenchmarkAppendAlwaysSingle(b *testing.B) {
	l, _ := openT(b, b.TempDir(), Options{Fsync: FsyncAlways})
	r := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(r)))
	for b.Loop() {
		if err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
}
