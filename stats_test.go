package sluice_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

func TestQueueStatsAndDeliveries(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("s", sluice.QueueSettings{MaxSize: 3, Policy: sluice.PolicyReject})
		if _, err := q.AddBatch(ctx, []any{"a", map[string]int{"n": 1}, "c", "d"}, nil); err != nil {
			t.Fatal(err)
		}
		d, ok, err := q.Receive(ctx, 0, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil || !ok {
			t.Fatalf("receive: %v %v", ok, err)
		}
		d2, ok, err := q.Receive(ctx, 0, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil || !ok {
			t.Fatalf("receive: %v %v", ok, err)
		}
		if _, err := d2.Nack(ctx, &sluice.NackOptions{Delay: time.Hour}); err != nil {
			t.Fatal(err)
		}
		s, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := sluice.QueueStats{Queue: "s", Length: 1, InFlight: 2, Added: 3, Rejected: 1, Delivered: 2, Nacked: 1}
		if s != want {
			t.Fatalf("stats\n got %+v\nwant %+v", s, want)
		}
		page, err := q.Deliveries(ctx, &sluice.ListDeliveriesOptions{Limit: 1})
		if err != nil || len(page.Deliveries) != 1 || page.NextCursor == "" {
			t.Fatalf("first page: %+v, %v", page, err)
		}
		first := page.Deliveries[0]
		if first.ID != d.ID || first.Item.String() != "a" || first.Attempt != 1 || first.Waiting || first.Age < 0 || first.DeliveredAt.IsZero() {
			t.Errorf("first delivery %+v, want %s of a", first, d.ID)
		}
		page, err = q.Deliveries(ctx, &sluice.ListDeliveriesOptions{Limit: 1, Cursor: page.NextCursor})
		if err != nil || len(page.Deliveries) != 1 || page.NextCursor != "" {
			t.Fatalf("second page: %+v, %v", page, err)
		}
		if w := page.Deliveries[0]; !w.Waiting || w.ID != "" || w.Item.String() != `{"n": 1}` {
			t.Errorf("second delivery %+v, want the nacked item waiting", w)
		}
		for _, o := range []*sluice.ListDeliveriesOptions{{Limit: -1}, {Limit: sluice.MaxDeliveriesLimit + 1}, {Cursor: "x"}} {
			if _, err := q.Deliveries(ctx, o); !errors.Is(err, sluice.ErrInvalidArgument) {
				t.Errorf("Deliveries(%+v) = %v, want ErrInvalidArgument", o, err)
			}
		}
		if _, err := c.Queue("a#b").Stats(ctx); !errors.Is(err, sluice.ErrInvalidName) {
			t.Errorf("Stats of a bad name = %v, want ErrInvalidName", err)
		}
	})
}
