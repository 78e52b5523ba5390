package sluice_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// A per-call bound looser than the declared one is said once: the public
// package names the operation and the queue, the engine says what conflicts.
func TestSettingsConflictTextSaysEachThingOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redistest.Client(t) // skips (or fails under CI) when Redis is down
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, redistest.Client(t), prefix)
	cfgs := map[string]*sluice.Config{"mem://": nil, "file:" + t.TempDir(): nil, redistest.URL(): {KeyPrefix: prefix}}
	for url, cfg := range cfgs {
		c := open(t, url, cfg)
		if err := c.DeclareQueue(ctx, "jobs", sluice.QueueSettings{MaxSize: 100}); err != nil {
			t.Fatal(err)
		}
		_, err := c.Queue("jobs").Add(ctx, "x", &sluice.AddOptions{MaxSize: 1000})
		if !errors.Is(err, sluice.ErrSettingsConflict) {
			t.Fatalf("%s: Add = %v, want ErrSettingsConflict", url, err)
		}
		const want = `sluice: add to queue "jobs": max size 1000: conflicts with the queue's declared settings (declared max size 100); nothing written`
		if err.Error() != want {
			t.Errorf("%s: Add error\n got %s\nwant %s", url, err, want)
		}
	}
}
