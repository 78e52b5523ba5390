package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/redistest"
)

func mustAcquire(t testing.TB, e *Engine, name, token string, ttl time.Duration) (int64, bool) {
	t.Helper()
	fence, ok, err := e.LockAcquire(context.Background(), name, token, ttl)
	if err != nil {
		t.Fatalf("LockAcquire(%q, %q): %v", name, token, err)
	}
	return fence, ok
}

func TestLockAcquireReleaseAndFencing(t *testing.T) {
	t.Parallel()
	raw := redistest.Client(t)
	e, prefix := capEngine(t, raw)
	ctx := context.Background()

	fence, ok := mustAcquire(t, e, "job", "alice", time.Minute)
	if !ok || fence != 1 {
		t.Fatalf("first acquire = %d, %v; want 1, true", fence, ok)
	}
	if _, ok := mustAcquire(t, e, "job", "bob", time.Minute); ok {
		t.Error("a held lock was acquired by another token")
	}
	if _, ok := mustAcquire(t, e, "job", "alice", time.Minute); ok {
		t.Error("a held lock was acquired again by its own holder")
	}

	if err := e.LockRelease(ctx, "job", "bob"); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Errorf("release by a wrong token: %v, want ErrLockNotHeld", err)
	}
	holder, err := raw.Do(ctx, raw.B().Get().Key(prefix+"job").Build()).ToString()
	if err != nil || holder != "alice" {
		t.Fatalf("after a wrong-token release the lock holds %q, %v; want alice", holder, err)
	}

	if err := e.LockRelease(ctx, "job", "alice"); err != nil {
		t.Fatalf("release by the holder: %v", err)
	}
	if err := e.LockRelease(ctx, "job", "alice"); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Errorf("second release: %v, want ErrLockNotHeld", err)
	}
	if fence, ok := mustAcquire(t, e, "job", "bob", time.Minute); !ok || fence != 2 {
		t.Errorf("acquire after release = %d, %v; want 2, true", fence, ok)
	}
	if fence, ok := mustAcquire(t, e, "other", "bob", time.Minute); !ok || fence != 1 {
		t.Errorf("another name's first fence = %d, %v; want 1, true", fence, ok)
	}

	_, fenceKey := e.keys.Lock("job")
	if pttl, err := raw.Do(ctx, raw.B().Pttl().Key(fenceKey).Build()).AsInt64(); err != nil || pttl != -1 {
		t.Errorf("fencing counter PTTL = %d, %v; want -1 (it must never expire)", pttl, err)
	}
}

func TestLockRefresh(t *testing.T) {
	t.Parallel()
	raw := redistest.Client(t)
	e, prefix := capEngine(t, raw)
	ctx := context.Background()
	pttl := func() int64 {
		ms, err := raw.Do(ctx, raw.B().Pttl().Key(prefix+"job").Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}

	mustAcquire(t, e, "job", "alice", 10*time.Second)
	if err := e.LockRefresh(ctx, "job", "bob", time.Hour); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Errorf("refresh by a wrong token: %v, want ErrLockNotHeld", err)
	}
	if ms := pttl(); ms > 10_000 {
		t.Errorf("a wrong-token refresh changed the TTL to %dms", ms)
	}
	if err := e.LockRefresh(ctx, "job", "alice", time.Hour); err != nil {
		t.Fatalf("refresh by the holder: %v", err)
	}
	if ms := pttl(); ms <= 3_590_000 || ms > 3_600_000 {
		t.Errorf("TTL after refresh(1h) = %dms", ms)
	}
	if err := e.LockRefresh(ctx, "missing", "alice", time.Hour); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Errorf("refresh of a lock nobody holds: %v, want ErrLockNotHeld", err)
	}
	if n, err := raw.Do(ctx, raw.B().Exists().Key(prefix+"missing").Build()).AsInt64(); err != nil || n != 0 {
		t.Errorf("refreshing a free lock created it (EXISTS = %d, %v)", n, err)
	}
}

