package sluice_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// The texts of the common errors are pinned: "sluice: ", the operation and
// the names it concerns once, then the sentinel's text, alike on every
// engine.
func TestErrorTexts(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("q")
		full := c.QueueWith("full", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyReject})
		if _, err := full.Add(ctx, "first", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Cache().Set(ctx, "cached", 1, 0); err != nil {
			t.Fatal(err)
		}
		held, ok, err := c.TryAcquire(ctx, "held", time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryAcquire: %v, %v", ok, err)
		}
		t.Cleanup(func() { _ = held.Release(context.Background()) })
		if _, err := q.Add(ctx, "a", &sluice.AddOptions{IdempotencyKey: "k1"}); err != nil {
			t.Fatal(err)
		}
		notHeld, err := c.LockFromToken("L", "not-the-token")
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			call func() error
			want string
		}{
			{"queue full", func() error { _, err := full.Add(ctx, "second", nil); return err },
				`sluice: add to queue "full": queue full (1/1); nothing written`},
			{"ack", func() error { return q.Ack(ctx, "9-9") },
				`sluice: ack "9-9" on queue "q": lease not found or expired`},
			{"nack", func() error { _, err := q.Nack(ctx, "9-9", nil); return err },
				`sluice: nack "9-9" on queue "q": lease not found or expired`},
			{"extend", func() error { return q.Extend(ctx, "9-9", time.Second) },
				`sluice: extend "9-9" on queue "q": lease not found or expired`},
			{"release", func() error { return notHeld.Release(ctx) },
				`sluice: release lock "L": lock not held`},
			{"refresh", func() error { return notHeld.Refresh(ctx, time.Second) },
				`sluice: refresh lock "L": lock not held`},
			{"lock held", func() error { _, err := c.Acquire(ctx, "held", time.Second, nil); return err },
				`sluice: acquire lock "held": lock held by another owner (waited 0s)`},
			{"invalid name", func() error { _, err := c.Queue("no spaces").Len(ctx); return err },
				`sluice: invalid name: queue name "no spaces" has ' ' at byte 2; allowed: letters, digits and _ . : - { }`},
			{"invalid argument", func() error { _, _, err := q.Get(ctx, -time.Second); return err },
				`sluice: invalid argument: negative timeout -1s`},
			{"not JSON", func() error { _, err := q.Add(ctx, json.RawMessage("{nope"), nil); return err },
				`sluice: add to queue "q": item 0: not valid JSON (nothing written)`},
			{"invalid UTF-8", func() error { _, err := q.Add(ctx, "a\xffb", nil); return err },
				`sluice: add to queue "q": item 0: not valid UTF-8 text (nothing written)`},
			{"invalid UTF-8 name", func() error { _, _, err := c.TryAcquire(ctx, "a\xffb", time.Second); return err },
				`sluice: invalid name: lock name "a\xffb" is not valid UTF-8 text`},
			{"idempotency conflict", func() error { _, err := q.Add(ctx, "b", &sluice.AddOptions{IdempotencyKey: "k1"}); return err },
				`sluice: add to queue "q": idempotency key reused with other items (key "k1")`},
			{"wrong type", func() error { _, err := c.Queue("cached").Add(ctx, "x", nil); return err },
				`sluice: add to queue "cached": key holds the wrong kind of value`},
		}
		for _, tc := range cases {
			err := tc.call()
			if err == nil || err.Error() != tc.want {
				t.Errorf("%s: error %v\nwant %s", tc.name, err, tc.want)
			}
		}

		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = q.Len(ctx)
		if want := `sluice: length of queue "q": engine closed`; err == nil || err.Error() != want {
			t.Errorf("closed: error %v\nwant %s", err, want)
		}
	})
}

// Open's URL errors are URLErrors (matching ErrInvalidArgument) that quote
// the URL with its password redacted.
func TestURLErrorText(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"ftp://u:pw@h/x":            `sluice: open: invalid engine URL "ftp://u:xxxxx@h/x": unsupported scheme (want redis, rediss, redis+cluster, redis+sentinel, file or mem; a directory is file:///abs/dir or file:rel/dir)`,
		"redis://u:pw@h:notaport/0": `sluice: open: invalid engine URL "redis://u:xxxxx@h:notaport/0": `,
		"file://host/dir":           `sluice: open: invalid engine URL "file://host/dir": `,
	} {
		_, err := sluice.Open(context.Background(), url, nil)
		var ue *sluice.URLError
		if !errors.As(err, &ue) || !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("Open(%q): %v (%T), want a URLError matching ErrInvalidArgument", url, err, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open(%q): %v\nwant %s...", url, err, want)
		}
		if strings.Contains(err.Error(), "pw") || strings.Contains(ue.URL, "pw") {
			t.Errorf("Open(%q): error shows the password", url)
		}
	}
}

// A write fewer replicas confirmed than asked is a *sluice.ReplicaAckError,
// which callers match without an internal package.
func TestReplicaAckErrorIsExported(t *testing.T) {
	t.Parallel()
	redistest.Client(t) // skips (or fails under CI) when Redis is down
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, redistest.Client(t), prefix)
	// The test server has fewer than 50 replicas.
	c := open(t, redistest.URL(), &sluice.Config{KeyPrefix: prefix, MinReplicasAck: 50})
	_, err := c.Queue("durable").Add(context.Background(), "x", nil)
	var ae *sluice.ReplicaAckError
	if !errors.As(err, &ae) || ae.Wanted != 50 {
		t.Fatalf("Add: %v (%T), want a ReplicaAckError for 50 replicas", err, err)
	}
	if want := `sluice: add to queue "durable": applied on the primary but confirmed by only `; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Add: %v\nwant %s...", err, want)
	}
}

// A Redis URL whose scheme does not match the server's topology (a cluster
// URL for a standalone server, or the reverse) is the URL's mistake: a
// *URLError matching ErrInvalidArgument, saying which scheme to use.
func TestWrongTopologyIsURLError(t *testing.T) {
	t.Parallel()
	redistest.Client(t) // skips (or fails under CI) when Redis is down
	u, err := url.Parse(redistest.URL())
	if err != nil {
		t.Fatal(err)
	}
	_, err = sluice.Open(context.Background(), "redis+cluster://"+u.Host, nil)
	var ue *sluice.URLError
	if !errors.As(err, &ue) || !errors.Is(err, sluice.ErrInvalidArgument) {
		t.Fatalf("Open with a cluster URL for a standalone server = %v; want a *sluice.URLError", err)
	}
	want := `sluice: open: invalid engine URL "redis+cluster://` + u.Host + `": server topology does not match the URL scheme: redis+cluster:// was given but the server is not in cluster mode; use redis://`
	if err.Error() != want {
		t.Errorf("error %q\nwant %q", err, want)
	}
}
