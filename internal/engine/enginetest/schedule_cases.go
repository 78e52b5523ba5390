package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// shortDelay is a not-before delay a case waits out (or skips with
// Capabilities.Advance).
const shortDelay = 150 * time.Millisecond

// schedule adds items that become visible after delay.
func schedule(t *testing.T, ctx context.Context, e engine.Engine, queue string, policy engine.Policy, maxSize int64, delay time.Duration, items ...string) []engine.AddResult {
	t.Helper()
	res, err := e.QueueAdd(ctx, engine.AddParams{Queue: queue, Items: items, Policy: policy, MaxSize: maxSize, NotBefore: time.Now().Add(delay)})
	if err != nil {
		t.Fatalf("QueueAdd(%q, not before +%v, %d items): %v", queue, delay, len(items), err)
	}
	if len(res) != len(items) {
		t.Fatalf("QueueAdd(%q) returned %d results for %d items", queue, len(res), len(items))
	}
	return res
}

func wantScheduled(t *testing.T, ctx context.Context, e engine.Engine, queue string, want int64) {
	t.Helper()
	n, err := e.QueueScheduled(ctx, queue)
	if err != nil {
		t.Fatalf("QueueScheduled(%q): %v", queue, err)
	}
	if n != want {
		t.Errorf("QueueScheduled(%q) = %d, want %d", queue, n, want)
	}
}

// passTime lets d pass for e: at once with Capabilities.Advance, else the
// caller waits on a condition (eventually).
func passTime(t *testing.T, h Harness, e engine.Engine, d time.Duration) {
	t.Helper()
	if h.Caps.Advance != nil {
		h.Caps.Advance(t, e, d)
	}
}

// sweepUntil runs QueueReclaim (the maintainer's sweep of one queue) until
// cond holds.
func sweepUntil(t *testing.T, ctx context.Context, e engine.Engine, queue, what string, cond func() (bool, error)) {
	t.Helper()
	eventually(t, ctx, what, func() (bool, error) {
		if _, err := e.QueueReclaim(ctx, queue, 5); err != nil {
			return false, err
		}
		return cond()
	})
}

func queueLenIs(ctx context.Context, e engine.Engine, queue string, want int64) func() (bool, error) {
	return func() (bool, error) {
		n, err := e.QueueLen(ctx, queue)
		return n == want, err
	}
}

