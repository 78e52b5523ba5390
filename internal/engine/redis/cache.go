package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
)

// Cache entries are plain strings under the key itself (prefixed when the
// key space has a prefix), as docs/compat.md requires, so that redis-cli and the
// original service read and write the same entries.
//
// CacheGetCached relies on rueidis's server-assisted client-side caching:
// the first read of a key registers it for invalidation (CLIENT TRACKING)
// and keeps the value in process memory; any write to the key, from any
// client, makes the server push an invalidation that evicts it. For that
// the engine's rueidis client must be created with caching enabled
// (rueidis.ClientOption.DisableCache false, its default). With caching
// disabled, rueidis sends a plain GET instead, so CacheGetCached stays
// correct and only loses its speed.
//
// The cache is coherent, not linearizable: a write is seen by cached reads
// once its invalidation reaches this process, which Redis sends after the
// write's reply. That holds for writes made through this same engine too,
// so a CacheGetCached right after a CacheSet may still return the previous
// value; read with CacheGet when a read must reflect a write just made.

// CacheGet reads key from the server.
func (e *Engine) CacheGet(ctx context.Context, key string) (string, bool, error) {
	if err := e.check("cache get"); err != nil {
		return "", false, err
	}
	cmd := e.client.B().Get().Key(e.keys.Cache(key)).Build()
	return cacheValue("cache get", e.client.Do(ctx, cmd))
}

// CacheGetCached reads key through the client-side cache, keeping the value
// for at most ttl (a server-side expiry that comes sooner wins). A ttl <= 0
// reads from the server.
func (e *Engine) CacheGetCached(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if err := e.check("cache get cached"); err != nil {
		return "", false, err
	}
	if ttl <= 0 {
		return e.CacheGet(ctx, key)
	}
	cmd := e.client.B().Get().Key(e.keys.Cache(key)).Cache()
	return cacheValue("cache get cached", e.client.DoCache(ctx, cmd, ttl))
}

func cacheValue(op string, res rueidis.RedisResult) (string, bool, error) {
	v, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, interpretError(op, err)
	}
	return v, true, nil
}

// cacheKeys are the KEYS of the guarded cache scripts: the entry, and the
// fencing counter of the lock that can share its key, if one can.
func (e *Engine) cacheKeys(key string) []string {
	keys := []string{e.keys.Cache(key)}
	if fence := e.keys.CacheLockFence(key); fence != "" {
		keys = append(keys, fence)
	}
	return keys
}

// CacheSet stores p.Value under p.Key with p.TTL (0: no expiry). With
// p.OnlyIfAbsent it is SET NX, and it returns false when the key existed.
// Unlike SET, it refuses (ErrWrongType, nothing written) a key that holds
// a list or another non-string, or that is a lock's name.
func (e *Engine) CacheSet(ctx context.Context, p engine.CacheSetParams) (bool, error) {
	if err := e.check("cache set"); err != nil {
		return false, err
	}
	const op = "cache set"
	if p.TTL < 0 {
		return false, fmt.Errorf("%s: ttl %v is negative; use 0 for no expiry", op, p.TTL)
	}
	nx := "0"
	if p.OnlyIfAbsent {
		nx = "1"
	}
	n, err := e.scripts.cacheSet.Exec(ctx, e.client, e.cacheKeys(p.Key), []string{p.Value, strconv.FormatInt(durationToPX(p.TTL), 10), nx}).AsInt64()
	if err != nil {
		return false, interpretError(op, err)
	}
	return n == 1, nil
}

// CacheExists counts how many of keys exist (a key named twice counts
// twice, as with EXISTS).
func (e *Engine) CacheExists(ctx context.Context, keys ...string) (int64, error) {
	if err := e.check("cache exists"); err != nil {
		return 0, err
	}
	return e.cacheCount(ctx, "cache exists", keys, func(k string) rueidis.Completed {
		return e.client.B().Exists().Key(k).Build()
	})
}

// CacheDelete deletes keys and counts those that existed.
func (e *Engine) CacheDelete(ctx context.Context, keys ...string) (int64, error) {
	if err := e.check("cache delete"); err != nil {
		return 0, err
	}
	return e.cacheCount(ctx, "cache delete", keys, func(k string) rueidis.Completed {
		return e.client.B().Del().Key(k).Build()
	})
}

// cacheCount sends one single-key command per key, pipelined, and sums the
// integer replies. One multi-key EXISTS or DEL would be refused with
// CROSSSLOT on a cluster whenever the keys live in different slots; the
// pipeline costs the same single round trip on a standalone server.
func (e *Engine) cacheCount(ctx context.Context, op string, keys []string, build func(string) rueidis.Completed) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = build(e.keys.Cache(k))
	}
	var total int64
	for _, res := range e.client.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return total, interpretError(op, err)
		}
		total += n
	}
	return total, nil
}

// CacheExpire gives key a new ttl; false when the key does not exist. Like
// CacheSet, it refuses (ErrWrongType) a list or a lock's name.
func (e *Engine) CacheExpire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := e.check("cache expire"); err != nil {
		return false, err
	}
	const op = "cache expire"
	if ttl <= 0 {
		// PEXPIRE with a non-positive time deletes the key: refuse it rather
		// than turn an expiry into a silent delete.
		return false, fmt.Errorf("%s: ttl must be positive (got %v); use CacheDelete to remove a key", op, ttl)
	}
	n, err := e.scripts.cacheExpire.Exec(ctx, e.client, e.cacheKeys(key), []string{strconv.FormatInt(durationToPX(ttl), 10)}).AsInt64()
	if err != nil {
		return false, interpretError(op, err)
	}
	return n == 1, nil
}

// CacheTTL returns key's remaining time to live, with millisecond
// precision. It returns -1 (a negative Duration) when the key has no
// expiry, and ok false when the key does not exist.
func (e *Engine) CacheTTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if err := e.check("cache ttl"); err != nil {
		return 0, false, err
	}
	cmd := e.client.B().Pttl().Key(e.keys.Cache(key)).Build()
	ms, err := e.client.Do(ctx, cmd).AsInt64()
	if err != nil {
		return 0, false, interpretError("cache ttl", err)
	}
	switch {
	case ms == -2:
		return 0, false, nil
	case ms < 0:
		return -1, true, nil
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}
