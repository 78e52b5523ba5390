package enginetest

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// kindsCases hold the engines to one rule: queues (and their DLQs), cache
// entries and locks share one key space, as on Redis, but a write through
// one kind never replaces a key that holds another. A plain SET would
// destroy a queue or steal a held lock.
func kindsCases(t *testing.T, h Harness) {
	// queueKey and lockKey are the cache keys that share the stored key of
	// a queue or a lock of that name (in the cluster layout those keys
	// carry a hash tag).
	queueKey := func(t *testing.T, name string) string {
		t.Helper()
		return h.Caps.needKeys(t).Queue(name).List
	}
	lockKey := func(t *testing.T, name string) string {
		t.Helper()
		lock, _ := h.Caps.needKeys(t).Lock(name)
		return lock
	}

	t.Run("CacheSetRefusesQueue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "victim", engine.PolicyDLQ, 0, "a", "b")
		for _, nx := range []bool{false, true} {
			ok, err := e.CacheSet(ctx, engine.CacheSetParams{Key: queueKey(t, "victim"), Value: `"x"`, OnlyIfAbsent: nx})
			wantErrIs(t, "CacheSet onto a queue", err, engine.ErrWrongType)
			if ok {
				t.Errorf("CacheSet onto a queue (nx %v) reported a write", nx)
			}
		}
		wantQueue(t, ctx, e, "victim", "a", "b")
		names, err := e.QueueNames(ctx)
		if err != nil {
			t.Fatalf("QueueNames after a refused CacheSet: %v", err)
		}
		if _, err := e.QueueLen(ctx, "victim"); err != nil {
			t.Errorf("QueueLen of %q (listed: %q): %v", "victim", names, err)
		}
	})

	t.Run("CacheSetRefusesDLQ", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 1, "old", "new")
		_, err := e.CacheSet(ctx, engine.CacheSetParams{Key: h.Caps.needKeys(t).Queue("q").OverflowDLQ, Value: `"x"`, TTL: time.Minute})
		wantErrIs(t, "CacheSet onto an overflow DLQ", err, engine.ErrWrongType)
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, engine.OverflowEnvelope("q", "old"))
	})

	t.Run("CacheSetRefusesLock", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		acquire(t, ctx, e, "L", "tok", time.Minute, true)
		_, err := e.CacheSet(ctx, engine.CacheSetParams{Key: lockKey(t, "L"), Value: `"x"`})
		wantErrIs(t, "CacheSet onto a held lock", err, engine.ErrWrongType)
		// The lock is still held by its token: nobody else can take it.
		acquire(t, ctx, e, "L", "other", time.Minute, false)
		if err := e.LockRelease(ctx, "L", "tok"); err != nil {
			t.Fatalf("LockRelease by the holder after a refused CacheSet: %v", err)
		}
		// The name stays a lock's: its fencing counter outlives the lock.
		_, err = e.CacheSet(ctx, engine.CacheSetParams{Key: lockKey(t, "L"), Value: `"x"`})
		wantErrIs(t, "CacheSet onto a released lock's name", err, engine.ErrWrongType)
		acquire(t, ctx, e, "L", "other", time.Minute, true)
	})

	t.Run("CacheExpireRefusesQueueAndLock", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a")
		acquire(t, ctx, e, "L", "tok", time.Minute, true)
		for _, key := range []string{queueKey(t, "q"), lockKey(t, "L")} {
			ok, err := e.CacheExpire(ctx, key, time.Millisecond)
			wantErrIs(t, "CacheExpire of "+key, err, engine.ErrWrongType)
			if ok {
				t.Errorf("CacheExpire of %s reported a new TTL", key)
			}
		}
		waitPast(t, ctx, h, e, 5*time.Millisecond)
		wantQueue(t, ctx, e, "q", "a")
		acquire(t, ctx, e, "L", "other", time.Minute, false)
	})

	t.Run("LockAcquireRefusesQueue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a")
		// The lock q is the key of the queue q in both layouts.
		_, ok, err := e.LockAcquire(ctx, "q", "tok", time.Minute)
		wantErrIs(t, "LockAcquire of a queue's key", err, engine.ErrWrongType)
		if ok {
			t.Error("LockAcquire of a queue's key took it")
		}
		wantQueue(t, ctx, e, "q", "a")
	})

	t.Run("LockAcquireRefusesCacheEntry", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		cacheSet(t, ctx, e, lockKey(t, "c"), `{"v":1}`, 0, false, true)
		// A string that is not a lock of this engine cannot be told from a
		// lock another client holds: it is not taken, and stays as it was.
		acquire(t, ctx, e, "c", "tok", time.Minute, false)
		wantCached(t, ctx, e, lockKey(t, "c"), `{"v":1}`)
		wantErrIs(t, "LockRelease of a cache entry", e.LockRelease(ctx, "c", "tok"), engine.ErrLockNotHeld)
		wantCached(t, ctx, e, lockKey(t, "c"), `{"v":1}`)
	})
}
