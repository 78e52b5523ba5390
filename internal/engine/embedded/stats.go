package embedded

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// A queue's counters live in the engine, by the queue's list key, apart
// from the queue's object: a drained queue's object is dropped, its
// counters stay (for as long as its name is registered, they are a few
// words). They change under the queue's lock, in the same step as the
// counted work, and the queue's state caches where they are. Each change
// logs its increments (opStat), so the counters survive restarts exactly:
// they cannot be rebuilt from the other records, which say what moved (a
// push, a pop) but not why (an add or a put-back, a pop or a lease). An
// increment costs a few bytes in a record the call writes anyway.
// Snapshots write each queue's counters once. QueueDelete resets them.
//
// A lease also keeps when its delivery was handed out (opLeaseAt), for
// the listing of deliveries.

// counters are one queue's; atomic, so that QueueStats reads them without
// the queue's lock.
type counters [engine.NumStats]atomic.Int64

// countersOf returns the counters of the queue whose list key is key.
func (e *Engine) countersOf(key string, create bool) *counters {
	if c, ok := e.stats.Load(key); ok {
		return c.(*counters)
	}
	if !create {
		return nil
	}
	c, _ := e.stats.LoadOrStore(key, new(counters))
	return c.(*counters)
}

// Log operations of statistics (see record.go for the others). They take
// numbers from 40 up, apart from the other areas'.
const (
	opStat     byte = 40 // key, counter (engine.Stat), delta
	opStatsDel byte = 41 // key
	opLeaseAt  byte = 42 // key, seq, delivered at (follows a lease put or update, as opLeaseToken)
)

// count adds n to counter s of o's queue.
func (t *tx) count(o *object, s engine.Stat, n int64) {
	if n <= 0 {
		return
	}
	q := o.queue()
	if q.stats == nil {
		q.stats = t.e.countersOf(o.key, true)
	}
	q.stats[s].Add(n)
	if t.on {
		t.op(opStat, o.key)
		t.uint(uint64(s))
		t.uint(uint64(n))
	}
}

// countAdd counts the outcome of an add.
func (t *tx) countAdd(o *object, results []engine.AddResult) {
	var added, rejected, moved, dropped int64
	for _, r := range results {
		if r.Accepted {
			added++
		} else {
			rejected++
		}
		moved += r.MovedToDLQ
		dropped += r.Dropped
	}
	t.count(o, engine.StatAdded, added)
	t.count(o, engine.StatRejected, rejected)
	t.count(o, engine.StatMovedToDLQ, moved)
	t.count(o, engine.StatDropped, dropped)
}

// headSample is engine.QueueStats.HeadSince/HeadSeen of one queue: the
// item at the head of its list when last swept, since when it has been
// there, and when that was seen (unix ns). Heads are told apart by content,
// as on Redis.
type headSample struct {
	item        string
	since, seen int64
}

// sampleHead records a sweep's view of o's head at now.
func (o *object) sampleHead(now int64) {
	if o.list.Len() == 0 {
		if o.q != nil {
			o.q.head = headSample{}
		}
		return
	}
	q, head := o.queue(), o.list.At(0)
	if q.head.seen != 0 && q.head.item == head {
		q.head.seen = now
		return
	}
	q.head = headSample{item: head, since: now, seen: now}
}

// resetStats drops o's counters (QueueDelete).
func (t *tx) resetStats(o *object) {
	if o.q != nil {
		o.q.stats = nil
		o.q.head = headSample{}
	}
	if _, had := t.e.stats.LoadAndDelete(o.key); had && t.on {
		t.op(opStatsDel, o.key)
	}
}

// snapshotStats appends every queue's counters to snap, while changes are
// held off.
func (e *Engine) snapshotStats(snap []snapItem) []snapItem {
	e.stats.Range(func(k, v any) bool {
		var vals [engine.NumStats]int64
		for i := range v.(*counters) {
			vals[i] = v.(*counters)[i].Load()
		}
		if vals != ([engine.NumStats]int64{}) {
			snap = append(snap, snapItem{key: k.(string), stats: &vals})
		}
		return true
	})
	return snap
}

