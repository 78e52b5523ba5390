package memory

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/internal/wal"
)

// store makes the engine durable: each call's record is appended to the
// log while the call still holds the locks of the keys it changed (so the
// log orders changes to one key as they happened), and before the call
// returns. With fsync "always" Append returns after the fsync.
//
// A failed append is sticky in the log: the call that hit it returns the
// error, and so does every later change, while reads go on working. The
// failing call's change stays applied in memory (it cannot be withdrawn
// once a consumer may have seen it) but is not durable; Health reports the
// engine unhealthy from then on.
type store struct {
	e   *Engine
	log *wal.Log

	// gate is held in read mode by every change from its first mutation to
	// its append, and in write mode by a compaction for the instant it
	// marks the log's switch point and copies the state: a frozen cut.
	gate sync.RWMutex

	compactMin int64
	base       atomic.Int64 // bytes of the last snapshot
	compacting atomic.Bool
	report     wal.ReplayReport

	errMu sync.Mutex
	err   error
}

func openStore(e *Engine, opts Options) (*store, error) {
	policy := wal.FsyncEverySec
	if opts.Fsync == "always" {
		policy = wal.FsyncAlways
	}
	l, err := wal.Open(opts.Dir, wal.Options{Fsync: policy})
	if err != nil {
		return nil, fmt.Errorf("memory engine: open log in %s: %w", opts.Dir, err)
	}
	st := &store{e: e, log: l, compactMin: opts.CompactMinBytes}
	var r replayer
	rep, err := l.Replay(func(rec []byte) error { return r.feed(e, rec) })
	if err != nil {
		return nil, errors.Join(fmt.Errorf("memory engine: replay log in %s: %w", opts.Dir, err), l.Close())
	}
	// r may still hold the first parts of a group whose last part never
	// reached the log: the torn tail of a call that did not return. It is
	// dropped whole, as a torn single record is.
	st.report = rep
	return st, nil
}

// ReplayReport describes what the log held when the engine opened (zero
// when not durable); a torn tail left by a crash shows up here.
func (e *Engine) ReplayReport() wal.ReplayReport {
	if e.store == nil {
		return wal.ReplayReport{}
	}
	return e.store.report
}

// partSize bounds the parts a large record is split into, well under
// the log's record limit.
const partSize = 16 << 20

// append logs one call's record. A record larger than partSize goes as a
// group of parts in one Append, which the log keeps contiguous; replay
// applies a group only once it has its last part.
func (s *store) append(rec []byte) error {
	var err error
	if len(rec) <= partSize {
		rec[0] = partLast
		err = s.log.Append(rec)
	} else {
		err = s.log.Append(splitParts(rec)...)
	}
	if err != nil {
		s.errMu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.errMu.Unlock()
		return fmt.Errorf("log append: %w", err)
	}
	return nil
}

func (s *store) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *store) close() error {
	if err := s.log.Close(); err != nil {
		return fmt.Errorf("memory engine: close log: %w", err)
	}
	return nil
}

var recPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// begin starts a change. Call end after unlocking the keys.
func (e *Engine) begin() tx {
	if e.store == nil {
		return tx{e: e}
	}
	e.store.gate.RLock()
	bp := recPool.Get().(*[]byte)
	return tx{e: e, on: true, rec: append((*bp)[:0], partLast), pooled: bp}
}

// commit logs the change (while the caller still holds its keys' locks)
// and then wakes the consumers it served.
func (t *tx) commit() error {
	var err error
	if t.on && len(t.rec) > 1 {
		err = t.e.store.append(t.rec)
		t.rec = t.rec[:1]
	}
	for _, w := range t.notify {
		close(w.ch)
	}
	t.notify = nil
	return err
}

// end releases what begin took. Safe to call more than once.
func (t *tx) end() {
	if !t.on {
		return
	}
	t.on = false
	if cap(t.rec) <= 64<<10 {
		*t.pooled = t.rec[:0]
		recPool.Put(t.pooled)
	}
	t.e.store.gate.RUnlock()
}

// maybeCompact rewrites the log when it has grown past twice the last
// snapshot (and past the configured minimum).
func (s *store) maybeCompact() {
	size := s.log.Size()
	if size < s.compactMin || size < 2*s.base.Load() {
		return
	}
	_ = s.compact()
}

// snapItem is a copy of one key's state at the cut.
type snapItem struct {
	key      string
	list     []string
	hasStr   bool
	str      string
	expireAt int64
	seq      uint64
	leases   []lease
}

// compact takes a frozen cut: with every change held off, it marks the
// log's switch point and copies the state (memory-speed work), then lets
// changes go on and writes the snapshot from the copy. Records appended
// after the switch point follow the snapshot in the new log.
func (s *store) compact() error {
	if !s.compacting.CompareAndSwap(false, true) {
		return nil
	}
	defer s.compacting.Store(false)
	e := s.e

	s.gate.Lock()
	rw, err := s.log.BeginRewrite()
	if err != nil {
		s.gate.Unlock()
		return fmt.Errorf("memory engine: compaction: %w", err)
	}
	now := e.now()
	var snap []snapItem
	e.forEachObject(func(o *object) {
		o.mu.Lock()
		defer o.mu.Unlock()
		it := snapItem{key: o.key}
		keep := false
		if o.list.Len() > 0 {
			it.list = o.list.Items()
			keep = true
		}
		if o.strAlive(now) {
			it.hasStr, it.str, it.expireAt = true, o.str, o.expireAt
			keep = true
		}
		if o.q != nil && o.q.seq > 0 {
			it.seq = o.q.seq
			for _, l := range o.q.byTime {
				it.leases = append(it.leases, *l)
			}
			keep = true
		}
		if keep {
			snap = append(snap, it)
		}
	})
	e.namesMu.Lock()
	names := make([]string, 0, len(e.names))
	for n := range e.names {
		names = append(names, n)
	}
	e.namesMu.Unlock()
	s.gate.Unlock()

	sort.Strings(names)
	emitted, err := writeSnapshot(rw.Emit, snap, names)
	if err != nil {
		return errors.Join(fmt.Errorf("memory engine: compaction: %w", err), rw.Abort())
	}
	if err := rw.Commit(); err != nil {
		return fmt.Errorf("memory engine: compaction: %w", err)
	}
	s.base.Store(emitted)
	return nil
}

// snapshotRecordSize is where a snapshot record is cut.
const snapshotRecordSize = 1 << 20

func writeSnapshot(emit func([]byte) error, snap []snapItem, names []string) (int64, error) {
	t := &tx{on: true, rec: []byte{partLast}}
	var total int64
	flush := func(force bool) error {
		if len(t.rec) <= 1 || (!force && len(t.rec) < snapshotRecordSize) {
			return nil
		}
		total += int64(len(t.rec))
		err := emit(t.rec)
		t.rec = t.rec[:1]
		return err
	}
	for _, n := range names {
		t.op(opRegister, n)
		if err := flush(false); err != nil {
			return total, err
		}
	}
	for i := range snap {
		it := &snap[i]
		for _, item := range it.list {
			t.op(opPushBack, it.key)
			t.str(item)
			if err := flush(false); err != nil {
				return total, err
			}
		}
		if it.hasStr {
			t.op(opSetStr, it.key)
			t.str(it.str)
			t.int(it.expireAt)
		}
		if it.seq > 0 {
			t.op(opSeq, it.key)
			t.uint(it.seq)
		}
		for j := range it.leases {
			t.encodeLease(it.key, &it.leases[j])
			if err := flush(false); err != nil {
				return total, err
			}
		}
	}
	return total, flush(true)
}
