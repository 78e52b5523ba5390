package enginetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

func lockCases(t *testing.T, h Harness) {
	t.Run("LockTTL", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		if _, held, err := e.LockTTL(ctx, "L"); err != nil || held {
			t.Fatalf("LockTTL of a free lock: held %v, err %v", held, err)
		}
		acquire(t, ctx, e, "L", "tok1", time.Minute, true)
		ttl, held, err := e.LockTTL(ctx, "L")
		if err != nil || !held || ttl <= 0 || ttl > time.Minute {
			t.Fatalf("LockTTL of a held lock: ttl %v, held %v, err %v; want held, 0 < ttl <= 1m", ttl, held, err)
		}
		if err := e.LockRelease(ctx, "L", "tok1"); err != nil {
			t.Fatal(err)
		}
		if _, held, err := e.LockTTL(ctx, "L"); err != nil || held {
			t.Fatalf("LockTTL after release: held %v, err %v", held, err)
		}
	})
	t.Run("AcquireReleaseRefresh", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		f1 := acquire(t, ctx, e, "L", "tok1", time.Minute, true)
		acquire(t, ctx, e, "L", "tok2", time.Minute, false)
		acquire(t, ctx, e, "L", "tok1", time.Minute, false)
		wantErrIs(t, "LockRelease with the wrong token", e.LockRelease(ctx, "L", "tok2"), engine.ErrLockNotHeld)
		wantErrIs(t, "LockRefresh with the wrong token", e.LockRefresh(ctx, "L", "tok2", time.Minute), engine.ErrLockNotHeld)
		// A failed release deleted nothing.
		acquire(t, ctx, e, "L", "tok2", time.Minute, false)
		if err := e.LockRefresh(ctx, "L", "tok1", 2*time.Minute); err != nil {
			t.Fatalf("LockRefresh by the holder: %v", err)
		}
		if err := e.LockRelease(ctx, "L", "tok1"); err != nil {
			t.Fatalf("LockRelease by the holder: %v", err)
		}
		wantErrIs(t, "second LockRelease", e.LockRelease(ctx, "L", "tok1"), engine.ErrLockNotHeld)
		wantErrIs(t, "LockRefresh after release", e.LockRefresh(ctx, "L", "tok1", time.Minute), engine.ErrLockNotHeld)
		wantErrIs(t, "LockRelease of a lock never taken", e.LockRelease(ctx, "never", "tok1"), engine.ErrLockNotHeld)
		f2 := acquire(t, ctx, e, "L", "tok2", time.Minute, true)
		if f2 <= f1 {
			t.Errorf("fence after re-acquire %d, want > %d", f2, f1)
		}
	})

	t.Run("FencesIncrease", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		var last int64
		for i := range 6 {
			tok := fmt.Sprintf("tok%d", i%2)
			f := acquire(t, ctx, e, "L", tok, time.Minute, true)
			if i > 0 && f <= last {
				t.Errorf("acquisition %d got fence %d, want > %d", i, f, last)
			}
			last = f
			if err := e.LockRelease(ctx, "L", tok); err != nil {
				t.Fatal(err)
			}
		}
		// Locks of other names are independent of L and of each other.
		acquire(t, ctx, e, "A", "tok", time.Minute, true)
		acquire(t, ctx, e, "B", "tok", time.Minute, true)
		acquire(t, ctx, e, "L", "tok", time.Minute, true)
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		f1 := acquire(t, ctx, e, "L", "tok1", 50*time.Millisecond, true)
		var f2 int64
		eventually(t, ctx, "expiry of the lock", func() (bool, error) {
			f, ok, err := e.LockAcquire(ctx, "L", "tok2", time.Minute)
			f2 = f
			return ok, err
		})
		if f2 <= f1 {
			t.Errorf("fence after expiry %d, want > %d", f2, f1)
		}
		wantErrIs(t, "LockRelease by the expired holder", e.LockRelease(ctx, "L", "tok1"), engine.ErrLockNotHeld)
		wantErrIs(t, "LockRefresh by the expired holder", e.LockRefresh(ctx, "L", "tok1", time.Minute), engine.ErrLockNotHeld)
		acquire(t, ctx, e, "L", "tok3", time.Minute, false)
		if err := e.LockRelease(ctx, "L", "tok2"); err != nil {
			t.Errorf("LockRelease by the new holder: %v", err)
		}
	})

	t.Run("RefreshKeepsAlive", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		// Long enough for the refresh to come first even on a loaded
		// machine, short enough to wait past.
		const first = 300 * time.Millisecond
		acquire(t, ctx, e, "L", "tok1", first, true)
		if err := e.LockRefresh(ctx, "L", "tok1", time.Minute); err != nil {
			t.Fatalf("LockRefresh: %v", err)
		}
		waitPast(t, ctx, h, e, 2*first)
		acquire(t, ctx, e, "L", "tok2", time.Minute, false)
		if err := e.LockRelease(ctx, "L", "tok1"); err != nil {
			t.Errorf("LockRelease by the refreshed holder: %v", err)
		}
	})

	t.Run("Contention", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const workers, rounds = 20, 5
		var (
			inside   atomic.Int32
			mu       sync.Mutex
			fences   []int64
			failures = make(chan error, workers)
			wg       sync.WaitGroup
		)
		for w := range workers {
			wg.Go(func() {
				tok := fmt.Sprintf("worker-%d", w)
				for range rounds {
					fence, err := spinAcquire(ctx, e, "L", tok)
					if err != nil {
						failures <- err
						return
					}
					if n := inside.Add(1); n != 1 {
						failures <- fmt.Errorf("%d holders inside the critical section", n)
					}
					// Appending while holding the lock records fences in
					// acquisition order.
					mu.Lock()
					fences = append(fences, fence)
					mu.Unlock()
					inside.Add(-1)
					if err := e.LockRelease(ctx, "L", tok); err != nil {
						failures <- fmt.Errorf("LockRelease: %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(failures)
		for err := range failures {
			t.Error(err)
		}
		if len(fences) != workers*rounds {
			t.Fatalf("%d acquisitions, want %d", len(fences), workers*rounds)
		}
		for i := 1; i < len(fences); i++ {
			if fences[i] <= fences[i-1] {
				t.Fatalf("fence %d = %d after %d: fences must increase in acquisition order", i, fences[i], fences[i-1])
			}
		}
	})
}

func acquire(t *testing.T, ctx context.Context, e engine.Engine, name, token string, ttl time.Duration, want bool) int64 {
	t.Helper()
	f, ok, err := e.LockAcquire(ctx, name, token, ttl)
	if err != nil {
		t.Fatalf("LockAcquire(%q, %q): %v", name, token, err)
	}
	if ok != want {
		t.Fatalf("LockAcquire(%q, %q) = %v, want %v", name, token, ok, want)
	}
	return f
}

// spinAcquire retries LockAcquire until it succeeds; the lock is held only
// briefly, so this is quick.
func spinAcquire(ctx context.Context, e engine.Engine, name, token string) (int64, error) {
	for {
		fence, ok, err := e.LockAcquire(ctx, name, token, time.Minute)
		if err != nil {
			return 0, fmt.Errorf("LockAcquire: %w", err)
		}
		if ok {
			return fence, nil
		}
		runtime.Gosched()
	}
}
