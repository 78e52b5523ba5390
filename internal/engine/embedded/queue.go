package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// QueueAdd pushes the items as one atomic step, applying the overflow
// policy per item, exactly as the Redis engine's script does. An add with
// an idempotency key checks for the key's record and stores its own under
// the same lock (see idempotency.go).
func (e *Engine) QueueAdd(ctx context.Context, p engine.AddParams) (_ []engine.AddResult, err error) {
	if err := e.checkOpen("queue add"); err != nil {
		return nil, err
	}
	var asked engine.IdempotencyRecord
	if p.IdempotencyKey != "" {
		// Hashed before the lock is taken, to keep it short.
		asked = engine.NewIdempotencyRecord(p)
	}
	t, err := e.begin("queue add")
	if err != nil {
		return nil, err
	}
	defer t.end(&err)
	main := e.lock1(e.listKey(p.Queue), true)
	defer main.mu.Unlock()
	var now int64
	if p.IdempotencyKey != "" {
		now = e.now()
		q := main.queue()
		q.idemExpire(now)
		if rec, ok := q.idemGet(p.IdempotencyKey, now); ok {
			res, err := rec.Replay(p.IdempotencyKey, asked)
			if err != nil {
				return nil, err // ErrIdempotencyConflict, for the caller to name
			}
			// The first add may still be waiting for its record.
			t.awaitLogged()
			return res, nil
		}
	}
	if e.isStr(main) {
		return nil, wrongType("queue add", main.key)
	}
	// Declared settings win over the call's (settings.go), read under the
	// same lock as the push, so concurrent adders all see the bound.
	maxSize, policy, err := resolve(main, p.MaxSize, p.Policy, p.MaxSizeExplicit, p.PolicyExplicit)
	if err != nil {
		return nil, err // ErrSettingsConflict; the caller names the operation
	}
	// The overflow DLQ is locked only when this add will push into it.
	var dlq *object
	if policy == engine.PolicyDLQ && maxSize > 0 && length(main)+int64(len(p.Items)) > maxSize {
		dlq = e.lockAfter(e.queueKeys(main, p.Queue).OverflowDLQ)
		defer dlq.mu.Unlock()
		if e.isStr(dlq) {
			return nil, wrongType("queue add", dlq.key)
		}
	}
	t.register(main, p.Queue)
	before := length(main)
	// A not-before time that has passed adds the items as usual.
	var at int64
	if !p.NotBefore.IsZero() && p.NotBefore.UnixNano() > e.now() {
		at = p.NotBefore.UnixNano()
	}
	results := make([]engine.AddResult, len(p.Items))
	for i, item := range p.Items {
		moved, dropped, ok := t.makeRoom(main, dlq, p.Queue, maxSize, policy)
		if !ok {
			results[i] = engine.AddResult{QueueLength: length(main)}
			continue
		}
		r := engine.AddResult{Accepted: true, MovedToDLQ: moved, Dropped: dropped}
		if at != 0 {
			q := main.queue()
			t.leasePut(main, &lease{id: q.seq + 1, item: item, deadline: at})
		} else {
			t.pushBack(main, item)
		}
		r.QueueLength = length(main)
		results[i] = r
	}
	t.countAdd(main, results)
	if at != 0 {
		// A blocked receiver's timer must cover the new deadline.
		e.kick(main)
	}
	if p.IdempotencyKey != "" {
		// The record holds the bound and policy the add ran under, so a
		// replay answers what this add did.
		asked.Before, asked.MaxSize, asked.Policy = before, maxSize, policy
		t.idemPut(main, p.IdempotencyKey, asked, after(now, p.IdempotencyWindow))
	}
	e.serve(&t, main)
	if dlq != nil {
		e.serve(&t, dlq)
	}
	if err := t.commit(); err != nil {
		return nil, fmt.Errorf("queue add: %w", err)
	}
	return results, nil
}

// length is what the bound counts: the visible items plus the scheduled
// ones (engine.AddParams.NotBefore).
func length(o *object) int64 {
	n := int64(o.list.Len())
	if o.q != nil {
		n += int64(o.q.scheduled)
	}
	return n
}

