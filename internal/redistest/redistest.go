// Package redistest connects tests to a real Redis: SLUICE_TEST_REDIS_URL,
// else redis://127.0.0.1:6379/15. Tests get a unique key prefix instead of
// flushing a shared database, so they can run in parallel. When Redis is
// unreachable a test is skipped, except under CI=true, where it fails:
// CI must never pass by skipping the Redis tests.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// DefaultURL is used when SLUICE_TEST_REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/15"

// URL returns the Redis URL tests should use.
func URL() string {
	if u := os.Getenv("SLUICE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Unavailable skips t, or fails it under CI=true.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("Redis at %s is required under CI=true: %v", URL(), err)
	}
	t.Skipf("Redis at %s unreachable: %v", URL(), err)
}

// Client returns a rueidis client for URL(), closed when t ends.
func Client(t testing.TB) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(URL())
	if err != nil {
		t.Fatalf("SLUICE_TEST_REDIS_URL: %v", err)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		Unavailable(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		Unavailable(t, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Prefix returns a key prefix unique to this test run, like "t:1f2e3d4c:".
func Prefix(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t:" + hex.EncodeToString(b[:]) + ":"
}

// Cleanup deletes every key that starts with prefix when t ends.
func Cleanup(t testing.TB, c rueidis.Client, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var cursor uint64
		for {
			res, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				return
			}
			if len(res.Elements) > 0 {
				c.Do(ctx, c.B().Unlink().Key(res.Elements...).Build())
			}
			if res.Cursor == 0 {
				return
			}
			cursor = res.Cursor
		}
	})
}
