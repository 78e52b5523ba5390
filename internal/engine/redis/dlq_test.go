package redis

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

func (f fixture) pushRaw(t *testing.T, key string, entries ...string) {
	t.Helper()
	if err := f.raw.Do(f.ctx, f.raw.B().Rpush().Key(key).Element(entries...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
}

func (f fixture) requeue(t *testing.T, p engine.RequeueParams) engine.RequeueResult {
	t.Helper()
	res, err := f.e.DLQRequeue(f.ctx, p)
	if err != nil {
		t.Fatalf("DLQRequeue: %v", err)
	}
	return res
}

func TestDLQLenRangePurge(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 1, "a", "b", "c")
	if n, err := f.e.DLQLen(f.ctx, "q", engine.DLQOverflow); err != nil || n != 2 {
		t.Fatalf("overflow len %d %v", n, err)
	}
	if n, err := f.e.DLQLen(f.ctx, "q", engine.DLQFailed); err != nil || n != 0 {
		t.Fatalf("failed len %d %v", n, err)
	}
	got, err := f.e.DLQRange(f.ctx, "q", engine.DLQOverflow, -1, -1)
	if err != nil || !slices.Equal(got, []string{engine.OverflowEnvelope("q", "b")}) {
		t.Fatalf("range %q %v", got, err)
	}
	if _, err := f.e.DLQLen(f.ctx, "q", "bogus"); err == nil {
		t.Fatal("unknown DLQ kind accepted")
	}
	if n, err := f.e.DLQPurge(f.ctx, "q", engine.DLQOverflow); err != nil || n != 2 {
		t.Fatalf("purge %d %v", n, err)
	}
	if n, err := f.e.DLQPurge(f.ctx, "q", engine.DLQOverflow); err != nil || n != 0 {
		t.Fatalf("second purge %d %v", n, err)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"c"}) {
		t.Fatalf("purge touched the queue: %q", items)
	}
}

func TestDLQRequeueOverflow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 2, "a", "b", "c", "d", "e")
	f.pop(t, "q", 2)
	// Overflow DLQ: a b c. Room for 2 under reject: a and b go back, c stays.
	res := f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyReject, MaxSize: 2})
	if res != (engine.RequeueResult{Requeued: 2, Remaining: 1}) {
		t.Fatalf("result %+v", res)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"a", "b"}) {
		t.Fatalf("queue %q", items)
	}
	if got := f.dlq(t, "q", engine.DLQOverflow); !slices.Equal(got, []string{engine.OverflowEnvelope("q", "c")}) {
		t.Fatalf("DLQ %q", got)
	}
	// Under dlq, requeuing c into the full queue displaces a into the same
	// DLQ; the scan is bounded by the DLQ's length when it started.
	res = f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyDLQ, MaxSize: 2})
	if res != (engine.RequeueResult{Requeued: 1, Remaining: 1, Displaced: 1}) {
		t.Fatalf("result %+v", res)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"b", "c"}) {
		t.Fatalf("queue %q", items)
	}
	if got := f.dlq(t, "q", engine.DLQOverflow); !slices.Equal(got, []string{engine.OverflowEnvelope("q", "a")}) {
		t.Fatalf("DLQ %q", got)
	}
	res = f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyDropOldest, MaxSize: 2})
	if res != (engine.RequeueResult{Requeued: 1, Remaining: 0, Displaced: 1}) {
		t.Fatalf("result %+v", res)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"c", "a"}) {
		t.Fatalf("queue %q", items)
	}
}

