package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// isoTime is the failed-DLQ timestamp layout: ISO 8601 in UTC with
// microseconds, as Python's datetime.isoformat writes an aware UTC time.
const isoTime = "2006-01-02T15:04:05.000000+00:00"

func (e *Engine) isoNow() string { return e.clock().UTC().Format(isoTime) }

var errTimeout = errors.New("wait timed out")

// maxSpan bounds every lease, nack delay and TTL: a longer one means
// "practically forever", and unbounded, now plus it could overflow into
// the past and expire at once.
const maxSpan = 100 * 365 * 24 * time.Hour

// after is the deadline d after now (unix ns), with d clamped to maxSpan
// and the sum saturated rather than wrapped.
func after(now int64, d time.Duration) int64 {
	d = min(d, maxSpan)
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}

// wait blocks until w is woken, the timeout passes or ctx is done.
func (e *Engine) wait(ctx context.Context, w *waiter, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-w.ch:
		return nil
	case <-timer.C:
		return errTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// abandon takes a waiter that gave up out of its queue's line. If a
// pusher served it at the same moment, what it was handed goes back to the
// head of the queue, as it was, and on to the next waiter; if a lease timer
// signalled it, the signal passes to the next receiver.
func (e *Engine) abandon(key string, w *waiter) {
	t := e.beginRestore()
	defer t.release()
	// The waiter's object cannot have been dropped while w was in its line
	// (a line keeps it alive), and if w was served, any object under key
	// is the right place for the item.
	o := e.lock1(key, true)
	q := o.queue()
	switch {
	case q.unlink(w), w.closed:
		o.mu.Unlock()
		return
	case w.served:
		if w.kind == waitPop {
			t.pushFront(o, w.item)
		} else {
			for i := len(w.deliveries) - 1; i >= 0; i-- {
				if l := leased(o, w.deliveries[i].ID); l != nil {
					t.leaseDel(o, l)
					t.pushFront(o, l.item)
				}
			}
		}
		e.serve(&t, o)
		err := t.commit()
		o.mu.Unlock()
		if derr := t.done(); err == nil {
			err = derr
		}
		// Whatever was handed back is in place in memory either way; a
		// failed append has been logged by the store and turns the engine
		// read-only, so there is nobody to tell but the log.
		if err != nil {
			e.store.lg.Warn("embedded engine: handing back an abandoned delivery was not logged", "queue", key, "err", err)
		}
		return
	case w.signalled:
		e.kick(o)
	}
	o.mu.Unlock()
}

// leaseFresh takes up to p.Count-len(dst) items from the head of o's list
// under new leases.
func (e *Engine) leaseFresh(t *tx, o *object, p engine.ReceiveParams, now int64, dst []engine.Delivery) []engine.Delivery {
	q := o.queue()
	for _, item := range t.popFront(o, p.Count-len(dst)) {
		l := &lease{id: q.seq + 1, item: item, attempt: 1, deliveries: 1, token: newToken(), deadline: after(now, p.Lease), leased: true, deliveredAt: now}
		t.leasePut(o, l)
		t.count(o, engine.StatDelivered, 1)
		dst = append(dst, engine.Delivery{ID: formatID(l.id, 1, l.token), Item: item, Attempt: 1})
	}
	return dst
}

// settleDue handles leases that are due, earliest first, as the Redis
// engine's receive script does: a due item that has used maxDeliveries
// moves to the failed DLQ (with "lease expired" when its lease ran out,
// else the error its nack recorded); the others are redelivered, with
// attempt+1 and so a new delivery id, while fewer than count were. Due
// items beyond count stay due. It returns the redeliveries and how many
// items were dead-lettered.
func (e *Engine) settleDue(t *tx, main, failed *object, queue string, p engine.ReceiveParams, now int64, scan int) ([]engine.Delivery, int64) {
	q := main.queue()
	due := q.due(now, scan)
	if len(due) == 0 {
		return nil, 0
	}
	iso := e.isoNow()
	var out []engine.Delivery
	var dead int64
	for _, l := range due {
		if l.scheduled() {
			// Its time has come: to the queue's tail, where the next
			// receive (this one, if it has room) takes it as a fresh item.
			t.leaseDel(main, l)
			t.pushBack(main, l.item)
			continue
		}
		u := *l
		if l.leased {
			u.err = "lease expired"
			if u.firstFailed == "" {
				u.firstFailed = iso
			}
		}
		switch {
		case l.attempt >= p.MaxDeliveries:
			l.err, l.firstFailed = u.err, u.firstFailed
			e.deadLetter(t, main, failed, queue, l, iso)
			dead++
		case len(out) < p.Count:
			u.attempt++
			u.deliveries++
			u.token = newToken()
			u.deadline = after(now, p.Lease)
			u.leased = true
			u.deliveredAt = now
			if l.leased { // its lease expired
				t.count(main, engine.StatRedelivered, 1)
			}
			t.leaseUpdate(main, l, u)
			t.count(main, engine.StatDelivered, 1)
			out = append(out, engine.Delivery{ID: formatID(l.id, l.deliveries, l.token), Item: l.item, Attempt: l.attempt})
		}
	}
	if dead > 0 {
		t.count(main, engine.StatDeadLettered, dead)
		e.serve(t, failed)
	}
	return out, dead
}

// releaseDue moves o's due scheduled items to its tail, soonest first,
// and reports whether it moved any; due deliveries stay as they are.
func (e *Engine) releaseDue(t *tx, o *object, now int64) bool {
	if o.q == nil || o.q.scheduled == 0 {
		return false
	}
	moved := false
	for _, l := range o.q.due(now, -1) {
		if l.scheduled() {
			t.leaseDel(o, l)
			t.pushBack(o, l.item)
			moved = true
		}
	}
	return moved
}

func (e *Engine) deadLetter(t *tx, main, failed *object, queue string, l *lease, iso string) {
	env := engine.FailedEnvelope(engine.FailedEntry{
		Queue:         queue,
		Stored:        l.item,
		Error:         l.err,
		AttemptCount:  l.attempt,
		FirstFailedAt: l.firstFailed,
		LastFailedAt:  iso,
	})
	t.leaseDel(main, l)
	t.pushBack(failed, env)
}

// QueueReceive hands out up to p.Count items under a lease, waiting up to
// p.Timeout when there is nothing to hand out. A blocked receiver wakes for
// pushed items (served in the order receivers started waiting) and, by a
// timer set for the earliest lease deadline, for leases that expire or
// nacked items whose delay ends.
func (e *Engine) QueueReceive(ctx context.Context, p engine.ReceiveParams) ([]engine.Delivery, error) {
	if err := e.checkOpen("queue receive"); err != nil {
		return nil, err
	}
	if p.Count < 1 || p.Lease <= 0 || p.MaxDeliveries < 1 {
		return nil, fmt.Errorf("queue receive: count %d, lease %s, max deliveries %d: each must be positive",
			p.Count, p.Lease, p.MaxDeliveries)
	}
	key := e.listKey(p.Queue)
	deadline := time.Now().Add(p.Timeout)
	front := false
	for {
		t, err := e.begin("queue receive")
		if err != nil {
			return nil, err
		}
		main := e.lock1(key, true)
		now := e.now()
		if main.strAlive(now) {
			main.mu.Unlock()
			t.release()
			return nil, wrongType("queue receive", key)
		}
		// A paused queue hands nothing out: the receiver waits in line, as
		// for an empty queue, until QueueResume serves it.
		stopped := paused(main)
		// The failed DLQ is locked only when a due lease may move there.
		var failed *object
		if l := main.queue().earliest(); !stopped && l != nil && l.deadline <= now {
			failed = e.lockAfter(e.queueKeys(main, p.Queue).FailedDLQ)
			if failed.strAlive(now) {
				failed.mu.Unlock()
				main.mu.Unlock()
				t.release()
				return nil, wrongType("queue receive", failed.key)
			}
		}
		// unlock releases the keys, then waits for the record (done).
		unlock := func(err error) error {
			if failed != nil {
				failed.mu.Unlock()
			}
			main.mu.Unlock()
			if derr := t.done(); err == nil {
				err = derr
			}
			return err
		}
		var out []engine.Delivery
		if failed != nil {
			out, _ = e.settleDue(&t, main, failed, p.Queue, p, now, p.Count+100)
		}
		if len(out) < p.Count && !stopped {
			out = e.leaseFresh(&t, main, p, now, out)
		}
		remaining := time.Until(deadline)
		if len(out) > 0 || p.Timeout <= 0 || remaining <= 0 || e.closed.Load() {
			if len(out) > 0 {
				// Receivers blocked meanwhile must wake when these leases
				// expire.
				e.kick(main)
			}
			if err := unlock(t.commit()); err != nil {
				return nil, fmt.Errorf("queue receive: %w", err)
			}
			if len(out) == 0 && e.closed.Load() {
				return nil, engine.ErrClosed
			}
			if out == nil {
				out = []engine.Delivery{}
			}
			return out, nil
		}
		w := &waiter{kind: waitReceive, ch: make(chan struct{}), params: p}
		main.queue().enqueue(w, front)
		e.kick(main)
		if err := unlock(t.commit()); err != nil {
			e.abandon(key, w)
			return nil, fmt.Errorf("queue receive: %w", err)
		}

		err = e.wait(ctx, w, remaining)
		if err == nil {
			switch {
			case w.closed:
				return nil, engine.ErrClosed
			case w.served:
				return w.deliveries, nil
			}
			// Signalled: a lease became deliverable. Try again, keeping
			// our place at the front of the line.
			front = true
			continue
		}
		e.abandon(key, w)
		if errors.Is(err, errTimeout) {
			return []engine.Delivery{}, nil
		}
		return nil, fmt.Errorf("queue receive: %w", err)
	}
}

// leased finds the lease that delivery id still holds in o, or nil: the
// item must be leased under that very delivery, random token included. A lease past its deadline
// that no receive has taken back yet still counts, as on Redis.
func leased(o *object, id string) *lease {
	if o == nil || o.q == nil {
		return nil
	}
	seq, delivery, token, ok := parseID(id)
	if !ok {
		return nil
	}
	// A lease without a token (written before ids had one) matches no id:
	// it is settled by its redelivery, which draws one.
	if l := o.q.leases[seq]; l != nil && l.leased && l.deliveries == delivery && l.token == token && token != 0 {
		return l
	}
	return nil
}

// QueueNack ends a lease without success.
func (e *Engine) QueueNack(ctx context.Context, p engine.NackParams) (res engine.NackResult, err error) {
	if err := e.checkOpen("queue nack"); err != nil {
		return res, err
	}
	t, err := e.begin("queue nack")
	if err != nil {
		return res, err
	}
	defer t.end(&err)
	main := e.lock1(e.listKey(p.Queue), false)
	if main == nil {
		return res, engine.ErrLeaseNotFound
	}
	defer main.mu.Unlock()
	l := leased(main, p.ID)
	if l == nil {
		return res, engine.ErrLeaseNotFound
	}
	now := e.now()
	iso := e.isoNow()
	u := *l
	u.err = p.Error
	if u.firstFailed == "" {
		u.firstFailed = iso
	}
	switch {
	case p.Release:
		// Handed back unhandled: this delivery does not count, so it
		// cannot dead-letter the item, and the error and failure time of
		// earlier nacks stay as they were. A redelivery adds one to the
		// attempt, so the next one carries this one's number again.
		back := *l
		back.attempt = l.attempt - 1
		back.deadline = after(now, max(p.Delay, 0))
		back.leased = false
		t.leaseUpdate(main, l, back)
		e.kick(main)
	case l.attempt >= p.MaxDeliveries:
		failed := e.lockAfter(e.queueKeys(main, p.Queue).FailedDLQ)
		defer failed.mu.Unlock()
		if failed.strAlive(now) {
			return res, wrongType("queue nack", failed.key)
		}
		l.err, l.firstFailed = u.err, u.firstFailed
		e.deadLetter(&t, main, failed, p.Queue, l, iso)
		e.serve(&t, failed)
		t.count(main, engine.StatNacked, 1)
		t.count(main, engine.StatDeadLettered, 1)
		res.DeadLettered = true
	default:
		u.deadline = after(now, max(p.Delay, 0))
		u.leased = false
		t.leaseUpdate(main, l, u)
		t.count(main, engine.StatNacked, 1)
		e.kick(main)
	}
	if err := t.commit(); err != nil {
		return res, fmt.Errorf("queue nack: %w", err)
	}
	return res, nil
}

// QueueExtend moves a lease's deadline to now+lease.
func (e *Engine) QueueExtend(ctx context.Context, queue, id string, lease time.Duration) (err error) {
	if err := e.checkOpen("queue extend"); err != nil {
		return err
	}
	t, err := e.begin("queue extend")
	if err != nil {
		return err
	}
	defer t.end(&err)
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return engine.ErrLeaseNotFound
	}
	defer o.mu.Unlock()
	now := e.now()
	l := leased(o, id)
	// A lease past its deadline may already be promised to the next
	// receive, so it is not revived.
	if l == nil || l.deadline <= now {
		return engine.ErrLeaseNotFound
	}
	u := *l
	u.deadline = after(now, lease)
	t.leaseUpdate(o, l, u)
	if err := t.commit(); err != nil {
		return fmt.Errorf("queue extend: %w", err)
	}
	return nil
}

