package enginetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

// groupCases hold engines to the lease rules for items handed out together
// by one receive: however an engine keeps their leases (the Redis engine
// keeps one per batch), each item is settled, nacked, released, extended,
// expired, counted and listed on its own, exactly as if it had been
// received alone.
func groupCases(t *testing.T, h Harness) {
	t.Run("SettledOneByOne", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b", "c", "d", "e")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 5, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, ds, []string{"a", "b", "c", "d", "e"}, 1)
		wantInFlight(t, ctx, e, "q", 5)
		if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
			t.Fatalf("Ack(a): %v", err)
		}
		// One batch of acks: a repeated id, an id of another item with a
		// changed random part, an already settled id, garbage.
		acked, err := e.QueueAckBatch(ctx, "q", []string{ds[1].ID, ds[1].ID, flipLastHex(ds[2].ID), ds[0].ID, "b1.1.zz", ""})
		if err != nil {
			t.Fatalf("QueueAckBatch: %v", err)
		}
		if want := []bool{true, false, false, false, false, false}; !slices.Equal(acked, want) {
			t.Fatalf("QueueAckBatch = %v, want %v", acked, want)
		}
		wantInFlight(t, ctx, e, "q", 3)
		// d fails, e is handed back: each becomes a delivery of its own.
		if res := nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[3].ID, Error: "boom", MaxDeliveries: 3}); res.DeadLettered {
			t.Fatal("nack of attempt 1 under MaxDeliveries 3 dead-lettered")
		}
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[4].ID, Release: true, MaxDeliveries: 3})
		for _, d := range ds[3:] {
			wantErrIs(t, "Ack after nack or release", engine.Ack(ctx, e, "q", d.ID), engine.ErrLeaseNotFound)
			wantErrIs(t, "QueueExtend after nack or release", e.QueueExtend(ctx, "q", d.ID, longLease), engine.ErrLeaseNotFound)
		}
		again := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 5, Lease: longLease, MaxDeliveries: 3})
		attempts := map[string]int{}
		for _, d := range again {
			attempts[d.Item] = d.Attempt
		}
		if len(again) != 2 || attempts["d"] != 2 || attempts["e"] != 1 {
			t.Fatalf("after a nack of d and a release of e, received %+v; want d at attempt 2 and e at attempt 1", again)
		}
		// c, untouched by all of this, still holds its lease.
		if err := e.QueueExtend(ctx, "q", ds[2].ID, longLease); err != nil {
			t.Fatalf("QueueExtend(c): %v", err)
		}
		if err := engine.Ack(ctx, e, "q", ds[2].ID); err != nil {
			t.Fatalf("Ack(c): %v", err)
		}
		wantErrIs(t, "QueueExtend of a settled item", e.QueueExtend(ctx, "q", ds[2].ID, longLease), engine.ErrLeaseNotFound)
		for _, d := range again {
			if err := engine.Ack(ctx, e, "q", d.ID); err != nil {
				t.Fatalf("Ack(%s): %v", d.Item, err)
			}
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 5, Delivered: 7, Acked: 5, Nacked: 1})
	})

	t.Run("ExpiryRedeliversTheUnsettled", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b", "c", "d")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 4, Lease: shortLease, MaxDeliveries: 5})
		wantDeliveries(t, ds, []string{"a", "b", "c", "d"}, 1)
		acked, err := e.QueueAckBatch(ctx, "q", []string{ds[0].ID, ds[2].ID})
		if err != nil || !slices.Equal(acked, []bool{true, true}) {
			t.Fatalf("QueueAckBatch = %v, %v", acked, err)
		}
		waitPast(t, ctx, h, e, shortLease)
		again := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 4, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 5})
		got := make([]string, len(again))
		for i, d := range again {
			got[i] = d.Item
			if d.Attempt != 2 {
				t.Errorf("redelivery of %s at attempt %d, want 2", d.Item, d.Attempt)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"b", "d"}) {
			t.Fatalf("redelivered %v, want [b d]", got)
		}
		for _, d := range ds {
			wantErrIs(t, "Ack of an expired, redelivered id", engine.Ack(ctx, e, "q", d.ID), engine.ErrLeaseNotFound)
		}
		wantInFlight(t, ctx, e, "q", 2)
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 4, Delivered: 6, Acked: 2, Redelivered: 2})
	})

	t.Run("ExpiryDeadLettersAtMax", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, `{"n": 1}`, `{"n": 2}`, `{"n": 3}`)
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 3, Lease: shortLease, MaxDeliveries: 1})
		if err := engine.Ack(ctx, e, "q", ds[1].ID); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		waitPast(t, ctx, h, e, shortLease)
		n, err := e.QueueReclaim(ctx, "q", 1)
		if err != nil || n != 2 {
			t.Fatalf("QueueReclaim = %d, %v; want 2", n, err)
		}
		entries, err := e.DLQRange(ctx, "q", engine.DLQFailed, 0, -1)
		if err != nil || len(entries) != 2 {
			t.Fatalf("failed DLQ = %q, %v; want 2 entries", entries, err)
		}
		for i, want := range []string{`"original_job": {"n": 1}`, `"original_job": {"n": 3}`} {
			if !strings.Contains(entries[i], want) || !strings.Contains(entries[i], "lease expired") {
				t.Errorf("failed DLQ entry %d = %s; want %s and the reason", i, entries[i], want)
			}
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantQueue(t, ctx, e, "q")
	})

	t.Run("DeleteCountsTheUnsettled", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "a", "b", "c")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 3, Lease: longLease, MaxDeliveries: 3})
		if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.QueueDelete(ctx, "q", false)
		wantErrIs(t, "QueueDelete with 2 in flight", err, engine.ErrQueueInFlight)
		res, err := e.QueueDelete(ctx, "q", true)
		if err != nil || res.InFlight != 2 {
			t.Fatalf("QueueDelete(force) = %+v, %v; want 2 in flight", res, err)
		}
		wantInFlight(t, ctx, e, "q", 0)
		wantErrIs(t, "Ack after the delete", engine.Ack(ctx, e, "q", ds[1].ID), engine.ErrLeaseNotFound)
	})

	t.Run("ListsEachUnsettledItem", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, seq("i", 6)...)
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 6, Lease: longLease, MaxDeliveries: 3})
		acked, err := e.QueueAckBatch(ctx, "q", []string{ds[1].ID, ds[4].ID})
		if err != nil || !slices.Equal(acked, []bool{true, true}) {
			t.Fatalf("QueueAckBatch = %v, %v", acked, err)
		}
		want := map[string]string{}
		for i, d := range ds {
			if i != 1 && i != 4 {
				want[d.ID] = d.Item
			}
		}
		got := map[string]string{}
		cursor := ""
		for range 5 {
			page := listDeliveries(t, ctx, e, "q", cursor, 3)
			for _, d := range page.Deliveries {
				if _, dup := got[d.ID]; dup {
					t.Errorf("delivery %s listed twice", d.ID)
				}
				got[d.ID] = d.Item
				if d.Attempt != 1 {
					t.Errorf("delivery %s listed at attempt %d", d.ID, d.Attempt)
				}
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if len(got) != len(want) {
			t.Fatalf("listed %v, want %v", got, want)
		}
		for id, item := range want {
			if got[id] != item {
				t.Errorf("delivery %s listed as %q, want %q", id, got[id], item)
			}
		}
	})
}
