package enginetest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// statsCases hold every engine to the same counters for the same work, and
// to the same listing of deliveries.
func statsCases(t *testing.T, h Harness) {
	t.Run("CountersOfAdds", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		wantStats(t, ctx, e, "q", engine.QueueStats{})
		add(t, ctx, e, "q", engine.PolicyReject, 2, "a", "b", "c") // c rejected
		add(t, ctx, e, "q", engine.PolicyDropOldest, 2, "d")       // a dropped
		add(t, ctx, e, "q", engine.PolicyDLQ, 2, "e", "f")         // b, d moved
		add(t, ctx, e, "q", engine.PolicyReject, 0, "g")           // unbounded
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 6, Rejected: 1, Dropped: 1, MovedToDLQ: 2})
		// An idempotent add counts once; its replay writes nothing.
		keyed := engine.AddParams{Queue: "q", Items: []string{"h", "i"}, Policy: engine.PolicyReject, MaxSize: 4,
			IdempotencyKey: "k1", IdempotencyWindow: time.Minute}
		mustAddP(t, ctx, e, keyed) // e f g h: h fits, i rejected
		mustAddP(t, ctx, e, keyed)
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 7, Rejected: 2, Dropped: 1, MovedToDLQ: 2})
		// A requeue counts what its policy displaced (e dropped for b), and
		// its requeued item is not added again.
		if _, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Count: 1,
			Policy: engine.PolicyDropOldest, MaxSize: 4}); err != nil {
			t.Fatalf("DLQRequeue: %v", err)
		}
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 7, Rejected: 2, Dropped: 2, MovedToDLQ: 2})
		wantStats(t, ctx, e, "other", engine.QueueStats{})
	})

	t.Run("HeadSample", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		if since, seen := headSample(t, ctx, e, "q"); !since.IsZero() || !seen.IsZero() {
			t.Fatalf("empty queue: head since %v, seen %v; want none", since, seen)
		}
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b")
		since1, seen1 := headSample(t, ctx, e, "q")
		if since1.IsZero() || !since1.Equal(seen1) {
			t.Fatalf("first sample: since %v, seen %v; want one time", since1, seen1)
		}
		// The same head: since stays, seen moves on (by 5s at least, on a
		// clock the harness can advance).
		if h.Caps.Advance != nil {
			h.Caps.Advance(t, e, 5*time.Second)
		}
		since2, seen2 := headSample(t, ctx, e, "q")
		if !since2.Equal(since1) || seen2.Before(seen1) {
			t.Fatalf("same head: since %v -> %v, seen %v -> %v", since1, since2, seen1, seen2)
		}
		if h.Caps.Advance != nil && seen2.Sub(since2) < 5*time.Second {
			t.Fatalf("same head after 5s: age %v", seen2.Sub(since2))
		}
		// A new head starts again.
		if _, ok, err := e.QueuePop(ctx, "q", 0); !ok || err != nil {
			t.Fatalf("QueuePop = %v, %v", ok, err)
		}
		if h.Caps.Advance != nil {
			h.Caps.Advance(t, e, time.Second)
		}
		since3, seen3 := headSample(t, ctx, e, "q")
		if since3.Before(seen2) || !since3.Equal(seen3) || (h.Caps.Advance != nil && !since3.After(seen2)) {
			t.Fatalf("new head: since %v, seen %v; the last sample was seen %v", since3, seen3, seen2)
		}
		if _, ok, err := e.QueuePop(ctx, "q", 0); !ok || err != nil {
			t.Fatalf("QueuePop = %v, %v", ok, err)
		}
		if since, seen := headSample(t, ctx, e, "q"); !since.IsZero() || !seen.IsZero() {
			t.Fatalf("emptied queue: head since %v, seen %v; want none", since, seen)
		}
	})

	t.Run("CountersOfDeliveries", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b", "c", "d", "e")
		if _, ok, err := e.QueuePop(ctx, "q", 0); !ok || err != nil {
			t.Fatalf("QueuePop = %v, %v", ok, err)
		}
		p := engine.ReceiveParams{Queue: "q", Count: 3, Lease: longLease, MaxDeliveries: 2}
		ds := receive(t, ctx, e, p) // b, c, d
		if len(ds) != 3 {
			t.Fatalf("received %d, want 3", len(ds))
		}
		acked, err := e.QueueAckBatch(ctx, "q", []string{ds[0].ID, ds[0].ID, "1.1.0000000000000000"})
		if err != nil || !acked[0] {
			t.Fatalf("QueueAckBatch = %v, %v", acked, err)
		}
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[1].ID, MaxDeliveries: 2, Error: "x"})
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[2].ID, Release: true})
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 5, Delivered: 4, Acked: 1, Nacked: 1})
		// c (attempt 2) and d (attempt 1 again) are redelivered first, then e.
		ds = receive(t, ctx, e, p)
		if len(ds) != 3 {
			t.Fatalf("received %d, want 3", len(ds))
		}
		for _, d := range ds {
			if d.Item == "c" {
				if !nack(t, ctx, e, engine.NackParams{Queue: "q", ID: d.ID, MaxDeliveries: 2, Error: "x"}).DeadLettered {
					t.Fatal("second nack of c did not dead-letter it")
				}
			}
		}
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 5, Delivered: 7, Acked: 1, Nacked: 2, DeadLettered: 1})
	})

	t.Run("CountersOfBlockedConsumers", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		popped := make(chan error, 1)
		go func() {
			_, ok, err := e.QueuePop(ctx, "q", waitTimeout)
			if err == nil && !ok {
				err = errors.New("QueuePop found nothing")
			}
			popped <- err
		}()
		recv := startReceive(ctx, e, engine.ReceiveParams{Queue: "r", Count: 2, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 5})
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a")
		add(t, ctx, e, "r", engine.PolicyReject, 0, "b")
		if err := waitFor(t, "the blocked pop", popped); err != nil {
			t.Fatalf("blocked QueuePop: %v", err)
		}
		if res := waitFor(t, "the blocked receive", recv); res.err != nil || len(res.ds) != 1 {
			t.Fatalf("blocked QueueReceive = %v, %v", res.ds, res.err)
		}
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 1, Delivered: 1})
		wantStats(t, ctx, e, "r", engine.QueueStats{Added: 1, Delivered: 1})
	})

	t.Run("CountersOfExpiredLeases", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b")
		receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 1})
		receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 2})
		waitPast(t, ctx, h, e, 5*shortLease)
		// a expired with its one delivery used: dead-lettered; b expired
		// with one left: redelivered.
		waitReclaimed(t, ctx, e, "q", 1, 2)
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 2, Delivered: 2, DeadLettered: 2})
		add(t, ctx, e, "q", engine.PolicyReject, 0, "c")
		receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 5})
		waitPast(t, ctx, h, e, 5*shortLease)
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 5})
		wantDeliveries(t, ds, []string{"c"}, 2)
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 3, Delivered: 4, DeadLettered: 2, Redelivered: 1})
	})

	t.Run("CountersGoWithTheQueue", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 1, "a", "b")
		if _, err := e.QueueClear(ctx, "q"); err != nil {
			t.Fatalf("QueueClear: %v", err)
		}
		wantStats(t, ctx, e, "q", engine.QueueStats{Added: 1, Rejected: 1})
		if _, err := e.QueueDelete(ctx, "q", false); err != nil {
			t.Fatalf("QueueDelete: %v", err)
		}
		wantStats(t, ctx, e, "q", engine.QueueStats{})
	})

	t.Run("CountersSurviveReopen", func(t *testing.T) {
		if h.Caps.Reopen == nil {
			t.Skipf("%s: the harness has no Reopen", h.Name)
		}
		ctx, d := setupDurable(t, h)
		add(t, ctx, d.e, "q", engine.PolicyReject, 3, "a", "b", "c", "d")
		ds := receive(t, ctx, d.e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 5})
		if err := engine.Ack(ctx, d.e, "q", ds[0].ID); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		want := engine.QueueStats{Added: 3, Rejected: 1, Delivered: 2, Acked: 1}
		d.reopen(t)
		wantStats(t, ctx, d.e, "q", want)
		page := listDeliveries(t, ctx, d.e, "q", "", 10)
		if len(page.Deliveries) != 1 || page.Deliveries[0].ID != ds[1].ID || page.Deliveries[0].DeliveredAt.IsZero() {
			t.Errorf("deliveries after reopen = %+v, want %s with its delivery time", page.Deliveries, ds[1].ID)
		}
		// Several reopens do not count anything twice.
		d.reopen(t)
		wantStats(t, ctx, d.e, "q", want)
	})

	t.Run("DeliveriesPaged", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		if page := listDeliveries(t, ctx, e, "q", "", 10); len(page.Deliveries) != 0 || page.Next != "" {
			t.Errorf("deliveries of an unknown queue = %+v", page)
		}
		var items []string
		for i := range 7 {
			items = append(items, "item-"+strconv.Itoa(i))
		}
		add(t, ctx, e, "q", engine.PolicyReject, 0, items...)
		// A scheduled item is no delivery.
		mustAddP(t, ctx, e, engine.AddParams{Queue: "q", Items: []string{"later"}, Policy: engine.PolicyReject, NotBefore: time.Now().Add(time.Hour)})
		before := time.Now()
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 5, Lease: longLease, MaxDeliveries: 5})
		ds = append(ds, receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: 2 * longLease, MaxDeliveries: 5})...)
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[6].ID, Delay: time.Hour, MaxDeliveries: 5, Error: "x"})
		byID := map[string]engine.Delivery{}
		for _, d := range ds {
			byID[d.ID] = d
		}
		var got []engine.DeliveryInfo
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 4 {
				t.Fatalf("listing did not end after %d pages", pages)
			}
			page := listDeliveries(t, ctx, e, "q", cursor, 2)
			if len(page.Deliveries) > 2 {
				t.Fatalf("page of %d deliveries under limit 2", len(page.Deliveries))
			}
			got = append(got, page.Deliveries...)
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		if len(got) != 7 {
			t.Fatalf("listed %d deliveries, want 7: %+v", len(got), got)
		}
		seen := map[string]bool{}
		for i, d := range got {
			if i > 0 && d.Deadline.Before(got[i-1].Deadline) {
				t.Errorf("delivery %d's deadline %v is before the previous one's %v", i, d.Deadline, got[i-1].Deadline)
			}
			if seen[d.Item] {
				t.Errorf("%s listed twice", d.Item)
			}
			seen[d.Item] = true
			if d.DeliveredAt.Before(before.Add(-time.Minute)) || d.DeliveredAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s delivered at %v, want about %v", d.Item, d.DeliveredAt, before)
			}
			if d.Item == ds[6].Item {
				if !d.Waiting || d.ID != "" || d.Attempt != 1 {
					t.Errorf("nacked delivery listed as %+v, want waiting, no id, attempt 1", d)
				}
				continue
			}
			r, ok := byID[d.ID]
			if d.Waiting || !ok || r.Item != d.Item || d.Attempt != 1 {
				t.Errorf("listed %+v, want the leased delivery %+v", d, r)
			}
		}
		// The nacked item waits an hour, the others' leases end sooner.
		if last := got[len(got)-1]; last.Item != ds[6].Item {
			t.Errorf("last listed %s, want the nacked %s", last.Item, ds[6].Item)
		}
		if _, err := e.QueueDeliveries(ctx, "q", "nonsense", 2); err == nil {
			t.Error("QueueDeliveries accepted a cursor it never returned")
		}
	})
}

