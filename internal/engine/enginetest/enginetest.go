// Package enginetest is the one behaviour suite every engine must pass.
// Each engine's own test calls Run with a Harness; a capability added to the
// engine seam adds its cases here, never to one engine only.
package enginetest

import (
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

// Harness tells the suite how to get engines.
type Harness struct {
	// Name labels subtests, e.g. "redis" or "memory".
	Name string
	// New returns a fresh engine whose keys, queues and channels are not
	// seen by any other engine New returned (a unique key prefix on Redis,
	// a new instance in memory). The suite closes it.
	New func(t *testing.T) engine.Engine
	// Reopen, when set, closes e and returns an engine over the same stored
	// data (durable engines): the suite then checks that state survives.
	Reopen func(t *testing.T, e engine.Engine) engine.Engine
	// Cluster marks an engine using the Redis Cluster key layout, where a
	// queue Q is stored under the hash-tagged key {Q} and so no longer
	// shares a key with the cache entry Q: the case that relies on that
	// sharing is skipped.
	Cluster bool
}

// Run runs every case of the suite against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	runCases(t, h)
}
