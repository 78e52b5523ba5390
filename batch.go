package sluice

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/consume"
)

// BatchHandler processes one batch. Its context is not cancelled by a
// graceful shutdown: a batch that started is allowed to finish.
type BatchHandler func(ctx context.Context, items []Item) error

// BatchConsumerOptions configure a batch consumer. A nil
// *BatchConsumerOptions, like zero fields, takes the documented defaults.
type BatchConsumerOptions struct {
	// Size is the largest batch (default 10).
	Size int
	// IdleTimeout hands over a partial batch when no new item arrived for
	// this long (default 30 s, the Python service's "size or timeout").
	IdleTimeout time.Duration
	// Concurrency is the number of batches processed at once (default 1).
	Concurrency int
	// OnError is told about every handler error and every failure to settle
	// items, with the batch concerned. Default: log it.
	OnError func(items []Item, err error)

	// Acknowledged switches to leased delivery: a batch is acknowledged when
	// the handler succeeds and nacked (retried after RetryDelay, then
	// dead-lettered to dlq:<queue> after Receive.MaxDeliveries) when it
	// fails. Without it, consumption is at-most-once (the Python service's BLPOP):
	// a failed batch is reported to OnError and not retried.
	Acknowledged bool
	// Receive tunes leases in acknowledged mode; zero fields take the
	// queue's settings.
	Receive ReceiveOptions
	// RetryDelay delays the redelivery of a failed batch (default 1 s).
	RetryDelay time.Duration
	// Prefetch, in acknowledged mode, is how many batches are leased
	// ahead of the handlers, so that the next batch is ready when one is
	// handled (default Concurrency, at most MaxConsumePrefetch; Unbounded
	// (-1) means none ahead). Their leases are extended while they wait.
	Prefetch int
}

// BatchConsumer consumes a queue in batches.
type BatchConsumer struct {
	q       *Queue
	handler BatchHandler
	o       BatchConsumerOptions
}

// NewBatchConsumer returns a consumer of q; Run starts it.
func (q *Queue) NewBatchConsumer(handler BatchHandler, opts *BatchConsumerOptions) (*BatchConsumer, error) {
	if q.nameErr != nil {
		return nil, q.nameErr
	}
	if handler == nil {
		return nil, fmt.Errorf("sluice: %w: batch consumer needs a handler", ErrInvalidArgument)
	}
	var o BatchConsumerOptions
	if opts != nil {
		o = *opts
	}
	if o.Size < 0 || o.Concurrency < 0 || o.IdleTimeout < 0 || o.RetryDelay < 0 {
		return nil, fmt.Errorf("sluice: %w: batch consumer settings must not be negative", ErrInvalidArgument)
	}
	if o.Concurrency > MaxConsumePrefetch || o.Prefetch < int(Unbounded) || o.Prefetch > MaxConsumePrefetch {
		return nil, fmt.Errorf("sluice: %w: batch consumer Concurrency %d or Prefetch %d: want at most %d (Prefetch: Unbounded for none)", ErrInvalidArgument, o.Concurrency, o.Prefetch, MaxConsumePrefetch)
	}
	if o.Size == 0 {
		o.Size = 10
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = time.Second
	}
	switch o.Prefetch {
	case 0:
		o.Prefetch = o.Concurrency
	case int(Unbounded):
		o.Prefetch = 0
	}
	if o.Receive.Lease < 0 || o.Receive.MaxDeliveries < 0 {
		return nil, fmt.Errorf("sluice: %w: negative receive Lease %v or MaxDeliveries %d", ErrInvalidArgument, o.Receive.Lease, o.Receive.MaxDeliveries)
	}
	// Zero receive settings are resolved by each receive, so that a
	// queue declared (or redeclared) while the consumer runs gets its
	// declared lease and max deliveries.
	if o.OnError == nil {
		log := q.c.log
		o.OnError = func(items []Item, err error) {
			log.Error("batch failed", "queue", q.name, "items", len(items), "err", err)
		}
	}
	return &BatchConsumer{q: q, handler: handler, o: o}, nil
}