// encodeStats writes a queue's counters into a snapshot.
func (t *tx) encodeStats(key string, stats *[engine.NumStats]int64) {
	for i, n := range stats {
		if n > 0 {
			t.op(opStat, key)
			t.uint(uint64(i))
			t.uint(uint64(n))
		}
	}
}

// encodeLeaseAt records when l's delivery was handed out.
func (t *tx) encodeLeaseAt(key string, l *lease) {
	if l.deliveredAt != 0 {
		t.op(opLeaseAt, key)
		t.uint(l.id)
		t.int(l.deliveredAt)
	}
}

// applyStatsOp replays one of the operations above; it reports whether
// code was one of them.
func (e *Engine) applyStatsOp(t *tx, d *decoder, code byte, key string) bool {
	switch code {
	case opStat:
		s, n := d.uint(), d.uint()
		if d.err == nil && s < uint64(engine.NumStats) {
			t.count(e.lookup(key, true), engine.Stat(s), int64(n))
		}
	case opStatsDel:
		t.resetStats(e.lookup(key, true))
	case opLeaseAt:
		id, at := d.uint(), d.int()
		if o := e.lookup(key, true); d.err == nil && o.q != nil {
			if l := o.q.leases[id]; l != nil {
				l.deliveredAt = at
			}
		}
	default:
		return false
	}
	return true
}

// QueueStats returns the queue's counters.
func (e *Engine) QueueStats(ctx context.Context, queue string) (engine.QueueStats, error) {
	var s engine.QueueStats
	if err := e.checkOpen("queue stats"); err != nil {
		return s, err
	}
	key := e.listKey(queue)
	if c := e.countersOf(key, false); c != nil {
		for i := range c {
			*s.Counter(engine.Stat(i)) = c[i].Load()
		}
	}
	if o := e.lookup(key, false); o != nil {
		o.mu.Lock()
		if o.q != nil && o.q.head.seen != 0 {
			s.HeadSince, s.HeadSeen = time.Unix(0, o.q.head.since).UTC(), time.Unix(0, o.q.head.seen).UTC()
		}
		o.mu.Unlock()
	}
	return s, nil
}

// QueueDeliveries lists the queue's leases in the heap's order (deadline,
// then sequence number). The cursor is "<deadline ns>:<seq>" of the last
// one listed.
func (e *Engine) QueueDeliveries(ctx context.Context, queue, cursor string, limit int) (engine.DeliveriesPage, error) {
	const op = "queue deliveries"
	var page engine.DeliveriesPage
	if err := e.checkOpen(op); err != nil {
		return page, err
	}
	if limit < 1 || limit > engine.MaxDeliveriesPage {
		return page, fmt.Errorf("%s: limit %d: want 1 to %d", op, limit, engine.MaxDeliveriesPage)
	}
	var after lease
	if cursor != "" {
		d, s, ok := strings.Cut(cursor, ":")
		deadline, err1 := strconv.ParseInt(d, 10, 64)
		seq, err2 := strconv.ParseUint(s, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return page, fmt.Errorf("%s: cursor %q: %w", op, cursor, engine.ErrBadCursor)
		}
		after = lease{deadline: deadline, id: seq}
	}
	o := e.lock1(e.listKey(queue), false)
	if o == nil {
		return page, nil
	}
	var found leaseHeap
	if o.q != nil {
		for _, l := range o.q.byTime {
			// Scheduled items are leases too, but nobody has had them yet.
			if !l.scheduled() && (cursor == "" || leaseHeap([]*lease{&after, l}).Less(0, 1)) {
				c := *l
				found = append(found, &c)
			}
		}
	}
	o.mu.Unlock()
	sort.Slice(found, found.Less)
	if len(found) > limit {
		found = found[:limit]
		last := found[limit-1]
		page.Next = strconv.FormatInt(last.deadline, 10) + ":" + strconv.FormatUint(last.id, 10)
	}
	for _, l := range found {
		d := engine.DeliveryInfo{Item: l.item, Attempt: l.attempt, Deadline: time.Unix(0, l.deadline), Waiting: !l.leased}
		if l.leased {
			d.ID = formatID(l.id, l.deliveries, l.token)
		}
		if l.deliveredAt != 0 {
			d.DeliveredAt = time.Unix(0, l.deliveredAt)
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	return page, nil
}
