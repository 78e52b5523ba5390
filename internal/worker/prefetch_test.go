package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// runnerFunc is a Runner in Go, for tests that watch the runs.
type runnerFunc func(ctx context.Context, job Job) error

func (f runnerFunc) Run(ctx context.Context, job Job) error { return f(ctx, job) }

// TestPrefetchLeasesAhead: while a run is in progress, Prefetch runs'
// worth of items are leased ahead; a shutdown lets the run finish (acked)
// and releases the prefetched items, uncounted.
func TestPrefetchLeasesAhead(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.Queue("ahead")
		fill(t, q, 5)
		started := make(chan struct{})
		finish := make(chan struct{})
		var runs atomic.Int32
		r := start(t, Config{Queue: "ahead", Source: src(q), Concurrency: 1, Prefetch: 2,
			Runner: runnerFunc(func(context.Context, Job) error {
				if runs.Add(1) == 1 {
					close(started)
					<-finish
				}
				return nil
			})})
		<-started
		eventually(t, "1 running and 2 leased ahead", func() bool {
			s := stats(t, q)
			return s.InFlight == 3 && s.Length == 2
		})
		r.stop()
		close(finish)
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		if got := r.w.Counts(); got.Processed != 1 || got.Released != 2 || got.Failed != 0 || runs.Load() != 1 {
			t.Fatalf("counts %+v after %d runs; want 1 processed, 2 released", got, runs.Load())
		}
		rest := drain(t, q)
		if len(rest) != 4 {
			t.Fatalf("%d items left, want 4", len(rest))
		}
		for n, attempt := range rest {
			if attempt != 1 {
				t.Errorf("item %d comes back as attempt %d: a release counted it", n, attempt)
			}
		}
	})
}

// ackCounter is a Source that records its Ack calls.
type ackCounter struct {
	Source
	mu    sync.Mutex
	calls []int // ids per call
}

func (a *ackCounter) Ack(ctx context.Context, ds []Delivery) ([]bool, error) {
	a.mu.Lock()
	a.calls = append(a.calls, len(ds))
	a.mu.Unlock()
	return a.Source.Ack(ctx, ds)
}

// TestAcksAreBatchedAndAsynchronous: runs go on without waiting for the
// acks of the previous ones, which wait (up to AckInterval) to share one
// call, and are all sent before Run returns.
func TestAcksAreBatchedAndAsynchronous(t *testing.T) {
	bothSources(t, func(t *testing.T, c *sluice.Client, src func(*sluice.Queue) Source) {
		q := c.Queue("acks")
		fill(t, q, 5)
		var runs atomic.Int32
		acks := &ackCounter{Source: src(q)}
		r := start(t, Config{Queue: "acks", Source: acks, Concurrency: 2, AckInterval: time.Hour,
			Runner: runnerFunc(func(context.Context, Job) error {
				runs.Add(1)
				return nil
			})})
		// Every run ended, and none of them waited for its ack.
		eventually(t, "5 runs", func() bool { return runs.Load() == 5 })
		if got := r.w.Counts().Processed; got != 0 {
			t.Fatalf("%d acked before the ack interval or the stop", got)
		}
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		acks.mu.Lock()
		defer acks.mu.Unlock()
		if len(acks.calls) != 1 || acks.calls[0] != 5 {
			t.Fatalf("ack calls %v, want one of 5", acks.calls)
		}
		if s := stats(t, q); r.w.Counts().Processed != 5 || s.Acked != 5 || s.InFlight != 0 || s.Length != 0 {
			t.Fatalf("counts %+v, stats %+v; want 5 acked", r.w.Counts(), s)
		}
	})
}

func TestPrefetchBounds(t *testing.T) {
	q := openMem(t).Queue("bounds")
	base := Config{Source: FromQueue(q), Runner: runnerFunc(func(context.Context, Job) error { return nil }), Lease: time.Second}
	for _, p := range []int{-2, MaxPrefetch + 1} {
		cfg := base
		cfg.Prefetch = p
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("prefetch %d: %v, want ErrInvalidConfig", p, err)
		}
	}
	for p, want := range map[int]int{0: 3, -1: 0, 7: 7} {
		cfg := base
		cfg.Concurrency, cfg.Prefetch = 3, p
		if got := cfg.WithDefaults().Prefetch; got != want {
			t.Errorf("prefetch %d with concurrency 3: %d, want %d", p, got, want)
		}
	}
}
