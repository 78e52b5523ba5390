package sluice

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// Defaults of acknowledged delivery.
const (
	DefaultLease         = 30 * time.Second
	DefaultMaxDeliveries = 5
)

// ReceiveOptions tune one Receive. A nil *ReceiveOptions, like zero
// fields, takes the queue's settings (QueueSettings.Lease and
// MaxDeliveries, which default to 30 s and 5).
type ReceiveOptions struct {
	// Lease is how long a delivery stays invisible to other consumers before
	// it is handed out again.
	Lease time.Duration
	// MaxDeliveries is how many deliveries an item gets before it moves to
	// the failed DLQ, dlq:<queue>.
	MaxDeliveries int
}

// receiveOptions resolves o (nil allowed) against the queue's settings:
// o's, then QueueWith's, then the declared ones, then the client's.
func (q *Queue) receiveOptions(ctx context.Context, o *ReceiveOptions) (ReceiveOptions, error) {
	var r ReceiveOptions
	if o != nil {
		r = *o
	}
	if r.Lease < 0 || r.MaxDeliveries < 0 {
		return r, fmt.Errorf("sluice: %w: negative receive Lease %v or MaxDeliveries %d", ErrInvalidArgument, r.Lease, r.MaxDeliveries)
	}
	if r.Lease == 0 && q.explicit.Lease != 0 {
		r.Lease = q.explicit.Lease
	}
	if r.MaxDeliveries == 0 && q.explicit.MaxDeliveries != 0 {
		r.MaxDeliveries = q.explicit.MaxDeliveries
	}
	if r.Lease == 0 || r.MaxDeliveries == 0 {
		s, err := q.defaultDeliverySettings(ctx)
		if err != nil {
			return r, fmt.Errorf("sluice: receive from queue %q: %w", q.name, err)
		}
		if r.Lease == 0 {
			r.Lease = s.Lease
		}
		if r.MaxDeliveries == 0 {
			r.MaxDeliveries = s.MaxDeliveries
		}
	}
	return r, nil
}

// defaultDeliverySettings are the lease and max deliveries of a delivery
// that names neither: the declared ones, else the handle's. The declared
// ones are read at most once per settingsTTL (declare.go); a caller that
// gives both never reads them.
func (q *Queue) defaultDeliverySettings(ctx context.Context) (QueueSettings, error) {
	es, err := q.deliverySettings(ctx)
	if err != nil {
		return QueueSettings{}, err
	}
	return q.effective(es).Settings, nil
}

// NackOptions tune one Nack. A nil *NackOptions, like the zero value,
// redelivers at once, records the reason "nacked" and counts deliveries
// against the queue's MaxDeliveries (a Delivery's: the one it was received
// with).
type NackOptions struct {
	// Delay postpones the redelivery.
	Delay time.Duration
	// Reason is recorded in the failed DLQ if the item ends there;
	// "" means "nacked".
	Reason string
	// MaxDeliveries is how many deliveries the item gets before it moves
	// to the failed DLQ; 0 means the queue's setting (on Delivery.Nack,
	// the one the delivery was received with).
	MaxDeliveries int
}

// Delivery is an item handed out under a lease. Settle it with Ack, Nack or
// let the lease expire (then it is delivered again).
type Delivery struct {
	// ID identifies this delivery; it is what HTTP clients ack with. It is
	// opaque and URL-safe, changes with every delivery and carries 64
	// random bits, so it cannot be guessed from another id.
	ID string `json:"id"`
	// Item is the payload.
	Item Item `json:"item"`
	// Attempt is 1 on the first delivery of the item.
	Attempt int `json:"attempt"`

	q    *Queue
	opts ReceiveOptions
}

// Receive hands out the next item under a lease, waiting up to timeout
// (0: do not wait). ok is false when nothing was available. Expired leases
// of crashed consumers are reclaimed as part of the call.
func (q *Queue) Receive(ctx context.Context, timeout time.Duration, opts *ReceiveOptions) (*Delivery, bool, error) {
	ds, err := q.ReceiveBatch(ctx, 1, timeout, opts)
	if err != nil || len(ds) == 0 {
		return nil, false, err
	}
	return ds[0], true, nil
}

