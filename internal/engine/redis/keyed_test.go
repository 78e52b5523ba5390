package redis

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// TestKeyedAddsMergedInOneCall sends several idempotent adds as one merged
// script call, as the combiner does under load: each gets its own outcome,
// in order, a key repeated in the call writes once, and a key reused for
// other items fails that add alone.
func TestKeyedAddsMergedInOneCall(t *testing.T) {
	f := setup(t)
	add := func(key string, items ...string) engine.AddParams {
		return engine.AddParams{Queue: "q", Items: items, Policy: engine.PolicyDLQ, MaxSize: 3,
			IdempotencyKey: key, IdempotencyWindow: time.Minute}
	}
	calls := []engine.AddParams{
		add("a", "1", "2"), // fresh: 0 -> 2
		add("b", "3"),      // fresh: 2 -> 3
		add("a", "1", "2"), // the first add's result
		add("a", "x"),      // other items: conflict, nothing written
		add("c", "4", "5"), // fresh, overflowing: 1 and 2 move to the DLQ
	}
	var merged []string
	var starts []int
	for _, p := range calls {
		starts = append(starts, len(merged))
		merged = append(merged, f.e.keyedShare(p)...)
	}
	slots, err := f.e.addKeyedMerged(f.ctx, calls[0], merged)
	if err != nil || len(slots) != len(merged) {
		t.Fatalf("addKeyedMerged = %d slots, %v; want %d", len(slots), err, len(merged))
	}
	results := func(i int) []engine.AddResult {
		var out []engine.AddResult
		for j := range calls[i].Items {
			out = append(out, slots[starts[i]+keyedHeader+j].res)
		}
		return out
	}
	first := []engine.AddResult{{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}}
	want := [][]engine.AddResult{
		first,
		{{Accepted: true, QueueLength: 3}},
		{{Accepted: true, Replayed: true, QueueLength: 1}, {Accepted: true, Replayed: true, QueueLength: 2}},
		nil,
		{{Accepted: true, QueueLength: 3, MovedToDLQ: 1}, {Accepted: true, QueueLength: 3, MovedToDLQ: 1}},
	}
	for i := range calls {
		if i == 3 {
			if !errors.Is(slots[starts[i]].err, engine.ErrIdempotencyConflict) {
				t.Errorf("add %d: error %v, want ErrIdempotencyConflict", i, slots[starts[i]].err)
			}
			continue
		}
		if slots[starts[i]].err != nil || !slices.Equal(results(i), want[i]) {
			t.Errorf("add %d: %+v (%v), want %+v", i, results(i), slots[starts[i]].err, want[i])
		}
	}
	items, _ := f.e.QueueRange(f.ctx, "q", 0, -1)
	ovf, _ := f.e.DLQRange(f.ctx, "q", engine.DLQOverflow, 0, -1)
	if !slices.Equal(items, []string{"3", "4", "5"}) || len(ovf) != 2 || unwrapOverflow(t, ovf[0]) != "1" || unwrapOverflow(t, ovf[1]) != "2" {
		t.Errorf("queue %q, overflow %q; want [3 4 5] and 1, 2", items, ovf)
	}
}

// A keyed add's record holds the bound it ran under in digits, however
// large: Lua's tostring would write 10^15 as "1e+15", which no replay
// could read back.
func TestKeyedAddRecordsLargeBound(t *testing.T) {
	f := setup(t)
	p := engine.AddParams{Queue: "q", Items: []string{"a"}, Policy: engine.PolicyReject, MaxSize: 1_000_000_000_000_000,
		IdempotencyKey: "k", IdempotencyWindow: time.Minute}
	first, err := f.e.QueueAdd(f.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.e.QueueAdd(f.ctx, p)
	if err != nil || len(again) != 1 || !again[0].Replayed || again[0].QueueLength != first[0].QueueLength {
		t.Fatalf("replay = %+v, %v; want the first add's result, replayed", again, err)
	}
}
