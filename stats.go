package sluice

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// QueueStats are a queue's numbers: its counters, kept by the engine so
// that every client, service replica and the CLI read the same ones, and
// its current lengths.
//
// The counters count what Sluice did since the queue was first used (or
// deleted): the Python service's producers and consumers, which push and
// pop the list directly, are not counted. The age of the oldest waiting
// item is not reported: items are stored as they are in the list of
// docs/compat.md, with no time beside them, and keeping one would cost a
// write on every add and be wrong for items pushed by the Python service.
// Each delivery's age is in Queue.Deliveries.
type QueueStats struct {
	Queue string `json:"queue"`
	// Length is the number of items waiting.
	Length int64 `json:"length"`
	// InFlight is Pressure's InFlight: items under a lease that has not
	// run out, or waiting for redelivery.
	InFlight int64 `json:"in_flight"`
	// OverflowDLQ and FailedDLQ are the lengths of the dead-letter queues.
	OverflowDLQ int64 `json:"overflow_dlq_length"`
	FailedDLQ   int64 `json:"failed_dlq_length"`

	// Added counts items accepted by adds (requeues and put-backs are not
	// counted again).
	Added int64 `json:"added_total"`
	// Rejected counts items refused because the queue was full.
	Rejected int64 `json:"rejected_total"`
	// MovedToDLQ counts items the dlq policy moved to the overflow DLQ.
	MovedToDLQ int64 `json:"moved_to_dlq_total"`
	// Dropped counts items the drop_oldest policy discarded.
	Dropped int64 `json:"dropped_total"`
	// Delivered counts hand-outs: gets, and deliveries under a lease,
	// redeliveries included.
	Delivered int64 `json:"delivered_total"`
	// Acked counts acknowledged deliveries.
	Acked int64 `json:"acked_total"`
	// Nacked counts negative acknowledgements (releases of a consumer that
	// stops are not counted).
	Nacked int64 `json:"nacked_total"`
	// DeadLettered counts items moved to the failed DLQ.
	DeadLettered int64 `json:"dead_lettered_total"`
	// Redelivered counts redeliveries of items whose lease expired.
	Redelivered int64 `json:"redelivered_total"`

	// OldestAgeSeconds is a lower bound of how long the oldest waiting
	// item has waited: how long the item at the head had been there when
	// a maintainer (RunMaintainer; sluice serve runs one) last swept the
	// queue, at HeadSampledAt. Both are zero when the queue is empty, was
	// empty then, or no maintainer has swept it. Items carry no time of
	// their own (their stored format is the Python service's), so the wait
	// before an item reached the head is not counted, and a new head equal
	// to the one before it is taken for the same item.
	OldestAgeSeconds float64   `json:"oldest_age_seconds"`
	HeadSampledAt    time.Time `json:"head_sampled_at,omitzero"`
}

// Stats returns the queue's counters and lengths. Its five reads run
// concurrently (on Redis they share one round trip); each is exact, but
// they are not one snapshot: work done meanwhile may show in some only.
func (q *Queue) Stats(ctx context.Context) (QueueStats, error) {
	if q.nameErr != nil {
		return QueueStats{}, q.nameErr
	}
	var (
		c    engine.QueueStats
		s    = QueueStats{Queue: q.name}
		errs [5]error
		wg   sync.WaitGroup
	)
	reads := [5]func() error{
		func() (err error) { c, err = q.c.eng.QueueStats(ctx, q.name); return err },
		func() (err error) { s.Length, err = q.c.eng.QueueLen(ctx, q.name); return err },
		func() (err error) { s.InFlight, err = q.c.eng.QueueInFlight(ctx, q.name); return err },
		func() (err error) { s.OverflowDLQ, err = q.c.eng.DLQLen(ctx, q.name, engine.DLQOverflow); return err },
		func() (err error) { s.FailedDLQ, err = q.c.eng.DLQLen(ctx, q.name, engine.DLQFailed); return err },
	}
	for i, read := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = read()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		// The first failure says it: the others are most often the same.
		if err != nil {
			return QueueStats{}, fmt.Errorf("sluice: stats of queue %q: %w", q.name, err)
		}
	}
	s.Added, s.Rejected, s.MovedToDLQ, s.Dropped = c.Added, c.Rejected, c.MovedToDLQ, c.Dropped
	s.Delivered, s.Acked, s.Nacked, s.DeadLettered, s.Redelivered = c.Delivered, c.Acked, c.Nacked, c.DeadLettered, c.Redelivered
	if s.Length > 0 && !c.HeadSeen.IsZero() {
		s.OldestAgeSeconds, s.HeadSampledAt = c.HeadSeen.Sub(c.HeadSince).Seconds(), c.HeadSeen
	}
	return s, nil
}

