// Package consume is the leased consumption that Queue.Consume, the
// acknowledged BatchConsumer and `sluice worker` share: it leases items
// ahead of the handlers in as few receives as it can (prefetch), hands
// them to Concurrency handlers one group at a time (one item, or a batch),
// extends the leases of everything it holds (waiting or being handled),
// sends acks batched and asynchronously, and on shutdown stops receiving,
// releases what it had not started (uncounted), lets running handlers
// finish for a while, and sends the waiting acks before Run returns.
//
// It knows deliveries only through a Source, so that the library's queues
// and a running service (over HTTP) take the same path.
package consume

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// Source is where deliveries come from and are settled. Its methods are
// safe for concurrent use. An unknown or expired lease is
// engine.ErrLeaseNotFound (sluice.ErrLeaseNotFound).
type Source[D any] interface {
	// Receive leases up to n items, waiting up to wait for the first one;
	// none is an empty slice and a nil error.
	Receive(ctx context.Context, n int, wait time.Duration) ([]D, error)
	// Extend renews d's lease for Lease(d) from now.
	Extend(ctx context.Context, d D) error
	// Ack settles ds; acked[i] tells whether ds[i] still held its lease.
	Ack(ctx context.Context, ds []D) (acked []bool, err error)
	// Release hands d back without counting the delivery.
	Release(ctx context.Context, d D) error
	// ID identifies d; Lease is the lease it was received with.
	ID(d D) string
	Lease(d D) time.Duration
}

// AckBatch is the most acks sent in one call, and AckCalls the most ack
// calls in flight at once.
const (
	AckBatch = 100
	AckCalls = 4
)

// ErrShutdown is the cause of a handler's ctx cancelled because the
// shutdown timeout passed, or because Config.Kill was closed during the
// shutdown.
var ErrShutdown = errors.New("shutdown timeout")

// ErrLeaseLost is reported (wrapping engine.ErrLeaseNotFound) for an item
// whose lease ran out while it was held: another consumer may receive it
// meanwhile. It is reported once per item, which is no longer extended.
var ErrLeaseLost = errors.New("the lease ran out while the item was held; it may be delivered again meanwhile")

// Config configures Run. Zero durations mean what each field says.
type Config[D any] struct {
	Source Source[D]
	// Handle handles one group. Its ctx is cancelled (with the cause
	// ErrShutdown) only when the shutdown timeout passes or Kill is
	// closed. Returning nil acks the group; an error nacks it through
	// Nack, or releases it when the ctx was cancelled by then. A panic is
	// an error too (and is reported).
	Handle func(ctx context.Context, group []D) error
	// Nack settles a group whose Handle failed, with Handle's error.
	Nack func(ctx context.Context, group []D, err error)

	// Concurrency is how many groups are handled at once (at least 1).
	Concurrency int
	// Prefetch is how many groups are leased ahead of the handlers.
	Prefetch int
	// Group is the most items in a group (at least 1). A group that the
	// queue cannot fill at once waits up to Idle for each further item,
	// and at most half the lease of its first item in all.
	Group int
	Idle  time.Duration
	// Poll is how long one receive waits for the first item.
	Poll time.Duration
	// MaxReceive bounds the items asked for in one receive (0: no bound).
	MaxReceive int
	// DetachReceive keeps a stop from cancelling a receive in progress
	// (which may have leased items the caller would then never see, back
	// only when their leases run out, counted): a stop waits up to Poll
	// (Idle) for it, and releases what it brings.
	DetachReceive bool
	// Lease is the longest time between two extensions of a lease, times
	// three; the shortest Lease(d) of the items held counts too.
	Lease time.Duration
	// AckInterval is how long an ack may wait to be sent with others
	// (they are also sent when AckBatch wait, and before Run returns).
	AckInterval time.Duration
	// ShutdownTimeout is how long running handlers may go on once ctx
	// ends before their ctx is cancelled; 0: never cancelled.
	ShutdownTimeout time.Duration
	// Kill, once closed, cuts the shutdown short: the running handlers'
	// ctx is cancelled as soon as the shutdown begins (or at once, if it
	// has begun). Nil: never.
	Kill <-chan struct{}
	// SettleTimeout bounds each ack, nack, release (0: no bound); an
	// extension is bounded by the lease it renews.
	SettleTimeout time.Duration
	// Fatal tells which receive errors stop Run (which returns them);
	// other errors are reported and retried with a backoff. Nil: none.
	Fatal func(error) bool

	// Events, each optional. They may be called from several goroutines
	// at once, and must not keep ds after they return.
	//
	// Acked follows each ack call.
	Acked func(ds []D, acked []bool, err error)
	// Released follows the release of ds (the ones that were released);
	// started tells whether a handler had run them (and was cut short).
	Released func(ds []D, started bool)
	// ReceiveFailed is told of a receive that failed and is retried.
	ReceiveFailed func(err error, retryIn time.Duration)
	// Error is told of anything else that went wrong without losing
	// anything, with the items concerned: a release or an extension that
	// failed, a lease that ran out (ErrLeaseLost), a handler that panicked.
	Error func(ds []D, err error)
	// Stopping is called when the shutdown begins; Killing when the
	// running handlers' ctx is cancelled (timedOut: by ShutdownTimeout,
	// else by Kill).
	Stopping func()
	Killing  func(timedOut bool)
}

