package consume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/engine"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fake is a Source of n items in memory: a queue of ids, the leased
// ones, and a record of every call.
type fake struct {
	mu       sync.Mutex
	queue    []string
	leased   map[string]bool
	acked    map[string]int
	released map[string]int
	receives []int // n asked for, per receive
	ackCalls []int // ids per ack
	wake     chan struct{}
}

func newFake(n int) *fake {
	f := &fake{leased: map[string]bool{}, acked: map[string]int{}, released: map[string]int{}, wake: make(chan struct{}, 1)}
	for i := range n {
		f.queue = append(f.queue, fmt.Sprint(i))
	}
	return f
}

func (f *fake) Receive(ctx context.Context, n int, wait time.Duration) ([]string, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		f.mu.Lock()
		f.receives = append(f.receives, n)
		if len(f.queue) > 0 {
			k := min(n, len(f.queue))
			out := slices.Clone(f.queue[:k])
			f.queue = f.queue[k:]
			for _, id := range out {
				f.leased[id] = true
			}
			f.mu.Unlock()
			return out, nil
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, nil
		case <-f.wake:
		}
	}
}

func (f *fake) Extend(_ context.Context, d string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leased[d] {
		return engine.ErrLeaseNotFound
	}
	return nil
}

func (f *fake) Ack(_ context.Context, ds []string) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ackCalls = append(f.ackCalls, len(ds))
	out := make([]bool, len(ds))
	for i, d := range ds {
		out[i] = f.leased[d]
		delete(f.leased, d)
		f.acked[d]++
	}
	return out, nil
}

func (f *fake) Release(_ context.Context, d string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leased[d] {
		return engine.ErrLeaseNotFound
	}
	delete(f.leased, d)
	f.released[d]++
	f.queue = append([]string{d}, f.queue...)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

func (*fake) ID(d string) string             { return d }
func (*fake) Lease(string) time.Duration     { return time.Minute }
func (f *fake) lock() func()                 { f.mu.Lock(); return f.mu.Unlock }
func (f *fake) inFlight() int                { defer f.lock()(); return len(f.leased) }
func (f *fake) settled(m map[string]int) int { defer f.lock()(); return len(m) }

// TestGroupsPrefetchAndOneAck: groups of Group items, Concurrency+Prefetch
// groups leased in one receive (bounded by MaxReceive), every item in
// exactly one group, and the acks of several groups in one call.
func TestGroupsPrefetchAndOneAck(t *testing.T) {
	f := newFake(25)
	var mu sync.Mutex
	var groups [][]string
	n := 0
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config[string]{
			Source: f, Concurrency: 2, Prefetch: 3, Group: 4, Idle: time.Millisecond, Poll: time.Minute,
			MaxReceive: 16, Lease: time.Minute, AckInterval: time.Hour,
			Handle: func(_ context.Context, g []string) error {
				mu.Lock()
				defer mu.Unlock()
				groups = append(groups, g)
				if n += len(g); n == 25 {
					close(all)
				}
				return nil
			},
		})
	}()
	<-all
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range groups {
		if len(g) > 4 {
			t.Errorf("group of %d, want at most 4", len(g))
		}
		for _, d := range g {
			if seen[d] {
				t.Errorf("item %s in two groups", d)
			}
			seen[d] = true
		}
	}
	if f.receives[0] != 16 {
		t.Errorf("first receive asked for %d, want 16 (5 groups of 4, bounded by MaxReceive)", f.receives[0])
	}
	// AckInterval is an hour: every ack waited for the end, in one call.
	if !slices.Equal(f.ackCalls, []int{25}) || f.settled(f.acked) != 25 || f.inFlight() != 0 {
		t.Fatalf("ack calls %v, %d acked, %d in flight; want one call of 25", f.ackCalls, f.settled(f.acked), f.inFlight())
	}
}

// TestShutdownReleasesOnceAfterTheReceiver: runs killed by the shutdown
// are released, once each, after the receiver (whose receive a stop does
// not cancel) returned: the receive in flight cannot take a released item
// again.
func TestShutdownReleasesOnceAfterTheReceiver(t *testing.T) {
	f := newFake(2)
	started := make(chan struct{}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	kill := make(chan struct{})
	done := make(chan error, 1)
	var killed, stopping bool
	go func() {
		done <- Run(ctx, Config[string]{
			Source: f, Concurrency: 2, Prefetch: 1, Group: 1, Poll: 20 * time.Millisecond, DetachReceive: true,
			Lease: time.Minute, AckInterval: time.Millisecond, ShutdownTimeout: time.Hour, Kill: kill,
			Handle: func(ctx context.Context, _ []string) error {
				started <- struct{}{}
				<-ctx.Done()
				return context.Cause(ctx)
			},
			Nack:     func(context.Context, []string, error) { t.Error("a killed run was nacked") },
			Stopping: func() { stopping = true },
			Killing:  func(timedOut bool) { killed = !timedOut },
		})
	}()
	<-started
	<-started
	// Both run; the receiver waits on the empty queue with its free token.
	cancel()
	close(kill)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !stopping || !killed {
		t.Errorf("stopping %v, killed by Kill %v; want both", stopping, killed)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.released) != 2 || len(f.leased) != 0 || len(f.queue) != 2 || len(f.acked) != 0 {
		t.Fatalf("released %v, leased %v, queue %v, acked %v; want both released once and waiting", f.released, f.leased, f.queue, f.acked)
	}
	for id, n := range f.released {
		if n != 1 {
			t.Errorf("item %s released %d times", id, n)
		}
	}
}

// TestFatalReceiveStops: a receive error that Fatal accepts ends Run with
// it; others are reported and retried.
func TestFatalReceiveStops(t *testing.T) {
	errDown, errGone := errors.New("down"), errors.New("gone")
	calls := 0
	var reported []error
	err := Run(context.Background(), Config[string]{
		Source: failing{func() error {
			calls++
			if calls < 3 {
				return errDown
			}
			return errGone
		}},
		Concurrency: 1, Group: 1, Lease: time.Minute, AckInterval: time.Millisecond,
		Handle:        func(context.Context, []string) error { return nil },
		Fatal:         func(err error) bool { return errors.Is(err, errGone) },
		ReceiveFailed: func(err error, _ time.Duration) { reported = append(reported, err) },
	})
	if !errors.Is(err, errGone) || len(reported) != 2 {
		t.Fatalf("Run = %v after reporting %v; want errGone after 2 reports", err, reported)
	}
}

type failing struct{ err func() error }

func (s failing) Receive(context.Context, int, time.Duration) ([]string, error) { return nil, s.err() }
func (failing) Extend(context.Context, string) error                            { return nil }
func (failing) Ack(context.Context, []string) ([]bool, error)                   { return nil, nil }
func (failing) Release(context.Context, string) error                           { return nil }
func (failing) ID(d string) string                                              { return d }
func (failing) Lease(string) time.Duration                                      { return time.Minute }
