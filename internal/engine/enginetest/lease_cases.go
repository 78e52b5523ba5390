package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

func leaseCases(t *testing.T, h Harness) {
	t.Run("ReceiveCount", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b", "c", "d", "e")
		first := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 3, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, first, []string{"a", "b", "c"}, 1)
		wantQueue(t, ctx, e, "q", "d", "e")
		wantInFlight(t, ctx, e, "q", 3)
		rest := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 10, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, rest, []string{"d", "e"}, 1)
		none := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 10, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, none, nil, 1)
		wantInFlight(t, ctx, e, "q", 5)
		ids := map[string]bool{}
		for _, d := range append(first, rest...) {
			if d.ID == "" || ids[d.ID] {
				t.Errorf("delivery id %q is empty or not unique", d.ID)
			}
			ids[d.ID] = true
		}
	})

	t.Run("AckRemoves", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, ds, []string{"a", "b"}, 1)
		if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		wantInFlight(t, ctx, e, "q", 1)
		wantErrIs(t, "second Ack", engine.Ack(ctx, e, "q", ds[0].ID), engine.ErrLeaseNotFound)
		wantErrIs(t, "Ack of an unknown id", engine.Ack(ctx, e, "q", "no-such-delivery"), engine.ErrLeaseNotFound)
		wantErrIs(t, "Ack on another queue", engine.Ack(ctx, e, "other", ds[1].ID), engine.ErrLeaseNotFound)
		if err := engine.Ack(ctx, e, "q", ds[1].ID); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantQueue(t, ctx, e, "q")
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		wantDeliveries(t, receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3}), nil, 1)
	})

	t.Run("ExpiredLeaseRedelivered", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		d1 := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 5})
		wantDeliveries(t, d1, []string{"x"}, 1)
		d2 := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 5})
		wantDeliveries(t, d2, []string{"x"}, 2)
		if d2[0].ID == d1[0].ID {
			t.Errorf("redelivery reuses id %q", d1[0].ID)
		}
		wantErrIs(t, "Ack of the expired delivery", engine.Ack(ctx, e, "q", d1[0].ID), engine.ErrLeaseNotFound)
		wantErrIs(t, "QueueExtend of the expired delivery", e.QueueExtend(ctx, "q", d1[0].ID, longLease), engine.ErrLeaseNotFound)
		_, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: d1[0].ID, MaxDeliveries: 5})
		wantErrIs(t, "QueueNack of the expired delivery", err, engine.ErrLeaseNotFound)
		wantInFlight(t, ctx, e, "q", 1)
		if err := engine.Ack(ctx, e, "q", d2[0].ID); err != nil {
			t.Fatalf("Ack of the redelivery: %v", err)
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
	})

	t.Run("NackImmediate", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 5}
		var prev string
		for attempt := 1; attempt <= 3; attempt++ {
			ds := receive(t, ctx, e, p)
			wantDeliveries(t, ds, []string{"x"}, attempt)
			if ds[0].ID == prev {
				t.Errorf("attempt %d reuses id %q", attempt, prev)
			}
			prev = ds[0].ID
			res := nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Error: "retry", MaxDeliveries: 5})
			if res.DeadLettered {
				t.Fatalf("nack of attempt %d dead-lettered under MaxDeliveries 5", attempt)
			}
			wantErrIs(t, "Ack after nack", engine.Ack(ctx, e, "q", ds[0].ID), engine.ErrLeaseNotFound)
			_, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 5})
			wantErrIs(t, "second QueueNack", err, engine.ErrLeaseNotFound)
		}
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
	})

	t.Run("NackDelay", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 5}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 1)
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Delay: time.Second, MaxDeliveries: 5})
		wantDeliveries(t, receive(t, ctx, e, p), nil, 0)
		wantInFlight(t, ctx, e, "q", 1)
		p.Timeout = waitTimeout
		wantDeliveries(t, receive(t, ctx, e, p), []string{"x"}, 2)
	})

	t.Run("MaxDeliveriesViaNack", func(t *testing.T) {
		for name, item := range map[string]string{
			"JSONObject": `{"id": 7, "name": "é", "tags": ["a"]}`,
			"JSONArray":  `[1, "two", {"three": 3}]`,
			"String":     `plain "quoted" ✓ 😀`,
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx, e := setup(t, h)
				const queue = "jobs-é"
				start := time.Now()
				add(t, ctx, e, queue, engine.PolicyDLQ, 0, item)
				p := engine.ReceiveParams{Queue: queue, Count: 1, Lease: longLease, MaxDeliveries: 2}
				ds := receive(t, ctx, e, p)
				wantDeliveries(t, ds, []string{item}, 1)
				if res := nack(t, ctx, e, engine.NackParams{Queue: queue, ID: ds[0].ID, Error: "first", MaxDeliveries: 2}); res.DeadLettered {
					t.Fatal("first nack dead-lettered under MaxDeliveries 2")
				}
				ds = receive(t, ctx, e, p)
				wantDeliveries(t, ds, []string{item}, 2)
				const msg = "boom: \"bad\" é\nline 2"
				// The last nack dead-letters at once, whatever its delay.
				if res := nack(t, ctx, e, engine.NackParams{Queue: queue, ID: ds[0].ID, Error: msg, Delay: time.Hour, MaxDeliveries: 2}); !res.DeadLettered {
					t.Fatal("second nack did not dead-letter under MaxDeliveries 2")
				}
				entries := dlqAll(t, ctx, e, queue, engine.DLQFailed)
				if len(entries) != 1 {
					t.Fatalf("failed DLQ holds %d entries, want 1", len(entries))
				}
				checkFailedEntry(t, entries[0], queue, item, msg, 2, start)
				wantInFlight(t, ctx, e, queue, 0)
				wantQueue(t, ctx, e, queue)
				wantErrIs(t, "Ack after dead-lettering", engine.Ack(ctx, e, queue, ds[0].ID), engine.ErrLeaseNotFound)
				wantDeliveries(t, receive(t, ctx, e, p), nil, 0)
			})
		}
	})

	t.Run("MaxDeliveriesViaExpiry", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		start := time.Now()
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 1})
		wantDeliveries(t, ds, []string{"x"}, 1)
		waitReclaimed(t, ctx, e, "q", 1, 1)
		entries := dlqAll(t, ctx, e, "q", engine.DLQFailed)
		if len(entries) != 1 {
			t.Fatalf("failed DLQ holds %d entries, want 1", len(entries))
		}
		checkFailedEntry(t, entries[0], "q", "x", "lease expired", 1, start)
		wantInFlight(t, ctx, e, "q", 0)
		wantErrIs(t, "Ack after dead-lettering", engine.Ack(ctx, e, "q", ds[0].ID), engine.ErrLeaseNotFound)
	})

	t.Run("MaxDeliveriesViaReceive", func(t *testing.T) {
		// A receive reclaims expired leases itself, without a sweep.
		t.Parallel()
		ctx, e := setup(t, h)
		start := time.Now()
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 1}
		wantDeliveries(t, receive(t, ctx, e, p), []string{"x"}, 1)
		waitPast(t, ctx, h, e, 5*shortLease)
		wantDeliveries(t, receive(t, ctx, e, p), nil, 0)
		entries := dlqAll(t, ctx, e, "q", engine.DLQFailed)
		if len(entries) != 1 {
			t.Fatalf("failed DLQ holds %d entries, want 1", len(entries))
		}
		checkFailedEntry(t, entries[0], "q", "x", "lease expired", 1, start)
		wantInFlight(t, ctx, e, "q", 0)
	})

	t.Run("RedeliveryBeforeFresh", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "old")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 5}
		wantDeliveries(t, receive(t, ctx, e, p), []string{"old"}, 1)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "fresh")
		waitPast(t, ctx, h, e, 5*shortLease)
		p.Lease = longLease
		wantDeliveries(t, receive(t, ctx, e, p), []string{"old"}, 2)
		wantDeliveries(t, receive(t, ctx, e, p), []string{"fresh"}, 1)
	})

	t.Run("ConcurrentReceivers", func(t *testing.T) {
		// Under long leases every item goes to exactly one receiver.
		t.Parallel()
		ctx, e := setup(t, h)
		items := seq("job-", 300)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, items...)
		const receivers = 10
		got := make([][]string, receivers)
		errs := make(chan error, receivers)
		var wg sync.WaitGroup
		for r := range receivers {
			wg.Go(func() {
				for {
					ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 3, Lease: longLease, MaxDeliveries: 3})
					if err != nil {
						errs <- err
						return
					}
					if len(ds) == 0 {
						return
					}
					for _, d := range ds {
						if d.Attempt != 1 {
							errs <- fmt.Errorf("%s delivered at attempt %d", d.Item, d.Attempt)
						}
						if err := engine.Ack(ctx, e, "q", d.ID); err != nil {
							errs <- fmt.Errorf("Ack(%s): %w", d.Item, err)
							return
						}
						got[r] = append(got[r], d.Item)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		all := slices.Concat(got...)
		slices.Sort(all)
		want := slices.Clone(items)
		slices.Sort(want)
		wantItems(t, "items received across receivers", all, want)
		wantInFlight(t, ctx, e, "q", 0)
		wantQueue(t, ctx, e, "q")
	})

	t.Run("Reclaim", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 2}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"a"}, 1)
		n, err := e.QueueReclaim(ctx, "q", 2)
		if err != nil || n != 0 {
			t.Fatalf("QueueReclaim with nothing expired = %d, %v; want 0, nil", n, err)
		}
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 2})
		// a (second delivery) and b (first) now share one short lease:
		// when it runs out, a has used its deliveries and b has not.
		ds = receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: shortLease, MaxDeliveries: 2})
		if len(ds) != 2 {
			t.Fatalf("receive got %d deliveries, want 2", len(ds))
		}
		got := map[string]int{ds[0].Item: ds[0].Attempt, ds[1].Item: ds[1].Attempt}
		if got["a"] != 2 || got["b"] != 1 {
			t.Fatalf("deliveries %+v, want a at attempt 2 and b at attempt 1", ds)
		}
		waitReclaimed(t, ctx, e, "q", 2, 1)
		entries := dlqAll(t, ctx, e, "q", engine.DLQFailed)
		if len(entries) != 1 {
			t.Fatalf("failed DLQ holds %d entries, want 1", len(entries))
		}
		if data := failedData(t, entries[0]); data != "a" {
			t.Errorf("failed DLQ entry is for %q, want \"a\"", data)
		}
		// b's lease has run out: it waits for redelivery, not in flight.
		wantInFlight(t, ctx, e, "q", 0)
		again := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 2})
		wantDeliveries(t, again, []string{"b"}, 2)
	})

	t.Run("Extend", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		// The first lease is long enough for the extend to come before it
		// ends even on a loaded machine, and short enough to wait past.
		const first = 500 * time.Millisecond
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: first, MaxDeliveries: 5}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 1)
		if err := e.QueueExtend(ctx, "q", ds[0].ID, longLease); err != nil {
			t.Fatalf("QueueExtend: %v", err)
		}
		// Wait well past the first lease: the item must stay leased.
		p.Timeout = 2 * first
		wantDeliveries(t, receive(t, ctx, e, p), nil, 0)
		p.Timeout = 0
		wantDeliveries(t, receive(t, ctx, e, p), nil, 0)
		wantInFlight(t, ctx, e, "q", 1)
		if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
			t.Fatalf("Ack after extend: %v", err)
		}
		wantErrIs(t, "QueueExtend after ack", e.QueueExtend(ctx, "q", ds[0].ID, longLease), engine.ErrLeaseNotFound)
		wantErrIs(t, "QueueExtend of an unknown id", e.QueueExtend(ctx, "q", "no-such-delivery", longLease), engine.ErrLeaseNotFound)
	})

	t.Run("ReceiveBlockingWokenByAdd", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		// Count 5 with one item: the receive hands it out at once instead
		// of waiting for more (its timeout outlasts waitFor's).
		got := startReceive(ctx, e, engine.ReceiveParams{Queue: "q", Count: 5, Timeout: caseTimeout, Lease: longLease, MaxDeliveries: 3})
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		r := waitFor(t, "blocking QueueReceive", got)
		if r.err != nil {
			t.Fatalf("blocking QueueReceive: %v", r.err)
		}
		wantDeliveries(t, r.ds, []string{"x"}, 1)
		wantInFlight(t, ctx, e, "q", 1)
	})

	t.Run("ReceiveBlockingTimeout", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: 50 * time.Millisecond, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, ds, nil, 0)
	})

	t.Run("ReceiveBlockingContextCanceled", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		rctx, cancel := context.WithCancel(ctx)
		got := startReceive(rctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: caseTimeout, Lease: longLease, MaxDeliveries: 3})
		cancel()
		r := waitFor(t, "QueueReceive after cancel", got)
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("QueueReceive after cancel = %+v, %v; want an error matching context.Canceled", r.ds, r.err)
		}
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "after")
		wantDeliveries(t, receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3}), []string{"after"}, 1)
	})
}

