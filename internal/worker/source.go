package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/remote"
)

// Delivery is one leased item as the worker sees it, whichever source
// handed it out.
type Delivery struct {
	ID string
	// Item is the item's JSON (a plain string item is a JSON string).
	Item    json.RawMessage
	Attempt int

	// lib is the library's delivery, which Release needs.
	lib *sluice.Delivery
}

// Source is where a worker's deliveries come from and are settled: a
// queue of the library (FromQueue) or a running service (FromRemote), so
// that both modes run one code path. Its methods are safe for concurrent
// use. An unknown or expired lease is sluice.ErrLeaseNotFound.
type Source interface {
	// Receive leases up to n items for lease, waiting up to wait for the
	// first one; none is an empty slice and a nil error.
	Receive(ctx context.Context, n int, wait, lease time.Duration) ([]Delivery, error)
	// Extend renews a lease for lease from now.
	Extend(ctx context.Context, d Delivery, lease time.Duration) error
	// Ack settles deliveries; acked[i] tells whether ds[i] still held its
	// lease.
	Ack(ctx context.Context, ds []Delivery) (acked []bool, err error)
	// Nack ends a delivery unsuccessfully: redelivered after delay, or
	// dead-lettered when it used its deliveries.
	Nack(ctx context.Context, d Delivery, delay time.Duration, reason string) (deadLettered bool, err error)
	// Release hands a delivery back without counting it.
	Release(ctx context.Context, d Delivery) error
}

// queueSource is a Source on a queue of the library.
type queueSource struct{ q *sluice.Queue }

// FromQueue is a Source on q. Receives and nacks use q's max deliveries:
// make q with Client.QueueWithDefaults so that the queue's declared max
// deliveries wins over the worker's.
func FromQueue(q *sluice.Queue) Source { return queueSource{q} }

func (s queueSource) Receive(ctx context.Context, n int, wait, lease time.Duration) ([]Delivery, error) {
	ds, err := s.q.ReceiveBatch(ctx, n, wait, &sluice.ReceiveOptions{Lease: lease})
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, len(ds))
	for i, d := range ds {
		out[i] = Delivery{ID: d.ID, Item: d.Item.JSON(), Attempt: d.Attempt, lib: d}
	}
	return out, nil
}

func (s queueSource) Extend(ctx context.Context, d Delivery, lease time.Duration) error {
	return s.q.Extend(ctx, d.ID, lease)
}

func (s queueSource) Ack(ctx context.Context, ds []Delivery) ([]bool, error) {
	if len(ds) == 1 {
		err := s.q.Ack(ctx, ds[0].ID)
		if errors.Is(err, sluice.ErrLeaseNotFound) {
			return []bool{false}, nil
		}
		return []bool{err == nil}, err
	}
	return s.q.AckBatch(ctx, ids(ds)...)
}

func (s queueSource) Nack(ctx context.Context, d Delivery, delay time.Duration, reason string) (bool, error) {
	return d.lib.Nack(ctx, &sluice.NackOptions{Delay: delay, Reason: reason})
}

func (s queueSource) Release(ctx context.Context, d Delivery) error {
	return d.lib.Release(ctx)
}

// remoteSource is a Source on a queue of a running service.
type remoteSource struct {
	c     *remote.Client
	queue string
	// maxDeliveries is sent with receives and nacks; 0 leaves it to the
	// service (the queue's declared one, else the service's default).
	maxDeliveries int
}

// FromRemote is a Source on the service's queue. maxDeliveries, the
// queue's effective one (its declared one when it declares one), is sent
// with receives and nacks, and tells whether a nack dead-lettered when the
// service does not say; 0 leaves it to the service.
func FromRemote(c *remote.Client, queue string, maxDeliveries int) Source {
	return remoteSource{c: c, queue: queue, maxDeliveries: maxDeliveries}
}

func (s remoteSource) Receive(ctx context.Context, n int, wait, lease time.Duration) ([]Delivery, error) {
	ds, err := s.c.Receive(ctx, s.queue, remote.ReceiveParams{Count: n, Wait: wait, Lease: lease, MaxDeliveries: s.maxDeliveries})
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, len(ds))
	for i, d := range ds {
		out[i] = Delivery{ID: d.ID, Item: d.Item, Attempt: d.Attempt}
	}
	return out, nil
}

func (s remoteSource) Extend(ctx context.Context, d Delivery, lease time.Duration) error {
	_, err := s.c.Extend(ctx, s.queue, d.ID, lease)
	return err
}

func (s remoteSource) Ack(ctx context.Context, ds []Delivery) ([]bool, error) {
	if len(ds) == 1 {
		err := s.c.Ack(ctx, s.queue, ds[0].ID)
		if errors.Is(err, sluice.ErrLeaseNotFound) {
			return []bool{false}, nil
		}
		return []bool{err == nil}, err
	}
	return s.c.AckBatch(ctx, s.queue, ids(ds))
}

func (s remoteSource) Nack(ctx context.Context, d Delivery, delay time.Duration, reason string) (bool, error) {
	res, err := s.c.Nack(ctx, s.queue, d.ID, remote.NackParams{Delay: delay, Reason: reason, MaxDeliveries: s.maxDeliveries})
	if err != nil {
		return false, err
	}
	switch res.Outcome {
	case remote.OutcomeDeadLettered:
		return true, nil
	case remote.OutcomeRedelivered:
		return false, nil
	}
	// A service that does not say: the item used its deliveries when its
	// attempt reached the max deliveries we asked for.
	return s.maxDeliveries > 0 && d.Attempt >= s.maxDeliveries, nil
}

func (s remoteSource) Release(ctx context.Context, d Delivery) error {
	return s.c.Release(ctx, s.queue, d.ID)
}

func ids(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// fatal reports whether err stops the worker rather than being retried:
// retrying will not mend a closed client, a bad name or argument, or a
// service that refuses the API key or does not know the route.
func fatal(err error) bool {
	if errors.Is(err, sluice.ErrClosed) || errors.Is(err, sluice.ErrInvalidName) || errors.Is(err, sluice.ErrInvalidArgument) {
		return true
	}
	var se *remote.StatusError
	if errors.As(err, &se) {
		return se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests && se.Status != http.StatusRequestTimeout
	}
	return false
}
