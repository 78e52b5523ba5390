package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/redistest"
)

func mustCacheSet(t testing.TB, e *Engine, key, value string, ttl time.Duration, nx bool) bool {
	t.Helper()
	ok, err := e.CacheSet(context.Background(), engine.CacheSetParams{Key: key, Value: value, TTL: ttl, OnlyIfAbsent: nx})
	if err != nil {
		t.Fatalf("CacheSet(%q): %v", key, err)
	}
	return ok
}

func mustCacheGet(t testing.TB, e *Engine, key string) (string, bool) {
	t.Helper()
	v, ok, err := e.CacheGet(context.Background(), key)
	if err != nil {
		t.Fatalf("CacheGet(%q): %v", key, err)
	}
	return v, ok
}

func mustCacheTTL(t testing.TB, e *Engine, key string) (time.Duration, bool) {
	t.Helper()
	ttl, ok, err := e.CacheTTL(context.Background(), key)
	if err != nil {
		t.Fatalf("CacheTTL(%q): %v", key, err)
	}
	return ttl, ok
}

func TestCacheSetGetUnderPrefix(t *testing.T) {
	t.Parallel()
	raw := redistest.Client(t)
	e, prefix := capEngine(t, raw)
	ctx := context.Background()

	if _, ok := mustCacheGet(t, e, "camera:1:status"); ok {
		t.Fatal("CacheGet of a missing key reported ok")
	}
	if !mustCacheSet(t, e, "camera:1:status", `{"online":true}`, 0, false) {
		t.Fatal("CacheSet without NX reported false")
	}
	if v, ok := mustCacheGet(t, e, "camera:1:status"); !ok || v != `{"online":true}` {
		t.Errorf("CacheGet = %q, %v", v, ok)
	}
	stored, err := raw.Do(ctx, raw.B().Get().Key(prefix+"camera:1:status").Build()).ToString()
	if err != nil || stored != `{"online":true}` {
		t.Errorf("raw GET of the prefixed key = %q, %v; want the value stored as is", stored, err)
	}
	mustCacheSet(t, e, "camera:1:status", "v2", 0, false)
	if v, _ := mustCacheGet(t, e, "camera:1:status"); v != "v2" {
		t.Errorf("overwrite: CacheGet = %q, want v2", v)
	}
}

func TestCacheTTLSemantics(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	ctx := context.Background()

	mustCacheSet(t, e, "ttl", "v", 10*time.Second, false)
	if ttl, ok := mustCacheTTL(t, e, "ttl"); !ok || ttl <= 9*time.Second || ttl > 10*time.Second {
		t.Errorf("TTL after a 10s set = %v, %v", ttl, ok)
	}
	mustCacheSet(t, e, "forever", "v", 0, false)
	if ttl, ok := mustCacheTTL(t, e, "forever"); !ok || ttl != -1 {
		t.Errorf("TTL of a key without expiry = %v, %v; want -1, true", ttl, ok)
	}
	if ttl, ok := mustCacheTTL(t, e, "missing"); ok || ttl != 0 {
		t.Errorf("TTL of a missing key = %v, %v; want 0, false", ttl, ok)
	}

	// A plain set replaces the TTL with the new one (here: none).
	mustCacheSet(t, e, "ttl", "v", 0, false)
	if ttl, _ := mustCacheTTL(t, e, "ttl"); ttl != -1 {
		t.Errorf("TTL after a set without ttl = %v, want -1", ttl)
	}

	ok, err := e.CacheExpire(ctx, "forever", time.Minute)
	if err != nil || !ok {
		t.Fatalf("CacheExpire of an existing key = %v, %v", ok, err)
	}
	if ttl, _ := mustCacheTTL(t, e, "forever"); ttl <= 59*time.Second || ttl > time.Minute {
		t.Errorf("TTL after CacheExpire(1m) = %v", ttl)
	}
	if ok, err := e.CacheExpire(ctx, "missing", time.Minute); err != nil || ok {
		t.Errorf("CacheExpire of a missing key = %v, %v; want false, nil", ok, err)
	}

	// Sub-millisecond TTLs round up instead of becoming "no expiry" or an error.
	mustCacheSet(t, e, "tiny", "v", time.Microsecond, false)
	if ttl, ok := mustCacheTTL(t, e, "tiny"); ok && (ttl < 0 || ttl > time.Millisecond) {
		t.Errorf("TTL of a 1µs set = %v, want at most 1ms", ttl)
	}

	if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "neg", Value: "v", TTL: -time.Second}); err == nil {
		t.Error("CacheSet with a negative ttl succeeded")
	}
	if _, err := e.CacheExpire(ctx, "forever", 0); err == nil {
		t.Error("CacheExpire with ttl 0 succeeded")
	}
	if _, ok := mustCacheGet(t, e, "forever"); !ok {
		t.Error("a refused CacheExpire deleted the key")
	}
}