type receiveResult struct {
	ds  []engine.Delivery
	err error
}

func startReceive(ctx context.Context, e engine.Engine, p engine.ReceiveParams) <-chan receiveResult {
	ch := make(chan receiveResult, 1)
	go func() {
		ds, err := e.QueueReceive(ctx, p)
		ch <- receiveResult{ds, err}
	}()
	return ch
}

func receive(t *testing.T, ctx context.Context, e engine.Engine, p engine.ReceiveParams) []engine.Delivery {
	t.Helper()
	ds, err := e.QueueReceive(ctx, p)
	if err != nil {
		t.Fatalf("QueueReceive(%+v): %v", p, err)
	}
	return ds
}

func nack(t *testing.T, ctx context.Context, e engine.Engine, p engine.NackParams) engine.NackResult {
	t.Helper()
	res, err := e.QueueNack(ctx, p)
	if err != nil {
		t.Fatalf("QueueNack(%+v): %v", p, err)
	}
	return res
}

// wantDeliveries checks the items, in order, and that each is at attempt.
func wantDeliveries(t *testing.T, ds []engine.Delivery, items []string, attempt int) {
	t.Helper()
	got := make([]string, len(ds))
	for i, d := range ds {
		got[i] = d.Item
		if d.Attempt != attempt {
			t.Errorf("delivery of %s is attempt %d, want %d", clip(d.Item), d.Attempt, attempt)
		}
	}
	wantItems(t, "delivered items", got, items)
}

