package embedded

import (
	"container/heap"

	"github.com/sluicehq/sluice/internal/engine"
)

// Idempotency records live in the queue's state, beside its list, so that
// checking one, adding and storing the new one happen under the queue's
// lock, as one step. They are not keys: no cache read or listing sees
// them, and clearing the queue keeps them, as on Redis. Each is logged
// with its absolute deadline (opIdemPut), so a restart inside the window
// still finds it, and replay drops the ones whose deadline has passed.

// idemEntry is one idempotency key's record.
type idemEntry struct {
	key      string
	rec      engine.IdempotencyRecord
	expireAt int64 // unix ns
	idx      int   // position in idemHeap
}

// idemHeap orders a queue's records by deadline, earliest first, so that
// expiring them costs only the ones that are due.
type idemHeap []*idemEntry

func (h idemHeap) Len() int           { return len(h) }
func (h idemHeap) Less(i, j int) bool { return h[i].expireAt < h[j].expireAt }
func (h idemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *idemHeap) Push(x any) {
	ent := x.(*idemEntry)
	ent.idx = len(*h)
	*h = append(*h, ent)
}
func (h *idemHeap) Pop() any {
	old := *h
	ent := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ent
}

// idemGet returns key's record while it lives. The caller holds the lock.
func (q *queueState) idemGet(key string, now int64) (engine.IdempotencyRecord, bool) {
	ent := q.idem[key]
	if ent == nil || now >= ent.expireAt {
		return engine.IdempotencyRecord{}, false
	}
	return ent.rec, true
}

// idemPut stores key's record, replacing an expired one.
func (q *queueState) idemPut(key string, rec engine.IdempotencyRecord, expireAt int64) {
	if q.idem == nil {
		q.idem = make(map[string]*idemEntry)
	}
	if old := q.idem[key]; old != nil {
		heap.Remove(&q.idemByTime, old.idx)
	}
	ent := &idemEntry{key: key, rec: rec, expireAt: expireAt}
	q.idem[key] = ent
	heap.Push(&q.idemByTime, ent)
}

// idemExpire forgets the records whose deadline has passed.
func (q *queueState) idemExpire(now int64) {
	for len(q.idemByTime) > 0 && now >= q.idemByTime[0].expireAt {
		ent := heap.Pop(&q.idemByTime).(*idemEntry)
		delete(q.idem, ent.key)
	}
	if len(q.idem) == 0 {
		q.idem, q.idemByTime = nil, nil
	}
}

// idemPut records an idempotent add of o's queue, in memory and in the
// call's log record.
func (t *tx) idemPut(o *object, key string, rec engine.IdempotencyRecord, expireAt int64) {
	o.queue().idemPut(key, rec, expireAt)
	if t.on {
		t.encodeIdem(o.key, key, rec, expireAt)
	}
}

// encodeIdem writes an opIdemPut; snapshots use it too.
func (t *tx) encodeIdem(objKey, key string, rec engine.IdempotencyRecord, expireAt int64) {
	t.op(opIdemPut, objKey)
	t.str(key)
	t.int(expireAt)
	t.str(rec.Encode())
}