func TestDLQRequeueFailedAndMalformed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, `{"k": [1, 2]}`)
	d := f.receive(t, "q", 1, 1)[0]
	if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: d.ID, Error: "e", MaxDeliveries: 1}); err != nil {
		t.Fatal(err)
	}
	key := f.e.keys.Queue("q").FailedDLQ
	f.pushRaw(t, key,
		"not json",
		`{"original_job": "python string", "error": "x"}`,
		`{"no": "field"}`,
		`{"original_job": {"a": 1, "big": 12345678901234567890}, "error": "x"}`,
		`{"original_job": "last", "error": "x"}`,
	)
	res := f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Count: 3, Policy: engine.PolicyReject})
	if res != (engine.RequeueResult{Requeued: 3, Remaining: 3}) {
		t.Fatalf("result %+v", res)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{`{"k": [1, 2]}`, "python string", `{"a": 1, "big": 12345678901234567890}`}) {
		t.Fatalf("queue %q", items)
	}
	// The malformed entries stay at the head, in order, ahead of the rest.
	want := []string{"not json", `{"no": "field"}`, `{"original_job": "last", "error": "x"}`}
	if got := f.dlq(t, "q", engine.DLQFailed); !slices.Equal(got, want) {
		t.Fatalf("DLQ %q", got)
	}
	res = f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyReject})
	if res != (engine.RequeueResult{Requeued: 1, Remaining: 2}) {
		t.Fatalf("result %+v", res)
	}
	if got := f.dlq(t, "q", engine.DLQFailed); !slices.Equal(got, want[:2]) {
		t.Fatalf("DLQ %q", got)
	}
}

func TestDLQRequeueRejectStopsInPlace(t *testing.T) {
	t.Parallel()
	f := setup(t)
	key := f.e.keys.Queue("q").OverflowDLQ
	f.pushRaw(t, key, "junk", engine.OverflowEnvelope("q", "x"), engine.OverflowEnvelope("q", "y"))
	f.add(t, "q", engine.PolicyReject, 0, "full")
	res := f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyReject, MaxSize: 1})
	if res != (engine.RequeueResult{Remaining: 3}) {
		t.Fatalf("result %+v", res)
	}
	want := []string{"junk", engine.OverflowEnvelope("q", "x"), engine.OverflowEnvelope("q", "y")}
	if got := f.dlq(t, "q", engine.DLQOverflow); !slices.Equal(got, want) {
		t.Fatalf("DLQ %q", got)
	}
	if _, err := f.e.DLQRequeue(f.ctx, engine.RequeueParams{Queue: "q", Kind: "nope"}); err == nil {
		t.Fatal("unknown DLQ kind accepted")
	}
}

// TestDLQRequeueRoundTrip: what the overflow DLQ wrapped comes back byte
// for byte (valid UTF-8 survives the \uXXXX escapes, surrogate pairs too).
func TestDLQRequeueRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	items := []string{
		"plain", `{"id": 1, "s": "q\"uote"}`, "back\\slash", "ctrl \x00\x01\t\n\x1f\x7f",
		"caf\u00e9 \u4e2d \U0001F600 \U0010FFFF", "", "Z:KLUv/QBYAQAAaGk=",
	}
	f.add(t, "q", engine.PolicyDLQ, 1, append(items, "last")...)
	if _, err := f.e.QueueClear(f.ctx, "q"); err != nil {
		t.Fatal(err)
	}
	res := f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyDLQ})
	if res != (engine.RequeueResult{Requeued: int64(len(items))}) {
		t.Fatalf("result %+v", res)
	}
	if got := f.rangeAll(t, "q"); !slices.Equal(got, items) {
		t.Fatalf("queue %q\nwant  %q", got, items)
	}
}

// TestDLQRequeueOriginalJobText: a failed-job entry without "data" gives
// back its original_job text as written, wherever the field sits.
func TestDLQRequeueOriginalJobText(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.pushRaw(t, f.e.keys.Queue("q").FailedDLQ,
		`{"error": "\"original_job\": 5", "nested": {"original_job": 1}, "original_job":  [1, {"x": "y\u00e9"}, 2.50] , "attempt_count": 3}`,
		`{"original_job": {}, "error": "x"}`,
	)
	res := f.requeue(t, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyDLQ})
	if res != (engine.RequeueResult{Requeued: 2}) {
		t.Fatalf("result %+v", res)
	}
	want := []string{`[1, {"x": "y\u00e9"}, 2.50]`, `{}`}
	if got := f.rangeAll(t, "q"); !slices.Equal(got, want) {
		t.Fatalf("queue %q", got)
	}
}
