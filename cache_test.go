package sluice_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

type status struct {
	Online bool `json:"online"`
	FPS    int  `json:"fps"`
}

func TestCacheOperations(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		ca := c.Cache()
		if err := ca.Set(ctx, "camera:1:status", status{true, 30}, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		got, ok, err := sluice.CacheGetAs[status](ctx, ca, "camera:1:status")
		if err != nil || !ok || got != (status{true, 30}) {
			t.Fatalf("get: %+v %v %v", got, ok, err)
		}
		if ttl, ok, _ := ca.TTL(ctx, "camera:1:status"); !ok || ttl <= 0 || ttl > 5*time.Minute {
			t.Fatalf("ttl %v %v", ttl, ok)
		}
		if set, _ := ca.SetNX(ctx, "camera:1:status", status{}, 0); set {
			t.Fatal("SetNX overwrote")
		}
		if n, _ := ca.Exists(ctx, "camera:1:status", "nope"); n != 1 {
			t.Fatalf("exists %d", n)
		}
		if n, _ := ca.Delete(ctx, "camera:1:status", "nope"); n != 1 {
			t.Fatalf("delete %d", n)
		}
		if _, ok, _ := ca.Get(ctx, "camera:1:status"); ok {
			t.Fatal("deleted key still there")
		}
		if err := ca.Set(ctx, "k", "v", -time.Second); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Fatalf("negative ttl: %v", err)
		}
	})
}

func TestGetOrLoadCallsLoaderOnce(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		var calls atomic.Int32
		release := make(chan struct{})
		load := func(ctx context.Context) ([]int, error) {
			calls.Add(1)
			<-release
			return []int{1, 2, 3}, nil
		}
		var wg sync.WaitGroup
		var bad atomic.Int32
		started := make(chan struct{}, 100)
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				started <- struct{}{}
				v, err := sluice.GetOrLoadAs(ctx, c.Cache(), "recent", time.Minute, load)
				if err != nil || len(v) != 3 {
					bad.Add(1)
				}
			}()
		}
		for range 100 {
			<-started
		}
		close(release)
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%d callers got a wrong result", bad.Load())
		}
		// Callers that missed after the first load finished read the cache;
		// the ones that raced the load shared it.
		if calls.Load() != 1 {
			t.Fatalf("loader called %d times", calls.Load())
		}
	})
}

func TestGetOrLoadDoesNotCacheErrors(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		boom := errors.New("db down")
		_, err := c.Cache().GetOrLoad(ctx, "k", time.Minute, func(context.Context) (any, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		if n, _ := c.Cache().Exists(ctx, "k"); n != 0 {
			t.Fatal("error result was cached")
		}
	})
}

func TestGetOrLoadCallerCanGiveUp(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		release := make(chan struct{})
		loading := make(chan struct{})
		load := func(ctx context.Context) (any, error) {
			close(loading)
			<-release
			return "value", nil
		}
		first := make(chan error, 1)
		go func() {
			_, err := c.Cache().GetOrLoad(context.Background(), "slow", time.Minute, load)
			first <- err
		}()
		<-loading
		ctx, cancel := context.WithCancel(context.Background())
		second := make(chan error, 1)
		go func() {
			_, err := c.Cache().GetOrLoad(ctx, "slow", time.Minute, load)
			second <- err
		}()
		cancel()
		if err := <-second; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("first caller: %v", err)
		}
	})
}

// Cache keys, lock names and queue names are raw key names in one key
// space (docs/compat.md), but a write through one kind refuses a key holding
// another: Set used to replace a queue, losing its items, and a held lock.
func TestCacheWriteRefusesOtherKinds(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("victim")
		if _, err := q.AddBatch(ctx, []any{1, 2}, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Cache().Set(ctx, "victim", "x", 0); !errors.Is(err, sluice.ErrWrongType) {
			t.Errorf("Set over a queue: %v, want ErrWrongType", err)
		}
		if ok, err := c.Cache().SetNX(ctx, "victim", "x", 0); ok || !errors.Is(err, sluice.ErrWrongType) {
			t.Errorf("SetNX over a queue: %v, %v, want ErrWrongType", ok, err)
		}
		if n, err := q.Len(ctx); n != 2 || err != nil {
			t.Fatalf("queue after the refused writes: %d items, %v", n, err)
		}
		lk, ok, err := c.TryAcquire(ctx, "job:7", time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryAcquire: %v %v", ok, err)
		}
		if err := c.Cache().Set(ctx, "job:7", "x", 0); !errors.Is(err, sluice.ErrWrongType) {
			t.Errorf("Set over a held lock: %v, want ErrWrongType", err)
		}
		if _, ok, err := c.TryAcquire(ctx, "job:7", time.Minute); ok || err != nil {
			t.Errorf("second TryAcquire of a held lock: %v, %v; want false, nil", ok, err)
		}
		if err := lk.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if _, _, err := c.TryAcquire(ctx, "victim", time.Minute); !errors.Is(err, sluice.ErrWrongType) {
			t.Errorf("TryAcquire of a queue's name: %v, want ErrWrongType", err)
		}
	})
}
