package enginetest

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

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
		wantInFlight(t, ctx, e, "q", 1)
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
			wantInFlight(t, ctx, e, "q", 1)
		}
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		// A released item is due at once and is handed out before the
		// queue's head.
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 1})
		wantDeliveries(t, ds, []string{"x", "y"}, 1)
		for _, d := range ds {
			if err := engine.Ack(ctx, e, "q", d.ID); err != nil {
				t.Fatalf("QueueAck(%s): %v", d.ID, err)
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
		wantErrIs(t, "QueueAck of a released delivery", engine.Ack(ctx, e, "q", ds[0].ID), engine.ErrLeaseNotFound)
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
		if h.Reopen == nil {
			t.Skipf("%s: the harness has no Reopen", h.Name)
		}
		t.Parallel()
		ctx, d := setupDurable(t, h)
		add(t, ctx, d.e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 1}
		ds := receive(t, ctx, d.e, p)
		nack(t, ctx, d.e, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 1, Release: true})
		d.reopen(t)
		wantInFlight(t, ctx, d.e, "q", 1)
		wantDeliveries(t, receive(t, ctx, d.e, p), []string{"x"}, 1)
		wantDLQ(t, ctx, d.e, "q", engine.DLQFailed)
	})
}
