// Package enginetest is the one behaviour suite every engine must pass.
// Each engine's own test calls Run with a Harness; a capability added to the
// engine seam adds its cases here, never to one engine only.
//
// The suite knows no engine by name: what sets engines apart (surviving a
// restart, a key layout an operator can reach) is a Capability the harness
// declares, and the cases that need one are skipped without it.
package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// Harness tells the suite how to get engines and what they can do.
type Harness struct {
	// Name labels subtests, e.g. "redis" or "embedded".
	Name string
	// New returns a fresh engine whose keys, queues and channels are not
	// seen by any other engine New returned (a unique key prefix on Redis,
	// a new instance in memory). The suite closes it.
	New func(t *testing.T) engine.Engine
	// Caps declares what the engines New returns can do beyond the seam.
	Caps Capabilities
}

// Capabilities are the differences between engines that the suite checks
// where they exist, instead of asking an engine for its kind.
type Capabilities struct {
	// Kind is what Engine.Kind must report.
	Kind string
	// Reopen, when set, closes e and returns an engine over the same stored
	// data: the engine is durable, and the suite checks that state survives.
	Reopen func(t *testing.T, e engine.Engine) engine.Engine
	// Keys, when set, is the layout of docs/compat.md the engine stores
	// under, without the engine's own key prefix: the key of every queue
	// part and lock, which a cache entry of the same name reaches (cache
	// keys are stored as they are). The cases on kinds sharing one key space
	// use it, and are skipped without it.
	Keys *keyspace.Space
	// PushRaw, when set, appends entries to the list stored under key (a key
	// of Keys) past the engine's API, as the original service or an operator
	// writes it. The cases that hand an engine entries it did not build
	// itself use it, and are skipped without it.
	PushRaw func(t *testing.T, ctx context.Context, e engine.Engine, key string, entries ...string)
	// Advance, when set, moves the clock e reads for leases, TTLs, lock
	// expiry and idempotency windows forward by d at once; the cases that
	// wait for such a deadline then skip the wait. The clock must still
	// follow real time otherwise: blocking calls wait in real time. Without
	// it (Redis: expiry is the server's clock) the cases wait.
	Advance func(t *testing.T, e engine.Engine, d time.Duration)
}

// sharedQueueCacheKeys reports whether the queue q and the cache entry q
// are one key in c's layout (in the cluster layout, q's parts carry a hash
// tag and are stored apart from the cache entry q).
func (c Capabilities) sharedQueueCacheKeys(q string) bool {
	return c.Keys != nil && c.Keys.Queue(q).List == c.Keys.Cache(q)
}

// needKeys skips t when the harness gives no key layout.
func (c Capabilities) needKeys(t *testing.T) keyspace.Space {
	t.Helper()
	if c.Keys == nil {
		t.Skip("the harness declares no key layout (Capabilities.Keys)")
	}
	return *c.Keys
}

// Run runs every case of the suite against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Caps.Kind == "" {
		t.Fatal("enginetest: the harness declares no Capabilities.Kind")
	}
	runCases(t, h)
}