func wantInFlight(t *testing.T, ctx context.Context, e engine.Engine, queue string, want int64) {
	t.Helper()
	n, err := e.QueueInFlight(ctx, queue)
	if err != nil {
		t.Fatalf("QueueInFlight(%q): %v", queue, err)
	}
	if n != want {
		t.Errorf("QueueInFlight(%q) = %d, want %d", queue, n, want)
	}
}

// waitReclaimed sweeps until want expired leases have been dead-lettered.
func waitReclaimed(t *testing.T, ctx context.Context, e engine.Engine, queue string, maxDeliveries int, want int64) {
	t.Helper()
	var total int64
	eventually(t, ctx, "dead-lettering of an expired lease", func() (bool, error) {
		n, err := e.QueueReclaim(ctx, queue, maxDeliveries)
		total += n
		return total >= want, err
	})
	if total != want {
		t.Errorf("QueueReclaim dead-lettered %d, want %d", total, want)
	}
}

// deadLetter moves items, in order, to queue's failed DLQ through one
// delivery and a nack each. queue must be empty.
func deadLetter(t *testing.T, ctx context.Context, e engine.Engine, queue, errMsg string, items ...string) {
	t.Helper()
	add(t, ctx, e, queue, engine.PolicyDLQ, 0, items...)
	ds := receive(t, ctx, e, engine.ReceiveParams{Queue: queue, Count: len(items), Lease: longLease, MaxDeliveries: 1})
	wantDeliveries(t, ds, items, 1)
	for _, d := range ds {
		if res := nack(t, ctx, e, engine.NackParams{Queue: queue, ID: d.ID, Error: errMsg, MaxDeliveries: 1}); !res.DeadLettered {
			t.Fatalf("nack of %s under MaxDeliveries 1 did not dead-letter", clip(d.Item))
		}
	}
	wantQueue(t, ctx, e, queue)
	wantInFlight(t, ctx, e, queue, 0)
}

