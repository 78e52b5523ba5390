package sluice_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

func TestReceiveAckNackAndDeadLetter(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("work")
		if _, err := q.AddBatch(ctx, []any{detection{Camera: 1}, detection{Camera: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		opts := &sluice.ReceiveOptions{Lease: time.Minute, MaxDeliveries: 2}
		d, ok, err := q.Receive(ctx, 0, opts)
		if err != nil || !ok || d.Attempt != 1 {
			t.Fatalf("receive: %+v %v %v", d, ok, err)
		}
		if got, _ := sluice.As[detection](d.Item); got.Camera != 1 {
			t.Fatalf("first delivery is camera %d", got.Camera)
		}
		p, err := q.Pressure(ctx)
		if err != nil || p.CurrentLength != 1 || p.InFlight != 1 {
			t.Fatalf("pressure with one in flight: %+v %v", p, err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(ctx); !errors.Is(err, sluice.ErrLeaseNotFound) {
			t.Fatalf("second ack: %v", err)
		}

		d2, _, _ := q.Receive(ctx, 0, opts)
		if dl, err := d2.Nack(ctx, &sluice.NackOptions{Reason: "first failure"}); err != nil || dl {
			t.Fatalf("nack 1: %v %v", dl, err)
		}
		d3, ok, err := q.Receive(ctx, 0, opts)
		if err != nil || !ok || d3.Attempt != 2 {
			t.Fatalf("redelivery: %+v %v %v", d3, ok, err)
		}
		if dl, err := d3.Nack(ctx, &sluice.NackOptions{Reason: "second failure"}); err != nil || !dl {
			t.Fatalf("nack 2 should dead-letter: %v %v", dl, err)
		}
		entries, total, err := q.DLQ(sluice.DLQFailed).List(ctx, 0, 10)
		if err != nil || total != 1 || len(entries) != 1 {
			t.Fatalf("failed DLQ: %v %d %v", entries, total, err)
		}
		e := entries[0]
		if e.Error != "second failure" || e.AttemptCount != 2 || e.QueueName != "work" || e.Item == nil || e.FirstFailedAt == "" {
			t.Fatalf("entry: %+v", e)
		}
		if got, _ := sluice.As[detection](*e.Item); got.Camera != 2 {
			t.Fatalf("dead-lettered item: %+v", got)
		}
		r, err := q.DLQ(sluice.DLQFailed).Requeue(ctx, 0)
		if err != nil || r.Requeued != 1 || r.Remaining != 0 {
			t.Fatalf("requeue: %+v %v", r, err)
		}
		back, ok, _ := sluice.GetAs[detection](ctx, q, 0)
		if !ok || back.Camera != 2 {
			t.Fatalf("requeued item: %+v %v", back, ok)
		}
	})
}

func TestExpiredLeaseIsRedelivered(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("crashy")
		if _, err := q.Add(ctx, "job", nil); err != nil {
			t.Fatal(err)
		}
		short := &sluice.ReceiveOptions{Lease: 20 * time.Millisecond}
		d, ok, err := q.Receive(ctx, 0, short)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		// The consumer "crashes": no ack. A blocking receive gets the item
		// back once the lease runs out.
		again, ok, err := q.Receive(ctx, 10*time.Second, short)
		if err != nil || !ok || again.Attempt != 2 || again.Item.String() != "job" {
			t.Fatalf("redelivery: %+v %v %v", again, ok, err)
		}
		if err := d.Ack(ctx); !errors.Is(err, sluice.ErrLeaseNotFound) {
			t.Fatalf("stale ack: %v", err)
		}
		if err := again.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A DLQ can hold entries another program pushed there (no queue name can
// address a DLQ, so they come from outside Sluice): Redis only.
func TestDLQListShowsMalformedEntriesRaw(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, rc, prefix)
	c := open(t, redistest.URL(), &sluice.Config{KeyPrefix: prefix})
	ctx := context.Background()
	q := c.QueueWith("small", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyDLQ})
	for _, v := range []string{"a", "b", "c"} {
		if _, err := q.Add(ctx, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A foreign, malformed entry in the overflow DLQ.
	if err := rc.Do(ctx, rc.B().Rpush().Key(prefix+"dlq:overflow:small").Element("garbage").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	entries, total, err := q.DLQ(sluice.DLQOverflow).List(ctx, 0, 10)
	if err != nil || total != 3 || len(entries) != 3 {
		t.Fatalf("list: %d entries, total %d, %v", len(entries), total, err)
	}
	if entries[0].Item.String() != "a" || entries[0].OriginalQueue != "small" || entries[0].Reason != "queue_overflow" {
		t.Fatalf("entry 0: %+v", entries[0])
	}
	if !entries[2].Malformed || entries[2].Raw != "garbage" {
		t.Fatalf("malformed entry: %+v", entries[2])
	}
	if n, err := q.DLQ(sluice.DLQOverflow).Purge(ctx); n != 3 || err != nil {
		t.Fatalf("purge: %d %v", n, err)
	}
}

func TestAckBatch(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("bulk")
		items := make([]any, 100)
		for i := range items {
			items[i] = i
		}
		if _, err := q.AddBatch(ctx, items, nil); err != nil {
			t.Fatal(err)
		}
		ds, err := q.ReceiveBatch(ctx, 100, 0, nil)
		if err != nil || len(ds) != 100 {
			t.Fatalf("receive: %d %v", len(ds), err)
		}
		ids := make([]string, 0, 101)
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		ids = append(ids, ds[0].ID) // settled by then
		acked, err := q.AckBatch(ctx, ids...)
		if err != nil || len(acked) != 101 {
			t.Fatalf("ack batch: %d %v", len(acked), err)
		}
		for i, ok := range acked {
			if ok != (i < 100) {
				t.Fatalf("acked[%d] = %v", i, ok)
			}
		}
		if p, _ := q.Pressure(ctx); p.InFlight != 0 || p.CurrentLength != 0 {
			t.Fatalf("after ack: %+v", p)
		}
	})
}

// Queue.Release hands a delivery back by id without counting it, as
// Delivery.Release does.
func TestQueueReleaseByID(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("rel")
		if _, err := q.Add(ctx, "x", nil); err != nil {
			t.Fatal(err)
		}
		opts := &sluice.ReceiveOptions{Lease: time.Minute, MaxDeliveries: 1}
		d, ok, err := q.Receive(ctx, 0, opts)
		if err != nil || !ok {
			t.Fatalf("receive: %v %v", ok, err)
		}
		if err := q.Release(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := q.Release(ctx, d.ID); !errors.Is(err, sluice.ErrLeaseNotFound) {
			t.Fatalf("second release: %v", err)
		}
		again, ok, err := q.Receive(ctx, 0, opts)
		if err != nil || !ok || again.Attempt != 1 {
			t.Fatalf("delivery after release: %+v %v %v", again, ok, err)
		}
	})
}
