package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// FsyncPolicy says when appended records reach stable storage.
type FsyncPolicy int

const (
	// FsyncEverySec (the default) makes Append (and Wait) return once the
	// records have been handed to the operating system: copied into the
	// page cache through a shared mapping of the file (Linux), or written
	// with write(2); a background goroutine fsyncs once a second. A crash
	// of the process loses nothing that was acknowledged; a crash of the
	// machine loses at most about the last second, as with Redis's
	// "appendfsync everysec".
	FsyncEverySec FsyncPolicy = iota
	// FsyncAlways makes Append (and Wait) return only after the records are
	// written and fsynced. Concurrent appenders share one write and one
	// fsync (group commit), so throughput grows with their number.
	FsyncAlways
)

func (p FsyncPolicy) String() string {
	switch p {
	case FsyncEverySec:
		return "everysec"
	case FsyncAlways:
		return "always"
	default:
		return fmt.Sprintf("FsyncPolicy(%d)", int(p))
	}
}

// Options configure a Log. The zero value is valid.
type Options struct {
	// Fsync is the durability policy. Default FsyncEverySec.
	Fsync FsyncPolicy
	// Logger receives warnings (a truncated torn tail, a failed write) and
	// rewrite notices. Default: discard.
	Logger *slog.Logger
	// SyncInterval is how often FsyncEverySec fsyncs. Default one second.
	SyncInterval time.Duration
	// MaxPending bounds the bytes enqueued but not yet written to the
	// operating system; an Enqueue that goes beyond it writes (or waits
	// for the write in progress) before it returns, so a caller that
	// enqueues without waiting cannot grow memory without limit. (A mapped
	// file has nothing pending: Enqueue copies into it.) Default 8 MiB.
	MaxPending int
	// NoMap makes the log write records with write(2) instead of copying
	// them into a shared mapping of its file, which is what it does under
	// FsyncEverySec on Linux unless the filesystem cannot allocate or map
	// the file. Both hand the records to the operating system before Wait
	// returns; the mapping does so without a system call per record.
	NoMap bool
}

// mapped reports whether the log maps its files. Under FsyncAlways every
// acknowledgement pays an fsync anyway, and a copy into a page that the
// fsync is writing back can wait for that write while holding the log's
// lock, holding up the appenders that group commit would have let share
// the next fsync (measured: several times fewer adds at 16 appenders), so
// that policy writes with write(2) from a buffer that nothing blocks.
func (o Options) mapped() bool { return !o.NoMap && o.Fsync == FsyncEverySec }

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 8 << 20
	}
	return o
}

func (o Options) validate() error {
	if o.Fsync != FsyncEverySec && o.Fsync != FsyncAlways {
		return fmt.Errorf("unknown Fsync policy %d: use FsyncEverySec or FsyncAlways", int(o.Fsync))
	}
	return nil
}

// Log is an append-only log of opaque records in one directory. All
// methods are safe for concurrent use.
type Log struct {
	// Positions are counted in stream bytes: every byte appended through
	// this Log since Open, whichever file it went to. appended >= written
	// >= synced say how far the stream has been accepted, handed to the
	// operating system and made durable.

	dir  string
	opts Options
	lock *os.File

	// fileMu serialises everything that touches file: flushes, Sync,
	// Commit's switch to a new file and Close. It is taken before mu.
	fileMu sync.Mutex
	file   *os.File
	gen    uint64
	// path names file in messages. It is the published name: a file that
	// was created under its temporary name keeps that as its Name() after
	// the rename.
	path string

	mu       sync.Mutex
	cond     *sync.Cond // signalled when written/synced/err/closed/flushing change
	buf      []byte     // accepted, not yet written to file
	spare    []byte     // the flusher's second buffer, reused to avoid garbage
	flushing bool       // a waiter is writing buf out for everyone (the leader)
	writes   int64      // write(2) calls made for buffered records
	appended int64
	written  int64
	synced   int64
	size     int64 // bytes of the current file including buf
	replayed bool
	closing  bool // Close has begun: no new records, waiters still served
	closed   bool
	err      error // sticky: after a failed write or fsync nothing is trusted
	rw       *Rewriter

	// syncDir fsyncs the directory after a rewrite renames its file into
	// place; tests replace it to make that fsync fail.
	syncDir func(dir string) error
	// mapped is the current file mapped from offset 0, allocated ahead of
	// the records (see mapFile). While it is set, Enqueue copies records
	// into it, which puts them in the page cache as a write(2) would: a
	// crash of the process loses none of them and fsync makes them
	// durable, so written advances with appended and buf stays empty.
	mapped []byte
	// noMap is set when the current file cannot be mapped (or could not
	// be grown); its records then go through buf and write(2).
	noMap bool

	stop chan struct{}
	wg   sync.WaitGroup // the syncer goroutine
}