var failedFields = []string{"original_job", "error", "attempt_count", "first_failed_at", "last_failed_at", "queue_name", "data"}

// checkFailedEntry decodes a failed DLQ entry, checks every field, and then
// checks the bytes against engine.FailedEnvelope with the entry's own
// timestamps.
func checkFailedEntry(t *testing.T, entry, queue, stored, errMsg string, attempts int, notBefore time.Time) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(entry), &fields); err != nil {
		t.Fatalf("failed DLQ entry %s is not a JSON object: %v", clip(entry), err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(failedFields))
	if !slices.Equal(keys, want) {
		t.Errorf("failed DLQ entry has fields %q, want %q", keys, want)
	}
	var e struct {
		OriginalJob   json.RawMessage `json:"original_job"`
		Error         string          `json:"error"`
		AttemptCount  int             `json:"attempt_count"`
		FirstFailedAt string          `json:"first_failed_at"`
		LastFailedAt  string          `json:"last_failed_at"`
		QueueName     string          `json:"queue_name"`
		Data          string          `json:"data"`
	}
	if err := json.Unmarshal([]byte(entry), &e); err != nil {
		t.Fatalf("failed DLQ entry %s: %v", clip(entry), err)
	}
	if engine.IsJSONContainer(stored) {
		if !jsonEqual(e.OriginalJob, []byte(stored)) {
			t.Errorf("original_job = %s, want the item itself %s", e.OriginalJob, stored)
		}
	} else {
		var s string
		if err := json.Unmarshal(e.OriginalJob, &s); err != nil || s != stored {
			t.Errorf("original_job = %s, want the string %s", e.OriginalJob, clip(stored))
		}
	}
	if e.Error != errMsg {
		t.Errorf("error = %q, want %q", e.Error, errMsg)
	}
	if e.AttemptCount != attempts {
		t.Errorf("attempt_count = %d, want %d", e.AttemptCount, attempts)
	}
	if e.QueueName != queue {
		t.Errorf("queue_name = %q, want %q", e.QueueName, queue)
	}
	if e.Data != stored {
		t.Errorf("data = %s, want %s", clip(e.Data), clip(stored))
	}
	first, ok1 := parseISO(e.FirstFailedAt)
	last, ok2 := parseISO(e.LastFailedAt)
	if !ok1 || !ok2 {
		t.Errorf("first_failed_at %q / last_failed_at %q are not ISO 8601 timestamps", e.FirstFailedAt, e.LastFailedAt)
	} else {
		// The margin allows for a server clock that differs from ours; it
		// still catches wrong units and zero values.
		const skew = 5 * time.Minute
		lo, hi := notBefore.Add(-skew), time.Now().Add(skew)
		if first.After(last) || first.Before(lo) || last.After(hi) {
			t.Errorf("first_failed_at %s, last_failed_at %s: want first <= last, both within [%s, %s]", first, last, lo, hi)
		}
	}
	wantEnv := engine.FailedEnvelope(engine.FailedEntry{
		Queue: queue, Stored: stored, Error: errMsg, AttemptCount: attempts,
		FirstFailedAt: e.FirstFailedAt, LastFailedAt: e.LastFailedAt,
	})
	if entry != wantEnv {
		t.Errorf("failed DLQ entry bytes\n got %s\nwant %s", entry, wantEnv)
	}
}