// ReceiveBatch hands out up to n items under leases, waiting up to timeout
// for the first one.
func (q *Queue) ReceiveBatch(ctx context.Context, n int, timeout time.Duration, opts *ReceiveOptions) ([]*Delivery, error) {
	if q.nameErr != nil {
		return nil, q.nameErr
	}
	if n < 1 || timeout < 0 {
		return nil, fmt.Errorf("sluice: %w: receive needs n >= 1 and timeout >= 0 (got %d, %v)", ErrInvalidArgument, n, timeout)
	}
	ro, err := q.receiveOptions(ctx, opts)
	if err != nil {
		return nil, err
	}
	raw, err := q.c.eng.QueueReceive(ctx, engine.ReceiveParams{
		Queue: q.name, Count: n, Timeout: timeout, Lease: ro.Lease, MaxDeliveries: ro.MaxDeliveries,
	})
	if err != nil {
		return nil, fmt.Errorf("sluice: receive from queue %q: %w", q.name, err)
	}
	out := make([]*Delivery, len(raw))
	for i, d := range raw {
		out[i] = &Delivery{ID: d.ID, Item: q.c.decode(d.Item), Attempt: d.Attempt, q: q, opts: ro}
	}
	return out, nil
}

// Ack settles the delivery: the item leaves the system for good.
// ErrLeaseNotFound means the lease expired and the item went (or will go)
// to another consumer, or it was settled already.
func (d *Delivery) Ack(ctx context.Context) error {
	return d.q.Ack(ctx, d.ID)
}

// Nack ends the delivery unsuccessfully: the item is delivered again after
// opts.Delay, or moves to the failed DLQ if it has used its deliveries;
// opts.Reason is recorded there. opts may be nil (see NackOptions).
func (d *Delivery) Nack(ctx context.Context, opts *NackOptions) (deadLettered bool, err error) {
	o := NackOptions{MaxDeliveries: d.opts.MaxDeliveries}
	if opts != nil {
		o.Delay, o.Reason = opts.Delay, opts.Reason
		if opts.MaxDeliveries != 0 {
			o.MaxDeliveries = opts.MaxDeliveries
		}
	}
	return d.q.Nack(ctx, d.ID, &o)
}

// Extend renews the lease for another lease duration from now (see
// Queue.Extend for items received together).
func (d *Delivery) Extend(ctx context.Context, lease time.Duration) error {
	return d.q.Extend(ctx, d.ID, lease)
}

// Release hands the item back unhandled: it is deliverable again at once,
// and this delivery does not count against MaxDeliveries (a consumer that
// shuts down before handling an item releases it).
func (d *Delivery) Release(ctx context.Context) error {
	_, err := d.q.nack(ctx, engine.NackParams{ID: d.ID, Error: "released", MaxDeliveries: d.opts.MaxDeliveries, Release: true})
	return err
}

// Release hands a delivery back by ID, unhandled; see Delivery.Release.
// ErrLeaseNotFound means the lease expired or the delivery was settled
// already.
func (q *Queue) Release(ctx context.Context, id string) error {
	// A release never dead-letters, so it needs no max deliveries: the
	// engines ignore it (the lease keeps its own count).
	_, err := q.nack(ctx, engine.NackParams{ID: id, Error: "released", Release: true})
	return err
}

// Ack settles a delivery by ID (for deliveries received elsewhere, such
// as over HTTP).
func (q *Queue) Ack(ctx context.Context, id string) error {
	if q.nameErr != nil {
		return q.nameErr
	}
	if err := engine.Ack(ctx, q.c.eng, q.name, id); err != nil {
		return fmt.Errorf("sluice: ack %q on queue %q: %w", id, q.name, err)
	}
	return nil
}