// QueueInFlight counts deliveries whose lease is live or whose nack delay
// has not ended; due ones and scheduled items are not in flight.
func (e *Engine) QueueInFlight(ctx context.Context, queue string) (int64, error) {
	if err := e.checkOpen("queue in flight"); err != nil {
		return 0, err
	}
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return 0, nil
	}
	defer o.mu.Unlock()
	if o.q == nil {
		return 0, nil
	}
	now := e.now()
	var n int64
	for _, l := range o.q.leases {
		if !l.scheduled() && l.deadline > now {
			n++
		}
	}
	return n, nil
}

// QueueScheduled counts the scheduled items not yet moved to the queue.
func (e *Engine) QueueScheduled(ctx context.Context, queue string) (int64, error) {
	if err := e.checkOpen("queue scheduled"); err != nil {
		return 0, err
	}
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return 0, nil
	}
	defer o.mu.Unlock()
	if o.q == nil {
		return 0, nil
	}
	return int64(o.q.scheduled), nil
}

// QueueReclaim is a queue's sweep, under one lock of the queue and one
// log record: due scheduled items move to the queue's tail (blocked
// consumers are served them), due items that used maxDeliveries are
// dead-lettered, and it returns how many. Due items with deliveries left
// stay as they are (an expired lease can still be acked) and the next
// receive redelivers them first; blocked receivers are woken for them.
func (e *Engine) QueueReclaim(ctx context.Context, queue string, maxDeliveries int) (_ int64, err error) {
	if err := e.checkOpen("queue reclaim"); err != nil {
		return 0, err
	}
	if maxDeliveries < 1 {
		return 0, fmt.Errorf("queue reclaim: max deliveries %d must be positive", maxDeliveries)
	}
	k := e.keys.Queue(queue)
	t, err := e.begin("queue reclaim")
	if err != nil {
		return 0, err
	}
	defer t.end(&err)
	objs := e.lockN(k.List, k.FailedDLQ)
	defer unlockN(objs)
	main, failed := objs[0], objs[1]
	now := e.now()
	// Settling due leases leaves the list alone; waiters served below may
	// take the sampled head, which the next sweep sees.
	main.sampleHead(now)
	if main.q == nil || len(main.q.byTime) == 0 {
		return 0, nil
	}
	if failed.strAlive(now) {
		return 0, wrongType("queue reclaim", k.FailedDLQ)
	}
	// Declared settings win, as on Redis (lease_receive.lua).
	if s := main.q.settings; s != nil && s.Has(engine.SetMaxDeliveries) {
		maxDeliveries = s.MaxDeliveries
	}
	p := engine.ReceiveParams{Count: 0, MaxDeliveries: maxDeliveries}
	_, moved := e.settleDue(&t, main, failed, queue, p, now, -1)
	e.serve(&t, main)
	e.kick(main)
	if err := t.commit(); err != nil {
		return moved, fmt.Errorf("queue reclaim: %w", err)
	}
	return moved, nil
}

// QueueAckBatch settles deliveries under one lock of the queue and logs
// them as one change. A lease whose deadline passed but that no receive or
// reclaim has taken back yet can still be acked, as on Redis.
func (e *Engine) QueueAckBatch(ctx context.Context, queue string, ids []string) (_ []bool, err error) {
	if err := e.checkOpen("queue ack batch"); err != nil {
		return nil, err
	}
	acked := make([]bool, len(ids))
	if len(ids) == 0 {
		return nil, nil
	}
	t, err := e.begin("queue ack batch")
	if err != nil {
		return nil, err
	}
	defer t.end(&err)
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return acked, nil
	}
	defer o.mu.Unlock()
	var n int64
	for i, id := range ids {
		if l := leased(o, id); l != nil {
			t.leaseDel(o, l)
			acked[i] = true
			n++
		}
	}
	t.count(o, engine.StatAcked, n)
	if err := t.commit(); err != nil {
		return nil, fmt.Errorf("queue ack batch: %w", err)
	}
	return acked, nil
}
