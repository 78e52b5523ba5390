package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/wal"
)

// store makes the engine durable: each call's record is enqueued in the
// log while the call still holds the locks of the keys it changed (so the
// log orders changes to one key as they happened), and the call waits for
// it to be written (fsync "everysec") or written and fsynced ("always")
// after releasing them and before it returns: nothing is acknowledged
// before the operating system has it, and writers of one key share writes
// and fsyncs (group commit) instead of queueing on its lock.
//
// A failed log write is sticky in the log, and it makes the engine
// read-only: every later change is refused before it touches anything
// (begin), with an error that wraps the log failure, while reads go on
// working and Health reports the engine unhealthy. The call whose record
// failed has already applied its change in memory; a pop (which nobody but
// its caller could have seen) is put back at the head of its queue, and any
// other change stays applied in memory but not durable, which its error
// says.
type store struct {
	e   *Engine
	log *wal.Log
	lg  *slog.Logger

	// gate is held in read mode by every change from its first mutation to
	// the enqueue of its record, and in write mode by a compaction for the
	// instant it marks the log's switch point and copies the state: a
	// frozen cut.
	gate sync.RWMutex

	compactMin int64
	base       atomic.Int64 // bytes of the last snapshot
	compacting atomic.Bool
	retry      backoff // guarded by compacting
	report     wal.ReplayReport

	errMu sync.Mutex
	err   error

	// beforeWait, set only by tests, runs when a change has released its
	// keys and is about to wait for its record.
	beforeWait func()
}

func openStore(e *Engine, opts Options) (*store, error) {
	l, err := wal.Open(opts.Dir, wal.Options{Fsync: opts.Fsync, Logger: opts.Logger, NoMap: opts.noMap})
	if err != nil {
		return nil, fmt.Errorf("open log in %s: %w", opts.Dir, err)
	}
	st := &store{e: e, log: l, lg: opts.Logger, compactMin: opts.CompactMinBytes}
	var r replayer
	rep, err := l.ReplayOffsets(func(off int64, rec []byte) error { return r.feed(e, off, rec) })
	if err != nil {
		return nil, errors.Join(fmt.Errorf("replay log in %s: %w", opts.Dir, err), l.Close())
	}
	if rep.Truncated {
		opts.Logger.Warn("memory engine: log ended in a torn record (a crash during a write); dropped it",
			"file", rep.File, "offset", rep.TornOffset, "bytes", rep.DroppedBytes)
	}
	// The log may end with the first parts of a group whose last part was
	// torn away: the record of a call that did not return. It is dropped
	// whole, as a torn single record is, and cut from the file: left there,
	// records appended from now on would be read as its missing parts.
	if start, ok := r.unfinished(); ok {
		dropped, err := l.DropTail(start)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("drop unfinished record at the end of the log in %s: %w", opts.Dir, err), l.Close())
		}
		opts.Logger.Warn("memory engine: log ended inside a record split in parts (a crash during a write); dropped its parts",
			"file", rep.File, "offset", start, "bytes", dropped)
		if !rep.Truncated {
			rep.Truncated, rep.TornOffset = true, start
		}
		rep.TornOffset = min(rep.TornOffset, start)
		rep.DroppedBytes += dropped
		rep.Bytes = start
	}
	opts.Logger.Info("memory engine: log replayed", "file", rep.File, "records", rep.Records, "bytes", rep.Bytes)
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

// enqueue buffers one call's record in the log and returns the position
// to wait for. A record larger than partSize goes as a group of parts in
// one Enqueue, which the log keeps contiguous; replay applies a group only
// once it has its last part.
func (s *store) enqueue(rec []byte) (int64, error) {
	var pos int64
	var err error
	if len(rec) <= partSize {
		rec[0] = partLast
		pos, err = s.log.Enqueue(rec)
	} else {
		pos, err = s.log.Enqueue(splitParts(rec)...)
	}
	if err != nil {
		s.fail(err)
		return 0, err
	}
	return pos, nil
}

// wait returns once the log holds everything up to pos (see store).
func (s *store) wait(pos int64) error {
	if err := s.log.Wait(pos); err != nil {
		s.fail(err)
		return err
	}
	return nil
}