// AckBatch settles several deliveries in one atomic step (one round trip
// on Redis). acked[i] tells whether ids[i] still held its lease; a false
// one was already settled, or its item went to another consumer (what Ack
// reports as ErrLeaseNotFound).
func (q *Queue) AckBatch(ctx context.Context, ids ...string) (acked []bool, err error) {
	if q.nameErr != nil {
		return nil, q.nameErr
	}
	acked, err = q.c.eng.QueueAckBatch(ctx, q.name, ids)
	if err != nil {
		return nil, fmt.Errorf("sluice: ack %d deliveries on queue %q: %w", len(ids), q.name, err)
	}
	return acked, nil
}

// Nack ends a delivery by ID; see Delivery.Nack. opts may be nil (see
// NackOptions).
func (q *Queue) Nack(ctx context.Context, id string, opts *NackOptions) (bool, error) {
	var o NackOptions
	if opts != nil {
		o = *opts
	}
	delay, reason, maxDeliveries := o.Delay, o.Reason, o.MaxDeliveries
	if delay < 0 {
		return false, fmt.Errorf("sluice: %w: negative nack delay %v", ErrInvalidArgument, delay)
	}
	if maxDeliveries < 0 {
		return false, fmt.Errorf("sluice: %w: negative nack MaxDeliveries %d", ErrInvalidArgument, maxDeliveries)
	}
	if maxDeliveries == 0 {
		ds, err := q.defaultDeliverySettings(ctx)
		if err != nil {
			return false, fmt.Errorf("sluice: nack %q on queue %q: %w", id, q.name, err)
		}
		maxDeliveries = ds.MaxDeliveries
	}
	if reason == "" {
		reason = "nacked"
	}
	if err := checkText(ErrInvalidArgument, "nack reason", reason); err != nil {
		return false, err
	}
	return q.nack(ctx, engine.NackParams{ID: id, Delay: delay, Error: reason, MaxDeliveries: maxDeliveries})
}

func (q *Queue) nack(ctx context.Context, p engine.NackParams) (bool, error) {
	if q.nameErr != nil {
		return false, q.nameErr
	}
	p.Queue = q.name
	res, err := q.c.eng.QueueNack(ctx, p)
	if err != nil {
		op := "nack"
		if p.Release {
			op = "release"
		}
		return false, fmt.Errorf("sluice: %s %q on queue %q: %w", op, p.ID, q.name, err)
	}
	return res.DeadLettered, nil
}

// Extend renews a delivery's lease by ID. On Redis, items received
// together by one ReceiveBatch (or Consume) share one lease: extending one
// extends the others of that receive that are still unsettled, which the
// same consumer holds. Each is still settled on its own.
func (q *Queue) Extend(ctx context.Context, id string, lease time.Duration) error {
	if q.nameErr != nil {
		return q.nameErr
	}
	if lease <= 0 {
		return fmt.Errorf("sluice: %w: lease must be positive, got %v", ErrInvalidArgument, lease)
	}
	if err := q.c.eng.QueueExtend(ctx, q.name, id, lease); err != nil {
		return fmt.Errorf("sluice: extend %q on queue %q: %w", id, q.name, err)
	}
	return nil
}

// Reclaim sweeps the queue in one atomic step: expired leases (and nacked
// items past their delay) that used their deliveries move to the failed
// DLQ, the others stay deliverable for the next Receive, and due scheduled
// items move to the queue. A max deliveries the queue declares wins over
// maxDeliveries. It returns how many were dead-lettered. Receive
// does this by itself; RunMaintainer does it for every queue.
func (q *Queue) Reclaim(ctx context.Context, maxDeliveries int) (int64, error) {
	if q.nameErr != nil {
		return 0, q.nameErr
	}
	if maxDeliveries <= 0 {
		ds, err := q.defaultDeliverySettings(ctx)
		if err != nil {
			return 0, fmt.Errorf("sluice: reclaim queue %q: %w", q.name, err)
		}
		maxDeliveries = ds.MaxDeliveries
	}
	n, err := q.c.eng.QueueReclaim(ctx, q.name, maxDeliveries)
	if err != nil {
		return 0, fmt.Errorf("sluice: reclaim queue %q: %w", q.name, err)
	}
	return n, nil
}