// makeRoom applies the overflow policy before one push into main, as the
// Redis scripts do: under dlq the oldest items move to ovf (which must be
// locked), under drop_oldest they are dropped, until main has room for one
// more. With no visible item left, the scheduled item due soonest goes
// (scripts/scheduled.lua). It returns how many moved and how many were
// dropped; ok is false when the policy rejects the push because main is
// full.
func (t *tx) makeRoom(main, ovf *object, queue string, maxSize int64, policy engine.Policy) (moved, dropped int64, ok bool) {
	n := length(main)
	if maxSize <= 0 || n < maxSize {
		return 0, 0, true
	}
	if policy != engine.PolicyDLQ && policy != engine.PolicyDropOldest {
		return 0, 0, false
	}
	for i := int64(0); i < n-maxSize+1; i++ {
		var victim string
		if main.list.Len() > 0 {
			victim = t.popOne(main)
		} else {
			l := main.q.earliestScheduled()
			victim = l.item
			t.leaseDel(main, l)
		}
		if policy == engine.PolicyDLQ {
			t.pushBack(ovf, engine.OverflowEnvelope(queue, victim))
			moved++
		} else {
			dropped++
		}
	}
	return moved, dropped, true
}

// QueuePop removes the head, waiting up to timeout for one. Blocked
// consumers of a queue are served in the order they started waiting.
func (e *Engine) QueuePop(ctx context.Context, queue string, timeout time.Duration) (string, bool, error) {
	if err := e.checkOpen("queue pop"); err != nil {
		return "", false, err
	}
	key := e.listKey(queue)
	// A pop that does not wait reads no clock.
	var deadline time.Time
	left := time.Duration(0)
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
		left = timeout
	}
	for {
		item, ok, w, wait, err := e.popOnce(key, left)
		if err != nil || ok || w == nil {
			return item, ok, err
		}
		err = e.wait(ctx, w, wait)
		if err == nil {
			if w.closed {
				return "", false, engine.ErrClosed
			}
			return w.item, true, nil
		}
		// Timed out or cancelled: unless a pusher served us meanwhile, leave
		// the line; if it did, the item goes back to the head, where it was.
		e.abandon(key, w)
		if !errors.Is(err, errTimeout) {
			return "", false, fmt.Errorf("queue pop: %w", err)
		}
		if left = time.Until(deadline); left <= 0 {
			return "", false, nil
		}
		// A scheduled item fell due before the timeout: look again.
	}
}

// popOnce is one attempt of QueuePop with left to wait: it moves due
// scheduled items to the queue (and to consumers already waiting) and
// takes the head. With nothing to take and left > 0 it returns a waiter
// in the queue's line and how long to wait: left, or less when a
// scheduled item falls due sooner.
func (e *Engine) popOnce(key string, left time.Duration) (item string, ok bool, w *waiter, wait time.Duration, err error) {
	t, err := e.begin("queue pop")
	if err != nil {
		return "", false, nil, 0, err
	}
	o := e.lock1(key, left > 0)
	if o == nil {
		t.release()
		return "", false, nil, 0, nil
	}
	if e.isStr(o) {
		o.mu.Unlock()
		t.release()
		return "", false, nil, 0, wrongType("queue pop", key)
	}
	// Only scheduled items need the clock here: most pops read none.
	scheduled := o.q != nil && o.q.scheduled > 0
	var now int64
	if scheduled {
		now = e.now()
	}
	// Released items go first to the consumers that were waiting before
	// this pop, in line; the release is logged with the rest of the call.
	released := !paused(o) && e.releaseDue(&t, o, now)
	if released {
		e.serve(&t, o)
	}
	// finish logs the call's changes (or drops an empty record) after the
	// queue's lock is released.
	finish := func() error {
		var err error
		if released || ok {
			err = t.commit()
			o.mu.Unlock()
			if derr := t.done(); err == nil {
				err = derr
			}
		} else {
			o.mu.Unlock()
			t.release()
		}
		return err
	}
	switch {
	case o.list.Len() > 0 && !paused(o):
		item, ok = t.popOne(o), true
		t.count(o, engine.StatDelivered, 1)
		if t.on {
			// Only a logged change can fail after the fact; the copy keeps
			// the closure's capture off the result (and off the heap).
			popped := item
			t.onFail(key, func(o *object) { o.list.PushFront(popped) })
		}
		if err := finish(); err != nil {
			return "", false, nil, 0, fmt.Errorf("queue pop: %w", err)
		}
		return item, true, nil, 0, nil
	case left <= 0:
		return "", false, nil, 0, finish()
	case e.closed.Load():
		if err := finish(); err != nil {
			return "", false, nil, 0, err
		}
		return "", false, nil, 0, engine.ErrClosed
	}
	w = &waiter{kind: waitPop, ch: make(chan struct{})}
	o.queue().enqueue(w, false)
	wait = left
	if scheduled && !paused(o) {
		if l := o.q.earliestScheduled(); l != nil {
			wait = min(wait, time.Duration(max(l.deadline-now, int64(time.Millisecond))))
		}
	}
	if err := finish(); err != nil {
		e.abandon(key, w)
		return "", false, nil, 0, fmt.Errorf("queue pop: %w", err)
	}
	return "", false, w, wait, nil
}