// Open opens (creating if needed) the log in dir and locks the directory.
// A second Open of the same directory, from this process or another,
// fails with ErrLocked until the first Log is closed.
//
// Open removes files left over by an interrupted rewrite; the caller must
// then call Replay before Append.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:     dir,
		opts:    opts,
		lock:    lock,
		noMap:   !opts.mapped(),
		stop:    make(chan struct{}),
		syncDir: syncDir,
	}
	l.cond = sync.NewCond(&l.mu)
	if err := l.openCurrent(); err != nil {
		_ = unlockDir(lock)
		return nil, err
	}
	if opts.Fsync == FsyncEverySec {
		l.wg.Add(1)
		go l.syncer()
	}
	return l, nil
}

// openCurrent picks the newest complete generation, removes everything
// older or unfinished, and creates generation 1 in an empty directory.
func (l *Log) openCurrent() error {
	gens, temps, err := listDir(l.dir)
	if err != nil {
		return err
	}
	for _, t := range temps {
		if err := os.Remove(filepath.Join(l.dir, t)); err != nil {
			return fmt.Errorf("remove unfinished rewrite: %w", err)
		}
	}
	if len(gens) == 0 {
		f, err := createGeneration(l.dir, 1)
		if err != nil {
			return err
		}
		l.file, l.gen, l.path = f, 1, filepath.Join(l.dir, genName(1))
		return nil
	}
	cur := gens[len(gens)-1]
	// A newer generation is only ever renamed into place complete, so
	// older ones are superseded and would never be read again.
	for _, g := range gens[:len(gens)-1] {
		if err := os.Remove(filepath.Join(l.dir, genName(g))); err != nil {
			return fmt.Errorf("remove superseded log: %w", err)
		}
	}
	path := filepath.Join(l.dir, genName(cur))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	l.file, l.gen, l.path = f, cur, path
	return nil
}

// Append adds records to the log, in order, as one write, and returns
// once they are in the operating system (FsyncEverySec) or on stable
// storage (FsyncAlways). It is Enqueue followed by Wait.
//
// A batch is accepted whole or not at all (an oversized record rejects the
// batch), but a crash in the middle of writing it can keep only a prefix:
// records that must survive together belong in one record.
//
// Records appended by one goroutine are replayed in the order appended;
// Appends racing each other are ordered as they acquire the log. The slices
// may be reused as soon as Append returns. After a write or fsync failure
// every Append returns that failure: the log no longer knows what reached
// the disk.
func (l *Log) Append(recs ...[]byte) error {
	end, err := l.Enqueue(recs...)
	if err != nil {
		return err
	}
	return l.Wait(end)
}

// Enqueue adds records to the log, in order, and returns the stream
// position just past them, to be passed to Wait. On a mapped file (see
// Options.NoMap) it copies them into the file's mapping, which hands them
// to the operating system without a system call (one per 16 MiB to grow
// the mapping); otherwise it only buffers them (writing if MaxPending is
// exceeded). Either is cheap enough to call while holding the lock that
// orders the caller's changes, and Wait is meant to be called after
// releasing it: then appenders of one key share writes and fsyncs like
// any others.
//
// The log orders records, not the caller's state: for replay to rebuild
// the same state, enqueue each change while holding the lock that orders
// it (a queue's lock, say), and treat a change as made only once Wait for
// its position returned nil. The change must not be acknowledged to
// anyone before that. The slices may be reused as soon as Enqueue returns.
func (l *Log) Enqueue(recs ...[]byte) (int64, error) {
	n, err := checkRecords(recs)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	if l.mapLocked(int64(n)) {
		return l.copyLocked(recs, int64(n)), nil
	}
	start := len(l.buf)
	for _, r := range recs {
		l.buf = appendFrame(l.buf, r)
	}
	if l.rw != nil {
		// Records after the rewrite's switch point must follow the
		// snapshot in the new file.
		l.rw.tail = append(l.rw.tail, l.buf[start:]...)
	}
	l.appended += int64(n)
	l.size += int64(n)
	end := l.appended
	if l.appended-l.written > int64(l.opts.MaxPending) {
		if err := l.waitLocked(end, false); err != nil {
			return 0, err
		}
	}
	return end, nil
}

