package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// durableCases check that state survives closing and reopening an engine
// over the same stored data. Engines without Reopen skip them.
func durableCases(t *testing.T, h Harness) {
	if h.Caps.Reopen == nil {
		t.Skipf("%s: the harness has no Reopen; the engine keeps no state across restarts", h.Name)
	}

	t.Run("QueueAndDLQs", func(t *testing.T) {
		t.Parallel()
		ctx, d := setupDurable(t, h)
		deadLetter(t, ctx, d.e, "q", "boom", "failed-1", `{"id": 2}`)
		failed := dlqAll(t, ctx, d.e, "q", engine.DLQFailed)
		add(t, ctx, d.e, "q", engine.PolicyDLQ, 3, "a", "b", "c", "d", "é ✓ 😀")
		d.reopen(t)
		wantQueue(t, ctx, d.e, "q", "c", "d", "é ✓ 😀")
		wantDLQ(t, ctx, d.e, "q", engine.DLQOverflow, engine.OverflowEnvelope("q", "a"), engine.OverflowEnvelope("q", "b"))
		wantDLQ(t, ctx, d.e, "q", engine.DLQFailed, failed...)
		// The reopened engine keeps applying the policy to what survived.
		res := add(t, ctx, d.e, "q", engine.PolicyDropOldest, 3, "e")
		wantResults(t, "add after reopen", res, []engine.AddResult{{Accepted: true, QueueLength: 3, Dropped: 1}})
	})

	t.Run("DLQRemove", func(t *testing.T) {
		t.Parallel()
		ctx, d := setupDurable(t, h)
		add(t, ctx, d.e, "q", engine.PolicyDLQ, 1, "a", "b", "c", "d")
		ovf := dlqAll(t, ctx, d.e, "q", engine.DLQOverflow)
		if ok, err := d.e.DLQRemove(ctx, "q", engine.DLQOverflow, 1, ovf[1]); err != nil || !ok {
			t.Fatalf("DLQRemove: %v, %v", ok, err)
		}
		d.reopen(t)
		wantDLQ(t, ctx, d.e, "q", engine.DLQOverflow, ovf[0], ovf[2])
	})

	t.Run("IdempotencyRecords", func(t *testing.T) {
		// A retry after a restart inside the window still must not add.
		t.Parallel()
		ctx, d := setupDurable(t, h)
		first := mustIdemAdd(t, ctx, d.e, "q", "req-1", engine.PolicyDLQ, 2, "a", "b", "c")
		d.reopen(t)
		again := mustIdemAdd(t, ctx, d.e, "q", "req-1", engine.PolicyDLQ, 2, "a", "b", "c")
		wantResults(t, "repeat after reopen", again, replayed(first))
		wantQueue(t, ctx, d.e, "q", "b", "c")
		_, err := idemAdd(ctx, d.e, "q", "req-1", engine.PolicyDLQ, 2, "other")
		wantErrIs(t, "key reused after reopen", err, engine.ErrIdempotencyConflict)
	})

	t.Run("Leases", func(t *testing.T) {
		t.Parallel()
		ctx, d := setupDurable(t, h)
		add(t, ctx, d.e, "q", engine.PolicyDLQ, 0, "held", "expiring", "delayed", "waiting")
		held := receive(t, ctx, d.e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 5})
		wantDeliveries(t, held, []string{"held"}, 1)
		expiring := receive(t, ctx, d.e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 5})
		wantDeliveries(t, expiring, []string{"expiring"}, 1)
		delayed := receive(t, ctx, d.e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 5})
		wantDeliveries(t, delayed, []string{"delayed"}, 1)
		nack(t, ctx, d.e, engine.NackParams{Queue: "q", ID: delayed[0].ID, Delay: 200 * time.Millisecond, MaxDeliveries: 5})
		d.reopen(t)
		wantInFlight(t, ctx, d.e, "q", 3)
		// The expired lease and the delayed nack come back as second
		// deliveries, the waiting item as a first one; the live lease is
		// still held under its id.
		got := map[string]int{}
		for len(got) < 3 {
			ds := receive(t, ctx, d.e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 5})
			if len(ds) != 1 {
				t.Fatalf("receive after reopen got %d deliveries, want 1 (so far %v)", len(ds), got)
			}
			got[ds[0].Item] = ds[0].Attempt
		}
		if got["expiring"] != 2 || got["delayed"] != 2 || got["waiting"] != 1 {
			t.Errorf("deliveries after reopen %v, want expiring and delayed at attempt 2, waiting at 1", got)
		}
		if err := engine.Ack(ctx, d.e, "q", held[0].ID); err != nil {
			t.Errorf("Ack of a lease taken before reopen: %v", err)
		}
		wantErrIs(t, "Ack of the expired delivery", engine.Ack(ctx, d.e, "q", expiring[0].ID), engine.ErrLeaseNotFound)
		wantInFlight(t, ctx, d.e, "q", 3)
		wantQueue(t, ctx, d.e, "q")
	})

	t.Run("Cache", func(t *testing.T) {
		t.Parallel()
		ctx, d := setupDurable(t, h)
		cacheSet(t, ctx, d.e, "forever", "v1", 0, false, true)
		cacheSet(t, ctx, d.e, "ttl", "v2", time.Minute, false, true)
		d.reopen(t)
		wantCached(t, ctx, d.e, "forever", "v1")
		wantTTL(t, ctx, d.e, "forever", -1)
		wantCached(t, ctx, d.e, "ttl", "v2")
		wantTTLWithin(t, ctx, d.e, "ttl", time.Minute)
	})

	t.Run("LockFences", func(t *testing.T) {
		t.Parallel()
		ctx, d := setupDurable(t, h)
		acquire(t, ctx, d.e, "L", "tok1", time.Minute, true)
		if err := d.e.LockRelease(ctx, "L", "tok1"); err != nil {
			t.Fatal(err)
		}
		f2 := acquire(t, ctx, d.e, "L", "tok2", time.Minute, true)
		d.reopen(t)
		acquire(t, ctx, d.e, "L", "tok3", time.Minute, false)
		if err := d.e.LockRelease(ctx, "L", "tok2"); err != nil {
			t.Fatalf("LockRelease by the holder from before reopen: %v", err)
		}
		if f3 := acquire(t, ctx, d.e, "L", "tok3", time.Minute, true); f3 <= f2 {
			t.Errorf("fence after reopen %d, want > %d", f3, f2)
		}
	})
}

// durable holds the current engine of a case that reopens it.
type durable struct {
	h Harness
	e engine.Engine
}

func setupDurable(t *testing.T, h Harness) (context.Context, *durable) {
	t.Helper()
	d := &durable{h: h, e: h.New(t)}
	t.Cleanup(func() {
		if err := d.e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	t.Cleanup(cancel)
	return ctx, d
}

// reopen swaps in an engine over the same data; Reopen closes the old one.
func (d *durable) reopen(t *testing.T) {
	t.Helper()
	d.e = d.h.Caps.Reopen(t, d.e)
}
