package memory

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/wal"
)

// store makes the engine durable: each call's record is appended to the
// log while the call still holds the locks of the keys it changed (so the
// log orders changes to one key as they happened), and before the call
// returns. With fsync "always" Append returns after the fsync.
//
// A failed append is sticky in the log, and it makes the engine read-only:
// every later change is refused before it touches anything (begin), with
// an error that wraps the log failure, while reads go on working and
// Health reports the engine unhealthy. The call whose append failed has
// already applied its change in memory under its keys' locks; a pop
// (which nobody but its caller could have seen) is rolled back, and any
// other change stays applied in memory but not durable, which its error
// says.
type store struct {
	e   *Engine
	log *wal.Log
	lg  *slog.Logger

	// gate is held in read mode by every change from its first mutation to
	// its append, and in write mode by a compaction for the instant it
	// marks the log's switch point and copies the state: a frozen cut.
	gate sync.RWMutex

	compactMin int64
	base       atomic.Int64 // bytes of the last snapshot
	compacting atomic.Bool
	retry      backoff // guarded by compacting
	report     wal.ReplayReport

	errMu sync.Mutex
	err   error
}

func openStore(e *Engine, opts Options) (*store, error) {
	policy := wal.FsyncEverySec
	if opts.Fsync == "always" {
		policy = wal.FsyncAlways
	}
	l, err := wal.Open(opts.Dir, wal.Options{Fsync: policy, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("memory engine: open log in %s: %w", opts.Dir, err)
	}
	st := &store{e: e, log: l, lg: opts.Logger, compactMin: opts.CompactMinBytes}
	var r replayer
	rep, err := l.ReplayOffsets(func(off int64, rec []byte) error { return r.feed(e, off, rec) })
	if err != nil {
		return nil, errors.Join(fmt.Errorf("memory engine: replay log in %s: %w", opts.Dir, err), l.Close())
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
			return nil, errors.Join(fmt.Errorf("memory engine: drop unfinished record at the end of the log in %s: %w", opts.Dir, err), l.Close())
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
			s.lg.Error("memory engine: log append failed; the engine is read-only from now on", "err", err)
		}
		s.errMu.Unlock()
		return err
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

// begin starts a change named op. Once the log has failed it refuses,
// before anything is touched. Call end after unlocking the keys.
func (e *Engine) begin(op string) (tx, error) {
	t := e.beginRestore()
	if t.on {
		if err := e.store.failed(); err != nil {
			t.end()
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
	return tx{e: e, on: true, rec: append((*bp)[:0], partLast), pooled: bp}
}

// onFail registers how to take back a change nobody else has seen yet,
// should its record not reach the log. Only changes that serve no waiter
// may register one.
func (t *tx) onFail(undo func()) { t.undo = append(t.undo, undo) }

// commit logs the change (while the caller still holds its keys' locks)
// and then wakes the consumers it served. When the log fails, a change
// with undo steps is taken back; any other stays applied in memory, not
// durable, and the error says which.
func (t *tx) commit() error {
	var err error
	if t.on && len(t.rec) > 1 {
		err = t.e.store.append(t.rec)
		t.rec = t.rec[:1]
	}
	undo := t.undo
	t.undo = nil
	if err != nil && len(undo) > 0 && len(t.notify) == 0 {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return fmt.Errorf("log append failed; nothing was changed (the engine is read-only from now on): %w", err)
	}
	for _, w := range t.notify {
		close(w.ch)
	}
	t.notify = nil
	if err != nil {
		return fmt.Errorf("log append failed; the change is applied in memory but not durable (the engine is read-only from now on): %w", err)
	}
	return nil
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
	compactRetryMin = time.Second
	compactRetryMax = 10 * time.Minute
)

func (b *backoff) ready(now time.Time) bool { return !now.Before(b.next) }

// failed records a failure at now and returns how long to wait.
func (b *backoff) failed(now time.Time) time.Duration {
	b.wait = min(max(2*b.wait, compactRetryMin), compactRetryMax)
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