// fail turns the engine read-only after the log's first failure.
func (s *store) fail(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = err
		s.lg.Error("embedded engine: log write failed; the engine is read-only from now on", "err", err)
	}
}

func (s *store) failed() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *store) close() error {
	if err := s.log.Close(); err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

var recPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// begin starts a change named op. Once the log has failed it refuses,
// before anything is touched. Call done (or end) after unlocking the keys.
func (e *Engine) begin(op string) (tx, error) {
	t := e.beginRestore()
	t.opName = op
	if t.on {
		if err := e.store.failed(); err != nil {
			t.release()
			return tx{}, fmt.Errorf("%s: engine is read-only after a log failure; nothing was changed: %w", op, err)
		}
	}
	return t, nil
}

// beginRestore starts a change that puts back what a call took and could
// not hand over (abandon); it is never refused, so nothing taken is lost.
func (e *Engine) beginRestore() tx {
	if e.store == nil {
		return tx{e: e}
	}
	e.store.gate.RLock()
	bp := recPool.Get().(*[]byte)
	return tx{e: e, on: true, gated: true, opName: "hand back", rec: append((*bp)[:0], partLast), pooled: bp}
}

// onFail registers how to take back a change nobody else has seen yet,
// should its record not reach the log: undo runs on key's object, locked
// again, after the wait failed. Only changes that serve no waiter and
// touch one key may register one.
func (t *tx) onFail(key string, undo func(o *object)) {
	t.undoKey = key
	t.undo = append(t.undo, undo)
}

// commit enqueues the change's record in the log while the caller still
// holds its keys' locks, so the log orders it as memory did. Its errors,
// like done's, name neither the operation nor the queue or key: the
// caller adds the operation (end does, for a deferred done), the public
// package the names. Waiting for the record, and waking the consumers the
// change served, happen in done, after the locks are
// released. Without a log the consumers are woken here.
func (t *tx) commit() error {
	if !t.on || len(t.rec) <= 1 {
		if t.pos == 0 {
			t.wake()
		}
		return nil
	}
	pos, err := t.e.store.enqueue(t.rec)
	t.rec = t.rec[:1]
	if err == nil {
		t.pos = pos
		return nil
	}
	// Not even buffered: take the change back under the locks still held.
	undo := t.undo
	t.undo = nil
	if len(undo) > 0 && len(t.notify) == 0 {
		o := t.e.lookup(t.undoKey, false)
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](o)
		}
		return fmt.Errorf("log append failed; nothing was changed (the engine is read-only from now on): %w", err)
	}
	t.wake()
	return fmt.Errorf("log append failed; the change is applied in memory but not durable (the engine is read-only from now on): %w", err)
}

// awaitLogged makes done wait until the log holds everything enqueued so
// far. A call that answers from another call's change without a record of
// its own (an idempotent replay) calls it under the lock that orders that
// change, so its answer never goes out before the change is written.
func (t *tx) awaitLogged() {
	if t.on {
		t.pos = max(t.pos, t.e.store.log.End())
	}
}

// wake hands the consumers this change served what they were given.
func (t *tx) wake() {
	for _, w := range t.notify {
		close(w.ch)
	}
	t.notify = nil
}

// done finishes the change after the caller released its keys' locks: it
// releases the compaction gate (the record is in the log's buffer, on one
// side of any switch point), waits until the record is written (and
// fsynced under "always"), then wakes the consumers served. When the
// write failed, a change with undo steps is taken back and any other stays
// applied in memory, not durable; the error says which. Safe to call more
// than once.
func (t *tx) done() error {
	t.release()
	pos := t.pos
	t.pos = 0
	if pos == 0 {
		return nil
	}
	if h := t.e.store.beforeWait; h != nil {
		h()
	}
	err := t.e.store.wait(pos)
	undo := t.undo
	t.undo = nil
	if err != nil && len(undo) > 0 && len(t.notify) == 0 {
		o := t.e.lock1(t.undoKey, true)
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](o)
		}
		o.mu.Unlock()
		return fmt.Errorf("log write failed; nothing was changed (the engine is read-only from now on): %w", err)
	}
	t.wake()
	if err != nil {
		return fmt.Errorf("log write failed; the change is applied in memory but not durable (the engine is read-only from now on): %w", err)
	}
	return nil
}

