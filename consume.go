package sluice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/consume"
)

// Handler handles one delivery for Queue.Consume. Returning nil acks it;
// returning an error nacks it, with the error's text as the reason.
type Handler func(ctx context.Context, d *Delivery) error

// Limits and defaults of Queue.Consume.
const (
	// MaxConsumePrefetch bounds ConsumeOptions.Prefetch and Concurrency.
	MaxConsumePrefetch = 1000
	// DefaultAckInterval is how long an ack waits for others to share its
	// round trip when ConsumeOptions.AckInterval is 0.
	DefaultAckInterval = 5 * time.Millisecond
	// DefaultShutdownTimeout is how long running handlers get to finish
	// once Consume's ctx ends, when ConsumeOptions.ShutdownTimeout is 0.
	DefaultShutdownTimeout = 30 * time.Second
)

// ConsumeOptions tune Queue.Consume. A nil *ConsumeOptions, like zero
// fields, takes the defaults.
type ConsumeOptions struct {
	// Concurrency is how many handler calls run at once (default 1, at
	// most MaxConsumePrefetch).
	Concurrency int
	// Prefetch is how many deliveries are leased ahead of the handlers,
	// beyond the ones being handled (default 2 x Concurrency, at most
	// MaxConsumePrefetch; Unbounded (-1) means none ahead). Prefetched
	// deliveries are leased like the others, and their leases are
	// extended while they wait.
	Prefetch int
	// Lease and MaxDeliveries are ReceiveOptions' (the queue's settings
	// when zero).
	Lease         time.Duration
	MaxDeliveries int
	// RetryDelay is the delay before a nacked item is delivered again,
	// from the attempt that failed (1 for the first). Nil: exponential,
	// 1 s doubling up to 1 min.
	RetryDelay func(attempt int) time.Duration
	// AckInterval is how long an ack may wait to be sent with others
	// (default DefaultAckInterval). Acks are also sent as soon as 100 are
	// waiting, and all of them before Consume returns.
	AckInterval time.Duration
	// ShutdownTimeout is how long running handlers may go on after ctx
	// ends before their own ctx is cancelled (default
	// DefaultShutdownTimeout). Consume waits for every handler to return.
	ShutdownTimeout time.Duration
	// OnError, when set, is told of what went wrong without losing
	// anything: a receive that failed (Consume retries it), an ack or nack
	// the engine refused or could not confirm (the item comes back when its
	// lease runs out), a handler that panicked (the item was nacked).
	// Nil: they are logged by the client's logger. It may be called from
	// several goroutines at once.
	OnError func(error)
}

func (o *ConsumeOptions) withDefaults() (ConsumeOptions, error) {
	var r ConsumeOptions
	if o != nil {
		r = *o
	}
	switch {
	case r.Concurrency < 0 || r.Concurrency > MaxConsumePrefetch:
		return r, fmt.Errorf("sluice: %w: consume Concurrency %d: want 1 to %d (0: 1)", ErrInvalidArgument, r.Concurrency, MaxConsumePrefetch)
	case r.Prefetch < int(Unbounded) || r.Prefetch > MaxConsumePrefetch:
		return r, fmt.Errorf("sluice: %w: consume Prefetch %d: want 0 to %d, or Unbounded for none", ErrInvalidArgument, r.Prefetch, MaxConsumePrefetch)
	case r.AckInterval < 0 || r.ShutdownTimeout < 0:
		return r, fmt.Errorf("sluice: %w: negative consume AckInterval %v or ShutdownTimeout %v", ErrInvalidArgument, r.AckInterval, r.ShutdownTimeout)
	}
	if r.Concurrency == 0 {
		r.Concurrency = 1
	}
	switch r.Prefetch {
	case 0:
		r.Prefetch = min(2*r.Concurrency, MaxConsumePrefetch)
	case int(Unbounded):
		r.Prefetch = 0
	}
	if r.RetryDelay == nil {
		r.RetryDelay = defaultRetryDelay
	}
	if r.AckInterval == 0 {
		r.AckInterval = DefaultAckInterval
	}
	if r.ShutdownTimeout == 0 {
		r.ShutdownTimeout = DefaultShutdownTimeout
	}
	return r, nil
}

// defaultRetryDelay is 1 s for the first failure, doubling up to 1 min.
func defaultRetryDelay(attempt int) time.Duration {
	if attempt > 7 {
		return time.Minute
	}
	return min(time.Second<<max(attempt-1, 0), time.Minute)
}