func TestLockExpiredIsTakenByAnother(t *testing.T) {
	t.Parallel()
	raw := redistest.Client(t)
	e, prefix := capEngine(t, raw)
	ctx := context.Background()

	mustAcquire(t, e, "job", "alice", 20*time.Millisecond)
	var fence int64
	capEventually(t, "bob takes the expired lock", func() bool {
		f, ok := mustAcquire(t, e, "job", "bob", time.Minute)
		fence = f
		return ok
	})
	if fence != 2 {
		t.Errorf("fence after expiry = %d, want 2", fence)
	}
	if err := e.LockRelease(ctx, "job", "alice"); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Errorf("release by the expired holder: %v, want ErrLockNotHeld", err)
	}
	if err := e.LockRefresh(ctx, "job", "alice", time.Minute); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Errorf("refresh by the expired holder: %v, want ErrLockNotHeld", err)
	}
	if holder, err := raw.Do(ctx, raw.B().Get().Key(prefix+"job").Build()).ToString(); err != nil || holder != "bob" {
		t.Errorf("the lock holds %q, %v; want bob, untouched by the expired holder", holder, err)
	}
}

func TestLockRefusesBadArguments(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	ctx := context.Background()
	if _, _, err := e.LockAcquire(ctx, "job", "alice", 0); err == nil {
		t.Error("acquire with ttl 0 succeeded")
	}
	if _, _, err := e.LockAcquire(ctx, "job", "", time.Second); err == nil {
		t.Error("acquire with an empty token succeeded")
	}
	mustAcquire(t, e, "job", "alice", time.Minute)
	if err := e.LockRefresh(ctx, "job", "alice", -time.Second); err == nil {
		t.Error("refresh with a negative ttl succeeded")
	}
	e.Close()
	if _, _, err := e.LockAcquire(ctx, "job2", "alice", time.Second); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("acquire after Close: %v, want ErrClosed", err)
	}
}

// Twenty goroutines race for one lock over many rounds. Inside the critical
// section there is never a second holder, and each holder's fencing token
// is greater than every token seen before it.
func TestLockContention(t *testing.T) {
	t.Parallel()
	raw := redistest.Client(t)
	e, _ := capEngine(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const (
		workers = 20
		rounds  = 2000
		// Short, but far longer than the critical section, so that an
		// overlap can only mean a broken lock, not an expired one.
		ttl = time.Second
	)
	var (
		acquired  atomic.Int64
		inside    atomic.Int32
		lastFence atomic.Int64
		failures  = make(chan string, workers)
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprintf("worker-%d", w)
			for acquired.Load() < rounds && ctx.Err() == nil {
				fence, ok, err := e.LockAcquire(ctx, "hot", token, ttl)
				if err != nil {
					failures <- fmt.Sprintf("%s: acquire: %v", token, err)
					return
				}
				if !ok {
					continue
				}
				if n := inside.Add(1); n != 1 {
					failures <- fmt.Sprintf("%s: %d holders inside the critical section", token, n)
				}
				if prev := lastFence.Swap(fence); fence <= prev {
					failures <- fmt.Sprintf("%s: fence %d after %d", token, fence, prev)
				}
				acquired.Add(1)
				inside.Add(-1)
				if err := e.LockRelease(ctx, "hot", token); err != nil {
					failures <- fmt.Sprintf("%s: release: %v", token, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("contention did not finish: %v after %d acquisitions", err, acquired.Load())
	}
	_, fenceKey := e.keys.Lock("hot")
	counter, err := raw.Do(context.Background(), raw.B().Get().Key(fenceKey).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if counter != acquired.Load() || counter != lastFence.Load() {
		t.Errorf("fence counter %d, acquisitions %d, last fence seen %d: all three must agree",
			counter, acquired.Load(), lastFence.Load())
	}
}

func BenchmarkLockAcquireRelease(b *testing.B) {
	e, _ := capEngine(b, capClient(b, false))
	ctx := context.Background()
	for b.Loop() {
		if _, ok, err := e.LockAcquire(ctx, "bench", "token", time.Minute); err != nil || !ok {
			b.Fatalf("acquire: %v, %v", ok, err)
		}
		if err := e.LockRelease(ctx, "bench", "token"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockRawSetNXDel is the unsafe baseline: SET NX PX and a DEL that
// checks no token and hands out no fence.
func BenchmarkLockRawSetNXDel(b *testing.B) {
	e, prefix := capEngine(b, capClient(b, false))
	c, ctx, key := e.client, context.Background(), prefix+"bench"
	for b.Loop() {
		if err := c.Do(ctx, c.B().Set().Key(key).Value("token").Nx().Px(time.Minute).Build()).Error(); err != nil {
			b.Fatal(err)
		}
		if err := c.Do(ctx, c.B().Del().Key(key).Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}
