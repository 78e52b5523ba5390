package enginetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// idemAdd is one QueueAdd with an idempotency key (window: a minute).
func idemAdd(ctx context.Context, e engine.Engine, queue, key string, policy engine.Policy, maxSize int64, items ...string) ([]engine.AddResult, error) {
	return e.QueueAdd(ctx, engine.AddParams{
		Queue: queue, Items: items, Policy: policy, MaxSize: maxSize,
		IdempotencyKey: key, IdempotencyWindow: time.Minute,
	})
}

func mustIdemAdd(t *testing.T, ctx context.Context, e engine.Engine, queue, key string, policy engine.Policy, maxSize int64, items ...string) []engine.AddResult {
	t.Helper()
	res, err := idemAdd(ctx, e, queue, key, policy, maxSize, items...)
	if err != nil {
		t.Fatalf("QueueAdd(%q, key %q, %d items): %v", queue, key, len(items), err)
	}
	if len(res) != len(items) {
		t.Fatalf("QueueAdd(%q, key %q) returned %d results for %d items", queue, key, len(res), len(items))
	}
	return res
}

// replayed is res as a replay reports it.
func replayed(res []engine.AddResult) []engine.AddResult {
	out := slices.Clone(res)
	for i := range out {
		out[i].Replayed = true
	}
	return out
}