// Limits of Queue.Deliveries.
const (
	// DefaultDeliveriesLimit is the page size when ListDeliveriesOptions.Limit is 0.
	DefaultDeliveriesLimit = 100
	// MaxDeliveriesLimit is the largest page.
	MaxDeliveriesLimit = engine.MaxDeliveriesPage
)

// ListDeliveriesOptions select a page of Queue.Deliveries; nil is the
// first page of DefaultDeliveriesLimit.
type ListDeliveriesOptions struct {
	// Limit is the page size: 0 for DefaultDeliveriesLimit, at most
	// MaxDeliveriesLimit.
	Limit int
	// Cursor continues a listing: the NextCursor of the previous page, ""
	// for the first.
	Cursor string
}

// DeliveryInfo describes one delivery: an item leased to a consumer, or
// waiting to be delivered again after a nack.
type DeliveryInfo struct {
	// ID settles the delivery (Ack, Nack, Extend); "" while the item waits
	// for redelivery, when no id settles it.
	ID string
	// Item is the delivered item.
	Item Item
	// Attempt is the attempt number of the (last) delivery.
	Attempt int
	// Deadline is when the lease runs out, or, for a waiting item, when it
	// becomes deliverable again.
	Deadline time.Time
	// DeliveredAt is when the (last) delivery was handed out, by the
	// engine's clock (the Redis server's); zero when unknown (a lease
	// written by an older version).
	DeliveredAt time.Time
	// Age is how long ago the delivery was handed out; 0 when unknown.
	Age time.Duration
	// Waiting marks an item waiting for redelivery.
	Waiting bool
}

// DeliveriesPage is one page of a queue's deliveries.
type DeliveriesPage struct {
	Deliveries []DeliveryInfo
	// NextCursor continues the listing; "" after the last page.
	NextCursor string
}

// Deliveries lists the queue's deliveries (leased, or waiting for
// redelivery), earliest deadline first, a page at a time. Each page is
// read at once; a delivery whose deadline changes between pages (extended,
// redelivered) may be listed again or not at all. Items taken by a
// blocking receive and not yet leased are counted in flight but not
// listed.
func (q *Queue) Deliveries(ctx context.Context, opts *ListDeliveriesOptions) (DeliveriesPage, error) {
	if q.nameErr != nil {
		return DeliveriesPage{}, q.nameErr
	}
	var o ListDeliveriesOptions
	if opts != nil {
		o = *opts
	}
	if o.Limit == 0 {
		o.Limit = DefaultDeliveriesLimit
	}
	if o.Limit < 0 || o.Limit > MaxDeliveriesLimit {
		return DeliveriesPage{}, fmt.Errorf("sluice: deliveries of queue %q: %w: limit %d: want 1 to %d", q.name, ErrInvalidArgument, o.Limit, MaxDeliveriesLimit)
	}
	page, err := q.c.eng.QueueDeliveries(ctx, q.name, o.Cursor, o.Limit)
	if errors.Is(err, engine.ErrBadCursor) {
		return DeliveriesPage{}, fmt.Errorf("sluice: deliveries of queue %q: %w: cursor %q was not returned by this listing", q.name, ErrInvalidArgument, o.Cursor)
	}
	if err != nil {
		return DeliveriesPage{}, fmt.Errorf("sluice: deliveries of queue %q: %w", q.name, err)
	}
	now := time.Now()
	out := DeliveriesPage{NextCursor: page.Next, Deliveries: make([]DeliveryInfo, len(page.Deliveries))}
	for i, d := range page.Deliveries {
		info := DeliveryInfo{ID: d.ID, Item: q.c.decode(d.Item), Attempt: d.Attempt, Deadline: d.Deadline, DeliveredAt: d.DeliveredAt, Waiting: d.Waiting}
		if !d.DeliveredAt.IsZero() {
			info.Age = max(now.Sub(d.DeliveredAt), 0)
		}
		out.Deliveries[i] = info
	}
	return out, nil
}
