package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// durabilityWarnings reads the server settings under which Redis can lose
// items it has acknowledged, and names each with its fix. A managed Redis
// often refuses CONFIG: that is said too, since nothing could be checked.
//
// On a cluster the commands reach one node; the nodes of a cluster are
// normally configured alike.
func (e *Engine) durabilityWarnings(ctx context.Context) []string {
	b := e.client.B()
	cmds := []rueidis.Completed{
		b.ConfigGet().Parameter("maxmemory-policy").Build(),
		b.ConfigGet().Parameter("appendonly").Build(),
		b.ConfigGet().Parameter("save").Build(),
	}
	if e.minReplicas > 0 {
		cmds = append(cmds, b.Info().Section("replication").Build())
	}
	res := e.client.DoMulti(ctx, cmds...)
	var warnings []string
	conf := make(map[string]string, 3)
	for _, r := range res[:3] {
		m, err := configReply(r)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return []string{fmt.Sprintf("could not check whether Redis can lose queued items: CONFIG GET was refused (%s); make sure maxmemory-policy is noeviction or volatile-*, and that appendonly or RDB snapshots are on", firstLine(err.Error()))}
		}
		for k, v := range m {
			conf[k] = v
		}
	}
	if p := conf["maxmemory-policy"]; strings.HasPrefix(p, "allkeys-") {
		warnings = append(warnings, fmt.Sprintf("Redis maxmemory-policy is %s: under memory pressure it evicts queues, DLQs and leases, which have no TTL; set maxmemory-policy noeviction (adds then fail when memory is full instead of losing items)", p))
	}
	if conf["appendonly"] == "no" && strings.TrimSpace(conf["save"]) == "" {
		warnings = append(warnings, "Redis keeps nothing on disk (appendonly no, no save points): a restart loses every queued item; set appendonly yes (appendfsync everysec or always)")
	}
	if e.minReplicas > 0 && len(res) > 3 {
		info, err := res[3].ToString()
		if err == nil {
			if n := connectedReplicas(info); n < e.minReplicas {
				warnings = append(warnings, fmt.Sprintf("writes wait for %d replica acknowledgements (min replicas ack), but Redis has %d connected replicas: every write will report that its replication is unconfirmed; add replicas or lower min replicas ack", e.minReplicas, n))
			}
		}
	}
	return warnings
}

// configReply reads a CONFIG GET answer: a map in RESP3, a flat list of
// names and values in RESP2.
func configReply(r rueidis.RedisResult) (map[string]string, error) {
	if m, err := r.AsStrMap(); err == nil {
		return m, nil
	}
	l, err := r.AsStrSlice()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(l)/2)
	for i := 0; i+1 < len(l); i += 2 {
		m[l[i]] = l[i+1]
	}
	return m, nil
}

func connectedReplicas(info string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
