//go:build unix

package redistest

// Tests that change a topology (kill a primary, move a slot) get throwaway
// loopback nodes of their own, apart from the cluster and Sentinel set the
// conformance suite runs on at the same time:
//
//	export SLUICE_TEST_TOPOLOGY_CLUSTER_URL=$(scripts/cluster.sh start 7100)
//	export SLUICE_TEST_TOPOLOGY_SENTINEL_URL=$(scripts/sentinel.sh start 6390)
//
// One test at a time holds a set (a file lock, so that the test binaries
// of several packages, which go test runs in parallel, take turns). Each
// test starts once the set is healthy, and a node it kills is started
// again, and the set healthy again, before the next test gets it. A
// failover leaves another node as primary: tests ask which node serves
// what instead of assuming the layout the scripts build.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// The variables naming the throwaway sets.
const (
	TopologyClusterEnv  = "SLUICE_TEST_TOPOLOGY_CLUSTER_URL"
	TopologySentinelEnv = "SLUICE_TEST_TOPOLOGY_SENTINEL_URL"
)

// healthyWithin bounds how long a set may take to settle: a Sentinel that
// just failed over waits some seconds before it reconfigures the old
// primary, a loaded machine makes everything slower.
const healthyWithin = 90 * time.Second

// Topology is a throwaway set a test may break. URL is what
// redisconn.Connect takes.
type Topology struct {
	URL      string
	sentinel bool
	seeds    []string // cluster nodes or sentinels, host:port
	master   string   // the Sentinel master name
}

// ClusterTopology returns the throwaway cluster, healthy and held by t
// until t ends. It skips t when the variable is unset, or fails it under
// CI=true: CI must run the tests that change a topology.
func ClusterTopology(t testing.TB) *Topology {
	t.Helper()
	return topology(t, TopologyClusterEnv, "redis+cluster://", "scripts/cluster.sh start 7100")
}

// SentinelTopology is ClusterTopology for the throwaway Sentinel set.
func SentinelTopology(t testing.TB) *Topology {
	t.Helper()
	return topology(t, TopologySentinelEnv, "redis+sentinel://", "scripts/sentinel.sh start 6390")
}

func topology(t testing.TB, env, scheme, start string) *Topology {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		msg := fmt.Sprintf("changes a topology, so it needs throwaway nodes: export %s=$(%s)", env, start)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true; %s", env, msg)
		}
		t.Skip(msg)
	}
	rest, ok := strings.CutPrefix(u, scheme)
	if !ok {
		t.Fatalf("%s=%q: want a %s URL", env, u, scheme)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	tp := &Topology{URL: u, sentinel: scheme == "redis+sentinel://", seeds: strings.Split(hosts, ",")}
	if tp.sentinel {
		tp.master, _, _ = strings.Cut(path, "/")
		if tp.master == "" {
			t.Fatalf("%s=%q names no master", env, u)
		}
	}
	for _, s := range tp.seeds {
		if !loopback(s) {
			t.Fatalf("%s: %s is not on loopback; the tests kill its nodes, so they must be local and throwaway", env, s)
		}
	}
	lockTopology(t, u)
	tp.WaitHealthy(t)
	return tp
}

// lockTopology takes an exclusive lock on the set until t ends.
func lockTopology(t testing.TB, u string) {
	t.Helper()
	sum := sha256.Sum256([]byte(u))
	name := filepath.Join(os.TempDir(), "sluice-topology-"+hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("topology lock: %v", err)
	}
	start := time.Now()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("topology lock %s: %v", name, err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Logf("waited %v for another test to give back %s", waited.Round(time.Millisecond), u)
	}
	// Closing the file releases the lock; so does the process's end.
	t.Cleanup(func() { f.Close() })
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// WaitHealthy polls until every node answers and the set is whole (see
// clusterHealth and sentinelHealth), and fails t after healthyWithin.
func (tp *Topology) WaitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(healthyWithin)
	for {
		err := tp.health()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the throwaway set %s is not healthy after %v: %v (rebuild it: stop and start its script)", tp.URL, healthyWithin, err)
		}
		time.Sleep(200 * time.Millisecond) // polling the set; nothing to wait on
	}
}

func (tp *Topology) health() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tp.sentinel {
		return tp.sentinelHealth(ctx)
	}
	return tp.clusterHealth(ctx)
}

// node is a client of one server, for asking it about itself.
func node(addr string) (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true, DisableRetry: true,
		Dialer: net.Dialer{Timeout: 2 * time.Second},
	})
}

// askString runs one command on the server at addr and returns its reply
// as text (a verbatim string without its format tag).
func askString(ctx context.Context, addr string, args ...string) (string, error) {
	c, err := node(addr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", addr, err)
	}
	defer c.Close()
	s, err := c.Do(ctx, c.B().Arbitrary(args[0]).Args(args[1:]...).Build()).ToString()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", addr, strings.Join(args, " "), err)
	}
	return strings.TrimPrefix(s, "txt:"), nil
}

// infoField returns field's value in an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// replicaLinked: the server at addr replicates from primary and is in sync.
func replicaLinked(ctx context.Context, addr, primary string) error {
	info, err := askString(ctx, addr, "INFO", "replication")
	if err != nil {
		return err
	}
	if r := infoField(info, "role"); r != "slave" {
		return fmt.Errorf("%s is a %s, not a replica", addr, r)
	}
	if from := net.JoinHostPort(infoField(info, "master_host"), infoField(info, "master_port")); primary != "" && from != primary {
		return fmt.Errorf("%s replicates from %s, not %s", addr, from, primary)
	}
	if infoField(info, "master_link_status") != "up" || infoField(info, "master_sync_in_progress") != "0" {
		return fmt.Errorf("%s is not in sync with its primary", addr)
	}
	return nil
}
