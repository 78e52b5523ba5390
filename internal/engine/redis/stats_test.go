package redis

import (
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

// A Python producer pushes to the list with a plain RPUSH: nothing counts
// it, and the counters say only what Sluice did (docs/http.md).
func TestPushesPastTheEngineAreNotCounted(t *testing.T) {
	f := setup(t)
	if err := f.raw.Do(f.ctx, f.raw.B().Rpush().Key(f.prefix+"q").Element("raw").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if s, err := f.e.QueueStats(f.ctx, "q"); err != nil || s != (engine.QueueStats{}) {
		t.Fatalf("QueueStats after a raw push = %+v, %v; want zero", s, err)
	}
	if item, ok, err := f.e.QueuePop(f.ctx, "q", 0); !ok || err != nil || item != "raw" {
		t.Fatalf("QueuePop = %q, %v, %v", item, ok, err)
	}
	if s, err := f.e.QueueStats(f.ctx, "q"); err != nil || s != (engine.QueueStats{Delivered: 1}) {
		t.Fatalf("QueueStats after the pop = %+v, %v; want one delivered", s, err)
	}
	// The counters are a plain hash with the documented field names.
	kv, err := f.raw.Do(f.ctx, f.raw.B().Hgetall().Key(f.prefix+"sluice#stats:q").Build()).AsStrMap()
	if err != nil || len(kv) != 1 || kv["delivered"] != "1" {
		t.Fatalf("stats hash = %v, %v", kv, err)
	}
}