// mapLocked reports whether the next n bytes of records can be copied into
// the mapping, mapping the file or growing the mapping if needed. A file
// that cannot be mapped or grown is written with write(2) from then on.
func (l *Log) mapLocked(n int64) bool {
	if l.noMap {
		return false
	}
	end := l.size + n
	if l.mapped == nil {
		// Switching from write(2) is only safe with nothing buffered or
		// being written: the mapping starts at l.size.
		if len(l.buf) > 0 || l.written != l.appended {
			return false
		}
		m, err := mapFile(l.file, l.size)
		if err != nil {
			l.noMap = true
			l.opts.Logger.Warn("write-ahead log cannot map its file; writing with write(2)", "file", l.path, "err", err)
			return false
		}
		l.mapped = m
	}
	if end <= int64(len(l.mapped)) {
		return true
	}
	m, err := growMap(l.file, l.mapped, end)
	if err == nil {
		l.mapped = m
		return true
	}
	// Out of space, most likely. Carry on with write(2) from the end of
	// the records, which reports a real failure through the sticky error.
	l.opts.Logger.Warn("write-ahead log cannot grow its mapping; writing with write(2)", "file", l.path, "err", err)
	l.noMap = true
	l.unmapLocked()
	if _, serr := l.file.Seek(l.size, io.SeekStart); serr != nil {
		l.failLocked(fileErr("seek", l.path, serr))
	}
	return false
}

// copyLocked frames recs straight into the mapping at the end of the
// records; mapLocked made room for their n bytes.
func (l *Log) copyLocked(recs [][]byte, n int64) int64 {
	at := l.size
	dst := l.mapped[at : at : at+n]
	for _, r := range recs {
		dst = appendFrame(dst, r)
	}
	if l.rw != nil {
		l.rw.tail = append(l.rw.tail, l.mapped[at:at+n]...)
	}
	l.appended += n
	l.size += n
	l.written = l.appended
	return l.appended
}

// unmapLocked drops the mapping of the current file, if any.
func (l *Log) unmapLocked() {
	if l.mapped == nil {
		return
	}
	if err := unmapFile(l.mapped); err != nil {
		l.opts.Logger.Warn("write-ahead log could not unmap its file", "file", l.path, "err", err)
	}
	l.mapped = nil
}

// Wait returns once everything up to pos (a position Enqueue returned) has
// been handed to the operating system (copied into the mapping, at once,
// or written with write(2)), and under FsyncAlways fsynced, or with the
// log's failure.
//
// Waiters commit as a group without timers: a waiter whose records are
// not written yet, when nobody is writing, becomes the leader, takes the
// whole buffer (its own records and everything enqueued before them),
// writes it (and fsyncs under FsyncAlways) and wakes the others; while a
// leader writes, the rest wait and buffer, and the next leader takes all
// that gathered meanwhile in one write.
func (l *Log) Wait(pos int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitLocked(pos, l.opts.Fsync == FsyncAlways)
}

// waitLocked is Wait with l.mu held: until pos is written (and synced, if
// sync), it leads a flush or waits for the one in progress.
func (l *Log) waitLocked(pos int64, sync bool) error {
	for {
		if l.written >= pos && (!sync || l.synced >= pos) {
			return nil
		}
		if l.err != nil {
			return l.err
		}
		if l.closed {
			return ErrClosed
		}
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushing = true
		l.mu.Unlock()
		// Appenders that are runnable are usually about to enqueue (or
		// were just woken by the last write and append again): letting
		// them run first makes this write cover them too. Alone, this
		// returns at once.
		runtime.Gosched()
		// The error, if any, is sticky (or ErrClosed) and found above.
		_ = l.flush(sync)
		l.mu.Lock()
		l.flushing = false
		l.cond.Broadcast()
	}
}

// End returns the position just past every record enqueued so far: Wait
// on it returns once all of them are written (fsynced under always). An
// answer derived from other calls' changes, rather than from a record of
// its own, waits on it so that it never reports what a crash could take
// back.
func (l *Log) End() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appended
}

// usableLocked reports why the log cannot accept records, if it cannot.
func (l *Log) usableLocked() error {
	switch {
	case l.closing:
		return ErrClosed
	case l.err != nil:
		return l.err
	case !l.replayed:
		return ErrNotReplayed
	}
	return nil
}