// Consume hands the queue's items to handler under leases until ctx ends,
// at the cost of about one engine call per batch in each direction: it
// leases up to Concurrency+Prefetch items ahead in one receive, runs
// handler on Concurrency goroutines, extends the leases of the items it
// holds (waiting or being handled), and sends acks batched and
// asynchronously; nacks go out at once, with RetryDelay.
//
// Nothing is lost or settled twice. A crash leaves only leased items,
// which come back when their leases run out. When ctx ends, Consume stops
// receiving, releases the items it had not started (they are deliverable
// at once, and the delivery does not count against MaxDeliveries), lets
// running handlers finish (their ctx is cancelled after ShutdownTimeout;
// an item whose handler then fails is released too), sends the waiting
// acks, and returns nil. It returns an error for invalid options, or when
// the client is closed.
func (q *Queue) Consume(ctx context.Context, handler Handler, opts *ConsumeOptions) error {
	if q.nameErr != nil {
		return q.nameErr
	}
	if handler == nil {
		return fmt.Errorf("sluice: %w: consume needs a handler", ErrInvalidArgument)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	ro, err := q.receiveOptions(ctx, &ReceiveOptions{Lease: o.Lease, MaxDeliveries: o.MaxDeliveries})
	if err != nil {
		return err
	}
	report := func(err error) {
		if o.OnError != nil {
			o.OnError(err)
			return
		}
		q.c.log.Warn("consume", "queue", q.name, "err", err)
	}
	err = consume.Run(ctx, consume.Config[*Delivery]{
		Source: leaseSource{q: q, ro: ro},
		Handle: func(ctx context.Context, g []*Delivery) error { return handler(ctx, g[0]) },
		Nack: func(ctx context.Context, g []*Delivery, err error) {
			d := g[0]
			reason := err.Error()
			if len(reason) > 1024 {
				reason = reason[:1024]
			}
			if _, err := d.Nack(ctx, &NackOptions{Delay: o.RetryDelay(d.Attempt), Reason: reason}); err != nil {
				report(err)
			}
		},
		Concurrency: o.Concurrency, Prefetch: o.Prefetch, Group: 1, Poll: time.Second,
		Lease: ro.Lease, AckInterval: o.AckInterval, ShutdownTimeout: o.ShutdownTimeout,
		Fatal: func(err error) bool { return errors.Is(err, ErrClosed) },
		Acked: func(ds []*Delivery, acked []bool, err error) {
			if err != nil {
				report(fmt.Errorf("sluice: consume from queue %q: ack of %d deliveries: %w (they come back when their leases run out)", q.name, len(ds), err))
				return
			}
			for i, ok := range acked {
				if !ok {
					report(fmt.Errorf("sluice: consume from queue %q: ack %s: %w", q.name, ds[i].ID, ErrLeaseNotFound))
				}
			}
		},
		ReceiveFailed: func(err error, _ time.Duration) { report(err) },
		Error: func(_ []*Delivery, err error) {
			report(fmt.Errorf("sluice: consume from queue %q: %w", q.name, err))
		},
	})
	if err != nil { // only ErrClosed is fatal
		return fmt.Errorf("sluice: consume from queue %q: %w", q.name, ErrClosed)
	}
	return nil
}

// leaseSource is the consume package's Source on a queue of this client:
// Queue.Consume's and the acknowledged BatchConsumer's. Receives use ro,
// whose zero fields each receive resolves (BatchConsumer's, so that a
// queue declared while it runs gets its declared lease and max
// deliveries).
type leaseSource struct {
	q  *Queue
	ro ReceiveOptions
}

func (s leaseSource) Receive(ctx context.Context, n int, wait time.Duration) ([]*Delivery, error) {
	return s.q.ReceiveBatch(ctx, n, wait, &s.ro)
}

func (s leaseSource) Extend(ctx context.Context, d *Delivery) error {
	return d.Extend(ctx, d.opts.Lease)
}

func (s leaseSource) Ack(ctx context.Context, ds []*Delivery) ([]bool, error) {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return s.q.AckBatch(ctx, ids...)
}

func (leaseSource) Release(ctx context.Context, d *Delivery) error { return d.Release(ctx) }
func (leaseSource) ID(d *Delivery) string                          { return d.ID }
func (leaseSource) Lease(d *Delivery) time.Duration                { return d.opts.Lease }