// QueuePushFront puts items back at the head, items[0] first.
func (e *Engine) QueuePushFront(ctx context.Context, queue string, items []string) (err error) {
	if err := e.checkOpen("queue push front"); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	key := e.listKey(queue)
	t, err := e.begin("queue push front")
	if err != nil {
		return err
	}
	defer t.end(&err)
	o := e.lock1(key, true)
	defer o.mu.Unlock()
	if e.isStr(o) {
		return wrongType("queue push front", key)
	}
	for i := len(items) - 1; i >= 0; i-- {
		t.pushFront(o, items[i])
	}
	e.serve(&t, o)
	if err := t.commit(); err != nil {
		return fmt.Errorf("queue push front: %w", err)
	}
	return nil
}

// listLen, listRange and listClear serve queues and DLQs alike: a DLQ is
// a list under its own key.
func (e *Engine) listLen(op, key string) (int64, error) {
	o := e.lock1(key, false)
	if o == nil {
		return 0, nil
	}
	defer o.mu.Unlock()
	if e.isStr(o) {
		return 0, wrongType(op, key)
	}
	return int64(o.list.Len()), nil
}

func (e *Engine) listRange(op, key string, start, end int64) ([]string, error) {
	o := e.lock1(key, false)
	if o == nil {
		return []string{}, nil
	}
	defer o.mu.Unlock()
	if e.isStr(o) {
		return nil, wrongType(op, key)
	}
	return o.list.Range(start, end), nil
}

func (e *Engine) listClear(op, key string) (_ int64, err error) {
	t, err := e.begin(op)
	if err != nil {
		return 0, err
	}
	defer t.end(&err)
	o := e.lock1(key, false)
	if o == nil {
		return 0, nil
	}
	defer o.mu.Unlock()
	if e.isStr(o) {
		return 0, wrongType(op, key)
	}
	n := o.list.Len()
	if n == 0 {
		return 0, nil
	}
	t.clearList(o)
	if err := t.commit(); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return int64(n), nil
}

// QueueLen is the number of items waiting in the queue.
func (e *Engine) QueueLen(ctx context.Context, queue string) (int64, error) {
	if err := e.checkOpen("queue len"); err != nil {
		return 0, err
	}
	return e.listLen("queue len", e.listKey(queue))
}

// QueueRange returns items start..end with LRANGE semantics.
func (e *Engine) QueueRange(ctx context.Context, queue string, start, end int64) ([]string, error) {
	if err := e.checkOpen("queue range"); err != nil {
		return nil, err
	}
	return e.listRange("queue range", e.listKey(queue), start, end)
}

// QueueClear deletes the queue's key, as DEL does on Redis: its waiting
// items, or whatever else a caller stored under that name.
func (e *Engine) QueueClear(ctx context.Context, queue string) (bool, error) {
	if err := e.checkOpen("queue clear"); err != nil {
		return false, err
	}
	ok, err := e.deleteKey(e.listKey(queue))
	if err != nil {
		return ok, fmt.Errorf("queue clear: %w", err)
	}
	return ok, nil
}

func (e *Engine) dlqKey(queue string, kind engine.DLQKind) (string, error) {
	k := e.keys.Queue(queue)
	switch kind {
	case engine.DLQOverflow:
		return k.OverflowDLQ, nil
	case engine.DLQFailed:
		return k.FailedDLQ, nil
	}
	return "", fmt.Errorf("dead-letter queue kind %q is unknown: use %q or %q", kind, engine.DLQOverflow, engine.DLQFailed)
}

// DLQLen is the length of one of the queue's dead-letter queues.
func (e *Engine) DLQLen(ctx context.Context, queue string, kind engine.DLQKind) (int64, error) {
	if err := e.checkOpen("dlq len"); err != nil {
		return 0, err
	}
	key, err := e.dlqKey(queue, kind)
	if err != nil {
		return 0, err
	}
	return e.listLen("dlq len", key)
}

// DLQRange reads entries of a dead-letter queue with LRANGE semantics.
func (e *Engine) DLQRange(ctx context.Context, queue string, kind engine.DLQKind, start, end int64) ([]string, error) {
	if err := e.checkOpen("dlq range"); err != nil {
		return nil, err
	}
	key, err := e.dlqKey(queue, kind)
	if err != nil {
		return nil, err
	}
	return e.listRange("dlq range", key, start, end)
}