func idempotencyCases(t *testing.T, h Harness) {
	t.Run("RepeatReplaysFirstResult", func(t *testing.T) {
		// At capacity, so that every field of the result carries
		// something: the repeat must answer it as first answered, though
		// the queue has changed since, and write nothing.
		want := map[engine.Policy][]engine.AddResult{
			engine.PolicyReject:     {{Accepted: true, QueueLength: 3}, {Accepted: false, QueueLength: 3}},
			engine.PolicyDLQ:        {{Accepted: true, QueueLength: 3}, {Accepted: true, QueueLength: 3, MovedToDLQ: 1}},
			engine.PolicyDropOldest: {{Accepted: true, QueueLength: 3}, {Accepted: true, QueueLength: 3, Dropped: 1}},
		}
		for _, p := range policies {
			t.Run(string(p), func(t *testing.T) {
				t.Parallel()
				ctx, e := setup(t, h)
				add(t, ctx, e, "q", p, 3, "a", "b")
				first := mustIdemAdd(t, ctx, e, "q", "req-1", p, 3, "c", "d")
				wantResults(t, "first add with the key", first, want[p])
				queue, _ := e.QueueRange(ctx, "q", 0, -1)
				overflow, _ := e.DLQRange(ctx, "q", engine.DLQOverflow, 0, -1)
				if _, _, err := e.QueuePop(ctx, "q", 0); err != nil {
					t.Fatal(err)
				}
				queue = queue[1:]
				again := mustIdemAdd(t, ctx, e, "q", "req-1", p, 3, "c", "d")
				wantResults(t, "repeat", again, replayed(first))
				wantQueue(t, ctx, e, "q", queue...)
				wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)
			})
		}
	})

	t.Run("RepeatKeepsFirstSettings", func(t *testing.T) {
		// A repeat asking for another policy or bound still gets the
		// first answer: the key names the add, not the settings.
		t.Parallel()
		ctx, e := setup(t, h)
		first := mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyDLQ, 0, "a", "b")
		again := mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyReject, 1, "a", "b")
		wantResults(t, "repeat under other settings", again, replayed(first))
		wantQueue(t, ctx, e, "q", "a", "b")
	})

	t.Run("OtherItemsConflict", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyDLQ, 10, "a", "b")
		for _, items := range [][]string{{"a", "c"}, {"b", "a"}, {"a"}, {"a", "b", "c"}, {"ab"}} {
			res, err := idemAdd(ctx, e, "q", "k", engine.PolicyDLQ, 10, items...)
			if !errors.Is(err, engine.ErrIdempotencyConflict) || res != nil {
				t.Errorf("key reused for %q: %+v, %v; want ErrIdempotencyConflict", items, res, err)
			}
		}
		wantQueue(t, ctx, e, "q", "a", "b")
		// The record is unchanged: the original items still replay.
		res := mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyDLQ, 10, "a", "b")
		if !res[0].Replayed || !res[1].Replayed {
			t.Errorf("repeat after conflicts = %+v, want replayed", res)
		}
	})

	t.Run("KeysAreFreshPerQueueAndKey", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyDLQ, 10, "a")
		other := mustIdemAdd(t, ctx, e, "r", "k", engine.PolicyDLQ, 10, "a")
		wantResults(t, "same key on another queue", other, []engine.AddResult{{Accepted: true, QueueLength: 1}})
		next := mustIdemAdd(t, ctx, e, "q", "k2", engine.PolicyDLQ, 10, "a")
		wantResults(t, "another key on the queue", next, []engine.AddResult{{Accepted: true, QueueLength: 2}})
		plain := add(t, ctx, e, "q", engine.PolicyDLQ, 10, "a")
		wantResults(t, "add without a key", plain, []engine.AddResult{{Accepted: true, QueueLength: 3}})
		wantQueue(t, ctx, e, "q", "a", "a", "a")
		wantQueue(t, ctx, e, "r", "a")
		// Records are not queues.
		names, err := e.QueueNames(ctx)
		if err != nil || !slices.Equal(names, []string{"q", "r"}) {
			t.Errorf("QueueNames = %q, %v; want [q r]", names, err)
		}
	})

	t.Run("ClearKeepsRecords", func(t *testing.T) {
		// Clearing the queue deletes its items, not what was added: a
		// retry after a clear still must not add again.
		t.Parallel()
		ctx, e := setup(t, h)
		first := mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyReject, 5, "a")
		if _, err := e.QueueClear(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		again := mustIdemAdd(t, ctx, e, "q", "k", engine.PolicyReject, 5, "a")
		wantResults(t, "repeat after clear", again, replayed(first))
		wantQueue(t, ctx, e, "q")
	})

	t.Run("ConcurrentDuplicatesWriteOnce", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const n = 16
		var wg sync.WaitGroup
		results := make([][]engine.AddResult, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = idemAdd(ctx, e, "q", "same", engine.PolicyDLQ, 100, "x", "y")
			}()
		}
		close(start)
		wg.Wait()
		fresh := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("add %d: %v", i, errs[i])
			}
			want := []engine.AddResult{{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}}
			if !results[i][0].Replayed {
				fresh++
			} else {
				want = replayed(want)
			}
			wantResults(t, "concurrent duplicate", results[i], want)
		}
		if fresh != 1 {
			t.Errorf("%d of %d concurrent duplicates wrote, want exactly 1", fresh, n)
		}
		wantQueue(t, ctx, e, "q", "x", "y")
	})

	t.Run("ConcurrentKeysEachWriteOnce", func(t *testing.T) {
		// Many keys, each sent by several adds at once, on a queue that
		// overflows: every key writes once, and its repeats get exactly
		// the result its write got, whatever ran in between.
		t.Parallel()
		ctx, e := setup(t, h)
		const keys, repeats = 8, 4
		var wg sync.WaitGroup
		results := make([][][]engine.AddResult, keys)
		start := make(chan struct{})
		for k := range keys {
			results[k] = make([][]engine.AddResult, repeats)
			for r := range repeats {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					items := []string{fmt.Sprintf("k%d-a", k), fmt.Sprintf("k%d-b", k)}
					res, err := idemAdd(ctx, e, "q", fmt.Sprintf("key-%d", k), engine.PolicyDLQ, 10, items...)
					if err != nil {
						t.Errorf("key %d: %v", k, err)
					}
					results[k][r] = res
				}()
			}
		}
		close(start)
		wg.Wait()
		moved := int64(0)
		for k := range keys {
			var first []engine.AddResult
			for _, res := range results[k] {
				if len(res) == 2 && !res[0].Replayed {
					if first != nil {
						t.Fatalf("key %d wrote twice", k)
					}
					first = res
				}
			}
			if first == nil {
				t.Fatalf("key %d never wrote: %+v", k, results[k])
			}
			moved += first[0].MovedToDLQ + first[1].MovedToDLQ
			for _, res := range results[k] {
				wantResults(t, fmt.Sprintf("key %d", k), res, map[bool][]engine.AddResult{false: first, true: replayed(first)}[res[0].Replayed])
			}
		}
		n, err := e.QueueLen(ctx, "q")
		if err != nil || n != 10 {
			t.Errorf("QueueLen = %d, %v; want 10", n, err)
		}
		if d, err := e.DLQLen(ctx, "q", engine.DLQOverflow); err != nil || d != keys*2-10 || moved != d {
			t.Errorf("overflow DLQ holds %d (%v), results moved %d; want %d", d, err, moved, keys*2-10)
		}
	})

	t.Run("WindowExpires", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const window = 50 * time.Millisecond
		p := engine.AddParams{Queue: "q", Items: []string{"a"}, Policy: engine.PolicyDLQ, MaxSize: 10,
			IdempotencyKey: "k", IdempotencyWindow: window}
		if _, err := e.QueueAdd(ctx, p); err != nil {
			t.Fatal(err)
		}
		// Once a key set after the record with the same lifetime is gone,
		// so is the record, on the engine's own clock.
		waitPast(t, ctx, h, e, window)
		res, err := e.QueueAdd(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, "add after the window", res, []engine.AddResult{{Accepted: true, QueueLength: 2}})
		again, err := e.QueueAdd(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, "repeat inside the new window", again, replayed(res))
		wantQueue(t, ctx, e, "q", "a", "a")
	})
}
