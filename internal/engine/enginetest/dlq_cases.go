package enginetest

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

func dlqCases(t *testing.T, h Harness) {
	t.Run("OverflowEnvelopeBytes", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const queue = "orders-ü \"x\""
		items := []string{
			"plain",
			`he said "hi"`,
			`back\slash`,
			"tab\tnew\nline\rcr\x01\x1f\x7f\b\f",
			"é ü ß 日本語",
			"emoji 😀 and 👍🏽",
			`{"k": "v", "n": [1, 2.5], "s": "é"}`,
			`["a", "\"b\""]`,
			"Z:KLUv/QBYKQAAaGVsbG8=",
			"",
			"</script>&<>'",
		}
		assertOverflowBytes(t, ctx, e, queue, items)
	})

	t.Run("OverflowEnvelopeInvalidUTF8", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		// Each byte that is not part of valid UTF-8 becomes U+FFFD.
		items := []string{"\xff\xfeabc", "trunc\xc3", "\xed\xa0\x80surrogate", "\xc0\xafoverlong", "ok é\x80"}
		assertOverflowBytes(t, ctx, e, "q", items)
	})

	t.Run("LenRangePurgeByKind", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		deadLetter(t, ctx, e, "q", "boom", "f1", "f2")
		overflow := fillOverflow(t, ctx, e, "q", "o1", "o2", "o3")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)
		failed := dlqAll(t, ctx, e, "q", engine.DLQFailed)
		if len(failed) != 2 {
			t.Fatalf("failed DLQ holds %d entries, want 2", len(failed))
		}
		got, err := e.DLQRange(ctx, "q", engine.DLQOverflow, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		wantItems(t, "DLQRange(1, 1)", got, overflow[1:2])
		got, err = e.DLQRange(ctx, "q", engine.DLQOverflow, -2, -1)
		if err != nil {
			t.Fatal(err)
		}
		wantItems(t, "DLQRange(-2, -1)", got, overflow[1:])
		got, err = e.DLQRange(ctx, "q", engine.DLQOverflow, 3, 10)
		if err != nil {
			t.Fatal(err)
		}
		wantItems(t, "DLQRange(3, 10)", got, nil)

		n, err := e.DLQPurge(ctx, "q", engine.DLQOverflow)
		if err != nil || n != 3 {
			t.Fatalf("DLQPurge(overflow) = %d, %v; want 3, nil", n, err)
		}
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed, failed...)
		wantQueue(t, ctx, e, "q", "keep")
		n, err = e.DLQPurge(ctx, "q", engine.DLQFailed)
		if err != nil || n != 2 {
			t.Fatalf("DLQPurge(failed) = %d, %v; want 2, nil", n, err)
		}
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		n, err = e.DLQPurge(ctx, "q", engine.DLQFailed)
		if err != nil || n != 0 {
			t.Errorf("DLQPurge(empty) = %d, %v; want 0, nil", n, err)
		}
		wantDLQ(t, ctx, e, "never-added", engine.DLQOverflow)
		wantDLQ(t, ctx, e, "never-added", engine.DLQFailed)
	})

	t.Run("RemoveOnlyTheEntryGiven", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		overflow := fillOverflow(t, ctx, e, "q", "o1", "o2", "o3", "o4")
		remove := func(index int64, entry string) bool {
			t.Helper()
			ok, err := e.DLQRemove(ctx, "q", engine.DLQOverflow, index, entry)
			if err != nil {
				t.Fatalf("DLQRemove(%d): %v", index, err)
			}
			return ok
		}
		if !remove(1, overflow[1]) {
			t.Fatal("DLQRemove of the entry at its index: false")
		}
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow[0], overflow[2], overflow[3])
		// o3 moved from 2 to 1: its old index now holds o4, which is not it.
		if remove(2, overflow[2]) {
			t.Fatal("DLQRemove at a shifted index deleted an entry")
		}
		if remove(1, overflow[1]) || remove(5, overflow[3]) || remove(-1, overflow[3]) {
			t.Fatal("DLQRemove of an entry gone, or out of range, deleted one")
		}
		if remove(1, overflow[2]+" ") {
			t.Fatal("DLQRemove with an entry that differs in one byte deleted one")
		}
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow[0], overflow[2], overflow[3])
		if !remove(2, overflow[3]) || !remove(0, overflow[0]) {
			t.Fatal("DLQRemove of the tail, then the head: false")
		}
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow[2])
		if !remove(0, overflow[2]) {
			t.Fatal("DLQRemove of the last entry: false")
		}
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
		if ok, err := e.DLQRemove(ctx, "never", engine.DLQFailed, 0, "x"); err != nil || ok {
			t.Errorf("DLQRemove from a DLQ that does not exist: %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("RequeueAll", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		setupRequeue(t, ctx, e)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyDLQ, MaxSize: 10})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 2, Remaining: 0})
		wantQueue(t, ctx, e, "q", "c", "d", "e", "a", "b")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
	})

	t.Run("RequeueCount", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		setupRequeue(t, ctx, e)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Count: 1, Policy: engine.PolicyReject, MaxSize: 10})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 1, Remaining: 1})
		wantQueue(t, ctx, e, "q", "c", "d", "e", "a")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, engine.OverflowEnvelope("q", "b"))
		res = requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Count: 10, Policy: engine.PolicyReject, MaxSize: 10})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 1, Remaining: 0})
		wantQueue(t, ctx, e, "q", "c", "d", "e", "a", "b")
	})

	t.Run("RequeueEmpty", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		for _, kind := range []engine.DLQKind{engine.DLQOverflow, engine.DLQFailed} {
			res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: kind, Policy: engine.PolicyDLQ, MaxSize: 10})
			wantRequeue(t, res, engine.RequeueResult{})
		}
		wantQueue(t, ctx, e, "q")
	})

	t.Run("RequeueRejectStops", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		overflow := setupRequeue(t, ctx, e)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyReject, MaxSize: 3})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 0, Remaining: 2})
		wantQueue(t, ctx, e, "q", "c", "d", "e")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)

		// Room for one: the first goes back, the second stays in place.
		res = requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyReject, MaxSize: 4})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 1, Remaining: 1})
		wantQueue(t, ctx, e, "q", "c", "d", "e", "a")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow[1])
	})

	t.Run("RequeueDisplacedDropOldest", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		setupRequeue(t, ctx, e)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyDropOldest, MaxSize: 3})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 2, Remaining: 0, Displaced: 2})
		wantQueue(t, ctx, e, "q", "e", "a", "b")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
	})

	t.Run("RequeueFailedDisplacedToOverflow", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		deadLetter(t, ctx, e, "q", "boom", "x", "y")
		add(t, ctx, e, "q", engine.PolicyDLQ, 3, "a", "b", "c")
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyDLQ, MaxSize: 3})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 2, Remaining: 0, Displaced: 2})
		wantQueue(t, ctx, e, "q", "c", "x", "y")
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, engine.OverflowEnvelope("q", "a"), engine.OverflowEnvelope("q", "b"))
	})

	t.Run("RequeueOverflowIntoItself", func(t *testing.T) {
		// Requeueing the overflow DLQ into a full queue under dlq pushes
		// items back into that same DLQ. "All" means the entries present
		// when the requeue starts, so this ends after two moves instead of
		// cycling forever.
		t.Parallel()
		ctx, e := setup(t, h)
		setupRequeue(t, ctx, e)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyDLQ, MaxSize: 3})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 2, Remaining: 2, Displaced: 2})
		wantQueue(t, ctx, e, "q", "e", "a", "b")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, engine.OverflowEnvelope("q", "c"), engine.OverflowEnvelope("q", "d"))
	})

	t.Run("RequeueForeignEntries", func(t *testing.T) {
		// Entries written by the original service or by hand: a failed
		// entry without "data" goes back as its original_job, and entries
		// that cannot be unwrapped stay in the DLQ, in order, while the
		// requeue goes on past them.
		t.Parallel()
		ctx, e := setup(t, h)
		foreign := []string{
			`not json`,
			`{"original_job": "py-string", "error": "x", "attempt_count": 3, "queue_name": "q"}`,
			`{"no": "data"}`,
			engine.OverflowEnvelope("q", "a"),
			`{"original_job": {"id": 9, "v": [1, 2]}, "error": "x", "attempt_count": 1, "queue_name": "q"}`,
			`[1, 2]`,
			`{"data": 5}`,
			`null`,
			`"a json string"`,
			engine.OverflowEnvelope("q", "b"),
		}
		writeDLQ(t, ctx, e, h.Caps, "q", engine.DLQFailed, foreign)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyReject, MaxSize: 0})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 4, Remaining: 6})
		got := rangeAll(t, ctx, e, "q")
		if len(got) != 4 || got[0] != "py-string" || got[1] != "a" || !jsonEqual([]byte(got[2]), []byte(`{"id": 9, "v": [1, 2]}`)) || got[3] != "b" {
			t.Errorf("requeued %s, want py-string, a, the original_job object, b", short(got))
		}
		wantDLQ(t, ctx, e, "q", engine.DLQFailed, foreign[0], foreign[2], foreign[5], foreign[6], foreign[7], foreign[8])
	})

	t.Run("RequeueCountSkipsMalformed", func(t *testing.T) {
		// Count bounds the entries moved back; a malformed entry at the
		// head is not one of them, or it would block every bounded requeue.
		t.Parallel()
		ctx, e := setup(t, h)
		writeDLQ(t, ctx, e, h.Caps, "q", engine.DLQOverflow, []string{`bad`, engine.OverflowEnvelope("q", "a"), engine.OverflowEnvelope("q", "b")})
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Count: 1, Policy: engine.PolicyDLQ, MaxSize: 10})
		wantRequeue(t, res, engine.RequeueResult{Requeued: 1, Remaining: 2})
		wantQueue(t, ctx, e, "q", "a")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow, `bad`, engine.OverflowEnvelope("q", "b"))
	})

	t.Run("RequeueFailedOriginalBytes", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		items := []string{
			`{"id": 1, "name": "é", "nested": {"a": [1, 2]}}`,
			`plain "quoted" ✓ 😀`,
			`[1, 2]`,
			`{not json`,
			"Z:KLUv/QBYKQAAaGVsbG8=",
			"42",
		}
		deadLetter(t, ctx, e, "q", "boom", items...)
		res := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyReject, MaxSize: 0})
		wantRequeue(t, res, engine.RequeueResult{Requeued: int64(len(items))})
		wantQueue(t, ctx, e, "q", items...)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
	})
}