// Run consumes until ctx ends or a fatal receive error, then shuts down
// as the package says; every goroutine it starts has ended when it
// returns. It returns the fatal error, or nil.
func Run[D any](ctx context.Context, cfg Config[D]) error {
	c := &run[D]{
		cfg:    cfg,
		work:   make(chan []D, cfg.Prefetch),
		acks:   make(chan D, AckBatch),
		tokens: make(chan struct{}, cfg.Concurrency+cfg.Prefetch),
		held:   make(map[string]D),

		recvDone: make(chan struct{}),
	}
	c.cfg.Group = max(c.cfg.Group, 1)
	for range cap(c.tokens) {
		c.tokens <- struct{}{}
	}
	return c.run(ctx)
}

// run is one Run: a receiver, the handlers, an acker, an extender and a
// shutdown watcher.
type run[D any] struct {
	cfg Config[D]

	work     chan []D      // received groups, not started
	acks     chan D        // handled, to ack
	tokens   chan struct{} // one per group this run may hold
	recvDone chan struct{} // closed when the receiver has returned

	mu   sync.Mutex
	held map[string]D // received and not settled, by id
}

func (c *run[D]) run(ctx context.Context) error {
	// stop ends receiving: ctx's end, or a fatal error.
	stop, stopWith := context.WithCancelCause(ctx)
	defer stopWith(nil)
	// handlerCtx outlives stop by ShutdownTimeout, so that running items
	// can finish; settle is never cancelled, so that what was handled is
	// settled.
	handlerCtx, kill := context.WithCancelCause(context.WithoutCancel(ctx))
	defer kill(nil)
	settle := context.WithoutCancel(ctx)

	var recvErr error
	go func() {
		defer close(c.recvDone)
		defer close(c.work)
		if recvErr = c.receive(stop, settle); recvErr != nil {
			stopWith(recvErr)
		}
	}()
	var handlers sync.WaitGroup
	for range c.cfg.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			c.handle(stop, handlerCtx, settle)
		}()
	}
	handlersDone := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		c.watch(stop, handlersDone, kill)
	}()
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

	<-c.recvDone
	handlers.Wait()
	close(handlersDone)
	<-watchDone
	// What was received and never started goes back, uncounted.
	for g := range c.work {
		c.release(settle, g, false)
	}
	close(c.acks)
	<-ackDone
	close(stopExtend)
	<-extendDone
	return recvErr
}

// watch cancels the running handlers when the shutdown timeout passes or
// Kill is closed, once stop has ended; it returns when the handlers have.
func (c *run[D]) watch(stop context.Context, handlersDone <-chan struct{}, kill context.CancelCauseFunc) {
	select {
	case <-handlersDone:
		return
	case <-stop.Done():
	}
	if c.cfg.Stopping != nil {
		c.cfg.Stopping()
	}
	var timeout <-chan time.Time
	if c.cfg.ShutdownTimeout > 0 {
		t := time.NewTimer(c.cfg.ShutdownTimeout)
		defer t.Stop()
		timeout = t.C
	}
	timedOut := false
	select {
	case <-handlersDone:
		return
	case <-timeout:
		timedOut = true
	case <-c.cfg.Kill:
	}
	if c.cfg.Killing != nil {
		c.cfg.Killing(timedOut)
	}
	kill(ErrShutdown)
}

