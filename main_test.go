package sluice_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	// A rueidis cluster client whose topology refresh dropped connections
	// closes them 5 s later in a goroutine of its own that Close does not
	// wait for; the cluster the tests use is shared, so its topology may
	// change under a test.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		// The same client schedules a topology refresh a moment after a
		// redirect (lazyRefresh) on a goroutine Close does not cancel.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

// engines runs f once per engine: embedded, durable embedded and Redis
// (with a unique key prefix).
func engines(t *testing.T, f func(t *testing.T, c *sluice.Client)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		f(t, open(t, "", nil))
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		f(t, open(t, "file://"+t.TempDir(), nil))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		redistest.Client(t) // skips (or fails under CI) when Redis is down
		prefix := redistest.Prefix(t)
		c := open(t, redistest.URL(), &sluice.Config{KeyPrefix: prefix})
		redistest.Cleanup(t, redistest.Client(t), prefix)
		f(t, c)
	})
}

func open(t *testing.T, url string, cfg *sluice.Config) *sluice.Client {
	t.Helper()
	c, err := sluice.Open(context.Background(), url, cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