// assertOverflowBytes pushes every item out through the dlq policy and
// compares the entries with engine.OverflowEnvelope byte for byte.
func assertOverflowBytes(t *testing.T, ctx context.Context, e engine.Engine, queue string, items []string) {
	t.Helper()
	add(t, ctx, e, queue, engine.PolicyDLQ, 0, items...)
	res := add(t, ctx, e, queue, engine.PolicyDLQ, 1, "last")
	wantResults(t, "add pushing all out", res, []engine.AddResult{{Accepted: true, QueueLength: 1, MovedToDLQ: int64(len(items))}})
	want := make([]string, len(items))
	for i, it := range items {
		want[i] = engine.OverflowEnvelope(queue, it)
	}
	wantDLQ(t, ctx, e, queue, engine.DLQOverflow, want...)
	wantQueue(t, ctx, e, queue, "last")
}

// fillOverflow leaves items in queue's overflow DLQ, oldest first, and one
// item "keep" in the queue; it returns the expected entries.
func fillOverflow(t *testing.T, ctx context.Context, e engine.Engine, queue string, items ...string) []string {
	t.Helper()
	add(t, ctx, e, queue, engine.PolicyDLQ, 0, items...)
	add(t, ctx, e, queue, engine.PolicyDLQ, 1, "keep")
	want := make([]string, len(items))
	for i, it := range items {
		want[i] = engine.OverflowEnvelope(queue, it)
	}
	return want
}