// receive leases groups while there are free tokens, until stop ends. It
// returns an error only when Fatal says so.
func (c *run[D]) receive(stop, settle context.Context) error {
	rctx := stop
	if c.cfg.DetachReceive {
		rctx = settle
	}
	maxTokens := cap(c.tokens)
	if c.cfg.MaxReceive > 0 {
		maxTokens = min(maxTokens, max(c.cfg.MaxReceive/c.cfg.Group, 1))
	}
	const minBackoff = 10 * time.Millisecond
	backoff := minBackoff
	for {
		// Wait for one free token, then take every free one: one receive
		// fills them all. A stop wins over a free token.
		if stop.Err() != nil {
			return nil //nolint:nilerr // stopping is not a failure
		}
		select {
		case <-stop.Done():
			return nil
		case <-c.tokens:
		}
		k := 1
	more:
		for k < maxTokens {
			select {
			case <-c.tokens:
				k++
			default:
				break more
			}
		}
		n := k * c.cfg.Group
		if c.cfg.MaxReceive > 0 {
			n = min(n, c.cfg.MaxReceive)
		}
		ds, err := c.cfg.Source.Receive(rctx, n, c.cfg.Poll)
		if err != nil {
			c.putTokens(k)
			switch {
			case c.cfg.Fatal != nil && c.cfg.Fatal(err):
				return err
			case stop.Err() != nil:
				return nil //nolint:nilerr // the receive was cut short by the shutdown: no failure
			}
			if c.cfg.ReceiveFailed != nil {
				c.cfg.ReceiveFailed(err, backoff)
			}
			if !sleep(stop, backoff) {
				return nil
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = minBackoff
		c.hold(ds)
		groups := split(ds, c.cfg.Group)
		c.putTokens(k - len(groups))
		if stop.Err() != nil {
			for _, g := range groups {
				c.release(settle, g, false)
			}
			return nil
		}
		for i, g := range groups {
			if i == len(groups)-1 && len(g) < c.cfg.Group {
				// The queue had no more at once: wait a little for more.
				g = c.fill(stop, rctx, g)
			}
			// Every token beyond the Prefetch that work buffers is a
			// handler that is free, so this waits at most for one to come
			// back for its next group; on shutdown, what was not handed
			// over goes back.
			select {
			case c.work <- g:
			case <-stop.Done():
				c.release(settle, g, false)
				for _, g := range groups[i+1:] {
					c.release(settle, g, false)
				}
				return nil
			}
		}
	}
}

// fill adds items to a partial group: each further item is waited for up
// to Idle, and all of them for half the lease of the group's first item
// in all, so that a slow trickle does not hold the group for long.
func (c *run[D]) fill(stop, rctx context.Context, g []D) []D {
	until := time.Now().Add(c.cfg.Source.Lease(g[0]) / 2)
	for len(g) < c.cfg.Group && stop.Err() == nil {
		wait := min(c.cfg.Idle, time.Until(until))
		if wait <= 0 {
			break
		}
		more, err := c.cfg.Source.Receive(rctx, c.cfg.Group-len(g), wait)
		if err != nil {
			if stop.Err() == nil {
				c.report(g, fmt.Errorf("receive failed; handling the %d items collected so far: %w", len(g), err))
			}
			break
		}
		if len(more) == 0 {
			break
		}
		c.hold(more)
		g = append(g, more...)
	}
	return g
}

// handle runs Handle on groups until stop ends or work is closed.
func (c *run[D]) handle(stop, handlerCtx, settle context.Context) {
	for {
		select {
		case <-stop.Done():
			return
		case g, ok := <-c.work:
			if !ok {
				return
			}
			if stop.Err() != nil {
				c.releaseStopped(settle, g, false)
				return
			}
			c.handleOne(handlerCtx, settle, g)
		}
	}
}

func (c *run[D]) handleOne(handlerCtx, settle context.Context, g []D) {
	err := c.call(handlerCtx, g)
	switch {
	case err == nil:
		c.forget(g)
		for _, d := range g {
			c.acks <- d
		}
	case handlerCtx.Err() != nil:
		// Cut short by the shutdown, not failed: it goes back uncounted.
		c.releaseStopped(settle, g, true)
	default:
		c.forget(g)
		if c.cfg.Nack != nil {
			ctx, cancel := c.settleCtx(settle)
			c.cfg.Nack(ctx, g, err)
			cancel()
		}
	}
}

// call runs Handle, turning a panic into an error that nacks the group.
func (c *run[D]) call(ctx context.Context, g []D) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
			c.report(g, fmt.Errorf("%w\n%s", err, debug.Stack()))
		}
	}()
	return c.cfg.Handle(ctx, g)
}

// releaseStopped is release for the handlers, once stop has ended: it
// waits for the receiver to return first, so that a receive still in
// flight (DetachReceive) cannot take the released items again.
func (c *run[D]) releaseStopped(settle context.Context, g []D, started bool) {
	<-c.recvDone
	c.release(settle, g, started)
}

// release hands g back, unstarted or cut short by the shutdown.
func (c *run[D]) release(settle context.Context, g []D, started bool) {
	c.forget(g)
	ctx, cancel := c.settleCtx(settle)
	defer cancel()
	done := make([]D, 0, len(g))
	for _, d := range g {
		if err := c.cfg.Source.Release(ctx, d); err != nil {
			c.report([]D{d}, fmt.Errorf("release %s: %w (it comes back when its lease runs out)", c.cfg.Source.ID(d), err))
			continue
		}
		done = append(done, d)
	}
	if c.cfg.Released != nil && len(done) > 0 {
		c.cfg.Released(done, started)
	}
}