// end is done for a deferred call: its error, with the operation's name,
// becomes the call's unless the call already failed.
func (t *tx) end(errp *error) {
	if err := t.done(); err != nil && *errp == nil {
		*errp = fmt.Errorf("%s: %w", t.opName, err)
	}
}

// release gives back the record buffer and the compaction gate. Safe to
// call more than once.
func (t *tx) release() {
	if !t.gated {
		return
	}
	t.gated = false
	if cap(t.rec) <= 64<<10 {
		*t.pooled = t.rec[:0]
		recPool.Put(t.pooled)
	}
	t.rec = nil
	t.e.store.gate.RUnlock()
}

// maybeCompact rewrites the log when it has grown past twice the last
// snapshot (and past the configured minimum). After a failure it waits,
// twice as long after each further one, before copying everything again.
func (s *store) maybeCompact() {
	size := s.log.Size()
	if size < s.compactMin || size < 2*s.base.Load() {
		return
	}
	if !s.compacting.CompareAndSwap(false, true) {
		return
	}
	defer s.compacting.Store(false)
	now := time.Now()
	if !s.retry.ready(now) {
		return
	}
	if err := s.compactLocked(); err != nil {
		wait := s.retry.failed(now)
		s.lg.Error("memory engine: log compaction failed; will retry", "err", err, "retry_in", wait, "log_bytes", size)
		return
	}
	s.retry.reset()
}

// backoff spaces out retries of a failing compaction.
type backoff struct {
	wait time.Duration
	next time.Time
}

const (
	compactRetryFirst = time.Second
	compactRetryMax   = 10 * time.Minute
)

func (b *backoff) ready(now time.Time) bool { return !now.Before(b.next) }

// failed records a failure at now and returns how long to wait.
func (b *backoff) failed(now time.Time) time.Duration {
	b.wait = min(max(2*b.wait, compactRetryFirst), compactRetryMax)
	b.next = now.Add(b.wait)
	return b.wait
}

func (b *backoff) reset() { *b = backoff{} }

// snapItem is a copy of one key's state at the cut.
type snapItem struct {
	key      string
	list     []string
	hasStr   bool
	str      string
	expireAt int64
	seq      uint64
	leases   []lease
	idem     []idemEntry
	settings *engine.QueueSettings
	stats    *[engine.NumStats]int64 // a queue's counters (an item of their own)
}

// compactLocked takes a frozen cut: with every change held off, it marks
// the log's switch point and copies the state (memory-speed work), then
// lets changes go on and writes the snapshot from the copy. Records
// appended after the switch point follow the snapshot in the new log. The
// caller has set s.compacting, so only one runs.
func (s *store) compactLocked() error {
	e := s.e

	s.gate.Lock()
	rw, err := s.log.BeginRewrite()
	if err != nil {
		s.gate.Unlock()
		return fmt.Errorf("compaction: %w", err)
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
		if o.q != nil && o.q.settings != nil {
			s := *o.q.settings
			it.settings = &s
			keep = true
		}
		if o.q != nil {
			for _, ent := range o.q.idemByTime {
				if now < ent.expireAt {
					it.idem = append(it.idem, *ent)
					keep = true
				}
			}
		}
		if keep {
			snap = append(snap, it)
		}
	})
	snap = e.snapshotStats(snap)
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
		return errors.Join(fmt.Errorf("compaction: %w", err), rw.Abort())
	}
	if err := rw.Commit(); err != nil {
		return fmt.Errorf("compaction: %w", err)
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
		var err error
		if len(t.rec) <= partSize {
			err = emit(t.rec)
		} else {
			// One huge item: split like append, or the log's record
			// limit would make every compaction fail.
			for _, part := range splitParts(t.rec) {
				if err = emit(part); err != nil {
					break
				}
			}
		}
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
		if it.settings != nil {
			t.encodeSettings(it.key, it.settings)
		}
		if it.stats != nil {
			t.encodeStats(it.key, it.stats)
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
		for j := range it.idem {
			ent := &it.idem[j]
			t.encodeIdem(it.key, ent.key, ent.rec, ent.expireAt)
			if err := flush(false); err != nil {
				return total, err
			}
		}
	}
	return total, flush(true)
}
