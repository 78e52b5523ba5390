package redisconn

// Integration tests against the loopback topologies of scripts/cluster.sh and
// scripts/sentinel.sh. They are skipped unless the URLs those scripts print
// are exported:
//
//	export SLUICE_TEST_CLUSTER_URL=$(scripts/cluster.sh start)
//	export SLUICE_TEST_SENTINEL_URL=$(scripts/sentinel.sh start)
//
// The failover tests kill a primary, so they run on the throwaway sets of
// redistest.ClusterTopology and redistest.SentinelTopology instead.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/redistest"
)

func envOrSkip(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s not set; start the topology with scripts/ and export the URL it prints", name)
	}
	return v
}

// setGetRoundTrip writes and reads back keys spread over many hash slots and
// deletes them afterwards (SCAN-based cleanup would see one node only).
func setGetRoundTrip(t *testing.T, c rueidis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	t.Cleanup(func() {
		for _, k := range keys {
			c.Do(context.Background(), c.B().Del().Key(k).Build())
		}
	})
	for i, k := range keys {
		if err := c.Do(ctx, c.B().Set().Key(k).Value("v"+strconv.Itoa(i)).Build()).Error(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	for i, k := range keys {
		got, err := c.Do(ctx, c.B().Get().Key(k).Build()).ToString()
		if err != nil || got != "v"+strconv.Itoa(i) {
			t.Fatalf("GET %s = %q, %v; want v%d", k, got, err, i)
		}
	}
}

func TestClusterConnect(t *testing.T) {
	t.Parallel()
	u := envOrSkip(t, "SLUICE_TEST_CLUSTER_URL")
	ctx := context.Background()
	conn, err := Connect(ctx, Config{URL: u})
	if err != nil {
		t.Fatalf("Connect(%s): %v", Redact(u), err)
	}
	defer conn.Close()
	if !conn.Cluster || conn.Sentinel {
		t.Fatalf("cluster %v sentinel %v; want a cluster connection", conn.Cluster, conn.Sentinel)
	}
	// 64 keys land on all three primaries with near certainty; each node
	// answering MOVED would show up as an error here.
	setGetRoundTrip(t, conn.Client, 64)

	nodes := conn.Client.Nodes()
	if len(nodes) < 3 {
		t.Errorf("client knows %d nodes; want the 3 primaries at least", len(nodes))
	}

	t.Run("one seed address is enough", func(t *testing.T) {
		one, err := Connect(ctx, Config{URL: "redis+cluster://" + conn.Addrs[0]})
		if err != nil {
			t.Fatal(err)
		}
		defer one.Close()
		setGetRoundTrip(t, one.Client, 16)
	})
	t.Run("plain URL to a cluster node is refused", func(t *testing.T) {
		rec := &recordSleep{}
		_, err := Connect(ctx, Config{URL: "redis://" + conn.Addrs[0], Retry: RetryPolicy{Sleep: rec.sleep}})
		if !errors.Is(err, ErrWrongMode) {
			t.Fatalf("error %v; want ErrWrongMode", err)
		}
		if len(rec.calls()) != 0 {
			t.Errorf("retried a topology mismatch")
		}
	})
}

func TestSentinelConnect(t *testing.T) {
	t.Parallel()
	u := envOrSkip(t, "SLUICE_TEST_SENTINEL_URL")
	ctx := context.Background()
	conn, err := Connect(ctx, Config{URL: u, MinReplicasAck: 1})
	if err != nil {
		t.Fatalf("Connect(%s): %v", Redact(u), err)
	}
	defer conn.Close()
	if conn.Cluster || !conn.Sentinel {
		t.Fatalf("cluster %v sentinel %v; want a sentinel connection", conn.Cluster, conn.Sentinel)
	}
	setGetRoundTrip(t, conn.Client, 16)
	role, err := conn.Client.Do(ctx, conn.Client.B().Role().Build()).ToArray()
	if err != nil || len(role) == 0 {
		t.Fatalf("ROLE: %v", err)
	}
	if r, _ := role[0].ToString(); r != "master" {
		t.Errorf("connected to a %q; want the primary", r)
	}

	t.Run("unknown master name", func(t *testing.T) {
		rec := &recordSleep{}
		bad := strings.Replace(u, "/"+sentinelMaster(t, u)+"/", "/no-such-master/", 1)
		c, err := Connect(ctx, Config{URL: bad, Retry: RetryPolicy{Sleep: rec.sleep}})
		if err == nil {
			c.Close()
			t.Fatal("Connect to an unknown master succeeded")
		}
		if !strings.Contains(err.Error(), "no-such-master") {
			t.Errorf("error %q does not name the master", err)
		}
		if n := len(rec.calls()); n != 0 {
			t.Errorf("retried %d times; the sentinels' answer cannot change by waiting", n)
		}
	})
}

func sentinelMaster(t *testing.T, u string) string {
	t.Helper()
	opt, _, err := Parse(Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	return opt.Sentinel.MasterSet
}

// TestSentinelFailover kills the primary with SIGKILL and checks that the
// same client, without being rebuilt, writes to the promoted replica and
// still reads what it wrote before.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	tp := redistest.SentinelTopology(t)
	u := tp.URL
	ctx := context.Background()
	conn, err := Connect(ctx, Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := conn.Client
	key := redistest.Prefix(t) + "failover"
	t.Cleanup(func() { c.Do(context.Background(), c.B().Del().Key(key).Build()) })
	if err := c.Do(ctx, c.B().Set().Key(key).Value("before").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous; WAIT makes sure the replica has the
	// write before its primary dies.
	if n, err := c.Do(ctx, c.B().Wait().Numreplicas(1).Timeout(5000).Build()).AsInt64(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 = %d, %v; the replica is not in sync", n, err)
	}

	master := sentinelMaster(t, u)
	old := primaryAddr(t, conn, master)
	killed := time.Now()
	tp.Kill(t, old)

	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var attempts int
	for {
		attempts++
		actx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Do(actx, c.B().Set().Key(key+":after").Value("after").Build()).Error()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within 60s of killing the primary; last error: %v", err)
		}
		<-tick.C
	}
	t.Cleanup(func() { c.Do(context.Background(), c.B().Del().Key(key+":after").Build()) })
	elapsed := time.Since(killed)
	// The server the client now writes to, asked directly: the sentinels
	// learn of the new primary one by one, so one of them may still name
	// the old one.
	info, err := c.Do(ctx, c.B().Info().Section("server").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	_, oldPort, _ := net.SplitHostPort(old)
	now := infoField(info, "tcp_port")
	if now == oldPort {
		t.Fatalf("the client still writes to port %s, the killed primary's", now)
	}
	got, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
	if err != nil || got != "before" {
		t.Fatalf("GET after failover = %q, %v; want the value written before", got, err)
	}
	t.Logf("failover %s -> port %s: first successful write %v after SIGKILL (%d tries)", old, now, elapsed.Round(time.Millisecond), attempts)
}

// primaryAddr asks the first sentinel which address the primary has.
func primaryAddr(t *testing.T, conn *Conn, master string) string {
	t.Helper()
	opt, _, err := Parse(Config{URL: "redis://" + conn.Addrs[0]})
	if err != nil {
		t.Fatal(err)
	}
	s, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("sentinel %s: %v", conn.Addrs[0], err)
	}
	defer s.Close()
	addr, err := s.Do(context.Background(), s.B().SentinelGetMasterAddrByName().Master(master).Build()).AsStrSlice()
	if err != nil || len(addr) != 2 {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME %s = %v, %v", master, addr, err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// TestClusterFailover kills, with SIGKILL, the primary that owns a key and
// checks that the same cluster client moves to the promoted replica.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	tp := redistest.ClusterTopology(t)
	ctx := context.Background()
	conn, err := Connect(ctx, Config{URL: tp.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := conn.Client
	key := redistest.Prefix(t) + "failover"
	t.Cleanup(func() { c.Do(context.Background(), c.B().Del().Key(key).Build()) })

	slot, err := c.Do(ctx, c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	owner := slotOwner(t, c, slot)

	// Write straight to the owner and WAIT on the same connection, so the
	// value is on its replica before the primary dies.
	direct, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{owner}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	res := direct.DoMulti(ctx,
		direct.B().Set().Key(key).Value("before").Build(),
		direct.B().Wait().Numreplicas(1).Timeout(5000).Build())
	if n, err := res[1].AsInt64(); res[0].Error() != nil || err != nil || n < 1 {
		t.Fatalf("SET %v, WAIT 1 = %d, %v; the replica is not in sync", res[0].Error(), n, err)
	}
	killed := time.Now()
	tp.Kill(t, owner)

	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	attempts := 0
	for {
		attempts++
		actx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := c.Do(actx, c.B().Get().Key(key).Build()).ToString()
		cancel()
		if err == nil {
			if got != "before" {
				t.Fatalf("GET after failover = %q; want the value written before", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read succeeded within 60s of killing %s; last error: %v", owner, err)
		}
		<-tick.C
	}
	if err := c.Do(ctx, c.B().Set().Key(key).Value("after").Build()).Error(); err != nil {
		t.Fatalf("SET after failover: %v", err)
	}
	took := time.Since(killed).Round(time.Millisecond)
	// CLUSTER SLOTS may go to the killed node, which the client still
	// lists until it refreshes: ask again until an answer comes.
	now := "unknown"
	for range 50 {
		if addr, err := trySlotOwner(c, slot); err == nil {
			now = addr
			break
		}
		<-tick.C
	}
	t.Logf("cluster failover of %s (slot %d): first successful read %v after SIGKILL (%d tries), now served by %s",
		owner, slot, took, attempts, now)
}

// trySlotOwner is slotOwner for a caller that can wait for an answer.
func trySlotOwner(c rueidis.Client, slot int64) (string, error) {
	ranges, err := c.Do(context.Background(), c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return "", err
	}
	for _, r := range ranges {
		parts, err := r.ToArray()
		if err != nil || len(parts) < 3 {
			continue
		}
		lo, _ := parts[0].AsInt64()
		hi, _ := parts[1].AsInt64()
		if slot < lo || slot > hi {
			continue
		}
		node, err := parts[2].ToArray()
		if err != nil || len(node) < 2 {
			return "", fmt.Errorf("CLUSTER SLOTS node %v: %v", parts[2], err)
		}
		host, _ := node[0].ToString()
		port, _ := node[1].AsInt64()
		return net.JoinHostPort(host, strconv.FormatInt(port, 10)), nil
	}
	return "", fmt.Errorf("no primary serves slot %d", slot)
}

// slotOwner returns the address of the primary serving slot.
func slotOwner(t *testing.T, c rueidis.Client, slot int64) string {
	t.Helper()
	addr, err := trySlotOwner(c, slot)
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	return addr
}
