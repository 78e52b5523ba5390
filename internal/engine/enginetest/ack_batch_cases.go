package enginetest

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

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
