package enginetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

func cacheCases(t *testing.T, h Harness) {
	t.Run("SetGet", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		cacheSet(t, ctx, e, "k", "v", 0, false, true)
		wantCached(t, ctx, e, "k", "v")
		wantTTL(t, ctx, e, "k", -1)
		v, ok, err := e.CacheGetCached(ctx, "k", time.Second)
		if err != nil || !ok || v != "v" {
			t.Errorf("CacheGetCached = %q, %v, %v; want \"v\", true, nil", v, ok, err)
		}
		wantNotCached(t, ctx, e, "missing")
		v, ok, err = e.CacheGetCached(ctx, "missing", time.Second)
		if err != nil || ok || v != "" {
			t.Errorf("CacheGetCached(missing) = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
	})

	t.Run("ValuesFaithful", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		values := map[string]string{
			"empty":   "",
			"binary":  "\x00\x01\xff\xfe",
			"unicode": "héllo ✓ 😀",
			"json":    `{"a": [1, 2], "b": "\"q\""}`,
			"zstd":    "Z:KLUv/QBYKQAAaGVsbG8=",
			"big":     strings.Repeat("x", 1<<20),
		}
		for k, v := range values {
			cacheSet(t, ctx, e, k, v, 0, false, true)
		}
		for k, v := range values {
			wantCached(t, ctx, e, k, v)
		}
	})

	t.Run("OverwriteClearsTTL", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		cacheSet(t, ctx, e, "k", "v1", time.Minute, false, true)
		wantTTLWithin(t, ctx, e, "k", time.Minute)
		cacheSet(t, ctx, e, "k", "v2", 0, false, true)
		wantCached(t, ctx, e, "k", "v2")
		wantTTL(t, ctx, e, "k", -1)
		cacheSet(t, ctx, e, "k", "v3", 90*time.Second, false, true)
		wantCached(t, ctx, e, "k", "v3")
		wantTTLWithin(t, ctx, e, "k", 90*time.Second)
	})

	t.Run("TTLMissing", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		d, ok, err := e.CacheTTL(ctx, "missing")
		if err != nil || ok {
			t.Errorf("CacheTTL(missing) = %v, %v, %v; want ok false, nil", d, ok, err)
		}
	})

	t.Run("SetNX", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		cacheSet(t, ctx, e, "k", "first", time.Minute, true, true)
		wantTTLWithin(t, ctx, e, "k", time.Minute)
		cacheSet(t, ctx, e, "k", "second", 0, true, false)
		wantCached(t, ctx, e, "k", "first")
		wantTTLWithin(t, ctx, e, "k", time.Minute)
		cacheSet(t, ctx, e, "plain", "p", 0, true, true)
		wantTTL(t, ctx, e, "plain", -1)
	})

	t.Run("ExistsDelete", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		for _, k := range []string{"a", "b", "c"} {
			cacheSet(t, ctx, e, k, "v-"+k, 0, false, true)
		}
		wantCount(t, "CacheExists(a, b, zz)", 2)(e.CacheExists(ctx, "a", "b", "zz"))
		wantCount(t, "CacheExists(zz)", 0)(e.CacheExists(ctx, "zz"))
		wantCount(t, "CacheDelete(a, zz)", 1)(e.CacheDelete(ctx, "a", "zz"))
		wantCount(t, "CacheExists(a, b, c)", 2)(e.CacheExists(ctx, "a", "b", "c"))
		wantCount(t, "CacheDelete(b, c)", 2)(e.CacheDelete(ctx, "b", "c"))
		wantCount(t, "CacheDelete(b)", 0)(e.CacheDelete(ctx, "b"))
		wantCount(t, "CacheExists(a, b, c)", 0)(e.CacheExists(ctx, "a", "b", "c"))
		wantNotCached(t, ctx, e, "b")
	})

	t.Run("Expire", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		ok, err := e.CacheExpire(ctx, "missing", time.Minute)
		if err != nil || ok {
			t.Errorf("CacheExpire(missing) = %v, %v; want false, nil", ok, err)
		}
		cacheSet(t, ctx, e, "k", "v", 0, false, true)
		ok, err = e.CacheExpire(ctx, "k", time.Minute)
		if err != nil || !ok {
			t.Fatalf("CacheExpire(k) = %v, %v; want true, nil", ok, err)
		}
		wantTTLWithin(t, ctx, e, "k", time.Minute)
		wantCached(t, ctx, e, "k", "v")
	})

	t.Run("RealExpiry", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		cacheSet(t, ctx, e, "short", "v", 50*time.Millisecond, false, true)
		cacheSet(t, ctx, e, "expired-later", "v", 0, false, true)
		if ok, err := e.CacheExpire(ctx, "expired-later", 50*time.Millisecond); err != nil || !ok {
			t.Fatalf("CacheExpire = %v, %v; want true, nil", ok, err)
		}
		for _, k := range []string{"short", "expired-later"} {
			eventually(t, ctx, "expiry of "+k, func() (bool, error) {
				_, ok, err := e.CacheGet(ctx, k)
				return !ok, err
			})
			wantNotCached(t, ctx, e, k)
			wantCount(t, "CacheExists of an expired key", 0)(e.CacheExists(ctx, k))
			if d, ok, err := e.CacheTTL(ctx, k); err != nil || ok {
				t.Errorf("CacheTTL(expired) = %v, %v, %v; want ok false, nil", d, ok, err)
			}
		}
		// An expired key is free for SET NX again.
		cacheSet(t, ctx, e, "short", "again", 0, true, true)
		wantCached(t, ctx, e, "short", "again")
	})
}