// One real expiry, observed by polling rather than by sleeping.
func TestCacheEntryExpires(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	mustCacheSet(t, e, "short", "v", 30*time.Millisecond, false)
	capEventually(t, "entry expired", func() bool {
		_, ok := mustCacheGet(t, e, "short")
		return !ok
	})
	if _, ok := mustCacheTTL(t, e, "short"); ok {
		t.Error("CacheTTL still finds the expired key")
	}
}

func TestCacheSetOnlyIfAbsent(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))

	if !mustCacheSet(t, e, "k", "first", time.Minute, true) {
		t.Fatal("NX set of a missing key reported false")
	}
	if mustCacheSet(t, e, "k", "second", 0, true) {
		t.Error("NX set of an existing key reported true")
	}
	if v, _ := mustCacheGet(t, e, "k"); v != "first" {
		t.Errorf("value after a refused NX set = %q, want first", v)
	}
	if ttl, _ := mustCacheTTL(t, e, "k"); ttl <= 59*time.Second {
		t.Errorf("a refused NX set changed the TTL to %v", ttl)
	}
	if !mustCacheSet(t, e, "plain", "v", 0, true) {
		t.Error("NX set without ttl of a missing key reported false")
	}
	if ttl, _ := mustCacheTTL(t, e, "plain"); ttl != -1 {
		t.Errorf("NX set without ttl: TTL = %v, want -1", ttl)
	}
}

func TestCacheExistsAndDeleteCount(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	ctx := context.Background()
	mustCacheSet(t, e, "a", "1", 0, false)
	mustCacheSet(t, e, "b", "2", time.Minute, false)

	if n, err := e.CacheExists(ctx, "a", "b", "missing", "a"); err != nil || n != 3 {
		t.Errorf("CacheExists(a, b, missing, a) = %d, %v; want 3 (a key named twice counts twice)", n, err)
	}
	if n, err := e.CacheExists(ctx); err != nil || n != 0 {
		t.Errorf("CacheExists() = %d, %v; want 0", n, err)
	}
	if n, err := e.CacheDelete(ctx, "a", "missing", "a"); err != nil || n != 1 {
		t.Errorf("CacheDelete(a, missing, a) = %d, %v; want 1", n, err)
	}
	if n, err := e.CacheExists(ctx, "a", "b"); err != nil || n != 1 {
		t.Errorf("CacheExists after delete = %d, %v; want 1", n, err)
	}
	if n, err := e.CacheDelete(ctx); err != nil || n != 0 {
		t.Errorf("CacheDelete() = %d, %v; want 0", n, err)
	}
}

