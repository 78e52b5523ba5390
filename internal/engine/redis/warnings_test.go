package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// TestDurabilityWarnings runs Health against Redis servers configured to
// lose items and to keep them: the warnings name the setting and its fix,
// and only when it applies; Health stays healthy either way.
func TestDurabilityWarnings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		args       []string
		user       string // an ACL user without CONFIG, when set
		minReplica int
		want       []string // substrings, one per expected warning
	}{
		{name: "evicting and on no disk", args: []string{"--maxmemory-policy", "allkeys-lru"},
			want: []string{"maxmemory-policy is allkeys-lru", "keeps nothing on disk"}},
		{name: "kept", args: []string{"--appendonly", "yes", "--maxmemory-policy", "volatile-lru"}},
		{name: "snapshots only", args: []string{"--save", "3600 1"}},
		{name: "no replicas for min replicas ack", args: []string{"--appendonly", "yes"}, minReplica: 1,
			want: []string{"wait for 1 replica acknowledgements (min replicas ack), but Redis has 0 connected replicas"}},
		{name: "CONFIG refused", args: []string{"--appendonly", "yes"}, user: "noconfig",
			want: []string{"could not check whether Redis can lose queued items: CONFIG GET was refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, err := redistest.StartServer(t, func(port int) []string {
				return append([]string{"--port", strconv.Itoa(port)}, tc.args...)
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			opt := rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true}
			if tc.user != "" {
				admin, err := rueidis.NewClient(opt)
				if err != nil {
					t.Fatal(err)
				}
				acl := admin.B().AclSetuser().Username(tc.user).Rule("on", ">pw", "~*", "&*", "+@all", "-config").Build()
				err = admin.Do(ctx, acl).Error()
				admin.Close()
				if err != nil {
					t.Fatal(err)
				}
				opt.Username, opt.Password = tc.user, "pw"
			}
			c, err := rueidis.NewClient(opt)
			if err != nil {
				t.Fatal(err)
			}
			e := New(c, Options{Keys: keyspace.Space{}, OwnsClient: true, MinReplicasAck: tc.minReplica})
			defer e.Close()
			h := e.Health(ctx)
			if h.Status != "healthy" {
				t.Fatalf("health %+v", h)
			}
			if len(h.Warnings) != len(tc.want) {
				t.Fatalf("warnings %q, want %d matching %q", h.Warnings, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(h.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to say %q", i, h.Warnings[i], w)
				}
				if strings.Contains(h.Warnings[i], addr) {
					t.Errorf("warning %d names the server's address: %q", i, h.Warnings[i])
				}
			}
		})
	}
}
