package embedded

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/wal"
)

func TestConformanceEmbedded(t *testing.T) {
	h := &harness{}
	enginetest.Run(t, enginetest.Harness{
		Name: "embedded",
		New:  func(t *testing.T) engine.Engine { return h.open(t, "", nil) },
		Caps: h.capabilities(false),
	})
}

func TestConformanceDurable(t *testing.T) {
	h := &harness{}
	enginetest.Run(t, enginetest.Harness{
		Name: "embedded-durable",
		New:  func(t *testing.T) engine.Engine { return h.open(t, t.TempDir(), nil) },
		Caps: h.capabilities(true),
	})
}

// harness makes the suite's engines, each with a clock of its own that the
// suite can advance. Cases run in parallel: engines is shared by all.
type harness struct {
	mu      sync.Mutex
	engines map[engine.Engine]opened
}

// opened is what a reopen needs of an engine: its directory and clock.
type opened struct {
	dir   string
	clock *shiftClock
}

func (h *harness) open(t *testing.T, dir string, clock *shiftClock) engine.Engine {
	t.Helper()
	if clock == nil {
		clock = &shiftClock{}
	}
	opts := Options{Now: clock.Now}
	if dir != "" {
		opts.Dir, opts.Fsync = dir, wal.FsyncEverySec
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.engines == nil {
		h.engines = map[engine.Engine]opened{}
	}
	h.engines[e] = opened{dir: dir, clock: clock}
	return e
}

func (h *harness) lookup(t *testing.T, e engine.Engine) opened {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.engines[e]
	if !ok {
		t.Fatalf("engine %p was not made by this harness", e)
	}
	return o
}

// capabilities are what the suite may rely on of this engine: the
// standalone layout of docs/compat.md in one key space, a clock the suite
// can move, and a reopen over the same directory for the durable engine.
func (h *harness) capabilities(durable bool) enginetest.Capabilities {
	c := enginetest.Capabilities{
		Kind:    "embedded",
		Keys:    &keyspace.Space{},
		PushRaw: pushRaw,
		Advance: func(t *testing.T, e engine.Engine, d time.Duration) {
			h.lookup(t, e).clock.advance(d)
		},
	}
	if durable {
		c.Reopen = func(t *testing.T, old engine.Engine) engine.Engine {
			o := h.lookup(t, old)
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return h.open(t, o.dir, o.clock)
		}
	}
	return c
}

// shiftClock is real time moved forward by what the suite advanced it:
// blocking calls still wait in real time, and deadlines can be passed at
// once.
type shiftClock struct{ shift atomic.Int64 }

func (c *shiftClock) Now() time.Time {
	return time.Now().Add(time.Duration(c.shift.Load()))
}

func (c *shiftClock) advance(d time.Duration) { c.shift.Add(int64(d)) }

// pushRaw appends entries to the list stored under key. The engine has no
// path past its API; in the standalone layout the queue named key is
// stored under key itself, so a plain add is that push.
func pushRaw(t *testing.T, ctx context.Context, e engine.Engine, key string, entries ...string) {
	t.Helper()
	if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: key, Items: entries, Policy: engine.PolicyReject}); err != nil {
		t.Fatalf("push onto %s: %v", key, err)
	}
}