// syncer fsyncs once per SyncInterval under FsyncEverySec. It does not
// hold fileMu during the fsync, so appenders keep writing meanwhile and
// are not held up by a slow disk. Records enqueued but not waited for are
// written first, so they too are on disk within about an interval.
func (l *Log) syncer() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.pending() {
				_ = l.flush(false)
			}
			_ = l.syncWritten()
		}
	}
}

// pending reports whether records are enqueued but not written.
func (l *Log) pending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buf) > 0
}

// syncWritten fsyncs what has been written so far without blocking writes.
func (l *Log) syncWritten() error {
	l.fileMu.Lock()
	l.mu.Lock()
	f, path, target, need := l.file, l.path, l.written, l.synced < l.written && !l.closed
	l.mu.Unlock()
	l.fileMu.Unlock()
	if !need {
		return nil
	}
	err := syncData(f)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != f {
		// A rewrite replaced the file (and fsynced its successor) meanwhile;
		// whatever this fsync did no longer matters.
		return nil
	}
	if err != nil {
		l.failLocked(fileErr("fsync", path, err))
		return l.err
	}
	l.synced = max(l.synced, target)
	l.cond.Broadcast()
	return nil
}

// flush writes everything buffered to the current file and, if sync is
// set, fsyncs it. Failures are recorded as the sticky error and returned.
func (l *Log) flush(sync bool) error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return err
	}
	data := l.buf
	l.buf = l.spare[:0]
	end := l.appended
	needSync := sync && l.synced < end
	f, path := l.file, l.path
	l.mu.Unlock()

	var err error
	if len(data) > 0 {
		_, err = f.Write(data)
	}
	if err == nil && needSync {
		err = syncData(f)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	// A burst can grow a buffer far beyond normal; do not keep it forever.
	if cap(data) <= 4*l.opts.MaxPending {
		l.spare = data[:0]
	} else {
		l.spare = nil
	}
	if err != nil {
		l.failLocked(fileErr("write", path, err))
		return l.err
	}
	if len(data) > 0 {
		l.writes++
	}
	l.written = max(l.written, end)
	if needSync {
		l.synced = max(l.synced, end)
	}
	l.cond.Broadcast()
	return nil
}

// failLocked records the first failure and wakes every waiter with it.
func (l *Log) failLocked(err error) {
	if l.err == nil {
		l.err = err
		l.opts.Logger.Error("write-ahead log failed; refusing further appends", "err", err)
	}
	l.cond.Broadcast()
}

// Sync writes and fsyncs everything appended so far.
func (l *Log) Sync() error {
	return l.flush(true)
}

// Size returns the bytes of the current log file up to its last record,
// counting records appended but not yet written and not the space
// allocated ahead of them. It is what a caller compares against a
// threshold to decide when to Rewrite.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Close writes and fsyncs everything appended, abandons a rewrite that was
// not committed, stops the background syncer and releases the directory
// lock. Calls after the first return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closing = true
	l.mu.Unlock()

	close(l.stop)
	l.wg.Wait()
	flushErr := l.flush(true)

	l.fileMu.Lock()
	l.mu.Lock()
	l.closed = true
	rw := l.rw
	l.rw = nil
	l.cond.Broadcast()
	l.unmapLocked()
	trimErr := l.trimLocked()
	l.mu.Unlock()
	closeErr := l.file.Close()
	l.fileMu.Unlock()

	var rwErr error
	if rw != nil {
		rwErr = rw.discard()
	}
	lockErr := unlockDir(l.lock)
	return errors.Join(flushErr, trimErr, wrapErr("close log", closeErr), rwErr, wrapErr("release lock", lockErr))
}

// trimLocked cuts the space allocated ahead of the records off the file,
// so a cleanly closed log ends with its last record. Replay would treat
// the zero-filled space as free anyway, so this is tidiness, not safety.
func (l *Log) trimLocked() error {
	if !l.replayed || l.err != nil {
		// A failed log's file is left as the failure found it; Close
		// reports the failure itself.
		return nil //nolint:nilerr // not trimming is the answer to l.err
	}
	st, err := l.file.Stat()
	if err != nil {
		return fileErr("stat", l.path, err)
	}
	if st.Size() <= l.size {
		return nil
	}
	if err := l.file.Truncate(l.size); err != nil {
		return fileErr("truncate", l.path, err)
	}
	if err := syncData(l.file); err != nil {
		return fileErr("fsync", l.path, err)
	}
	return nil
}

// fileErr describes a failed operation on the log file at path. The
// *os.PathError's own name is dropped: it is the name the file was opened
// under, which for a generation created by a rewrite is the temporary one.
func fileErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
