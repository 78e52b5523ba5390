package memory

import (
	"context"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/keyspace"
)

func TestConformanceMemory(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Name: "memory",
		New: func(t *testing.T) engine.Engine {
			e, err := New(Options{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return e
		},
		Caps: capabilities(nil),
	})
}

func TestConformanceDurable(t *testing.T) {
	// Cases run in parallel: dirs is shared by all of them.
	var mu sync.Mutex
	dirs := map[engine.Engine]string{}
	enginetest.Run(t, enginetest.Harness{
		Name: "durable",
		New: func(t *testing.T) engine.Engine {
			dir := t.TempDir()
			e, err := New(Options{Dir: dir, Fsync: "everysec"})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			mu.Lock()
			dirs[e] = dir
			mu.Unlock()
			return e
		},
		Caps: capabilities(func(t *testing.T, old engine.Engine) engine.Engine {
			mu.Lock()
			dir, ok := dirs[old]
			mu.Unlock()
			if !ok {
				t.Fatalf("Reopen: engine was not made by this harness")
			}
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			e, err := New(Options{Dir: dir, Fsync: "everysec"})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			mu.Lock()
			dirs[e] = dir
			mu.Unlock()
			return e
		}),
	})
}

// capabilities are what the suite may rely on of this engine: the
// standalone layout of docs/compat.md, in one key space, and a durable
// engine's reopen when reopen is set.
func capabilities(reopen func(t *testing.T, e engine.Engine) engine.Engine) enginetest.Capabilities {
	return enginetest.Capabilities{
		Kind:    "embedded",
		Reopen:  reopen,
		Keys:    &keyspace.Space{},
		PushRaw: pushRaw,
	}
}

// pushRaw appends entries to the list stored under key. The engine has no
// path past its API; in the standalone layout the queue named key is
// stored under key itself, so a plain add is that push.
func pushRaw(t *testing.T, ctx context.Context, e engine.Engine, key string, entries ...string) {
	t.Helper()
	if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: key, Items: entries, Policy: engine.PolicyReject}); err != nil {
		t.Fatalf("push onto %s: %v", key, err)
	}
}