// setupRequeue leaves queue "q" = [c d e] and its overflow DLQ = [a b].
func setupRequeue(t *testing.T, ctx context.Context, e engine.Engine) []string {
	t.Helper()
	res := add(t, ctx, e, "q", engine.PolicyDLQ, 3, "a", "b", "c", "d", "e")
	if res[4].QueueLength != 3 {
		t.Fatalf("setup: queue length %d, want 3", res[4].QueueLength)
	}
	overflow := []string{engine.OverflowEnvelope("q", "a"), engine.OverflowEnvelope("q", "b")}
	wantDLQ(t, ctx, e, "q", engine.DLQOverflow, overflow...)
	return overflow
}

func requeue(t *testing.T, ctx context.Context, e engine.Engine, p engine.RequeueParams) engine.RequeueResult {
	t.Helper()
	res, err := e.DLQRequeue(ctx, p)
	if err != nil {
		t.Fatalf("DLQRequeue(%+v): %v", p, err)
	}
	return res
}

func wantRequeue(t *testing.T, got, want engine.RequeueResult) {
	t.Helper()
	if got != want {
		t.Errorf("DLQRequeue = %+v, want %+v", got, want)
	}
}

// writeDLQ puts raw entries in one of queue's DLQs through its key, which
// docs/compat.md fixes ("dlq:Q", "dlq:overflow:Q"): that is where the original
// service and operators write, and the one way to hand an engine entries
// it did not build itself. The key comes from the harness's layout and
// reaches storage through its PushRaw; without both the case is skipped.
// An engine whose DLQ is not that list fails: the layout is docs/compat.md's.
func writeDLQ(t *testing.T, ctx context.Context, e engine.Engine, caps Capabilities, queue string, kind engine.DLQKind, entries []string) {
	t.Helper()
	keys := caps.needKeys(t).Queue(queue)
	if caps.PushRaw == nil {
		t.Skip("the harness gives no raw access to stored lists (Capabilities.PushRaw)")
	}
	name := keys.FailedDLQ
	if kind == engine.DLQOverflow {
		name = keys.OverflowDLQ
	}
	caps.PushRaw(t, ctx, e, name, entries...)
	n, err := e.DLQLen(ctx, queue, kind)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(entries)) {
		t.Fatalf("the %s DLQ of %q is not the list %q: %d entries written there, DLQLen %d", kind, queue, name, len(entries), n)
	}
}