// DLQPurge deletes a dead-letter queue and returns how many entries it had.
func (e *Engine) DLQPurge(ctx context.Context, queue string, kind engine.DLQKind) (int64, error) {
	if err := e.checkOpen("dlq purge"); err != nil {
		return 0, err
	}
	key, err := e.dlqKey(queue, kind)
	if err != nil {
		return 0, err
	}
	return e.listClear("dlq purge", key)
}

// DLQRemove deletes the entry at index when it is entry, exactly.
func (e *Engine) DLQRemove(ctx context.Context, queue string, kind engine.DLQKind, index int64, entry string) (_ bool, err error) {
	const op = "dlq remove"
	if err := e.checkOpen(op); err != nil {
		return false, err
	}
	key, err := e.dlqKey(queue, kind)
	if err != nil {
		return false, err
	}
	t, err := e.begin(op)
	if err != nil {
		return false, err
	}
	defer t.end(&err)
	o := e.lock1(key, false)
	if o == nil {
		return false, nil
	}
	defer o.mu.Unlock()
	if e.isStr(o) {
		return false, wrongType(op, key)
	}
	if index < 0 || index >= int64(o.list.Len()) || o.list.At(int(index)) != entry {
		return false, nil
	}
	t.removeAt(o, int(index))
	if err := t.commit(); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return true, nil
}

// DLQRequeue moves up to p.Count entries (all when <= 0), oldest first,
// back to the tail of the queue, each under the queue's overflow policy.
// An entry goes back as its "data" field (the stored form that was
// accepted), or for a failed entry without one, as its "original_job" (a
// JSON string as its value, an object or array as its JSON text). An entry that
// is none of that (not a JSON object, no usable field) is malformed: it is
// skipped and stays in the DLQ, in its place, so nothing is ever lost to a
// requeue; it does not count against p.Count, or one bad entry at the head
// would stall bounded requeues. Under reject, an entry that does not fit
// stays at the head and the requeue stops. Entries that the requeue itself
// pushes into the overflow DLQ are not requeued again in the same call.
func (e *Engine) DLQRequeue(ctx context.Context, p engine.RequeueParams) (res engine.RequeueResult, err error) {
	if err := e.checkOpen("dlq requeue"); err != nil {
		return res, err
	}
	srcKey, err := e.dlqKey(p.Queue, p.Kind)
	if err != nil {
		return res, err
	}
	k := e.keys.Queue(p.Queue)
	t, err := e.begin("dlq requeue")
	if err != nil {
		return res, err
	}
	defer t.end(&err)
	objs := e.lockN(k.List, srcKey, k.OverflowDLQ)
	defer unlockN(objs)
	main, src, ovf := objs[0], objs[1], objs[2]
	now := e.now()
	for _, o := range objs {
		if o.strAlive(now) {
			return res, wrongType("dlq requeue", o.key)
		}
	}
	maxSize, policy, err := resolve(main, p.MaxSize, p.Policy, p.MaxSizeExplicit, p.PolicyExplicit)
	if err != nil {
		return res, err // ErrSettingsConflict; the caller names the operation
	}
	// "All" is the entries present now: entries this requeue pushes into
	// the overflow DLQ (when it is also the source) are not seen again.
	initial := src.list.Len()
	var kept []string // malformed entries, and what did not fit
	for seen := 0; seen < initial && (p.Count <= 0 || res.Requeued < p.Count); seen++ {
		entry := t.popOne(src)
		data, ok := requeueData(entry)
		if !ok {
			kept = append(kept, entry)
			continue
		}
		moved, dropped, ok := t.makeRoom(main, ovf, p.Queue, maxSize, policy)
		if !ok {
			kept = append(kept, entry)
			seen = initial // stop: the entry stays at the head
			continue
		}
		res.Displaced += moved + dropped
		t.count(main, engine.StatMovedToDLQ, moved)
		t.count(main, engine.StatDropped, dropped)
		t.pushBack(main, data)
		res.Requeued++
	}
	for i := len(kept) - 1; i >= 0; i-- {
		t.pushFront(src, kept[i])
	}
	res.Remaining = int64(src.list.Len())
	e.serve(&t, main)
	e.serve(&t, ovf)
	if err := t.commit(); err != nil {
		return res, fmt.Errorf("dlq requeue: %w", err)
	}
	return res, nil
}

// requeueData extracts what a DLQ entry puts back in the queue.
func requeueData(entry string) (string, bool) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal([]byte(entry), &env); err != nil || env == nil {
		return "", false
	}
	if raw, ok := env["data"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
	}
	raw, ok := env["original_job"]
	if !ok || len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
	case '{', '[':
		return string(raw), true
	}
	// A number, boolean or null is no job the service could have queued.
	return "", false
}
