package enginetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

var policies = []engine.Policy{engine.PolicyReject, engine.PolicyDLQ, engine.PolicyDropOldest}

func queueCases(t *testing.T, h Harness) {
	t.Run("AddFIFO", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		res := add(t, ctx, e, "q", engine.PolicyDLQ, 10, "a", "b", "c")
		wantResults(t, "add a,b,c", res, []engine.AddResult{
			{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 3},
		})
		add(t, ctx, e, "q", engine.PolicyDLQ, 10, "d")
		wantQueue(t, ctx, e, "q", "a", "b", "c", "d")
		for _, want := range []string{"a", "b", "c", "d"} {
			got, ok, err := e.QueuePop(ctx, "q", 0)
			if err != nil || !ok || got != want {
				t.Fatalf("QueuePop = %q, %v, %v; want %q, true, nil", got, ok, err, want)
			}
		}
		wantQueue(t, ctx, e, "q")
	})

	t.Run("AddAtCapacity", func(t *testing.T) {
		// The queue holds exactly max items; one more triggers the policy.
		want := map[engine.Policy]engine.AddResult{
			engine.PolicyReject:     {Accepted: false, QueueLength: 3},
			engine.PolicyDLQ:        {Accepted: true, QueueLength: 3, MovedToDLQ: 1},
			engine.PolicyDropOldest: {Accepted: true, QueueLength: 3, Dropped: 1},
		}
		wantQ := map[engine.Policy][]string{
			engine.PolicyReject:     {"a", "b", "c"},
			engine.PolicyDLQ:        {"b", "c", "d"},
			engine.PolicyDropOldest: {"b", "c", "d"},
		}
		for _, p := range policies {
			t.Run(string(p), func(t *testing.T) {
				t.Parallel()
				ctx, e := setup(t, h)
				res := add(t, ctx, e, "q", p, 3, "a", "b", "c")
				wantResults(t, "fill", res, []engine.AddResult{
					{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 3},
				})
				res = add(t, ctx, e, "q", p, 3, "d")
				wantResults(t, "add at capacity", res, []engine.AddResult{want[p]})
				wantQueue(t, ctx, e, "q", wantQ[p]...)
				var overflow []string
				if p == engine.PolicyDLQ {
					overflow = []string{engine.OverflowEnvelope("q", "a")}
				}
				wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)
				wantDLQ(t, ctx, e, "q", engine.DLQFailed)
			})
		}
	})

	t.Run("AddOverCapacity", func(t *testing.T) {
		// The queue already holds more than max (it was filled under a
		// larger max): dlq moves len-max+1 items, drop_oldest trims to max.
		want := map[engine.Policy]engine.AddResult{
			engine.PolicyReject:     {Accepted: false, QueueLength: 5},
			engine.PolicyDLQ:        {Accepted: true, QueueLength: 3, MovedToDLQ: 3},
			engine.PolicyDropOldest: {Accepted: true, QueueLength: 3, Dropped: 3},
		}
		wantQ := map[engine.Policy][]string{
			engine.PolicyReject:     {"a", "b", "c", "d", "e"},
			engine.PolicyDLQ:        {"d", "e", "f"},
			engine.PolicyDropOldest: {"d", "e", "f"},
		}
		for _, p := range policies {
			t.Run(string(p), func(t *testing.T) {
				t.Parallel()
				ctx, e := setup(t, h)
				add(t, ctx, e, "q", p, 0, "a", "b", "c", "d", "e")
				res := add(t, ctx, e, "q", p, 3, "f")
				wantResults(t, "add over capacity", res, []engine.AddResult{want[p]})
				wantQueue(t, ctx, e, "q", wantQ[p]...)
				var overflow []string
				if p == engine.PolicyDLQ {
					for _, s := range []string{"a", "b", "c"} {
						overflow = append(overflow, engine.OverflowEnvelope("q", s))
					}
				}
				wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)
			})
		}
	})

	t.Run("BatchAddPerItem", func(t *testing.T) {
		// A batch is applied item by item in order, each item seeing the
		// queue as the previous one left it.
		want := map[engine.Policy][]engine.AddResult{
			engine.PolicyReject: {
				{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 3},
				{Accepted: false, QueueLength: 3}, {Accepted: false, QueueLength: 3},
			},
			engine.PolicyDLQ: {
				{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 3},
				{Accepted: true, QueueLength: 3, MovedToDLQ: 1}, {Accepted: true, QueueLength: 3, MovedToDLQ: 1},
			},
			engine.PolicyDropOldest: {
				{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 3},
				{Accepted: true, QueueLength: 3, Dropped: 1}, {Accepted: true, QueueLength: 3, Dropped: 1},
			},
		}
		wantQ := map[engine.Policy][]string{
			engine.PolicyReject:     {"a", "b", "c"},
			engine.PolicyDLQ:        {"c", "d", "e"},
			engine.PolicyDropOldest: {"c", "d", "e"},
		}
		for _, p := range policies {
			t.Run(string(p), func(t *testing.T) {
				t.Parallel()
				ctx, e := setup(t, h)
				res := add(t, ctx, e, "q", p, 3, "a", "b", "c", "d", "e")
				wantResults(t, "batch of 5 into max 3", res, want[p])
				wantQueue(t, ctx, e, "q", wantQ[p]...)
				var overflow []string
				if p == engine.PolicyDLQ {
					overflow = []string{engine.OverflowEnvelope("q", "a"), engine.OverflowEnvelope("q", "b")}
				}
				wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)
			})
		}
	})

	t.Run("Unbounded", func(t *testing.T) {
		for _, maxSize := range []int64{0, -1} {
			for _, p := range policies {
				t.Run(fmt.Sprintf("%s/max%d", p, maxSize), func(t *testing.T) {
					t.Parallel()
					ctx, e := setup(t, h)
					items := seq("i", 25)
					res := add(t, ctx, e, "q", p, maxSize, items...)
					want := make([]engine.AddResult, len(items))
					for i := range want {
						want[i] = engine.AddResult{Accepted: true, QueueLength: int64(i + 1)}
					}
					wantResults(t, "unbounded add", res, want)
					wantQueue(t, ctx, e, "q", items...)
					wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
				})
			}
		}
	})

	t.Run("BytesFaithful", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
		items := []string{
			"Z:KLUv/QBYKQAAaGVsbG8=",
			"Z:",
			"",
			"\x00\x01\x02\xff\xfe binary\r\n",
			"héllo wörld ✓ 日本語 😀",
			`{"id": 1, "tags": ["a", "b"], "q": "\"quoted\""}`,
			"  leading and trailing spaces  ",
			big,
		}
		add(t, ctx, e, "q", engine.PolicyReject, 0, items...)
		wantQueue(t, ctx, e, "q", items...)
		for _, want := range items {
			got, ok, err := e.QueuePop(ctx, "q", 0)
			if err != nil || !ok {
				t.Fatalf("QueuePop: %v, %v", ok, err)
			}
			if got != want {
				t.Errorf("QueuePop = %s, want %s", clip(got), clip(want))
			}
		}
	})

	t.Run("PopEmptyNonBlocking", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		item, ok, err := e.QueuePop(ctx, "never-added", 0)
		if err != nil || ok || item != "" {
			t.Errorf("QueuePop(empty, 0) = %q, %v, %v; want \"\", false, nil", item, ok, err)
		}
	})

	t.Run("PopBlockingWokenByAdd", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		got := startPop(ctx, e, "q", waitTimeout)
		add(t, ctx, e, "q", engine.PolicyDLQ, 10, "x")
		r := waitFor(t, "blocking QueuePop", got)
		if r.err != nil || !r.ok || r.item != "x" {
			t.Errorf("blocking QueuePop = %q, %v, %v; want \"x\", true, nil", r.item, r.ok, r.err)
		}
		wantQueue(t, ctx, e, "q")
	})

	t.Run("PopBlockingTimeout", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		item, ok, err := e.QueuePop(ctx, "q", 50*time.Millisecond)
		if err != nil || ok || item != "" {
			t.Errorf("QueuePop(empty, 50ms) = %q, %v, %v; want \"\", false, nil", item, ok, err)
		}
	})

	t.Run("PopBlockingContextCanceled", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		popCtx, cancel := context.WithCancel(ctx)
		got := startPop(popCtx, e, "q", caseTimeout)
		cancel()
		r := waitFor(t, "QueuePop after cancel", got)
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("QueuePop after cancel = %q, %v, %v; want an error matching context.Canceled", r.item, r.ok, r.err)
		}
		// The engine is still usable and nothing was consumed.
		add(t, ctx, e, "q", engine.PolicyDLQ, 10, "after")
		wantQueue(t, ctx, e, "q", "after")
	})

	t.Run("PopSeveralBlockedPoppers", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const n = 5
		results := make(chan popResult, n)
		for range n {
			go func() { results <- <-startPop(ctx, e, "q", waitTimeout) }()
		}
		items := seq("job-", n)
		for _, it := range items {
			add(t, ctx, e, "q", engine.PolicyDLQ, 100, it)
		}
		var got []string
		for range n {
			r := waitFor(t, "blocked QueuePop", results)
			if r.err != nil || !r.ok {
				t.Fatalf("blocked QueuePop = %q, %v, %v", r.item, r.ok, r.err)
			}
			got = append(got, r.item)
		}
		slices.Sort(got)
		wantItems(t, "items popped by blocked poppers", got, items)
		wantQueue(t, ctx, e, "q")
	})

	t.Run("PushFront", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 3, "c", "d", "e")
		if err := e.QueuePushFront(ctx, "q", []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		// Capacity is ignored: the queue now holds 5 items under max 3.
		wantQueue(t, ctx, e, "q", "a", "b", "c", "d", "e")
		res := add(t, ctx, e, "q", engine.PolicyReject, 3, "f")
		wantResults(t, "add after push front over max", res, []engine.AddResult{{Accepted: false, QueueLength: 5}})
		if err := e.QueuePushFront(ctx, "fresh", []string{"x", "y"}); err != nil {
			t.Fatal(err)
		}
		wantQueue(t, ctx, e, "fresh", "x", "y")
	})

	t.Run("LenMissing", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		wantQueue(t, ctx, e, "never-added")
	})

	t.Run("Range", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b", "c", "d", "e")
		cases := []struct {
			start, end int64
			want       []string
		}{
			{0, -1, []string{"a", "b", "c", "d", "e"}},
			{0, 0, []string{"a"}},
			{1, 3, []string{"b", "c", "d"}},
			{-2, -1, []string{"d", "e"}},
			{-100, 1, []string{"a", "b"}},
			{3, 100, []string{"d", "e"}},
			{-3, -3, []string{"c"}},
			{5, 10, nil},
			{3, 1, nil},
			{-1, -2, nil},
			{-100, -6, nil},
		}
		for _, c := range cases {
			got, err := e.QueueRange(ctx, "q", c.start, c.end)
			if err != nil {
				t.Fatalf("QueueRange(%d, %d): %v", c.start, c.end, err)
			}
			wantItems(t, fmt.Sprintf("QueueRange(%d, %d)", c.start, c.end), got, c.want)
		}
		got, err := e.QueueRange(ctx, "never-added", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		wantItems(t, "QueueRange of a missing queue", got, nil)
	})

	t.Run("Clear", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 2, "a", "b", "c")
		cleared, err := e.QueueClear(ctx, "q")
		if err != nil || !cleared {
			t.Fatalf("QueueClear(non-empty) = %v, %v; want true, nil", cleared, err)
		}
		wantQueue(t, ctx, e, "q")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, engine.OverflowEnvelope("q", "a"))
		cleared, err = e.QueueClear(ctx, "q")
		if err != nil || cleared {
			t.Errorf("QueueClear(empty) = %v, %v; want false, nil", cleared, err)
		}
		cleared, err = e.QueueClear(ctx, "never-added")
		if err != nil || cleared {
			t.Errorf("QueueClear(missing) = %v, %v; want false, nil", cleared, err)
		}
		// The queue stays usable after a clear.
		add(t, ctx, e, "q", engine.PolicyDLQ, 2, "d")
		wantQueue(t, ctx, e, "q", "d")
	})

	t.Run("WrongType", func(t *testing.T) {
		// Queues and cache entries share one key space, as on Redis
		// (docs/compat.md: a queue Q is the key Q, a cache entry its key).
		if !h.Caps.sharedQueueCacheKeys("k") {
			t.Skip("the harness's key layout stores queue k apart from the cache entry k")
		}
		t.Parallel()
		ctx, e := setup(t, h)
		cacheSet(t, ctx, e, "k", "v", 0, false, true)
		_, err := e.QueueAdd(ctx, engine.AddParams{Queue: "k", Items: []string{"x"}, Policy: engine.PolicyDLQ, MaxSize: 10})
		wantErrIs(t, "QueueAdd onto a cache key", err, engine.ErrWrongType)
		_, err = e.QueueLen(ctx, "k")
		wantErrIs(t, "QueueLen of a cache key", err, engine.ErrWrongType)
		_, _, err = e.QueuePop(ctx, "k", 0)
		wantErrIs(t, "QueuePop of a cache key", err, engine.ErrWrongType)
		wantCached(t, ctx, e, "k", "v")
		add(t, ctx, e, "q", engine.PolicyDLQ, 10, "x")
		_, _, err = e.CacheGet(ctx, "q")
		wantErrIs(t, "CacheGet of a queue", err, engine.ErrWrongType)
		wantQueue(t, ctx, e, "q", "x")
	})

	t.Run("ClearKeepsLeasesAndFailedDLQ", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		deadLetter(t, ctx, e, "q", "boom", "failed")
		failed := dlqAll(t, ctx, e, "q", engine.DLQFailed)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "leased", "waiting")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, ds, []string{"leased"}, 1)
		if cleared, err := e.QueueClear(ctx, "q"); err != nil || !cleared {
			t.Fatalf("QueueClear = %v, %v; want true, nil", cleared, err)
		}
		wantQueue(t, ctx, e, "q")
		wantInFlight(t, ctx, e, "q", 1)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed, failed...)
		if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
			t.Errorf("Ack after clear: %v", err)
		}
	})

	t.Run("Names", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "alpha", engine.PolicyDLQ, 0, "1")
		add(t, ctx, e, "beta", engine.PolicyReject, 0, "1")
		add(t, ctx, e, "gamma-ü", engine.PolicyDropOldest, 0, "1")
		names, err := e.QueueNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"alpha", "beta", "gamma-ü"} {
			if !slices.Contains(names, want) {
				t.Errorf("QueueNames() = %q, missing %q", names, want)
			}
		}
	})
}

type popResult struct {
	item string
	ok   bool
	err  error
}

// startPop runs a blocking QueuePop in its own goroutine; the channel gets
// its outcome. The pop always ends, by its timeout or by ctx.
func startPop(ctx context.Context, e engine.Engine, queue string, timeout time.Duration) <-chan popResult {
	ch := make(chan popResult, 1)
	go func() {
		item, ok, err := e.QueuePop(ctx, queue, timeout)
		ch <- popResult{item, ok, err}
	}()
	return ch
}
