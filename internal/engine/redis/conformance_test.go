package redis

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// TestConformance holds the Redis engine to the behaviour every engine
// shares, in the standalone layout (see TestClusterConformance and
// TestSentinelConformance for the suite on those topologies).
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Name: "redis",
		New: func(t *testing.T) engine.Engine {
			c := redistest.Client(t)
			prefix := redistest.Prefix(t)
			redistest.Cleanup(t, c, prefix)
			return New(c, Options{Keys: keyspace.Space{Prefix: prefix}})
		},
		Caps: capabilities(false),
	})
}

// capabilities are what the suite may rely on of a Redis engine in the
// standalone or the cluster layout: the stored keys of docs/compat.md, which
// the original service and operators reach with plain commands.
func capabilities(cluster bool) enginetest.Capabilities {
	return enginetest.Capabilities{
		Kind:    "redis",
		Keys:    &keyspace.Space{Cluster: cluster},
		PushRaw: pushRaw,
	}
}

// pushRaw is RPUSH onto key under e's prefix, past the engine.
func pushRaw(t *testing.T, ctx context.Context, e engine.Engine, key string, entries ...string) {
	t.Helper()
	re, ok := e.(*Engine)
	if !ok {
		t.Fatalf("pushRaw: %T is not a Redis engine", e)
	}
	cmd := re.client.B().Rpush().Key(re.keys.Prefix + key).Element(entries...).Build()
	if err := re.client.Do(ctx, cmd).Error(); err != nil {
		t.Fatalf("RPUSH %s: %v", key, err)
	}
}
