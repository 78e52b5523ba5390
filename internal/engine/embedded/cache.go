package embedded

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// Cache entries, locks and fencing counters are strings in the shared key
// space, as on Redis: a lock is a string holding its holder's token, and
// its fencing counter a string holding a decimal integer that never
// expires. Expired strings vanish on access (they are never returned) and
// the sweeper frees their memory.

// CacheGet reads a string.
func (e *Engine) CacheGet(ctx context.Context, key string) (string, bool, error) {
	if err := e.checkOpen("cache get"); err != nil {
		return "", false, err
	}
	k := e.keys.Cache(key)
	o := e.lock1(k, false)
	if o == nil {
		return "", false, nil
	}
	defer o.mu.Unlock()
	if o.list.Len() > 0 {
		return "", false, wrongType("cache get", k)
	}
	if !o.strAlive(e.now()) {
		return "", false, nil
	}
	return o.str, true, nil
}

// CacheGetCached is CacheGet: there is no server to keep a client-side
// cache coherent with, and memory is as fast as such a cache.
func (e *Engine) CacheGetCached(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	return e.CacheGet(ctx, key)
}

// CacheSet stores p.Value with p.TTL (0: no expiry); p.OnlyIfAbsent makes
// it SET NX. Unlike SET, it refuses (ErrWrongType, nothing written) a key that
// holds a list or that is a lock's name (its fencing counter exists).
func (e *Engine) CacheSet(ctx context.Context, p engine.CacheSetParams) (_ bool, err error) {
	if err := e.checkOpen("cache set"); err != nil {
		return false, err
	}
	if p.TTL < 0 {
		return false, fmt.Errorf("cache set: ttl %v is negative; use 0 for no expiry", p.TTL)
	}
	k := e.keys.Cache(p.Key)
	t, err := e.begin("cache set")
	if err != nil {
		return false, err
	}
	defer t.end(&err)
	o := e.lock1(k, true)
	now := e.now()
	if err := e.otherKind(o, e.keys.CacheLockFence(p.Key), now); err != nil {
		o.mu.Unlock()
		e.tryRemove(o)
		return false, err // ErrWrongType: nothing written
	}
	defer o.mu.Unlock()
	if p.OnlyIfAbsent && o.strAlive(now) {
		return false, nil
	}
	var exp int64
	if p.TTL > 0 {
		exp = after(now, p.TTL)
	}
	t.setStr(o, p.Value, exp)
	if err := t.commit(); err != nil {
		return false, fmt.Errorf("cache set: %w", err)
	}
	return true, nil
}

// otherKind reports why the locked object o may not take a cache entry:
// it holds a list (a queue or a DLQ), or fence, the fencing counter of the
// lock that shares its key, exists. fence is longer than o's key, so
// locking it while holding o keeps the global lock order; LockAcquire
// creates the counter under o's lock, so the check cannot race with it.
func (e *Engine) otherKind(o *object, fence string, now int64) error {
	if o.list.Len() > 0 {
		return fmt.Errorf("%w: it holds a list (a queue or a DLQ)", engine.ErrWrongType)
	}
	if fence == "" {
		return nil
	}
	f := e.lock1(fence, false)
	if f == nil {
		return nil
	}
	defer f.mu.Unlock()
	if f.strAlive(now) || f.list.Len() > 0 {
		return fmt.Errorf("%w: it is a lock's name", engine.ErrWrongType)
	}
	return nil
}

// CacheExists counts the keys that exist (a key named twice counts twice).
func (e *Engine) CacheExists(ctx context.Context, keys ...string) (int64, error) {
	if err := e.checkOpen("cache exists"); err != nil {
		return 0, err
	}
	var n int64
	for _, key := range keys {
		o := e.lock1(e.keys.Cache(key), false)
		if o == nil {
			continue
		}
		if o.list.Len() > 0 || o.strAlive(e.now()) {
			n++
		}
		o.mu.Unlock()
	}
	return n, nil
}

