package sluice_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// TestNoLoggerLogsNothing: a client opened without Config.Logger writes
// nothing to the process's default logger, even where it has something to
// say (the durable engine's replay report); with one, the caller's logger
// gets it. Not parallel: it replaces slog's default logger.
func TestNoLoggerLogsNothing(t *testing.T) {
	var dflt bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&dflt, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	ctx := context.Background()
	url := "file://" + t.TempDir()
	reopen := func(cfg *sluice.Config) {
		t.Helper()
		c, err := sluice.Open(ctx, url, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Queue("q").Add(ctx, "item", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	reopen(nil)
	reopen(nil) // replays the first run's log
	if dflt.Len() != 0 {
		t.Fatalf("a client given no logger wrote to slog.Default():\n%s", dflt.String())
	}

	var mine bytes.Buffer
	reopen(&sluice.Config{Logger: slog.New(slog.NewTextHandler(&mine, nil))})
	if !strings.Contains(mine.String(), "log replayed") {
		t.Fatalf("the caller's logger did not get the replay report:\n%s", mine.String())
	}
	if dflt.Len() != 0 {
		t.Fatalf("a client given a logger wrote to slog.Default() too:\n%s", dflt.String())
	}
}
