package sluice_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestLockLifecycle(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		l, ok, err := c.TryAcquire(ctx, "lock:camera:1", time.Minute)
		if err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		if _, ok, _ := c.TryAcquire(ctx, "lock:camera:1", time.Minute); ok {
			t.Fatal("second holder got the lock")
		}
		_, err = c.Acquire(ctx, "lock:camera:1", time.Minute, &sluice.LockOptions{Wait: 30 * time.Millisecond})
		if !errors.Is(err, sluice.ErrLockHeld) {
			t.Fatalf("waiting acquire: %v", err)
		}
		if err := l.Refresh(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); !errors.Is(err, sluice.ErrLockNotHeld) {
			t.Fatalf("double release: %v", err)
		}
		if err := l.Refresh(ctx, time.Minute); !errors.Is(err, sluice.ErrLockNotHeld) {
			t.Fatalf("refresh after release: %v", err)
		}
		l2, err := c.Acquire(ctx, "lock:camera:1", time.Minute, nil)
		if err != nil || l2.Fence <= l.Fence {
			t.Fatalf("reacquire: fence %d after %d, %v", l2.Fence, l.Fence, err)
		}
		if err := l2.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestExpiredLockCannotBeReleasedByOldHolder(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		old, ok, err := c.TryAcquire(ctx, "L", 10*time.Millisecond)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		// Wait (through the API) until the lock has expired and is ours.
		next, err := c.Acquire(ctx, "L", time.Minute, &sluice.LockOptions{Wait: 10 * time.Second, RetryDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Release(ctx); !errors.Is(err, sluice.ErrLockNotHeld) {
			t.Fatalf("stale release: %v", err)
		}
		if err := next.Release(ctx); err != nil {
			t.Fatalf("new holder lost the lock to a stale release: %v", err)
		}
	})
}

func TestKeepAliveCancelsWhenLockIsLost(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		l, ok, err := c.TryAcquire(ctx, "kept", 60*time.Millisecond)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		held := l.KeepAlive(ctx, 60*time.Millisecond)
		// Someone force-deletes the lock (an operator, a bug): the next
		// refresh fails and the holder's context ends.
		if _, err := c.Cache().Delete(ctx, "kept"); err != nil {
			t.Fatal(err)
		}
		<-held.Done()
		if !errors.Is(context.Cause(held), sluice.ErrLockNotHeld) {
			t.Fatalf("cause = %v", context.Cause(held))
		}
		if err := l.Release(ctx); !errors.Is(err, sluice.ErrLockNotHeld) {
			t.Fatalf("release of a lost lock: %v", err)
		}
	})
}

func TestLockContention(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		var inside atomic.Int32
		var mu sync.Mutex
		var lastFence int64
		var violations atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					l, err := c.Acquire(ctx, "contended", time.Minute, &sluice.LockOptions{Wait: time.Minute, RetryDelay: time.Millisecond})
					if err != nil {
						violations.Add(1)
						return
					}
					if inside.Add(1) != 1 {
						violations.Add(1)
					}
					mu.Lock()
					if l.Fence <= lastFence {
						violations.Add(1)
					}
					lastFence = l.Fence
					mu.Unlock()
					inside.Add(-1)
					if err := l.Release(ctx); err != nil {
						violations.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if v := violations.Load(); v != 0 {
			t.Fatalf("%d violations of mutual exclusion or fencing order", v)
		}
	})
}

func TestLockFromToken(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		l, ok, err := c.TryAcquire(ctx, "shared", time.Minute)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		wrong, _ := c.LockFromToken("shared", "not-the-token")
		if err := wrong.Release(ctx); !errors.Is(err, sluice.ErrLockNotHeld) {
			t.Fatalf("release with a wrong token: %v", err)
		}
		same, err := c.LockFromToken("shared", l.Token())
		if err != nil {
			t.Fatal(err)
		}
		if err := same.Refresh(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := same.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LockFromToken("shared", ""); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Fatalf("empty token: %v", err)
		}
	})
}

// The contention test: 20 goroutines, 10,000 acquisitions in all,
// random pauses inside the critical section, and holders that crash and
// leave a short-TTL lock to expire. Never two holders at once; fencing
// tokens strictly increase in acquisition order.
func TestLockContention10000Rounds(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		const goroutines, rounds = 20, 500
		var inside atomic.Int32
		var mu sync.Mutex
		var lastFence int64
		var violations, acquired atomic.Int32
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for range rounds {
					// About one holder in a hundred "crashes" right after taking
					// the lock with a 10 ms TTL and never releases it, so the
					// lock has to expire before anyone else gets it.
					crash := rng.IntN(100) == 0
					ttl := 2 * time.Second
					if crash {
						ttl = 10 * time.Millisecond
					}
					l, err := c.Acquire(ctx, "hot", ttl, &sluice.LockOptions{Wait: time.Minute, RetryDelay: 100 * time.Microsecond})
					if err != nil {
						t.Error(err)
						return
					}
					acquired.Add(1)
					if crash {
						// It dies at once: nothing of its work can overlap the
						// next holder's, however the scheduler treats it.
						continue
					}
					if inside.Add(1) != 1 {
						violations.Add(1)
					}
					mu.Lock()
					if l.Fence <= lastFence {
						violations.Add(1)
					}
					lastFence = l.Fence
					mu.Unlock()
					for range rng.IntN(50) { // a random pause, well inside the TTL
						runtime.Gosched()
					}
					inside.Add(-1)
					if err := l.Release(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if acquired.Load() != goroutines*rounds || violations.Load() != 0 {
			t.Fatalf("%d acquisitions, %d violations", acquired.Load(), violations.Load())
		}
	})
}