// scheduleCases check scheduled items (AddParams.NotBefore) and the sweep
// that releases them and settles due deliveries (QueueReclaim).
func scheduleCases(t *testing.T, h Harness) {
	t.Run("InvisibleUntilDue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 10, "now")
		res := schedule(t, ctx, e, "q", engine.PolicyReject, 10, longLease, "later")
		// The length an add reports counts scheduled items, as the bound does.
		wantResults(t, "scheduled add", res, []engine.AddResult{{Accepted: true, QueueLength: 2}})
		wantQueue(t, ctx, e, "q", "now")
		wantScheduled(t, ctx, e, "q", 1)
		if item, ok, err := e.QueuePop(ctx, "q", 0); err != nil || !ok || item != "now" {
			t.Fatalf("QueuePop = %q, %v, %v; want the visible item", item, ok, err)
		}
		if item, ok, err := e.QueuePop(ctx, "q", 0); err != nil || ok {
			t.Fatalf("QueuePop = %q, %v, %v; want nothing before the item is due", item, ok, err)
		}
		wantDeliveries(t, receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 1}), nil, 0)
		if n, err := e.QueueReclaim(ctx, "q", 1); err != nil || n != 0 {
			t.Fatalf("QueueReclaim = %d, %v; want 0, nil", n, err)
		}
		wantScheduled(t, ctx, e, "q", 1)
		wantInFlight(t, ctx, e, "q", 0)
		// A time already past adds the items as usual.
		schedule(t, ctx, e, "q", engine.PolicyReject, 10, -time.Second, "past")
		wantQueue(t, ctx, e, "q", "past")
	})

	t.Run("SweepReleasesDue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		schedule(t, ctx, e, "q", engine.PolicyReject, 10, shortDelay, "s1", "s2")
		add(t, ctx, e, "q", engine.PolicyReject, 10, "a")
		passTime(t, h, e, shortDelay)
		sweepUntil(t, ctx, e, "q", "release of due scheduled items", queueLenIs(ctx, e, "q", 3))
		// Released to the tail, in their order.
		wantQueue(t, ctx, e, "q", "a", "s1", "s2")
		wantScheduled(t, ctx, e, "q", 0)
	})

	t.Run("PopReleasesDue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		schedule(t, ctx, e, "q", engine.PolicyReject, 10, shortDelay, "s")
		passTime(t, h, e, shortDelay)
		eventually(t, ctx, "a pop of the due item", func() (bool, error) {
			item, ok, err := e.QueuePop(ctx, "q", 0)
			if ok && item != "s" {
				t.Fatalf("QueuePop = %q, want s", item)
			}
			return ok, err
		})
		wantScheduled(t, ctx, e, "q", 0)
	})

	t.Run("BlockedReceiveWakesWhenDue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		schedule(t, ctx, e, "q", engine.PolicyReject, 10, shortDelay, "s")
		recv := startReceive(ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 1})
		passTime(t, h, e, shortDelay)
		r := waitFor(t, "receive of a scheduled item", recv)
		if r.err != nil {
			t.Fatal(r.err)
		}
		wantDeliveries(t, r.ds, []string{"s"}, 1)
		wantInFlight(t, ctx, e, "q", 1)
	})

	t.Run("BlockedPopWakesWhenDue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		schedule(t, ctx, e, "q", engine.PolicyReject, 10, shortDelay, "s")
		pop := startPop(ctx, e, "q", waitTimeout)
		passTime(t, h, e, shortDelay)
		// Nothing is pushed: the pop's own wait ends when the item is due.
		r := waitFor(t, "blocked pop of a scheduled item", pop)
		if r.err != nil || !r.ok || r.item != "s" {
			t.Fatalf("blocked QueuePop = %q, %v, %v; want the scheduled item", r.item, r.ok, r.err)
		}
		wantScheduled(t, ctx, e, "q", 0)
	})

	t.Run("CountsTowardBound", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		res := schedule(t, ctx, e, "r", engine.PolicyReject, 2, longLease, "s1", "s2", "s3")
		wantResults(t, "reject", res, []engine.AddResult{
			{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {QueueLength: 2},
		})
		res = add(t, ctx, e, "r", engine.PolicyReject, 2, "x")
		wantResults(t, "visible add to a queue full of scheduled items", res, []engine.AddResult{{QueueLength: 2}})
		wantQueue(t, ctx, e, "r")

		// drop_oldest and dlq make room from the visible head first...
		add(t, ctx, e, "d", engine.PolicyDropOldest, 2, "a")
		schedule(t, ctx, e, "d", engine.PolicyDropOldest, 2, longLease, "s")
		res = add(t, ctx, e, "d", engine.PolicyDropOldest, 2, "b")
		wantResults(t, "drop_oldest", res, []engine.AddResult{{Accepted: true, QueueLength: 2, Dropped: 1}})
		wantQueue(t, ctx, e, "d", "b")
		wantScheduled(t, ctx, e, "d", 1)

		// ...then from the scheduled items due soonest.
		schedule(t, ctx, e, "o", engine.PolicyDLQ, 2, 2*longLease, "late")
		schedule(t, ctx, e, "o", engine.PolicyDLQ, 2, longLease, "soon")
		res = add(t, ctx, e, "o", engine.PolicyDLQ, 2, "x")
		wantResults(t, "dlq", res, []engine.AddResult{{Accepted: true, QueueLength: 2, MovedToDLQ: 1}})
		wantQueue(t, ctx, e, "o", "x")
		wantScheduled(t, ctx, e, "o", 1)
		wantDLQ(t, ctx, e, "o", engine.DLQOverflow, engine.OverflowEnvelope("o", "soon"))
	})

	t.Run("IdempotentScheduledAdd", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		p := engine.AddParams{Queue: "q", Items: []string{"s"}, Policy: engine.PolicyReject, MaxSize: 5,
			IdempotencyKey: "k", IdempotencyWindow: time.Minute, NotBefore: time.Now().Add(longLease)}
		first, err := e.QueueAdd(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.QueueAdd(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, "repeat", again, replayed(first))
		wantScheduled(t, ctx, e, "q", 1)
		wantQueue(t, ctx, e, "q")
	})

	t.Run("ExpiredLeasesLeaveInFlightAtSweep", func(t *testing.T) {
		// The maintainer's case: leases run out and nobody receives; one
		// sweep dead-letters those that used their deliveries, and none of
		// them counts as in flight afterwards.
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b", "c", "last")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 3, Lease: shortLease, MaxDeliveries: 5})
		wantDeliveries(t, ds, []string{"a", "b", "c"}, 1)
		final := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 1})
		wantDeliveries(t, final, []string{"last"}, 1)
		wantInFlight(t, ctx, e, "q", 4)
		passTime(t, h, e, shortLease)
		var dead int64
		eventually(t, ctx, "a sweep after the leases ran out", func() (bool, error) {
			n, err := e.QueueReclaim(ctx, "q", 1)
			dead += n
			return dead == 4, err
		})
		wantInFlight(t, ctx, e, "q", 0)
		if n := len(dlqAll(t, ctx, e, "q", engine.DLQFailed)); n != 4 {
			t.Errorf("failed DLQ holds %d entries, want 4", n)
		}
	})

	t.Run("SweepUsesDeclaredMaxDeliveries", func(t *testing.T) {
		// Declared settings win over the sweeper's default.
		t.Parallel()
		ctx, e := setup(t, h)
		if _, err := e.QueueDeclare(ctx, "q", engine.QueueSettings{MaxDeliveries: 1, Set: engine.SetMaxDeliveries}); err != nil {
			t.Fatal(err)
		}
		add(t, ctx, e, "q", engine.PolicyReject, 0, "x")
		wantDeliveries(t, receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 1}), []string{"x"}, 1)
		passTime(t, h, e, shortLease)
		waitReclaimed(t, ctx, e, "q", 5, 1)
		wantInFlight(t, ctx, e, "q", 0)
	})

	t.Run("DueDeliveriesAreNotInFlight", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 5})
		wantDeliveries(t, ds, []string{"a", "b"}, 1)
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, Delay: shortDelay, MaxDeliveries: 5})
		wantInFlight(t, ctx, e, "q", 2)
		passTime(t, h, e, shortDelay)
		eventually(t, ctx, "the nack delay to end", func() (bool, error) {
			if _, err := e.QueueReclaim(ctx, "q", 5); err != nil {
				return false, err
			}
			n, err := e.QueueInFlight(ctx, "q")
			return n == 1, err
		})
		// Nothing is lost: the next receive hands it out again.
		wantDeliveries(t, receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 5}), []string{"a"}, 2)
	})

	t.Run("SurvivesReopen", func(t *testing.T) {
		if h.Caps.Reopen == nil {
			t.Skipf("%s: the harness has no Reopen", h.Name)
		}
		t.Parallel()
		ctx, d := setupDurable(t, h)
		schedule(t, ctx, d.e, "q", engine.PolicyReject, 3, shortDelay, "s1", "s2")
		add(t, ctx, d.e, "q", engine.PolicyReject, 3, "a")
		d.reopen(t)
		wantScheduled(t, ctx, d.e, "q", 2)
		// Still counted toward the bound after the reopen.
		res := add(t, ctx, d.e, "q", engine.PolicyReject, 3, "x")
		wantResults(t, "add to the full queue after reopen", res, []engine.AddResult{{QueueLength: 3}})
		passTime(t, h, d.e, shortDelay)
		sweepUntil(t, ctx, d.e, "q", "release after reopen", queueLenIs(ctx, d.e, "q", 3))
		d.reopen(t)
		wantQueue(t, ctx, d.e, "q", "a", "s1", "s2")
		wantScheduled(t, ctx, d.e, "q", 0)
	})
}