func (c *run[D]) hold(ds []D) {
	c.mu.Lock()
	for _, d := range ds {
		c.held[c.cfg.Source.ID(d)] = d
	}
	c.mu.Unlock()
}

// forget drops g from the held set and frees its token.
func (c *run[D]) forget(g []D) {
	c.mu.Lock()
	for _, d := range g {
		delete(c.held, c.cfg.Source.ID(d))
	}
	c.mu.Unlock()
	c.tokens <- struct{}{}
}

func (c *run[D]) putTokens(n int) {
	for range n {
		c.tokens <- struct{}{}
	}
}

// ackLoop sends acks in batches: when AckBatch are waiting, when the
// oldest has waited AckInterval, and when acks is closed. Up to AckCalls
// calls are in flight at once, so that handlers finishing batches of
// AckBatch faster than one round trip do not wait on each other's acks;
// it returns when the last one has returned.
func (c *run[D]) ackLoop(settle context.Context) {
	var pending []D
	var calls sync.WaitGroup
	defer calls.Wait()
	slots := make(chan struct{}, AckCalls)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(pending) == 0 {
			return
		}
		ds := pending
		pending = nil
		slots <- struct{}{}
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer func() { <-slots }()
			ctx, cancel := c.settleCtx(settle)
			acked, err := c.cfg.Source.Ack(ctx, ds)
			cancel()
			if c.cfg.Acked != nil {
				c.cfg.Acked(ds, acked, err)
			}
		}()
	}
	for {
		select {
		case d, ok := <-c.acks:
			if !ok {
				flush()
				return
			}
			if len(pending) == 0 {
				pending = make([]D, 0, AckBatch)
				timer.Reset(c.cfg.AckInterval)
			}
			pending = append(pending, d)
			if len(pending) == AckBatch {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// extendLoop renews the leases of every held item each third of the
// shortest lease, so that neither a slow handler nor a wait in the
// prefetch buffer lets a lease run out.
func (c *run[D]) extendLoop(settle context.Context, stop <-chan struct{}) {
	lost := make(map[string]bool)
	timer := time.NewTimer(c.period())
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		c.mu.Lock()
		ds := make([]D, 0, len(c.held))
		for id, d := range c.held {
			if !lost[id] {
				ds = append(ds, d)
			}
		}
		c.mu.Unlock()
		for _, d := range ds {
			ctx, cancel := context.WithTimeout(settle, c.cfg.Source.Lease(d))
			err := c.cfg.Source.Extend(ctx, d)
			cancel()
			if err == nil {
				continue
			}
			id := c.cfg.Source.ID(d)
			// An item settled meanwhile has no lease left to extend; one
			// still held has lost it.
			if errors.Is(err, engine.ErrLeaseNotFound) {
				c.mu.Lock()
				_, still := c.held[id]
				c.mu.Unlock()
				if still {
					lost[id] = true
					c.report([]D{d}, fmt.Errorf("%w: %s: %w", ErrLeaseLost, id, err))
				}
				continue
			}
			c.report([]D{d}, fmt.Errorf("extend %s: %w (retried at the next extension)", id, err))
		}
		c.mu.Lock()
		for id := range lost {
			if _, ok := c.held[id]; !ok {
				delete(lost, id)
			}
		}
		c.mu.Unlock()
		timer.Reset(c.period())
	}
}

// period is a third of the shortest lease held (or of Lease).
func (c *run[D]) period() time.Duration {
	p := c.cfg.Lease
	c.mu.Lock()
	for _, d := range c.held {
		if l := c.cfg.Source.Lease(d); l > 0 && (p <= 0 || l < p) {
			p = l
		}
	}
	c.mu.Unlock()
	return max(p/3, time.Millisecond)
}

func (c *run[D]) settleCtx(settle context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.SettleTimeout > 0 {
		return context.WithTimeout(settle, c.cfg.SettleTimeout)
	}
	return settle, func() {}
}

func (c *run[D]) report(ds []D, err error) {
	if c.cfg.Error != nil {
		c.cfg.Error(ds, err)
	}
}

// split cuts ds into groups of at most n.
func split[D any](ds []D, n int) [][]D {
	var out [][]D
	for len(ds) > n {
		out = append(out, ds[:n:n])
		ds = ds[n:]
	}
	if len(ds) > 0 {
		out = append(out, ds)
	}
	return out
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