func wantStats(t *testing.T, ctx context.Context, e engine.Engine, queue string, want engine.QueueStats) {
	t.Helper()
	got, err := e.QueueStats(ctx, queue)
	if err != nil {
		t.Fatalf("QueueStats(%q): %v", queue, err)
	}
	// The head sample has its own case (HeadSample).
	got.HeadSince, got.HeadSeen = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("QueueStats(%q)\n got %+v\nwant %+v", queue, got, want)
	}
}

// headSample sweeps queue and returns its head sample.
func headSample(t *testing.T, ctx context.Context, e engine.Engine, queue string) (since, seen time.Time) {
	t.Helper()
	if _, err := e.QueueReclaim(ctx, queue, 5); err != nil {
		t.Fatalf("QueueReclaim(%q): %v", queue, err)
	}
	s, err := e.QueueStats(ctx, queue)
	if err != nil {
		t.Fatalf("QueueStats(%q): %v", queue, err)
	}
	if s.HeadSince.After(s.HeadSeen) {
		t.Fatalf("head since %v after seen %v", s.HeadSince, s.HeadSeen)
	}
	return s.HeadSince, s.HeadSeen
}

func listDeliveries(t *testing.T, ctx context.Context, e engine.Engine, queue, cursor string, limit int) engine.DeliveriesPage {
	t.Helper()
	page, err := e.QueueDeliveries(ctx, queue, cursor, limit)
	if err != nil {
		t.Fatalf("QueueDeliveries(%q, %q, %d): %v", queue, cursor, limit, err)
	}
	return page
}
