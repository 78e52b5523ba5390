package redis

// Cancelled pops: whatever the server removed for a pop whose caller gave
// up is returned to that caller or handed back, never dropped.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// TestQueuePopCancel cancels a BLPOP that waits on an empty queue with a
// long timeout: it must return with the ctx error long before the timeout.
func TestQueuePopCancel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := f.e.QueuePop(ctx, "q", time.Hour)
		done <- err
	}()
	f.waitBlocked(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pop returned %v", err)
	}
	// The connection was unblocked, not lost: the engine still works and
	// nothing was taken.
	f.add(t, "q", engine.PolicyDLQ, 0, "x")
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"x"}) {
		t.Fatalf("queue %q", items)
	}
}

// TestQueuePopCancelWithoutUnblockRight runs the pop as a user that may not
// CLIENT UNBLOCK: the cancelled call still returns at once, and an item the
// abandoned BLPOP takes afterwards goes back to the head of the queue.
func TestQueuePopCancelWithoutUnblockRight(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := "sluice-test-" + strings.Trim(f.prefix, ":")
	acl := f.raw.B().AclSetuser().Username(user).Rule("reset", "on", "nopass", "~*", "&*", "+@all", "-client|unblock").Build()
	if err := f.raw.Do(f.ctx, acl).Error(); err != nil {
		t.Skipf("cannot create an ACL user: %v", err)
	}
	t.Cleanup(func() { f.raw.Do(context.Background(), f.raw.B().AclDeluser().Username(user).Build()) })
	opt, err := rueidis.ParseURL(redistest.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.Username, opt.Password, opt.DisableCache = user, "", true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(f.ctx, c.B().ClientUnblock().ClientId(1).Build()).Error(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		c.Close()
		t.Fatalf("CLIENT UNBLOCK as %s: %v, want NOPERM", user, err)
	}
	e := New(c, Options{Keys: keyspace.Space{Prefix: f.prefix}, OwnsClient: true})
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := e.QueuePop(ctx, "q", time.Hour)
		done <- err
	}()
	f.waitBlocked(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pop returned %v", err)
	}
	f.add(t, "q", engine.PolicyDLQ, 0, "x")
	e.Close() // waits for the hand-back
	if got := f.rangeAll(t, "q"); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("queue %q, want the item handed back", got)
	}
}

// TestQueuePopCancelKeepsItems races ctx cancellation against many
// non-blocking pops. A pop whose ctx ends while LPOP
// is on the wire must still hand over what the server removed: every item
// added is either returned once or still queued.
func TestQueuePopCancelKeepsItems(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const total = 3000
	items := make([]string, total)
	for i := range items {
		items[i] = fmt.Sprintf("item-%d", i)
	}
	f.add(t, "q", engine.PolicyReject, 0, items...)

	var mu sync.Mutex
	seen := make(map[string]int, total)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 150 {
				ctx, cancel := context.WithCancel(f.ctx)
				go cancel()
				var got []string
				item, ok, err := f.e.QueuePop(ctx, "q", 0)
				if ok {
					got = []string{item}
				}
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("pop: %v", err)
					return
				}
				if err != nil && len(got) > 0 {
					t.Errorf("pop returned items %q with error %v", got, err)
				}
				mu.Lock()
				for _, it := range got {
					seen[it]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	left := f.rangeAll(t, "q")
	for _, it := range left {
		seen[it]++
	}
	if len(seen) != total {
		t.Fatalf("%d distinct items popped or queued; %d were added", len(seen), total)
	}
	for it, n := range seen {
		if n != 1 {
			t.Fatalf("item %q seen %d times", it, n)
		}
	}
	t.Logf("%d popped, %d still queued", total-len(left), len(left))
}

// blockingPopRace cancels blocking pops at random moments while items
// arrive: a BLPOP cancelled just as the server hands it an item must still
// return that item (or hand it back), so every item added is either popped
// once or still queued.
func blockingPopRace(t *testing.T, ctx context.Context, e *Engine) {
	t.Helper()
	const total = 400
	var mu sync.Mutex
	seen := make(map[string]int, total)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "race", Items: []string{fmt.Sprintf("item-%d", i)}}); err != nil {
				t.Errorf("add: %v", err)
				return
			}
		}
	}()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				pctx, cancel := context.WithCancel(ctx)
				timer := time.AfterFunc(time.Duration(rand.IntN(2000))*time.Microsecond, cancel)
				item, ok, err := e.QueuePop(pctx, "race", 20*time.Millisecond)
				timer.Stop()
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("pop: %v", err)
					return
				}
				if ok {
					mu.Lock()
					seen[item]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	e.Close() // waits for any hand-back
	left, err := e.client.Do(ctx, e.client.B().Lrange().Key(e.keys.Queue("race").List).Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range left {
		seen[it]++
	}
	if len(seen) != total {
		t.Fatalf("%d distinct items popped or queued; %d were added", len(seen), total)
	}
	for it, n := range seen {
		if n != 1 {
			t.Fatalf("item %q seen %d times", it, n)
		}
	}
}

func TestBlockingPopCancelKeepsItems(t *testing.T) {
	t.Parallel()
	f := setup(t)
	blockingPopRace(t, f.ctx, f.e)
}