// failedData returns the stored item a failed DLQ entry records.
func failedData(t *testing.T, entry string) string {
	t.Helper()
	var e struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(entry), &e); err != nil {
		t.Fatalf("failed DLQ entry %s is not JSON: %v", clip(entry), err)
	}
	return e.Data
}

func parseISO(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts, true
		}
	}
	return time.Time{}, false
}

func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	x, _ := json.Marshal(va)
	y, _ := json.Marshal(vb)
	return string(x) == string(y)
}

// ackBatchCases hold engines to QueueAckBatch: per-id outcomes in order,
// settled deliveries gone for good, stale and unknown ids refused alone.
func ackBatchCases(t *testing.T, h Harness) {
	t.Run("SettlesEachHeldLease", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b", "c")
		p := engine.ReceiveParams{Queue: "q", Count: 3, Lease: longLease, MaxDeliveries: 3}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"a", "b", "c"}, 1)
		ids := []string{ds[0].ID, "999999.1", ds[2].ID, "not-an-id", ds[0].ID}
		acked, err := e.QueueAckBatch(ctx, "q", ids)
		if err != nil {
			t.Fatalf("QueueAckBatch: %v", err)
		}
		// The repeated id is settled once: its second mention finds no lease.
		if want := []bool{true, false, true, false, false}; !slices.Equal(acked, want) {
			t.Fatalf("acked = %v, want %v", acked, want)
		}
		wantInFlight(t, ctx, e, "q", 1)
		wantErrIs(t, "ack of a batch-acked id", engine.Ack(ctx, e, "q", ds[2].ID), engine.ErrLeaseNotFound)
		if err := engine.Ack(ctx, e, "q", ds[1].ID); err != nil {
			t.Fatalf("ack of the id left out of the batch: %v", err)
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantQueue(t, ctx, e, "q")
	})

	t.Run("UnknownQueueAndEmptyBatch", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		acked, err := e.QueueAckBatch(ctx, "nothing-here", []string{"1.1", "2.1"})
		if err != nil || !slices.Equal(acked, []bool{false, false}) {
			t.Fatalf("unknown queue: %v, %v; want [false false], nil", acked, err)
		}
		if acked, err := e.QueueAckBatch(ctx, "q", nil); err != nil || len(acked) != 0 {
			t.Fatalf("empty batch: %v, %v", acked, err)
		}
	})
}

