package redis

import (
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// TestConformance holds the Redis engine to the behaviour every engine
// shares. It runs the standalone layout: the suite's WrongType case relies
// on a queue and a cache entry of the same name sharing one key, which the
// cluster layout's hash tags deliberately change (see
// TestClusterLayoutKeepsOneSlot for that layout on this server, and
// TestClusterConformance and TestSentinelConformance for the suite on those
// topologies).
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{Name: "redis", New: func(t *testing.T) engine.Engine {
		c := redistest.Client(t)
		prefix := redistest.Prefix(t)
		redistest.Cleanup(t, c, prefix)
		return New(c, Options{Keys: keyspace.Space{Prefix: prefix}})
	}})
}
