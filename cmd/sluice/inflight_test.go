package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// openLike opens, in the test, the engine that the CLI flags conn name.
func openLike(t *testing.T, conn []string) *sluice.Client {
	t.Helper()
	url, cfg := "", &sluice.Config{}
	for i := 0; i+1 < len(conn); i += 2 {
		switch conn[i] {
		case "--data-dir":
			url = "file://" + conn[i+1]
		case "--redis":
			url = conn[i+1]
		case "--key-prefix":
			cfg.KeyPrefix = conn[i+1]
		}
	}
	c, err := sluice.Open(context.Background(), url, cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	return c
}

func TestQueueInflightAndStats(t *testing.T) {
	backends(t, func(t *testing.T, conn ...string) {
		r := cli(t, nil, "", args([]string{"queue", "inflight", "work"}, conn)...).want(t, exitOK)
		if !strings.Contains(r.stdout, "(nothing in flight)") {
			t.Errorf("empty inflight printed %q", r.stdout)
		}
		ctx := context.Background()
		c := openLike(t, conn)
		q := c.Queue("work")
		if _, err := q.AddBatch(ctx, []any{map[string]string{"long": strings.Repeat("x", 200)}, 2, 3}, nil); err != nil {
			t.Fatal(err)
		}
		ds, err := q.ReceiveBatch(ctx, 2, 0, &sluice.ReceiveOptions{Lease: time.Hour})
		if err != nil || len(ds) != 2 {
			t.Fatalf("receive: %v, %v", ds, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}

		r = cli(t, nil, "", args([]string{"queue", "inflight", "work", "--limit", "1"}, conn)...).want(t, exitOK)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], ds[0].ID) ||
			!strings.Contains(lines[1], "leased") || !strings.HasSuffix(lines[1], `xxx...`) || !strings.HasPrefix(lines[2], "more: --cursor ") {
			t.Fatalf("inflight table:\n%s", r.stdout)
		}
		cursor := strings.TrimPrefix(lines[2], "more: --cursor ")
		r = cli(t, nil, "", args([]string{"queue", "inflight", "work", "--json", "--limit", "1", "--cursor", cursor}, conn)...).want(t, exitOK)
		out := decode[struct {
			Deliveries []struct {
				ID         string   `json:"id"`
				AgeSeconds *float64 `json:"age_seconds"`
				Item       int      `json:"item"`
			} `json:"deliveries"`
			NextCursor string `json:"next_cursor"`
		}](t, r.stdout)
		if len(out.Deliveries) != 1 || out.Deliveries[0].ID != ds[1].ID || out.Deliveries[0].AgeSeconds == nil || out.Deliveries[0].Item != 2 || out.NextCursor != "" {
			t.Fatalf("inflight --json = %s", r.stdout)
		}
		cli(t, nil, "", args([]string{"queue", "inflight", "work", "--limit", "0"}, conn)...).want(t, exitUsage)

		r = cli(t, nil, "", args([]string{"queue", "stats", "work"}, conn)...).want(t, exitOK)
		st := decode[sluice.QueueStats](t, r.stdout)
		if st.Added != 3 || st.Delivered != 2 || st.Length != 1 || st.InFlight != 2 {
			t.Fatalf("stats = %s", r.stdout)
		}
	})
}