// staleIDCases: a released delivery keeps its attempt number, but its
// redelivery must get a new id, so the releasing consumer's stale id can
// never settle what another consumer now holds.
func staleIDCases(t *testing.T, h Harness) {
	t.Run("ReleasedIDCannotSettleRedelivery", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3}
		first := receive(t, ctx, e, p)
		wantDeliveries(t, first, []string{"x"}, 1)
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: first[0].ID, MaxDeliveries: 3, Release: true})
		again := receive(t, ctx, e, p)
		wantDeliveries(t, again, []string{"x"}, 1)
		if again[0].ID == first[0].ID {
			t.Fatalf("redelivery reuses the released id %q", first[0].ID)
		}
		wantErrIs(t, "ack with the released id", engine.Ack(ctx, e, "q", first[0].ID), engine.ErrLeaseNotFound)
		if err := engine.Ack(ctx, e, "q", again[0].ID); err != nil {
			t.Fatalf("ack of the redelivery: %v", err)
		}
	})
}

// releaseCases hold engines to NackParams.Release: the item goes back
// without this delivery counting against MaxDeliveries, so a release never
// dead-letters, the next delivery carries the released one's attempt
// number, and Delay applies as to any nack.
func releaseCases(t *testing.T, h Harness) {
	t.Run("AtLastDeliveryDoesNotDeadLetter", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		start := time.Now()
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 2}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 1)
		if res := nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Error: "first", MaxDeliveries: 2}); res.DeadLettered {
			t.Fatal("first nack dead-lettered under MaxDeliveries 2")
		}
		ds = receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 2)
		// The last allowed delivery, released: an ordinary nack here would
		// dead-letter.
		if res := nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Error: "shutting down", MaxDeliveries: 2, Release: true}); res.DeadLettered {
			t.Fatal("release of the last allowed delivery dead-lettered the item")
		}
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		// Released without a delay: due at once, so no longer in flight.
		wantInFlight(t, ctx, e, "q", 0)
		wantQueue(t, ctx, e, "q")
		ds = receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 2)
		// The redelivery is still the last allowed one, and counts as such.
		if res := nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Error: "second", MaxDeliveries: 2}); !res.DeadLettered {
			t.Fatal("nack of the redelivered last attempt did not dead-letter")
		}
		entries := dlqAll(t, ctx, e, "q", engine.DLQFailed)
		if len(entries) != 1 {
			t.Fatalf("failed DLQ holds %d entries, want 1", len(entries))
		}
		checkFailedEntry(t, entries[0], "q", "x", "second", 2, start)
	})

	t.Run("NextAttemptEqualsReleased", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x", "y")
		// MaxDeliveries 1: any counted delivery would be the last, so
		// repeated releases show that none of them counts.
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 1}
		for round := 1; round <= 3; round++ {
			ds := receive(t, ctx, e, p)
			wantDeliveries(t, ds, []string{"x"}, 1)
			if res := nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 1, Release: true}); res.DeadLettered {
				t.Fatalf("release %d dead-lettered the item", round)
			}
			wantInFlight(t, ctx, e, "q", 0)
		}
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		// A released item is due at once and is handed out before the
		// queue's head.
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 1})
		wantDeliveries(t, ds, []string{"x", "y"}, 1)
		for _, d := range ds {
			if err := engine.Ack(ctx, e, "q", d.ID); err != nil {
				t.Fatalf("Ack(%s): %v", d.ID, err)
			}
		}
		wantInFlight(t, ctx, e, "q", 0)
	})

	t.Run("EndsTheLease", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3}
		ds := receive(t, ctx, e, p)
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Delay: longLease, MaxDeliveries: 3, Release: true})
		// Until it is delivered again, the released delivery settles nothing.
		wantErrIs(t, "Ack of a released delivery", engine.Ack(ctx, e, "q", ds[0].ID), engine.ErrLeaseNotFound)
		wantErrIs(t, "QueueExtend of a released delivery", e.QueueExtend(ctx, "q", ds[0].ID, longLease), engine.ErrLeaseNotFound)
		_, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 3, Release: true})
		wantErrIs(t, "second release", err, engine.ErrLeaseNotFound)
		_, err = e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 3})
		wantErrIs(t, "nack after release", err, engine.ErrLeaseNotFound)
		wantInFlight(t, ctx, e, "q", 1)
	})

	t.Run("UnknownID", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		for _, c := range []struct{ what, queue, id string }{
			{"release on a queue never used", "nothing-here", "1.1"},
			{"release of a malformed id", "q", "no-such-delivery"},
			{"release of an id never handed out", "q", "999.1"},
		} {
			if c.queue == "q" {
				add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
			}
			_, err := e.QueueNack(ctx, engine.NackParams{Queue: c.queue, ID: c.id, MaxDeliveries: 3, Release: true})
			wantErrIs(t, c.what, err, engine.ErrLeaseNotFound)
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
	})

	t.Run("Delay", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 5}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 1)
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Delay: time.Second, MaxDeliveries: 5, Release: true})
		wantDeliveries(t, receive(t, ctx, e, p), nil, 0)
		wantInFlight(t, ctx, e, "q", 1)
		p.Timeout = waitTimeout
		wantDeliveries(t, receive(t, ctx, e, p), []string{"x"}, 1)
	})

	t.Run("SurvivesReopen", func(t *testing.T) {
		if h.Caps.Reopen == nil {
			t.Skipf("%s: the harness has no Reopen", h.Name)
		}
		t.Parallel()
		ctx, d := setupDurable(t, h)
		add(t, ctx, d.e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 1}
		ds := receive(t, ctx, d.e, p)
		nack(t, ctx, d.e, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 1, Release: true})
		d.reopen(t)
		wantInFlight(t, ctx, d.e, "q", 0)
		wantDeliveries(t, receive(t, ctx, d.e, p), []string{"x"}, 1)
		wantInFlight(t, ctx, d.e, "q", 1)
		wantDLQ(t, ctx, d.e, "q", engine.DLQFailed)
	})
}
