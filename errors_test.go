package sluice_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// Invalid UTF-8 is refused with ErrInvalidUTF8 (and ErrInvalidArgument, or
// ErrInvalidName for names) by every call that takes text, on every
// engine; nothing is written, and no error names an internal package.
func TestInvalidUTF8IsRefused(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("utf8")
		bad := "a\xffb"
		calls := map[string]func() error{
			"Add string":      func() error { _, err := q.Add(ctx, bad, nil); return err },
			"Add map":         func() error { _, err := q.Add(ctx, map[string]any{"k": bad}, nil); return err },
			"Add raw":         func() error { _, err := q.Add(ctx, json.RawMessage(`{"k": "`+bad+`"}`), nil); return err },
			"AddBatch":        func() error { _, err := q.AddBatch(ctx, []any{"ok", map[string]string{bad: "v"}}, nil); return err },
			"Publish string":  func() error { _, err := c.Publish(ctx, "ch", bad); return err },
			"Publish map":     func() error { _, err := c.Publish(ctx, "ch", []string{bad}); return err },
			"Cache.Set":       func() error { return c.Cache().Set(ctx, "k", bad, 0) },
			"Cache.Set raw":   func() error { return c.Cache().Set(ctx, "k", json.RawMessage(`"`+bad+`"`), 0) },
			"Cache.Set map":   func() error { return c.Cache().Set(ctx, "k", map[string]string{"v": bad}, 0) },
			"cache key":       func() error { return c.Cache().Set(ctx, bad, 1, 0) },
			"Publish channel": func() error { _, err := c.Publish(ctx, bad, 1); return err },
			"Subscribe":       func() error { _, err := c.Subscribe(ctx, bad); return err },
			"lock name":       func() error { _, _, err := c.TryAcquire(ctx, bad, time.Second); return err },
			"Nack reason":     func() error { _, err := q.Nack(ctx, "1.1", &sluice.NackOptions{Reason: bad}); return err },
		}
		for name, call := range calls {
			err := call()
			if !errors.Is(err, sluice.ErrInvalidUTF8) || !errors.Is(err, sluice.ErrInvalidArgument) {
				t.Errorf("%s: error %v, want ErrInvalidUTF8 and ErrInvalidArgument", name, err)
				continue
			}
			if strings.Contains(err.Error(), "codec:") {
				t.Errorf("%s: error %q names an internal package", name, err)
			}
		}
		for _, name := range []string{"cache key", "Publish channel", "Subscribe", "lock name"} {
			if err := calls[name](); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("%s: error %v, want ErrInvalidName too", name, err)
			}
		}
		if n, err := q.Len(ctx); err != nil || n != 0 {
			t.Errorf("queue after refused adds: Len = %d, %v; want 0", n, err)
		}
		if n, err := c.Cache().Exists(ctx, "k"); err != nil || n != 0 {
			t.Errorf("cache after refused sets: Exists = %d, %v; want 0", n, err)
		}
	})
}

// A Redis that goes away makes calls fail with ErrUnavailable, which a
// caller can tell from its own mistakes and retry.
func TestRedisOutageIsErrUnavailable(t *testing.T) {
	t.Parallel()
	redistest.Client(t) // skips (or fails under CI) when Redis is down
	proxy := redistest.NewProxy(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, redistest.Client(t), prefix)
	c := open(t, proxy.URL(), &sluice.Config{KeyPrefix: prefix})
	ctx := context.Background()
	q := c.Queue("outage")
	if _, err := q.Add(ctx, "before", nil); err != nil {
		t.Fatal(err)
	}
	proxy.Stop()

	calls := map[string]func(ctx context.Context) error{
		"Add":     func(ctx context.Context) error { _, err := q.Add(ctx, "x", nil); return err },
		"Get":     func(ctx context.Context) error { _, _, err := q.Get(ctx, 0); return err },
		"Len":     func(ctx context.Context) error { _, err := q.Len(ctx); return err },
		"Publish": func(ctx context.Context) error { _, err := c.Publish(ctx, "ch", 1); return err },
		"Cache":   func(ctx context.Context) error { return c.Cache().Set(ctx, "k", 1, 0) },
	}
	for name, call := range calls {
		// Reads are retried by the Redis client until the deadline.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := call(cctx)
		cancel()
		if !errors.Is(err, sluice.ErrUnavailable) {
			t.Errorf("%s after Redis went away: %v, want ErrUnavailable", name, err)
		}
		// The text says it once, after the operation and its names.
		if want := `sluice: add to queue "outage": engine unavailable: `; name == "Add" && (err == nil || !strings.HasPrefix(err.Error(), want)) {
			t.Errorf("add after Redis went away: %v\nwant %s...", err, want)
		}
	}
}
