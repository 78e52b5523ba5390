package embedded

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// fakeClock is a time source (Options.Now) tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 22, 10, 0, 123456000, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func mustAdd(t testing.TB, e *Engine, queue string, items ...string) []engine.AddResult {
	t.Helper()
	res, err := e.QueueAdd(context.Background(), engine.AddParams{Queue: queue, Items: items, Policy: engine.PolicyReject})
	if err != nil {
		t.Fatalf("QueueAdd(%q): %v", queue, err)
	}
	return res
}

func mustRange(t testing.TB, e *Engine, queue string) []string {
	t.Helper()
	items, err := e.QueueRange(context.Background(), queue, 0, -1)
	if err != nil {
		t.Fatalf("QueueRange(%q): %v", queue, err)
	}
	return items
}

func mustLen(t testing.TB, e *Engine, queue string) int64 {
	t.Helper()
	n, err := e.QueueLen(context.Background(), queue)
	if err != nil {
		t.Fatalf("QueueLen(%q): %v", queue, err)
	}
	return n
}

// waiting counts the consumers blocked on queue.
func (e *Engine) waiting(queue string) int {
	o := e.lock1(e.keys.Queue(queue).List, false)
	if o == nil {
		return 0
	}
	defer o.mu.Unlock()
	if o.q == nil {
		return 0
	}
	return o.q.waiters.Len()
}

// awaitWaiting yields until n consumers are blocked on queue: the
// condition is what the test needs, not a duration.
func awaitWaiting(t testing.TB, e *Engine, queue string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.waiting(queue) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d consumers blocked on %q, want %d", e.waiting(queue), queue, n)
		}
		runtime.Gosched()
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func keyspaceWithPrefix(p string) keyspace.Space { return keyspace.Space{Prefix: p} }

// compact runs one compaction now, unless one is running.
func (s *store) compact() error {
	if !s.compacting.CompareAndSwap(false, true) {
		return nil
	}
	defer s.compacting.Store(false)
	return s.compactLocked()
}
