package redis

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// rueidis keeps a background ticker goroutine per process.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._background"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis/internal/util.(*Ticker).run"),
		// After a topology change a cluster client closes the connections
		// of departed nodes 5 s later, on a goroutine of its own.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		// After a redirect or a lost node a cluster client schedules a
		// topology refresh a moment later (lazyRefresh); Close does not
		// cancel the sleeping goroutine, which ends by itself.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}

// fixture is one test's engine over a key prefix of its own, plus a raw
// client to look at what the engine wrote.
type fixture struct {
	e      *Engine
	raw    rueidis.Client
	prefix string
	ctx    context.Context
}

func setup(t testing.TB) fixture {
	t.Helper()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, c, prefix)
	e := New(c, Options{Keys: keyspace.Space{Prefix: prefix}})
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return fixture{e: e, raw: c, prefix: prefix, ctx: ctx}
}

func splitLines(s string) []string {
	return strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

func unwrapOverflow(t *testing.T, env string) string {
	t.Helper()
	var doc struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(env), &doc); err != nil {
		t.Fatalf("overflow entry %q: %v", env, err)
	}
	return doc.Data
}

func res(accepted bool, length, dropped, moved int64) engine.AddResult {
	return engine.AddResult{Accepted: accepted, QueueLength: length, Dropped: dropped, MovedToDLQ: moved}
}
