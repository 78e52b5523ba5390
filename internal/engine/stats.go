package engine

import (
	"context"
	"errors"
	"time"
)

// ErrBadCursor means a listing was given a cursor it did not return.
var ErrBadCursor = errors.New("cursor is not one this listing returned")

// Per-queue statistics and the listing of a queue's deliveries. Engines
// keep the counters beside the queue (Redis: a hash in the queue's hash
// slot, incremented inside the scripts that do the counted work; embedded:
// in the queue's state, logged with the change), so that every client,
// replica and the CLI read the same numbers.

// Stat names one counter of QueueStats.
type Stat uint8

// The counters, in the order of QueueStats' fields. StatNames holds their
// stored names.
const (
	StatAdded Stat = iota
	StatRejected
	StatMovedToDLQ
	StatDropped
	StatDelivered
	StatAcked
	StatNacked
	StatDeadLettered
	StatRedelivered
	NumStats
)

// StatNames are the counters' names as stored (the Redis stats hash's
// fields), indexed by Stat.
var StatNames = [NumStats]string{"added", "rejected", "moved", "dropped", "delivered", "acked", "nacked", "failed", "redelivered"}

// QueueStats are the counters of one queue since it was first used (or
// deleted). They count what Sluice did: a Python producer's RPUSH or
// consumer's LPOP on the same list is not counted.
type QueueStats struct {
	// Added counts items accepted by adds. Items put back (QueuePushFront)
	// or requeued from a DLQ are not counted again.
	Added int64
	// Rejected counts items an add refused because the queue was full.
	Rejected int64
	// MovedToDLQ counts items the dlq policy moved to the overflow DLQ
	// (by an add or a requeue).
	MovedToDLQ int64
	// Dropped counts items the drop_oldest policy discarded.
	Dropped int64
	// Delivered counts hand-outs: pops, and deliveries under a lease
	// (first deliveries and redeliveries alike).
	Delivered int64
	// Acked counts acknowledged deliveries.
	Acked int64
	// Nacked counts negative acknowledgements (releases excluded).
	Nacked int64
	// DeadLettered counts items moved to the failed DLQ: nacked or expired
	// with their deliveries used up.
	DeadLettered int64
	// Redelivered counts redeliveries of items whose lease expired.
	Redelivered int64

	// HeadSince and HeadSeen are the last sweep's sample of the queue's
	// head (QueueReclaim): the item at the head then had been there since
	// HeadSince, as seen at HeadSeen, by the engine's clock. HeadSeen -
	// HeadSince is thus a lower bound of the oldest waiting item's age,
	// known without storing a time with each item (the stored format is
	// the Python service's). Both are zero when the queue was empty at the
	// last sweep, or has not been swept. A sweep tells heads apart by
	// content: a new head equal to the one before is taken for it.
	HeadSince, HeadSeen time.Time
}

// Counter returns the counter s.
func (q *QueueStats) Counter(s Stat) *int64 {
	switch s {
	case StatAdded:
		return &q.Added
	case StatRejected:
		return &q.Rejected
	case StatMovedToDLQ:
		return &q.MovedToDLQ
	case StatDropped:
		return &q.Dropped
	case StatDelivered:
		return &q.Delivered
	case StatAcked:
		return &q.Acked
	case StatNacked:
		return &q.Nacked
	case StatDeadLettered:
		return &q.DeadLettered
	case StatRedelivered:
		return &q.Redelivered
	}
	return new(int64)
}

// DeliveryInfo describes one delivery of a queue: an item leased to a
// consumer, or waiting to be delivered again (nacked, released).
type DeliveryInfo struct {
	// ID is the delivery id that settles it; "" while the item waits for
	// redelivery (no id settles it then).
	ID string
	// Item is the stored item.
	Item string
	// Attempt is the attempt number of the (last) delivery.
	Attempt int
	// Deadline is when the lease runs out, or, while waiting, when the item
	// becomes deliverable again.
	Deadline time.Time
	// DeliveredAt is when the (last) delivery was handed out; zero when the
	// engine has no record of it (state written by an older version).
	DeliveredAt time.Time
	// Waiting is set for an item waiting for redelivery.
	Waiting bool
}

// DeliveriesPage is one page of a queue's deliveries.
type DeliveriesPage struct {
	Deliveries []DeliveryInfo
	// Next continues the listing after this page; "" at the end.
	Next string
}

// MaxDeliveriesPage bounds one page of QueueDeliveries.
const MaxDeliveriesPage = 1000

// StatsEngine keeps per-queue counters and lists deliveries.
type StatsEngine interface {
	// QueueStats returns the queue's counters (zero for an unknown queue).
	QueueStats(ctx context.Context, queue string) (QueueStats, error)
	// QueueDeliveries lists up to limit (1..MaxDeliveriesPage) of the
	// queue's deliveries, earliest deadline first, after cursor ("" for the
	// first page; else a Next of this engine). A page is one consistent
	// read; a delivery whose deadline changes between pages (extended,
	// redelivered) may be listed again or not at all.
	QueueDeliveries(ctx context.Context, queue, cursor string, limit int) (DeliveriesPage, error)
}
