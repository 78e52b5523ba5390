package embedded

import (
	"container/heap"
	"container/list"
	"sort"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// queueState is the delivery state kept beside a queue's list: leases
// (items handed out by QueueReceive and not yet settled, or waiting out a
// nack delay) and the consumers blocked on the queue.
type queueState struct {
	seq     uint64            // last delivery id handed out
	leases  map[uint64]*lease // by delivery id
	byTime  leaseHeap         // the same leases, earliest deadline first
	waiters list.List         // of *waiter, first come first served
	timer   *time.Timer       // wakes a receiver at the earliest deadline
	timerAt int64             // deadline the timer is armed for, 0: none

	keys       *keyspace.Queue // cached key names, see queueKeys
	registered bool            // the queue's name is in the registry

	idem       map[string]*idemEntry // idempotency records by key (idempotency.go)
	idemByTime idemHeap

	settings *engine.QueueSettings // declared settings and paused flag; nil: none (settings.go)
	stats    *counters             // the queue's counters, once looked up (stats.go)

	// scheduled counts the leases that are scheduled items (see
	// lease.scheduled); they count toward the queue's bound.
	scheduled int

	// head is the last sweep's sample of the list's head (stats.go). It is
	// not logged: after a restart the first sweep starts it again, which
	// keeps it a lower bound.
	head headSample
}

func (o *object) queue() *queueState {
	if o.q == nil {
		o.q = &queueState{leases: make(map[uint64]*lease)}
	}
	return o.q
}

// idle reports whether the state may be forgotten with its object. A queue
// that ever handed out a delivery id keeps its counter so ids never repeat.
func (q *queueState) idle() bool {
	return q.seq == 0 && len(q.leases) == 0 && q.waiters.Len() == 0 && len(q.idem) == 0 && q.settings == nil
}

// lease is one delivery: leased (held by a consumer until deadline) or
// pending (nacked or expired, deliverable again from deadline on).
type lease struct {
	id          uint64
	item        string
	attempt     int
	deliveries  int    // handouts so far; the delivery id carries it
	token       uint64 // random part of the current delivery id, new per delivery
	deadline    int64  // unix ns
	leased      bool
	firstFailed string // ISO 8601 time of the first failure, "" if none
	err         string // what the last failure recorded
	deliveredAt int64  // unix ns the current delivery was handed out, 0: unknown
	idx         int    // position in byTime
}

// scheduled reports whether l is a scheduled item (engine.AddParams.
// NotBefore) rather than a delivery: it was never handed out, and its
// deadline is its not-before time. Kept with the leases, it is logged,
// snapshotted and timed as they are, and a receive, pop or reclaim that
// finds it due moves it to the queue's tail (releaseDue).
func (l *lease) scheduled() bool { return l.deliveries == 0 }

type leaseHeap []*lease

func (h leaseHeap) Len() int { return len(h) }
func (h leaseHeap) Less(i, j int) bool {
	if h[i].deadline != h[j].deadline {
		return h[i].deadline < h[j].deadline
	}
	return h[i].id < h[j].id
}
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *leaseHeap) Push(x any) {
	l := x.(*lease)
	l.idx = len(*h)
	*h = append(*h, l)
}
func (h *leaseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.idx = -1
	return l
}

func (q *queueState) put(l *lease) {
	if l.id > q.seq {
		q.seq = l.id
	}
	q.leases[l.id] = l
	heap.Push(&q.byTime, l)
	if l.scheduled() {
		q.scheduled++
	}
}

func (q *queueState) remove(l *lease) {
	if _, ok := q.leases[l.id]; ok && l.scheduled() {
		q.scheduled--
	}
	delete(q.leases, l.id)
	if l.idx >= 0 && l.idx < len(q.byTime) && q.byTime[l.idx] == l {
		heap.Remove(&q.byTime, l.idx)
	}
}

func (q *queueState) update(l *lease, u lease) {
	l.attempt, l.deliveries, l.deadline, l.leased, l.firstFailed, l.err = u.attempt, u.deliveries, u.deadline, u.leased, u.firstFailed, u.err
	l.token, l.deliveredAt = u.token, u.deliveredAt
	heap.Fix(&q.byTime, l.idx)
}

