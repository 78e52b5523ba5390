package sluice

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
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
	if o.Receive.Lease < 0 || o.Receive.MaxDeliveries < 0 {
		return nil, fmt.Errorf("sluice: %w: negative receive Lease %v or MaxDeliveries %d", ErrInvalidArgument, o.Receive.Lease, o.Receive.MaxDeliveries)
	}
	// Zero receive settings are resolved by each round's first receive,
	// so that a queue declared (or redeclared) while the consumer runs
	// gets its declared lease and max deliveries.
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
// handed back (put back at the head of the queue, or nacked without delay
// in acknowledged mode). Nothing taken is lost. It returns nil after a
// graceful shutdown, or the error that stopped it.
func (b *BatchConsumer) Run(ctx context.Context) error {
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

// worker runs rounds until ctx is done. An engine error (Redis down) is
// reported and retried with capped backoff instead of stopping the consumer.
func (b *BatchConsumer) worker(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var err error
		if b.o.Acknowledged {
			err = b.ackedRound(ctx)
		} else {
			err = b.plainRound(ctx)
		}
		if err == nil || ctx.Err() != nil {
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

// ackedRound receives one batch under leases and settles it. Collecting
// a batch is capped at half the lease, so no lease of the batch can expire
// (and its item be handed to someone else) before the handler starts; while
// the handler runs, the leases are extended.
func (b *BatchConsumer) ackedRound(ctx context.Context) error {
	ds, err := b.q.ReceiveBatch(ctx, b.o.Size, b.o.IdleTimeout, &b.o.Receive)
	if err != nil {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // a cancelled ctx stops the consumer; that is not a failure
		}
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	sctx := context.WithoutCancel(ctx)
	// The round's settings, as its first receive resolved them.
	ro := ds[0].opts
	collectUntil := time.Now().Add(ro.Lease / 2)
	for len(ds) < b.o.Size && ctx.Err() == nil {
		wait := min(b.o.IdleTimeout, time.Until(collectUntil))
		if wait <= 0 {
			break
		}
		more, err := b.q.ReceiveBatch(ctx, b.o.Size-len(ds), wait, &ro)
		if err != nil || len(more) == 0 {
			break
		}
		ds = append(ds, more...)
	}
	if ctx.Err() != nil {
		b.release(sctx, ds)
		return nil //nolint:nilerr // cancelled mid-batch: the leases were given back; stopping is not a failure
	}
	items := make([]Item, len(ds))
	for i, d := range ds {
		items[i] = d.Item
	}
	stopExtending := b.extendWhileHandling(sctx, ds)
	err = b.handler(sctx, items)
	stopExtending()
	if err != nil {
		b.o.OnError(items, err)
		b.nackAll(sctx, ds, err.Error())
		return nil
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	acked, err := b.q.AckBatch(sctx, ids...)
	if err != nil {
		// Whether the ack happened is unknown: unacked items come back when
		// their lease expires (at-least-once; handlers must be idempotent).
		b.o.OnError(items, fmt.Errorf("%w (after handling; the items may be delivered again)", err))
		return nil
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
	return nil
}

// extendWhileHandling renews the batch's leases every third of a lease
// until the returned stop is called, so a slow handler keeps its items.
func (b *BatchConsumer) extendWhileHandling(ctx context.Context, ds []*Delivery) (stop func()) {
	lease := ds[0].opts.Lease
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(max(lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, d := range ds {
					if err := d.Extend(ctx, lease); err != nil {
						b.o.OnError([]Item{d.Item}, fmt.Errorf("%w (while the batch is handled)", err))
					}
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
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

// release hands back deliveries that were never handled, without counting
// the delivery, so a shutdown never pushes an item toward the failed DLQ.
func (b *BatchConsumer) release(ctx context.Context, ds []*Delivery) {
	var failed []Item
	var relErr error
	for _, d := range ds {
		if err := d.Release(ctx); err != nil && !errors.Is(err, ErrLeaseNotFound) {
			failed = append(failed, d.Item)
			relErr = errors.Join(relErr, err)
		}
	}
	if relErr != nil {
		b.o.OnError(failed, fmt.Errorf("%w (the items come back when their lease expires)", relErr))
	}
}
