package redis

// Tests against the loopback topologies of scripts/cluster.sh and
// scripts/sentinel.sh. They run when the URLs those scripts print are
// exported:
//
//	export SLUICE_TEST_CLUSTER_URL=$(scripts/cluster.sh start)
//	export SLUICE_TEST_SENTINEL_URL=$(scripts/sentinel.sh start)
//
// and are skipped otherwise. The ones that break a topology (failover,
// resharding) run on throwaway sets of their own; see topology_test.go.

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/enginetest"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redisconn"
	"github.com/sluicehq/sluice/internal/redistest"
)

// multiNode is a connection to a cluster or Sentinel setup shared by the
// tests of one topology.
type multiNode struct {
	conn *redisconn.Conn
}

// connectEnv connects to the topology named by env, or skips t when env is
// unset.
func connectEnv(t testing.TB, env string) multiNode {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		t.Skipf("%s not set; start the topology with scripts/ and export the URL it prints", env)
	}
	return connectURL(t, u)
}

// connectURL connects to the topology at u.
func connectURL(t testing.TB, u string) multiNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := redisconn.Connect(ctx, redisconn.Config{URL: u})
	if err != nil {
		t.Fatalf("%s: %v", redisconn.Redact(u), err)
	}
	t.Cleanup(conn.Close)
	return multiNode{conn: conn}
}

// engine returns an engine over a key prefix of the test's own, whose keys
// are deleted when t ends.
func (m multiNode) engine(t testing.TB, opts Options) *Engine {
	t.Helper()
	prefix := redistest.Prefix(t)
	cleanupNodes(t, m.conn.Client, prefix)
	opts.Keys = keyspace.Space{Prefix: prefix, Cluster: m.conn.Cluster}
	e := New(m.conn.Client, opts)
	t.Cleanup(func() { e.Close() })
	return e
}

// cleanupNodes deletes the keys under prefix on every primary when t ends:
// SCAN sees one node only, and one DEL may not name keys of several slots.
func cleanupNodes(t testing.TB, c rueidis.Client, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, node := range c.Nodes() {
			var cursor uint64
			for {
				res, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
				if err != nil {
					break
				}
				for _, k := range res.Elements {
					c.Do(ctx, c.B().Del().Key(k).Build())
				}
				if res.Cursor == 0 {
					break
				}
				cursor = res.Cursor
			}
		}
	})
}

// TestClusterConformance runs the shared suite on Redis Cluster with the
// hash-tagged layout.
func TestClusterConformance(t *testing.T) {
	m := connectEnv(t, "SLUICE_TEST_CLUSTER_URL")
	enginetest.Run(t, enginetest.Harness{Name: "redis-cluster", Caps: capabilities(true), New: func(t *testing.T) engine.Engine {
		return m.engine(t, Options{})
	}})
}

// TestSentinelConformance runs the shared suite on the primary that
// Sentinel names, in the standalone layout.
func TestSentinelConformance(t *testing.T) {
	m := connectEnv(t, "SLUICE_TEST_SENTINEL_URL")
	enginetest.Run(t, enginetest.Harness{Name: "redis-sentinel", Caps: capabilities(false), New: func(t *testing.T) engine.Engine {
		return m.engine(t, Options{})
	}})
}

// TestClusterConformanceDurable runs the suite once more on the cluster
// with every add waiting for one replica: the WAIT must go to the node that
// took the write, and must not change any result.
func TestClusterConformanceDurable(t *testing.T) {
	m := connectEnv(t, "SLUICE_TEST_CLUSTER_URL")
	enginetest.Run(t, enginetest.Harness{Name: "redis-cluster-wait", Caps: capabilities(true), New: func(t *testing.T) engine.Engine {
		return m.engine(t, Options{MinReplicasAck: 1, ReplicasAckTimeout: 5 * time.Second})
	}})
}

// TestMinReplicasAckConfirmed adds, batch-adds and requeues with WAIT 1
// against topologies that have a replica per primary.
func TestMinReplicasAckConfirmed(t *testing.T) {
	for _, env := range []string{"SLUICE_TEST_CLUSTER_URL", "SLUICE_TEST_SENTINEL_URL"} {
		t.Run(env, func(t *testing.T) {
			m := connectEnv(t, env)
			e := m.engine(t, Options{MinReplicasAck: 1, ReplicasAckTimeout: 5 * time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i, q := range []string{"a", "b", "c", "d"} {
				params := engine.AddParams{Queue: q, Items: []string{"x", "y", "z"}, Policy: engine.PolicyDLQ, MaxSize: 2}
				if i%2 == 1 {
					params.MaxSize = 0
				}
				res, err := e.QueueAdd(ctx, params)
				if err != nil || len(res) != 3 {
					t.Fatalf("QueueAdd %s: %v, %v", q, res, err)
				}
			}
			r, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: "a", Kind: engine.DLQOverflow, Count: 1, Policy: engine.PolicyDLQ})
			if err != nil || r.Requeued != 1 {
				t.Fatalf("DLQRequeue = %+v, %v", r, err)
			}
		})
	}
}

