//go:build unix

package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, flags, master, link string
	slots                         []string // ranges; "[...]" entries are slots being moved
}

func parseClusterNodes(text string) []clusterNode {
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, clusterNode{id: f[0], addr: addr, flags: f[2], master: f[3], link: f[7], slots: f[8:]})
	}
	return nodes
}

// layout is a node list reduced to what every node must agree on.
func layout(nodes []clusterNode) string {
	lines := make([]string, 0, len(nodes))
	for _, n := range nodes {
		role := "replica of " + n.master
		if strings.Contains(n.flags, "master") {
			role = "primary of " + strings.Join(n.slots, " ")
		}
		lines = append(lines, n.id+" "+n.addr+" "+role)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// clusterHealth: every node answers, sees all others connected and none
// failing, agrees on who serves which slots, reports cluster_state:ok with
// all slots served and no slot half moved; every primary with slots has a
// replica, and every replica is in sync.
func (tp *Topology) clusterHealth(ctx context.Context) error {
	var text string
	var err error
	for _, s := range tp.seeds {
		if text, err = askString(ctx, s, "CLUSTER", "NODES"); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	nodes := parseClusterNodes(text)
	want := layout(nodes)
	byID := map[string]clusterNode{}
	replicas := map[string]int{}
	for _, n := range nodes {
		byID[n.id] = n
		if !strings.Contains(n.flags, "master") {
			replicas[n.master]++
		}
	}
	for _, n := range nodes {
		info, err := askString(ctx, n.addr, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if infoField(info, "cluster_state") != "ok" || infoField(info, "cluster_slots_ok") != "16384" ||
			infoField(info, "cluster_known_nodes") != strconv.Itoa(len(nodes)) {
			return fmt.Errorf("%s: cluster_state %s, %s slots ok, %s nodes known (want ok, 16384, %d)", n.addr,
				infoField(info, "cluster_state"), infoField(info, "cluster_slots_ok"), infoField(info, "cluster_known_nodes"), len(nodes))
		}
		text, err := askString(ctx, n.addr, "CLUSTER", "NODES")
		if err != nil {
			return err
		}
		view := parseClusterNodes(text)
		for _, v := range view {
			for _, bad := range []string{"fail", "handshake", "noaddr"} {
				if strings.Contains(v.flags, bad) {
					return fmt.Errorf("%s sees %s as %s", n.addr, v.addr, v.flags)
				}
			}
			if v.link != "connected" {
				return fmt.Errorf("%s has no link to %s", n.addr, v.addr)
			}
			for _, r := range v.slots {
				if strings.HasPrefix(r, "[") {
					return fmt.Errorf("%s sees slot %s being moved", n.addr, r)
				}
			}
		}
		if got := layout(view); got != want {
			return fmt.Errorf("%s sees another layout than %s:\n%s\nversus\n%s", n.addr, tp.seeds[0], got, want)
		}
		if strings.Contains(n.flags, "master") {
			if len(n.slots) > 0 && replicas[n.id] == 0 {
				return fmt.Errorf("primary %s has no replica", n.addr)
			}
		} else if err := replicaLinked(ctx, n.addr, byID[n.master].addr); err != nil {
			return err
		}
	}
	return nil
}

// sentinelHealth: every sentinel answers, sees the others, names the same
// primary and finds neither it nor any of its replicas down or in a
// failover; the primary is a primary and every replica is in sync with it.
func (tp *Topology) sentinelHealth(ctx context.Context) error {
	primary := ""
	var replicaAddrs []string
	for _, s := range tp.seeds {
		c, err := node(s)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s, err)
		}
		err = func() error {
			defer c.Close()
			addr, err := c.Do(ctx, c.B().SentinelGetMasterAddrByName().Master(tp.master).Build()).AsStrSlice()
			if err != nil || len(addr) != 2 {
				return fmt.Errorf("sentinel %s names no primary: %v", s, err)
			}
			p := net.JoinHostPort(addr[0], addr[1])
			if primary != "" && p != primary {
				return fmt.Errorf("sentinel %s names %s, another %s", s, p, primary)
			}
			primary = p
			m, err := c.Do(ctx, c.B().Arbitrary("SENTINEL", "MASTER").Args(tp.master).Build()).AsStrMap()
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", s, err)
			}
			if m["flags"] != "master" || m["num-other-sentinels"] != strconv.Itoa(len(tp.seeds)-1) {
				return fmt.Errorf("sentinel %s: primary flags %q, %s other sentinels (want %d)", s, m["flags"], m["num-other-sentinels"], len(tp.seeds)-1)
			}
			others, err := c.Do(ctx, c.B().SentinelSentinels().Master(tp.master).Build()).ToArray()
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", s, err)
			}
			for _, o := range others {
				om, err := o.AsStrMap()
				if err != nil || om["flags"] != "sentinel" {
					return fmt.Errorf("sentinel %s sees sentinel %s as %q (%v)", s, om["name"], om["flags"], err)
				}
			}
			reps, err := c.Do(ctx, c.B().SentinelReplicas().Master(tp.master).Build()).ToArray()
			if err != nil || len(reps) == 0 {
				return fmt.Errorf("sentinel %s knows no replica: %v", s, err)
			}
			replicaAddrs = replicaAddrs[:0]
			for _, r := range reps {
				rm, err := r.AsStrMap()
				if err != nil || rm["flags"] != "slave" || rm["master-link-status"] != "ok" {
					return fmt.Errorf("sentinel %s sees replica %s as %q, link %q (%v)", s, rm["name"], rm["flags"], rm["master-link-status"], err)
				}
				replicaAddrs = append(replicaAddrs, net.JoinHostPort(rm["ip"], rm["port"]))
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	info, err := askString(ctx, primary, "INFO", "replication")
	if err != nil {
		return err
	}
	if infoField(info, "role") != "master" {
		return fmt.Errorf("%s, named primary, is a %s", primary, infoField(info, "role"))
	}
	for _, r := range replicaAddrs {
		if err := replicaLinked(ctx, r, primary); err != nil {
			return err
		}
	}
	return nil
}

// Primary returns the address of the Sentinel set's primary.
func (tp *Topology) Primary(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := tp.primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (tp *Topology) primary(ctx context.Context) (string, error) {
	if !tp.sentinel {
		return "", errors.New("not a Sentinel set")
	}
	var err error
	for _, s := range tp.seeds {
		c, e := node(s)
		if e != nil {
			err = fmt.Errorf("sentinel %s: %w", s, e)
			continue
		}
		addr, e := c.Do(ctx, c.B().SentinelGetMasterAddrByName().Master(tp.master).Build()).AsStrSlice()
		c.Close()
		if e == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		err = fmt.Errorf("sentinel %s names no primary: %v", s, e)
	}
	return "", err
}

// restartConfig lists what a node of the scripts is started with; the rest
// is redis-server's defaults.
var restartConfig = []string{"port", "bind", "dir", "pidfile", "logfile", "save", "appendonly",
	"cluster-enabled", "cluster-config-file", "cluster-node-timeout"}

// Kill SIGKILLs the server at addr, a node of the set. When t ends the
// node is started again with its configuration (on a Sentinel set, as a
// replica of whichever node is primary by then) and the set must be
// healthy again before the next test gets it.
func (tp *Topology) Kill(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !loopback(addr) {
		t.Fatalf("%s is not on loopback; cannot kill it", addr)
	}
	info, err := askString(ctx, addr, "INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(infoField(info, "process_id"))
	if err != nil || pid <= 0 {
		t.Fatalf("%s: no process_id in INFO server (%v)", addr, err)
	}
	c, err := node(addr)
	if err != nil {
		t.Fatal(err)
	}
	// One parameter per CONFIG GET: Redis before 7 takes no more.
	cfg := map[string]string{}
	for _, k := range restartConfig {
		m, err := c.Do(ctx, c.B().ConfigGet().Parameter(k).Build()).AsStrMap()
		if err != nil {
			c.Close()
			t.Fatalf("%s CONFIG GET %s: %v", addr, k, err)
		}
		for name, v := range m {
			cfg[name] = v
		}
	}
	c.Close()
	args := []string{"--daemonize", "yes"}
	for _, k := range restartConfig {
		v, ok := cfg[k]
		if !ok || (strings.HasPrefix(k, "cluster-") && k != "cluster-enabled" && cfg["cluster-enabled"] != "yes") {
			continue
		}
		args = append(args, "--"+k)
		if v == "" {
			args = append(args, "")
		} else {
			args = append(args, strings.Fields(v)...)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", addr, pid, err)
	}
	t.Cleanup(func() {
		if err := tp.restart(addr, pid, args); err != nil {
			t.Errorf("start %s again: %v", addr, err)
			return
		}
		tp.WaitHealthy(t)
	})
}

// restart starts the node killed at pid again and waits until it answers.
func (tp *Topology) restart(addr string, pid int, args []string) error {
	deadline := time.Now().Add(healthyWithin)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tp.launch(ctx, addr, pid, args)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

func (tp *Topology) launch(ctx context.Context, addr string, pid int, args []string) error {
	if tp.sentinel {
		// As a replica of the promoted node, not as a second, empty
		// primary for the sentinels to demote later.
		if p, err := tp.primary(ctx); err == nil && p != addr {
			host, port, _ := net.SplitHostPort(p)
			args = append(args[:len(args):len(args)], "--replicaof", host, port)
		}
	}
	// With --daemonize the command returns once the server has forked; a
	// port that the killed process has not yet given back shows as a
	// server that never answers, and the launch is tried again.
	if out, err := exec.CommandContext(ctx, "redis-server", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-server %s: %w: %s", strings.Join(args, " "), err, out)
	}
	for ctx.Err() == nil {
		info, err := askString(ctx, addr, "INFO", "server")
		if err == nil {
			if p := infoField(info, "process_id"); p != strconv.Itoa(pid) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the new process
	}
	return fmt.Errorf("%s does not answer after a restart", addr)
}
