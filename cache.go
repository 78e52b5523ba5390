package sluice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sluicehq/sluice/internal/codec"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// Cache is a JSON key/value store with TTLs (the Python service's cache operations).
// Values are stored as JSON, as the original service stores them.
//
// A key is a raw key name (behind the client's key prefix, if any): the
// entry "camera:1:status" is the Redis key camera:1:status, which the
// original service reads and writes too. Queues, their DLQs and locks live
// in the same key space, under their own names; a write here never
// replaces one of them (see Set).
type Cache struct {
	c     *Client
	group singleflight.Group
}

// Cache returns the client's cache.
func (c *Client) Cache() *Cache { return c.cache }

// Cache keys share the key space with queues and locks, as on Redis, but
// may not reach into Sluice's own bookkeeping keys.
func validateKey(key string) error {
	if err := checkText(ErrInvalidName, "cache key", key); err != nil {
		return err
	}
	if err := keyspace.CheckKey("cache key", key); err != nil {
		return fmt.Errorf("sluice: %w: %w", ErrInvalidName, err)
	}
	return nil
}

func ttlArg(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("sluice: %w: negative TTL %v", ErrInvalidArgument, ttl)
	}
	return nil
}

// Get returns the value of key; ok is false when it does not exist.
func (ca *Cache) Get(ctx context.Context, key string) (Item, bool, error) {
	if err := validateKey(key); err != nil {
		return Item{}, false, err
	}
	s, ok, err := ca.c.eng.CacheGet(ctx, key)
	return ca.item(key, s, ok, err)
}

// GetCached is Get served from an in-process copy when one is fresh: on
// Redis with Config.ClientSideCache, the server invalidates copies when the
// key changes, and a copy is never older than ttl (the staleness window if
// an invalidation is lost with its connection). Without client-side caching
// it is Get.
func (ca *Cache) GetCached(ctx context.Context, key string, ttl time.Duration) (Item, bool, error) {
	if err := validateKey(key); err != nil {
		return Item{}, false, err
	}
	s, ok, err := ca.c.eng.CacheGetCached(ctx, key, ttl)
	return ca.item(key, s, ok, err)
}

func (ca *Cache) item(key, s string, ok bool, err error) (Item, bool, error) {
	if err != nil {
		return Item{}, false, fmt.Errorf("sluice: cache get %q: %w", key, err)
	}
	if !ok {
		return Item{}, false, nil
	}
	return ca.c.decode(s), true, nil
}