// TestMinReplicasAckShortfall asks for more replicas than the server has:
// the add is applied, and the error says so.
func TestMinReplicasAckShortfall(t *testing.T) {
	t.Parallel()
	f := setup(t)
	e := New(f.raw, Options{Keys: keyspace.Space{Prefix: f.prefix}, MinReplicasAck: 50, ReplicasAckTimeout: 10 * time.Millisecond})
	defer e.Close()
	for _, limit := range []int64{0, 10} {
		res, err := e.QueueAdd(f.ctx, engine.AddParams{Queue: "q", Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: limit})
		var ae *ReplicaAckError
		if !errors.As(err, &ae) || ae.Wanted != 50 || ae.Acked >= 50 {
			t.Fatalf("limit %d: QueueAdd error %v; want a ReplicaAckError for 50 replicas", limit, err)
		}
		if len(res) != 1 || !res[0].Accepted {
			t.Fatalf("limit %d: results %+v; want the accepted item", limit, res)
		}
	}
	if items := f.rangeAll(t, "q"); len(items) != 2 {
		t.Fatalf("queue %q; want both items stored on the primary", items)
	}
}

// TestWriteDurableLoadsScript sends a script the server has never seen:
// the EVALSHA fails with NOSCRIPT and the EVAL that follows, with its WAIT,
// does the work.
func TestWriteDurableLoadsScript(t *testing.T) {
	t.Parallel()
	f := setup(t)
	e := New(f.raw, Options{Keys: keyspace.Space{Prefix: f.prefix}, MinReplicasAck: 50, ReplicasAckTimeout: 10 * time.Millisecond})
	defer e.Close()
	s := newScript("-- " + f.prefix + "\nreturn redis.call('RPUSH', KEYS[1], ARGV[1])")
	key := e.keys.Queue("q").List
	res, err := e.runScript(f.ctx, "test", s, []string{key}, []string{"x"})
	if _, ok := ackError(err); !ok {
		t.Fatalf("runScript error %v; want a ReplicaAckError (the test server has fewer than 50 replicas)", err)
	}
	if n, err := res.AsInt64(); err != nil || n != 1 {
		t.Fatalf("script result %d, %v; want 1", n, err)
	}
	if items := f.rangeAll(t, "q"); len(items) != 1 || items[0] != "x" {
		t.Fatalf("queue %q", items)
	}
}

// TestClusterPlainClientKeys writes as a client that knows only docs/compat.md's
// names with the cluster's hash tag added (a Python producer): RPUSH to
// "{jobs}" and to "dlq:overflow:{jobs}" reach the engine's queue and DLQ.
func TestClusterPlainClientKeys(t *testing.T) {
	m := connectEnv(t, "SLUICE_TEST_CLUSTER_URL")
	e := m.engine(t, Options{})
	c := m.conn.Client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := e.keys.Prefix
	if err := c.Do(ctx, c.B().Rpush().Key(p+"{jobs}").Element("from python").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	env := engine.OverflowEnvelope("jobs", "overflowed")
	if err := c.Do(ctx, c.B().Rpush().Key(p+"dlq:overflow:{jobs}").Element(env).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	r, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: "jobs", Kind: engine.DLQOverflow, Count: 10, Policy: engine.PolicyDLQ})
	if err != nil || r.Requeued != 1 {
		t.Fatalf("DLQRequeue = %+v, %v; want 1 requeued", r, err)
	}
	items, err := e.QueueRange(ctx, "jobs", 0, -1)
	if err != nil || len(items) != 2 || items[0] != "from python" || items[1] != "overflowed" {
		t.Fatalf("queue %q, %v; want the pushed item, then the requeued one", items, err)
	}
}

// TestClusterBlockingPopCancelKeepsItems: blockingPopRace on a cluster,
// where CLIENT ID and CLIENT UNBLOCK must reach the key's primary.
func TestClusterBlockingPopCancelKeepsItems(t *testing.T) {
	m := connectEnv(t, "SLUICE_TEST_CLUSTER_URL")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blockingPopRace(t, ctx, m.engine(t, Options{}))
}
