package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// TestNameLimitsMatchTheLibrary checks that one rule decides the length
// of cache keys, lock names and channel names: the longest name the
// library accepts is the longest the service accepts (for cache keys and
// locks, once the service's namespace is added), and one byte more is a
// 400 naming the limit over HTTP and ErrInvalidName in the library.
func TestNameLimitsMatchTheLibrary(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	ctx := context.Background()
	cases := []struct {
		what  string
		limit int
		ok    func(name string)              // the longest name, over HTTP
		http  func(name string) (msg string) // one byte more, over HTTP: its 400
		lib   func(name string) error        // one byte more, in the library
	}{
		{
			what: "cache key", limit: keyspace.MaxServiceCacheKeyLen,
			ok: func(k string) { b.expect(204, "PUT", "/v1/cache/"+k, `1`) },
			http: func(k string) string {
				return b.expectError(400, "PUT", "/v1/cache/"+k, `1`)
			},
			lib: func(k string) error {
				_, _, err := b.client.Cache().Get(ctx, keyspace.ServiceCacheKey(k))
				return err
			},
		},
		{
			what: "lock name", limit: keyspace.MaxServiceLockNameLen,
			ok: func(n string) { b.expect(200, "POST", "/v1/locks/"+n, `{"ttl_ms": 1000}`) },
			http: func(n string) string {
				return b.expectError(400, "POST", "/v1/locks/"+n, `{"ttl_ms": 1000}`)
			},
			lib: func(n string) error {
				_, err := b.client.LockFromToken(keyspace.ServiceLockName(n), "1.0.0")
				return err
			},
		},
		{
			what: "channel name", limit: keyspace.MaxChannelLen,
			ok: func(c string) { b.expect(200, "POST", "/v1/channels/"+c+"/messages", `1`) },
			http: func(c string) string {
				return b.expectError(400, "POST", "/v1/channels/"+c+"/messages", `1`)
			},
			lib: func(c string) error {
				_, err := b.client.Publish(ctx, c, 1)
				return err
			},
		},
	}
	for _, c := range cases {
		longest := strings.Repeat("n", c.limit)
		c.ok(longest)
		if msg := c.http(longest + "n"); !strings.Contains(msg, fmt.Sprintf("%s must be 1-%d bytes", c.what, c.limit)) {
			t.Errorf("%s of %d bytes over HTTP: error %q does not name the limit", c.what, c.limit+1, msg)
		}
		if err := c.lib(longest + "n"); !errors.Is(err, sluice.ErrInvalidName) {
			t.Errorf("%s of %d bytes in the library: %v, want ErrInvalidName", c.what, c.limit+1, err)
		}
	}
	// The namespaced forms are the library's own limit exactly.
	if got := len(keyspace.ServiceCacheKey(strings.Repeat("n", keyspace.MaxServiceCacheKeyLen))); got != keyspace.MaxKeyLen {
		t.Errorf("stored cache key of the longest HTTP key: %d bytes, want %d", got, keyspace.MaxKeyLen)
	}
	if got := len(keyspace.ServiceLockName(strings.Repeat("n", keyspace.MaxServiceLockNameLen))); got != keyspace.MaxKeyLen {
		t.Errorf("stored lock name of the longest HTTP name: %d bytes, want %d", got, keyspace.MaxKeyLen)
	}
	// And the library's own names go up to the same limit.
	if err := b.client.Cache().Set(ctx, strings.Repeat("k", keyspace.MaxKeyLen), 1, 0); err != nil {
		t.Errorf("library cache key of %d bytes: %v", keyspace.MaxKeyLen, err)
	}
	if _, _, err := b.client.Cache().Get(ctx, strings.Repeat("k", keyspace.MaxKeyLen+1)); !errors.Is(err, sluice.ErrInvalidName) {
		t.Errorf("library cache key of %d bytes: %v, want ErrInvalidName", keyspace.MaxKeyLen+1, err)
	}
}