// CacheDelete deletes keys, whatever they hold (as DEL does), and counts
// those that existed.
func (e *Engine) CacheDelete(ctx context.Context, keys ...string) (int64, error) {
	if err := e.checkOpen("cache delete"); err != nil {
		return 0, err
	}
	var n int64
	for _, key := range keys {
		ok, err := e.deleteKey(e.keys.Cache(key))
		if err != nil {
			return n, fmt.Errorf("cache delete: %w", err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func (e *Engine) deleteKey(k string) (_ bool, err error) {
	t, err := e.begin("delete")
	if err != nil {
		return false, err
	}
	defer t.end(&err)
	o := e.lock1(k, false)
	if o == nil {
		return false, nil
	}
	existed := false
	if o.list.Len() > 0 {
		t.clearList(o)
		existed = true
	}
	if o.strAlive(e.now()) {
		t.delStr(o)
		existed = true
	}
	err = t.commit()
	o.mu.Unlock()
	if existed {
		e.tryRemove(o)
	}
	return existed, err
}

// CacheExpire gives a string a new ttl; false when the key does not exist.
// Like CacheSet, it refuses (ErrWrongType) a list or a lock's name.
func (e *Engine) CacheExpire(ctx context.Context, key string, ttl time.Duration) (_ bool, err error) {
	if err := e.checkOpen("cache expire"); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, fmt.Errorf("cache expire: ttl must be positive (got %v); use CacheDelete to remove a key", ttl)
	}
	k := e.keys.Cache(key)
	t, err := e.begin("cache expire")
	if err != nil {
		return false, err
	}
	defer t.end(&err)
	o := e.lock1(k, false)
	if o == nil {
		return false, nil
	}
	defer o.mu.Unlock()
	now := e.now()
	if err := e.otherKind(o, e.keys.CacheLockFence(key), now); err != nil {
		return false, err // ErrWrongType: nothing changed
	}
	if !o.strAlive(now) {
		return false, nil
	}
	t.expire(o, after(now, ttl))
	if err := t.commit(); err != nil {
		return false, fmt.Errorf("cache expire: %w", err)
	}
	return true, nil
}

// CacheTTL returns the remaining ttl with millisecond precision, -1 when
// the key has none, ok false when it does not exist.
func (e *Engine) CacheTTL(ctx context.Context, key string) (time.Duration, bool, error) {
	if err := e.checkOpen("cache ttl"); err != nil {
		return 0, false, err
	}
	o := e.lock1(e.keys.Cache(key), false)
	if o == nil {
		return 0, false, nil
	}
	defer o.mu.Unlock()
	if o.list.Len() > 0 {
		return -1, true, nil
	}
	now := e.now()
	if !o.strAlive(now) {
		return 0, false, nil
	}
	if o.expireAt == 0 {
		return -1, true, nil
	}
	return time.Duration(o.expireAt - now).Truncate(time.Millisecond), true, nil
}

// LockTTL reports whether lock name is held and for how long, as
// CacheTTL reads a key.
func (e *Engine) LockTTL(ctx context.Context, name string) (time.Duration, bool, error) {
	const op = "lock ttl"
	if err := e.checkOpen(op); err != nil {
		return 0, false, err
	}
	lk, _ := e.keys.Lock(name)
	o := e.lock1(lk, false)
	if o == nil {
		return 0, false, nil
	}
	defer o.mu.Unlock()
	if o.list.Len() > 0 {
		return 0, false, wrongType(op, lk)
	}
	now := e.now()
	if !o.strAlive(now) {
		return 0, false, nil
	}
	if o.expireAt == 0 {
		return -1, true, nil
	}
	return time.Duration(o.expireAt - now).Truncate(time.Millisecond), true, nil
}

var errLockTTL = errors.New("lock ttl must be positive so that a crashed holder's lock expires")

// LockAcquire takes the lock when the key is free and increments its
// fencing counter in the same step.
func (e *Engine) LockAcquire(ctx context.Context, name, token string, ttl time.Duration) (_ int64, _ bool, err error) {
	const op = "lock acquire"
	if err := e.checkOpen(op); err != nil {
		return 0, false, err
	}
	if ttl <= 0 {
		return 0, false, fmt.Errorf("%s: %w (got %v)", op, errLockTTL, ttl)
	}
	if token == "" {
		return 0, false, fmt.Errorf("%s: token is empty; give each holder a unique token", op)
	}
	lk, fk := e.keys.Lock(name)
	t, err := e.begin(op)
	if err != nil {
		return 0, false, err
	}
	defer t.end(&err)
	objs := e.lockN(lk, fk)
	defer unlockN(objs)
	lock, fence := objs[0], objs[1]
	now := e.now()
	if lock.list.Len() > 0 {
		return 0, false, wrongType(op, lk)
	}
	// A string that is not this engine's lock (a cache entry) cannot be
	// told from a held lock: it is never taken either, as on Redis.
	if lock.strAlive(now) {
		return 0, false, nil
	}
	if fence.list.Len() > 0 {
		return 0, false, wrongType(op, fk)
	}
	var n int64
	if fence.strAlive(now) {
		v, err := strconv.ParseInt(fence.str, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: fencing counter %q holds %q, not an integer", op, fk, fence.str)
		}
		n = v
	}
	n++
	t.setStr(fence, strconv.FormatInt(n, 10), 0)
	t.setStr(lock, token, after(now, ttl))
	if err := t.commit(); err != nil {
		return 0, false, fmt.Errorf("%s: %w", op, err)
	}
	return n, true, nil
}

// LockRelease deletes the lock only if token holds it.
func (e *Engine) LockRelease(ctx context.Context, name, token string) (err error) {
	const op = "lock release"
	if err := e.checkOpen(op); err != nil {
		return err
	}
	lk, _ := e.keys.Lock(name)
	t, err := e.begin(op)
	if err != nil {
		return err
	}
	defer t.end(&err)
	o := e.lock1(lk, false)
	if o == nil {
		return engine.ErrLockNotHeld
	}
	if o.list.Len() > 0 {
		o.mu.Unlock()
		return wrongType(op, lk)
	}
	if !o.strAlive(e.now()) || o.str != token {
		o.mu.Unlock()
		return engine.ErrLockNotHeld
	}
	t.delStr(o)
	err = t.commit()
	o.mu.Unlock()
	e.tryRemove(o)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// LockRefresh gives the lock a new ttl only if token holds it.
func (e *Engine) LockRefresh(ctx context.Context, name, token string, ttl time.Duration) (err error) {
	const op = "lock refresh"
	if err := e.checkOpen(op); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%s: %w (got %v)", op, errLockTTL, ttl)
	}
	lk, _ := e.keys.Lock(name)
	t, err := e.begin(op)
	if err != nil {
		return err
	}
	defer t.end(&err)
	o := e.lock1(lk, false)
	if o == nil {
		return engine.ErrLockNotHeld
	}
	defer o.mu.Unlock()
	if o.list.Len() > 0 {
		return wrongType(op, lk)
	}
	now := e.now()
	if !o.strAlive(now) || o.str != token {
		return engine.ErrLockNotHeld
	}
	t.expire(o, after(now, ttl))
	if err := t.commit(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