// Run consumes until ctx is done, then shuts down gracefully: batches being
// handled finish; items collected for a batch that had not started yet are
// handed back (put back at the head of the queue, or, in acknowledged
// mode, released: deliverable at once, the delivery uncounted). Nothing
// taken is lost. It returns nil after a graceful shutdown, or the error
// that stopped it.
//
// In acknowledged mode it runs as Queue.Consume does, one batch where
// Consume has one delivery: the next batches (Prefetch) are leased while
// one is handled, the leases of every item it holds are extended, and
// acks are sent batched and asynchronously (all of them before Run
// returns).
func (b *BatchConsumer) Run(ctx context.Context) error {
	if b.o.Acknowledged {
		return b.runAcked(ctx)
	}
	var wg sync.WaitGroup
	errs := make([]error, b.o.Concurrency)
	for i := range b.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.worker(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// worker runs plain rounds until ctx is done. Leases do not apply to
// plain rounds: Get takes the items.
func (b *BatchConsumer) worker(ctx context.Context) error {
	return b.retrying(ctx, false, func() error { return b.plainRound(ctx) })
}

// retrying runs round until ctx is done (or, with once, until it first
// succeeds). An engine error (Redis down) is reported and the round
// retried with capped backoff instead of stopping the consumer; a closed
// client or a bad name is returned.
func (b *BatchConsumer) retrying(ctx context.Context, once bool, round func() error) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := round()
		if err == nil || ctx.Err() != nil {
			if once {
				return nil
			}
			backoff = 100 * time.Millisecond
			continue
		}
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidName) {
			return err
		}
		b.o.OnError(nil, fmt.Errorf("%w (the batch consumer retries in %v)", err, backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	return nil
}

// plainRound collects one batch with Get and handles it.
func (b *BatchConsumer) plainRound(ctx context.Context) error {
	batch := make([]Item, 0, b.o.Size)
	for len(batch) < b.o.Size {
		it, ok, err := b.q.Get(ctx, b.o.IdleTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return b.handBack(batch)
			}
			if len(batch) > 0 {
				b.handle(context.WithoutCancel(ctx), batch)
			}
			return err
		}
		if !ok {
			break // idle: hand over what we have
		}
		batch = append(batch, it)
		if ctx.Err() != nil {
			return b.handBack(batch)
		}
	}
	if len(batch) > 0 {
		b.handle(context.WithoutCancel(ctx), batch)
	}
	return nil
}

func (b *BatchConsumer) handle(ctx context.Context, batch []Item) {
	if err := b.handler(ctx, batch); err != nil {
		b.o.OnError(batch, err)
	}
}

// handBack returns a batch that was collected but not started.
func (b *BatchConsumer) handBack(batch []Item) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.q.PutBack(ctx, batch...); err != nil {
		err = fmt.Errorf("%w (the batch consumer's shutdown)", err)
		b.o.OnError(batch, err)
		return err
	}
	return nil
}

// runAcked consumes under leases on the machinery of Queue.Consume.
// The receive settings' zero fields are resolved by each receive; the
// extensions follow the shortest lease held.
func (b *BatchConsumer) runAcked(ctx context.Context) error {
	// The lease the extensions start from; an engine that does not answer
	// yet is waited for, as a failed receive would be.
	var ro ReceiveOptions
	err := b.retrying(ctx, true, func() (err error) {
		ro, err = b.q.receiveOptions(ctx, &b.o.Receive)
		return err
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	items := func(ds []*Delivery) []Item {
		out := make([]Item, len(ds))
		for i, d := range ds {
			out[i] = d.Item
		}
		return out
	}
	return consume.Run(ctx, consume.Config[*Delivery]{
		Source: leaseSource{q: b.q, ro: b.o.Receive},
		// A batch that started is allowed to finish: its ctx is never
		// cancelled (ShutdownTimeout 0).
		Handle: func(ctx context.Context, g []*Delivery) error { return b.handler(ctx, items(g)) },
		Nack: func(ctx context.Context, g []*Delivery, err error) {
			b.o.OnError(items(g), err)
			b.nackAll(ctx, g, err.Error())
		},
		Concurrency: b.o.Concurrency, Prefetch: b.o.Prefetch,
		Group: b.o.Size, Idle: b.o.IdleTimeout, Poll: b.o.IdleTimeout,
		Lease: ro.Lease, AckInterval: DefaultAckInterval,
		Fatal: func(err error) bool { return errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidName) },
		Acked: func(ds []*Delivery, acked []bool, err error) {
			if err != nil {
				// Whether the ack happened is unknown: unacked items come
				// back when their lease expires (at-least-once; handlers
				// must be idempotent).
				b.o.OnError(items(ds), fmt.Errorf("%w (after handling; the items may be delivered again)", err))
				return
			}
			var lost []Item
			for i, ok := range acked {
				if !ok {
					lost = append(lost, ds[i].Item)
				}
			}
			if len(lost) > 0 {
				b.o.OnError(lost, fmt.Errorf("sluice: ack %d deliveries on queue %q: %w for %d of them; those items will be delivered again", len(ds), b.q.name, ErrLeaseNotFound, len(lost)))
			}
		},
		ReceiveFailed: func(err error, retryIn time.Duration) {
			b.o.OnError(nil, fmt.Errorf("%w (the batch consumer retries in %v)", err, retryIn))
		},
		Error: func(ds []*Delivery, err error) {
			b.o.OnError(items(ds), fmt.Errorf("sluice: batch consumer of queue %q: %w", b.q.name, err))
		},
	})
}

func (b *BatchConsumer) nackAll(ctx context.Context, ds []*Delivery, reason string) {
	var failed []Item
	var nackErr error
	for _, d := range ds {
		if _, err := d.Nack(ctx, &NackOptions{Delay: b.o.RetryDelay, Reason: reason}); err != nil && !errors.Is(err, ErrLeaseNotFound) {
			failed = append(failed, d.Item)
			nackErr = errors.Join(nackErr, err)
		}
	}
	if nackErr != nil {
		b.o.OnError(failed, fmt.Errorf("%w (the items come back when their lease expires)", nackErr))
	}
}