// encodeValue stores every cache value as JSON, strings included.
func encodeValue(v any) (string, error) {
	if x, ok := v.(Item); ok {
		return string(x.JSON()), nil
	}
	s, err := codec.JSON(v)
	switch {
	case errors.Is(err, codec.ErrInvalidUTF8), errors.Is(err, codec.ErrNotJSON):
		return "", encodeErr(err)
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	return s, nil
}

// Set stores v as JSON under key, expiring after ttl (0: never). Unlike a
// plain SET it refuses, with ErrWrongType and nothing written, a key that
// holds a list (a queue or a DLQ) or that is a lock's name (the name has
// been used with Acquire: its fencing counter exists, and it never
// expires). The check and the write are one atomic step.
func (ca *Cache) Set(ctx context.Context, key string, v any, ttl time.Duration) error {
	_, err := ca.set(ctx, key, v, ttl, false)
	return err
}

// SetNX stores v only when key does not exist; it reports whether it did.
// It refuses other kinds of keys as Set does.
func (ca *Cache) SetNX(ctx context.Context, key string, v any, ttl time.Duration) (bool, error) {
	return ca.set(ctx, key, v, ttl, true)
}

func (ca *Cache) set(ctx context.Context, key string, v any, ttl time.Duration, nx bool) (bool, error) {
	if err := validateKey(key); err != nil {
		return false, err
	}
	if err := ttlArg(ttl); err != nil {
		return false, err
	}
	s, err := encodeValue(v)
	if err != nil {
		return false, fmt.Errorf("sluice: cache set %q (nothing written): %w", key, err)
	}
	ok, err := ca.c.eng.CacheSet(ctx, engine.CacheSetParams{Key: key, Value: s, TTL: ttl, OnlyIfAbsent: nx})
	if err != nil {
		return false, fmt.Errorf("sluice: cache set %q: %w", key, err)
	}
	return ok, nil
}

// Exists counts how many of keys exist (a key named twice counts twice).
func (ca *Cache) Exists(ctx context.Context, keys ...string) (int64, error) {
	for _, k := range keys {
		if err := validateKey(k); err != nil {
			return 0, err
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	n, err := ca.c.eng.CacheExists(ctx, keys...)
	if err != nil {
		return 0, fmt.Errorf("sluice: cache exists: %w", err)
	}
	return n, nil
}

// Delete removes keys and returns how many existed. It is DEL: it removes
// whatever a key holds, a queue or a lock included.
func (ca *Cache) Delete(ctx context.Context, keys ...string) (int64, error) {
	for _, k := range keys {
		if err := validateKey(k); err != nil {
			return 0, err
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	n, err := ca.c.eng.CacheDelete(ctx, keys...)
	if err != nil {
		return 0, fmt.Errorf("sluice: cache delete: %w", err)
	}
	return n, nil
}

// Expire sets a new TTL on key; false when key does not exist. Like Set, it
// refuses (ErrWrongType, nothing changed) a queue's or a lock's key.
func (ca *Cache) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := validateKey(key); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, fmt.Errorf("sluice: %w: expire needs a positive TTL, got %v", ErrInvalidArgument, ttl)
	}
	ok, err := ca.c.eng.CacheExpire(ctx, key, ttl)
	if err != nil {
		return false, fmt.Errorf("sluice: cache expire %q: %w", key, err)
	}
	return ok, nil
}

// TTL returns key's remaining time to live: -1 when it never expires; ok
// is false when key does not exist.
func (ca *Cache) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if err := validateKey(key); err != nil {
		return 0, false, err
	}
	d, ok, err := ca.c.eng.CacheTTL(ctx, key)
	if err != nil {
		return 0, false, fmt.Errorf("sluice: cache ttl %q: %w", key, err)
	}
	return d, ok, nil
}

// GetOrLoad returns the cached value of key, or calls load, caches its
// result for ttl and returns it (the Python service's result-caching pattern).
// Concurrent misses of one key in this process share one call of load.
// A load error is returned and not cached. A failure to write the loaded
// value to the cache is not an error: the value is still returned.
//
// The shared load runs detached from any one caller's cancellation (its
// context keeps the values of the first caller's ctx): a caller whose ctx
// ends stops waiting at once, and the others still get the result.
func (ca *Cache) GetOrLoad(ctx context.Context, key string, ttl time.Duration, load func(ctx context.Context) (any, error)) (Item, error) {
	if err := ttlArg(ttl); err != nil {
		return Item{}, err
	}
	if it, ok, err := ca.Get(ctx, key); err != nil {
		return Item{}, err
	} else if ok {
		return it, nil
	}
	lctx := context.WithoutCancel(ctx)
	ch := ca.group.DoChan(key, func() (any, error) {
		// Another caller may have filled the key between our miss and here.
		if it, ok, err := ca.Get(lctx, key); err == nil && ok {
			return it, nil
		}
		val, err := load(lctx)
		if err != nil {
			return nil, err
		}
		s, err := encodeValue(val)
		if err != nil {
			return nil, fmt.Errorf("sluice: cache %q: loaded value: %w", key, err)
		}
		if _, err := ca.c.eng.CacheSet(lctx, engine.CacheSetParams{Key: key, Value: s, TTL: ttl}); err != nil {
			ca.c.log.Warn("cache write after load failed; value returned uncached", "key", key, "err", err)
		}
		return ca.c.decode(s), nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Item{}, r.Err
		}
		return r.Val.(Item), nil
	case <-ctx.Done():
		return Item{}, fmt.Errorf("sluice: cache load %q: %w", key, ctx.Err())
	}
}

// CacheGetAs reads key and decodes it into a T.
func CacheGetAs[T any](ctx context.Context, ca *Cache, key string) (v T, ok bool, err error) {
	it, ok, err := ca.Get(ctx, key)
	if err != nil || !ok {
		return v, ok, err
	}
	v, err = As[T](it)
	return v, err == nil, err
}

// GetOrLoadAs is GetOrLoad with a typed loader and result.
func GetOrLoadAs[T any](ctx context.Context, ca *Cache, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	it, err := ca.GetOrLoad(ctx, key, ttl, func(ctx context.Context) (any, error) { return load(ctx) })
	if err != nil {
		var zero T
		return zero, err
	}
	return As[T](it)
}
