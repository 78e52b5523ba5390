package memory

import (
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/wal"
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
			e, err := New(Options{Dir: dir, Fsync: wal.FsyncEverySec})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			mu.Lock()
			dirs[e] = dir
			mu.Unlock()
			return e
		},
		Reopen: func(t *testing.T, old engine.Engine) engine.Engine {
			mu.Lock()
			dir, ok := dirs[old]
			mu.Unlock()
			if !ok {
				t.Fatalf("Reopen: engine was not made by this harness")
			}
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			e, err := New(Options{Dir: dir, Fsync: wal.FsyncEverySec})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			mu.Lock()
			dirs[e] = dir
			mu.Unlock()
			return e
		},
	})
}
