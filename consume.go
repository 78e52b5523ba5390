package sluice

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
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
	// ackBatch is the most acks sent in one call.
	ackBatch = 100
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
	c := &consumer{q: q, h: handler, o: o, ro: ro,
		work:  make(chan *Delivery, o.Prefetch),
		acks:  make(chan string, ackBatch),
		slots: make(chan struct{}, o.Concurrency+o.Prefetch),
		held:  make(map[string]*Delivery),
	}
	for range cap(c.slots) {
		c.slots <- struct{}{}
	}
	return c.run(ctx)
}

// consumer is one Consume call: its goroutines (a receiver, the handlers,
// an acker and an extender) all end before run returns.
type consumer struct {
	q  *Queue
	h  Handler
	o  ConsumeOptions
	ro ReceiveOptions

	work  chan *Delivery // received, not started
	acks  chan string    // handled, to ack
	slots chan struct{}  // one token per delivery this consumer may hold

	mu   sync.Mutex
	held map[string]*Delivery // received and not settled, by id
}

func (c *consumer) run(ctx context.Context) error {
	// handlerCtx outlives ctx by ShutdownTimeout, so that running items
	// can finish; settle is never cancelled, so that what was handled is
	// settled.
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	stopTimer := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.o.ShutdownTimeout, cancelHandlers)
		context.AfterFunc(handlerCtx, func() { t.Stop() })
	})
	defer stopTimer()
	settle := context.WithoutCancel(ctx)

	var recvErr error
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		defer close(c.work)
		recvErr = c.receive(ctx)
	}()

	var handlers sync.WaitGroup
	for range c.o.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			c.handle(ctx, handlerCtx, settle)
		}()
	}
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		c.ackLoop(settle)
	}()
	stopExtend := make(chan struct{})
	extendDone := make(chan struct{})
	go func() {
		defer close(extendDone)
		c.extendLoop(settle, stopExtend)
	}()

	<-recvDone
	handlers.Wait()
	// What was received and never started goes back, uncounted.
	for d := range c.work {
		c.release(settle, d)
	}
	close(c.acks)
	<-ackDone
	close(stopExtend)
	<-extendDone
	return recvErr
}

// receive leases items while there are free slots, until ctx ends. It
// returns an error only when the client is closed.
func (c *consumer) receive(ctx context.Context) error {
	backoff := 10 * time.Millisecond
	for {
		// Wait for at least one free slot, then take every free one.
		select {
		case <-ctx.Done():
			return nil
		case <-c.slots:
		}
		n := 1
	more:
		for n < cap(c.slots) {
			select {
			case <-c.slots:
				n++
			default:
				break more
			}
		}
		ds, err := c.q.ReceiveBatch(ctx, n, time.Second, &c.ro)
		for range n - len(ds) {
			c.slots <- struct{}{}
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrClosed):
				return fmt.Errorf("sluice: consume from queue %q: %w", c.q.name, ErrClosed)
			case ctx.Err() != nil:
				return nil //nolint:nilerr // the receive was cut short by the shutdown: no failure
			}
			c.report(err)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		c.mu.Lock()
		for _, d := range ds {
			c.held[d.ID] = d
		}
		c.mu.Unlock()
		for i, d := range ds {
			// Every slot beyond the Prefetch that work buffers is a handler
			// that is free, so this waits at most for one to come back for
			// its next item; on shutdown, what was not handed over goes back.
			select {
			case c.work <- d:
			case <-ctx.Done():
				for _, d := range ds[i:] {
					c.release(context.WithoutCancel(ctx), d)
				}
				return nil
			}
		}
	}
}

// handle runs the handler on deliveries until ctx ends or work is closed.
func (c *consumer) handle(ctx, handlerCtx, settle context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-c.work:
			if !ok {
				return
			}
			if ctx.Err() != nil {
				c.release(settle, d)
				return
			}
			c.handleOne(handlerCtx, settle, d)
		}
	}
}

func (c *consumer) handleOne(handlerCtx, settle context.Context, d *Delivery) {
	err := c.call(handlerCtx, d)
	switch {
	case err == nil:
		c.forget(d.ID)
		c.acks <- d.ID
	case handlerCtx.Err() != nil:
		// Cut short by the shutdown, not failed: it goes back uncounted.
		c.release(settle, d)
	default:
		c.forget(d.ID)
		reason := err.Error()
		if len(reason) > 1024 {
			reason = reason[:1024]
		}
		_, nerr := d.Nack(settle, &NackOptions{Delay: c.o.RetryDelay(d.Attempt), Reason: reason})
		if nerr != nil {
			c.report(nerr)
		}
	}
}

// call runs the handler, turning a panic into an error that nacks the item.
func (c *consumer) call(ctx context.Context, d *Delivery) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
			c.report(fmt.Errorf("sluice: consume from queue %q: delivery %s: %w\n%s", c.q.name, d.ID, err, debug.Stack()))
		}
	}()
	return c.h(ctx, d)
}

// release hands d back unstarted (or cut short by the shutdown).
func (c *consumer) release(settle context.Context, d *Delivery) {
	c.forget(d.ID)
	if err := d.Release(settle); err != nil {
		c.report(err)
	}
}

// forget drops d from the held set and frees its slot.
func (c *consumer) forget(id string) {
	c.mu.Lock()
	delete(c.held, id)
	c.mu.Unlock()
	c.slots <- struct{}{}
}

// ackLoop sends acks in batches: when ackBatch are waiting, when the
// oldest has waited AckInterval, and when acks is closed.
func (c *consumer) ackLoop(settle context.Context) {
	pending := make([]string, 0, ackBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(pending) == 0 {
			return
		}
		acked, err := c.q.AckBatch(settle, pending...)
		switch {
		case err != nil:
			c.report(fmt.Errorf("sluice: consume from queue %q: ack of %d deliveries: %w (they come back when their leases run out)", c.q.name, len(pending), err))
		default:
			for i, ok := range acked {
				if !ok {
					c.report(fmt.Errorf("sluice: consume from queue %q: ack %s: %w", c.q.name, pending[i], ErrLeaseNotFound))
				}
			}
		}
		pending = pending[:0]
	}
	for {
		select {
		case id, ok := <-c.acks:
			if !ok {
				flush()
				return
			}
			if len(pending) == 0 {
				timer.Reset(c.o.AckInterval)
			}
			pending = append(pending, id)
			if len(pending) == ackBatch {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// extendLoop renews the leases of every held delivery each third of the
// lease, so that neither a slow handler nor a wait in the prefetch buffer
// lets a lease run out.
func (c *consumer) extendLoop(settle context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(max(c.ro.Lease/3, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		ds := make([]*Delivery, 0, len(c.held))
		for _, d := range c.held {
			ds = append(ds, d)
		}
		c.mu.Unlock()
		for _, d := range ds {
			err := d.Extend(settle, c.ro.Lease)
			// A delivery settled meanwhile has no lease left to extend.
			if err != nil && !errors.Is(err, ErrLeaseNotFound) {
				c.report(err)
			}
		}
	}
}

func (c *consumer) report(err error) {
	if c.o.OnError != nil {
		c.o.OnError(err)
		return
	}
	c.q.c.log.Warn("consume", "queue", c.q.name, "err", err)
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