// due returns the leases whose deadline is at or before now, earliest
// first, at most limit of them (limit < 0: all).
func (q *queueState) due(now int64, limit int) []*lease {
	if len(q.byTime) == 0 || q.byTime[0].deadline > now {
		return nil
	}
	var out []*lease
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= len(q.byTime) || q.byTime[i].deadline > now {
			continue
		}
		out = append(out, q.byTime[i])
		stack = append(stack, 2*i+1, 2*i+2)
	}
	h := leaseHeap(out)
	sort.Slice(out, func(i, j int) bool { return h.Less(i, j) })
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// earliestScheduled returns the scheduled item due soonest (ties: the
// first added), or nil.
func (q *queueState) earliestScheduled() *lease {
	var first *lease
	for _, l := range q.byTime {
		if l.scheduled() && (first == nil || l.deadline < first.deadline || l.deadline == first.deadline && l.id < first.id) {
			first = l
		}
	}
	return first
}

// earliest returns the lease with the earliest deadline, or nil.
func (q *queueState) earliest() *lease {
	if len(q.byTime) == 0 {
		return nil
	}
	return q.byTime[0]
}

type waitKind int

const (
	waitPop waitKind = iota
	waitReceive
)

// waiter is one blocked consumer. Whoever takes it off the list closes ch,
// exactly once: a pusher that served it, a lease timer that signalled it,
// or Close.
type waiter struct {
	kind waitKind
	ch   chan struct{}
	elem *list.Element

	// set by a pusher that served it, under the queue's lock
	served     bool
	item       string               // waitPop
	params     engine.ReceiveParams // waitReceive
	deliveries []engine.Delivery

	signalled bool // woken to retry a receive (a lease became deliverable)
	closed    bool // engine closed
}

func (q *queueState) enqueue(w *waiter, front bool) {
	if front {
		w.elem = q.waiters.PushFront(w)
	} else {
		w.elem = q.waiters.PushBack(w)
	}
}

// unlink takes w off the list; false when someone else already did.
func (q *queueState) unlink(w *waiter) bool {
	if w.elem == nil {
		return false
	}
	q.waiters.Remove(w.elem)
	w.elem = nil
	return true
}

// closeAll wakes every waiter with ErrClosed and stops the lease timer.
func (q *queueState) closeAll() {
	for el := q.waiters.Front(); el != nil; el = q.waiters.Front() {
		w := el.Value.(*waiter)
		q.unlink(w)
		w.closed = true
		close(w.ch)
	}
	if q.timer != nil {
		q.timer.Stop()
		q.timer, q.timerAt = nil, 0
	}
}

// serve hands the head of o's list to waiting consumers, first come first
// served, as part of t. Waiters are notified when t commits, so that no
// consumer sees an item whose record is not yet logged.
func (e *Engine) serve(t *tx, o *object) {
	// A paused queue hands nothing out; QueueResume serves the line.
	if o.q == nil || paused(o) {
		return
	}
	q := o.q
	if q.waiters.Len() == 0 {
		return
	}
	now := e.now()
	leased := false
	for o.list.Len() > 0 && q.waiters.Len() > 0 {
		w := q.waiters.Front().Value.(*waiter)
		q.unlink(w)
		w.served = true
		switch w.kind {
		case waitPop:
			w.item = t.popOne(o)
			t.count(o, engine.StatDelivered, 1)
		case waitReceive:
			w.deliveries = e.leaseFresh(t, o, w.params, now, w.deliveries[:0])
			leased = true
		}
		t.notify = append(t.notify, w)
	}
	if leased {
		// Receivers still waiting must wake when these new leases expire.
		e.kick(o)
	}
}

// kick is called after leases changed: it wakes the first blocked receiver
// when a lease is deliverable now, or arms the timer for the earliest
// deadline otherwise.
func (e *Engine) kick(o *object) {
	q := o.q
	// While paused a woken receiver would find nothing to take and go back
	// in line at once; QueueResume kicks again.
	if q == nil || q.waiters.Len() == 0 || paused(o) {
		return
	}
	var first *waiter
	for el := q.waiters.Front(); el != nil; el = el.Next() {
		if w := el.Value.(*waiter); w.kind == waitReceive {
			first = w
			break
		}
	}
	if first == nil {
		return
	}
	l := q.earliest()
	if l == nil {
		return
	}
	if d := l.deadline - e.now(); d > 0 {
		if q.timerAt != 0 && q.timerAt <= l.deadline {
			return
		}
		if q.timer != nil {
			q.timer.Stop()
		}
		at := l.deadline
		q.timerAt = at
		q.timer = time.AfterFunc(time.Duration(d), func() { e.leaseTimer(o, at) })
		return
	}
	q.unlink(first)
	first.signalled = true
	close(first.ch)
}

// leaseTimer runs when the earliest deadline the timer was armed for
// passes; a timer replaced meanwhile finds timerAt changed and does nothing.
func (e *Engine) leaseTimer(o *object, at int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.q == nil || o.q.timerAt != at || e.closed.Load() {
		return
	}
	o.q.timer, o.q.timerAt = nil, 0
	e.kick(o)
}