func TestCacheWrongType(t *testing.T) {
	t.Parallel()
	raw := redistest.Client(t)
	e, prefix := capEngine(t, raw)
	ctx := context.Background()
	if err := raw.Do(ctx, raw.B().Rpush().Key(prefix+"list").Element("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CacheGet(ctx, "list"); !errors.Is(err, engine.ErrWrongType) {
		t.Errorf("CacheGet of a list: %v, want ErrWrongType", err)
	}
	if _, _, err := e.CacheGetCached(ctx, "list", time.Second); !errors.Is(err, engine.ErrWrongType) {
		t.Errorf("CacheGetCached of a list: %v, want ErrWrongType", err)
	}
}

// A cached read is answered from process memory, and a write by another
// client evicts it once the server's invalidation arrives.
func TestCacheGetCachedSeesOtherWriters(t *testing.T) {
	t.Parallel()
	e, prefix := capEngine(t, capClient(t, true))
	other := redistest.Client(t)
	ctx := context.Background()
	mustCacheSet(t, e, "shared", "v1", 0, false)

	get := func() (string, bool) {
		v, ok, err := e.CacheGetCached(ctx, "shared", time.Minute)
		if err != nil {
			t.Fatalf("CacheGetCached: %v", err)
		}
		return v, ok
	}
	if v, ok := get(); !ok || v != "v1" {
		t.Fatalf("first cached read = %q, %v", v, ok)
	}
	cmd := e.client.B().Get().Key(prefix + "shared").Cache()
	if res := e.client.DoCache(ctx, cmd, time.Minute); !res.IsCacheHit() {
		t.Fatal("the value read by CacheGetCached is not in the client-side cache")
	}

	if err := other.Do(ctx, other.B().Set().Key(prefix+"shared").Value("v2").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	capEventually(t, "cached read sees v2", func() bool { v, _ := get(); return v == "v2" })

	if err := other.Do(ctx, other.B().Del().Key(prefix+"shared").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	capEventually(t, "cached read sees the delete", func() bool { _, ok := get(); return !ok })
}

// With client-side caching off, CacheGetCached is a plain read.
func TestCacheGetCachedWithoutClientCache(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	ctx := context.Background()
	mustCacheSet(t, e, "k", "v1", 0, false)
	for _, want := range []string{"v1", "v2"} {
		mustCacheSet(t, e, "k", want, 0, false)
		if v, ok, err := e.CacheGetCached(ctx, "k", time.Minute); err != nil || !ok || v != want {
			t.Errorf("CacheGetCached = %q, %v, %v; want %q", v, ok, err, want)
		}
	}
	if _, ok, err := e.CacheGetCached(ctx, "missing", time.Minute); err != nil || ok {
		t.Errorf("CacheGetCached of a missing key = %v, %v", ok, err)
	}
	if v, ok, err := e.CacheGetCached(ctx, "k", 0); err != nil || !ok || v != "v2" {
		t.Errorf("CacheGetCached with ttl 0 = %q, %v, %v", v, ok, err)
	}
}

func TestCacheAfterEngineClose(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	e.Close()
	if _, _, err := e.CacheGet(context.Background(), "k"); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("CacheGet after Close: %v, want ErrClosed", err)
	}
	if _, err := e.CacheSet(context.Background(), engine.CacheSetParams{Key: "k", Value: "v"}); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("CacheSet after Close: %v, want ErrClosed", err)
	}
}

func benchCacheClient(b *testing.B) (*Engine, string) {
	e, prefix := capEngine(b, capClient(b, true))
	if _, err := e.CacheSet(context.Background(), engine.CacheSetParams{Key: "bench", Value: "some cached value"}); err != nil {
		b.Fatal(err)
	}
	return e, prefix
}

func BenchmarkCacheGet(b *testing.B) {
	e, _ := benchCacheClient(b)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := e.CacheGet(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheGetRaw(b *testing.B) {
	e, prefix := benchCacheClient(b)
	c, ctx := e.client, context.Background()
	for b.Loop() {
		if err := c.Do(ctx, c.B().Get().Key(prefix+"bench").Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheGetCached(b *testing.B) {
	e, _ := benchCacheClient(b)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := e.CacheGetCached(ctx, "bench", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheGetCachedRaw(b *testing.B) {
	e, prefix := benchCacheClient(b)
	c, ctx := e.client, context.Background()
	for b.Loop() {
		if err := c.DoCache(ctx, c.B().Get().Key(prefix+"bench").Cache(), time.Minute).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheSet(b *testing.B) {
	e, _ := benchCacheClient(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "bench-set", Value: "value", TTL: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheSetRaw(b *testing.B) {
	e, prefix := benchCacheClient(b)
	c, ctx := e.client, context.Background()
	for b.Loop() {
		cmd := c.B().Set().Key(prefix + "bench-set").Value("value").Px(time.Minute).Build()
		if err := c.Do(ctx, cmd).Error(); err != nil {
			b.Fatal(err)
		}
	}
}