func cacheSet(t *testing.T, ctx context.Context, e engine.Engine, key, value string, ttl time.Duration, nx, want bool) {
	t.Helper()
	ok, err := e.CacheSet(ctx, engine.CacheSetParams{Key: key, Value: value, TTL: ttl, OnlyIfAbsent: nx})
	if err != nil {
		t.Fatalf("CacheSet(%q, nx %v): %v", key, nx, err)
	}
	if ok != want {
		t.Errorf("CacheSet(%q, nx %v) = %v, want %v", key, nx, ok, want)
	}
}

func wantCached(t *testing.T, ctx context.Context, e engine.Engine, key, want string) {
	t.Helper()
	v, ok, err := e.CacheGet(ctx, key)
	if err != nil || !ok || v != want {
		t.Errorf("CacheGet(%q) = %s, %v, %v; want %s, true, nil", key, clip(v), ok, err, clip(want))
	}
}

func wantNotCached(t *testing.T, ctx context.Context, e engine.Engine, key string) {
	t.Helper()
	v, ok, err := e.CacheGet(ctx, key)
	if err != nil || ok || v != "" {
		t.Errorf("CacheGet(%q) = %s, %v, %v; want \"\", false, nil", key, clip(v), ok, err)
	}
}

// wantTTL checks an exact TTL answer (only -1, "no expiry", is exact).
func wantTTL(t *testing.T, ctx context.Context, e engine.Engine, key string, want time.Duration) {
	t.Helper()
	d, ok, err := e.CacheTTL(ctx, key)
	if err != nil || !ok || d != want {
		t.Errorf("CacheTTL(%q) = %v, %v, %v; want %v, true, nil", key, d, ok, err, want)
	}
}

// wantTTLWithin checks 0 < TTL <= most.
func wantTTLWithin(t *testing.T, ctx context.Context, e engine.Engine, key string, most time.Duration) {
	t.Helper()
	d, ok, err := e.CacheTTL(ctx, key)
	if err != nil || !ok || d <= 0 || d > most {
		t.Errorf("CacheTTL(%q) = %v, %v, %v; want within (0, %v], true, nil", key, d, ok, err, most)
	}
}

func wantCount(t *testing.T, what string, want int64) func(int64, error) {
	t.Helper()
	return func(n int64, err error) {
		t.Helper()
		if err != nil || n != want {
			t.Errorf("%s = %d, %v; want %d, nil", what, n, err, want)
		}
	}
}
