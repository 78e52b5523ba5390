package wal

import (
	"errors"
	"fmt"
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
	// FsyncEverySec (the default) makes Append return once the records are
	// queued for the background writer. The writer hands them to the
	// operating system within Options.WriteDelay (500µs by default), and
	// they are fsynced once a second. A crash of the process loses at most
	// the records not yet written (about WriteDelay's worth); a crash of
	// the machine loses at most about the last second, as with Redis's
	// "appendfsync everysec".
	FsyncEverySec FsyncPolicy = iota
	// FsyncAlways makes Append return only after its records are fsynced.
	// Concurrent Appends share one write and one fsync (group commit), so
	// throughput grows with the number of appenders.
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
	// WriteDelay is how long, under FsyncEverySec, the writer gathers
	// records before handing them to the operating system in one write, so
	// a stream of small records costs few system calls. It widens the loss
	// window of a process crash by as much. Default 500µs; negative
	// disables gathering.
	WriteDelay time.Duration
	// MaxPending bounds the bytes appended but not yet written to the
	// operating system; an Append that would exceed it waits for the
	// writer, so a slow disk slows appenders instead of growing memory
	// without limit. Default 8 MiB.
	MaxPending int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.WriteDelay == 0 {
		o.WriteDelay = 500 * time.Microsecond
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 8 << 20
	}
	return o
}

func (o Options) validate() error {
	if o.Fsync != FsyncEverySec && o.Fsync != FsyncAlways {
		return fmt.Errorf("wal: unknown Fsync policy %d: use FsyncEverySec or FsyncAlways", int(o.Fsync))
	}
	return nil
}

// batchBytes is the buffered size at which the writer stops gathering and
// writes at once.
const batchBytes = 256 << 10

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

	// fileMu serialises everything that touches file: the writer's flushes,
	// Sync, Commit's switch to a new file and Close. It is taken before mu.
	fileMu sync.Mutex
	file   *os.File
	gen    uint64
	// path names file in messages. It is the published name: a file that
	// was created under its temporary name keeps that as its Name() after
	// the rename.
	path string

	mu       sync.Mutex
	cond     *sync.Cond // signalled when written/synced/err/closed change
	buf      []byte     // accepted, not yet written to file
	spare    []byte     // the writer's second buffer, reused to avoid garbage
	appended int64
	written  int64
	synced   int64
	size     int64 // bytes of the current file including buf
	replayed bool
	closing  bool // Close has begun: no new records, waiters still served
	closed   bool
	err      error // sticky: after a failed write or fsync nothing is trusted
	rw       *Rewriter

	kick chan struct{} // records are waiting for the writer
	full chan struct{} // enough are waiting that gathering more is pointless
	stop chan struct{}
	wg   sync.WaitGroup // the writer and syncer goroutines
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
		return nil, fmt.Errorf("wal: create directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:  dir,
		opts: opts,
		lock: lock,
		kick: make(chan struct{}, 1),
		full: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	l.cond = sync.NewCond(&l.mu)
	if err := l.openCurrent(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	l.wg.Add(1)
	go l.writer()
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
			return fmt.Errorf("wal: remove unfinished rewrite: %w", err)
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
			return fmt.Errorf("wal: remove superseded log: %w", err)
		}
	}
	path := filepath.Join(l.dir, genName(cur))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open log: %w", err)
	}
	l.file, l.gen, l.path = f, cur, path
	return nil
}

// Append adds records to the log, in order, as one write. A batch is
// accepted whole or not at all (an oversized record rejects the batch),
// but a crash in the middle of writing it can keep only a prefix: records
// that must survive together belong in one record.
//
// Records appended by one goroutine are replayed in the order appended;
// Appends racing each other are ordered as they acquire the log. The log
// orders records, not the caller's state: for replay to rebuild the same
// state, append each change while holding the lock that orders it (a
// queue's lock, say), and treat a change whose Append failed as not made.
//
// With FsyncAlways, Append returns after the records are fsynced. With
// FsyncEverySec it returns once they are queued for the writer (see
// FsyncEverySec for the loss window). The slices may be reused as soon as
// Append returns. After a write or fsync failure every Append returns that
// failure: the log no longer knows what reached the disk.
func (l *Log) Append(recs ...[]byte) error {
	n, err := checkRecords(recs)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
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
	l.signal()
	if len(l.buf) >= min(batchBytes, l.opts.MaxPending) {
		select {
		case l.full <- struct{}{}:
		default:
		}
	}
	if l.opts.Fsync == FsyncAlways {
		err = l.waitLocked(func() bool { return l.synced >= end })
	} else if l.appended-l.written > int64(l.opts.MaxPending) {
		err = l.waitLocked(func() bool { return l.written >= end })
	}
	l.mu.Unlock()
	return err
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

// waitLocked blocks until done() holds or the log fails. l.mu is held.
func (l *Log) waitLocked(done func() bool) error {
	for !done() {
		if l.err != nil {
			return l.err
		}
		if l.closed {
			return ErrClosed
		}
		l.cond.Wait()
	}
	return nil
}

// signal wakes the writer without blocking; one pending wake-up is enough
// because the writer takes everything buffered at once.
func (l *Log) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// writer is the Log's background goroutine that hands buffered records to
// the operating system, fsyncing each batch under FsyncAlways. Close stops
// it.
func (l *Log) writer() {
	defer l.wg.Done()
	always := l.opts.Fsync == FsyncAlways
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	defer delay.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
			if always {
				// Appenders woken by the previous fsync are usually about to
				// append again; letting them run first makes the next batch
				// (and so the next fsync) cover them all.
				runtime.Gosched()
			} else if l.opts.WriteDelay > 0 {
				// Gather a batch so one write(2) covers many records.
				delay.Reset(l.opts.WriteDelay)
				select {
				case <-delay.C:
				case <-l.full:
					delay.Stop()
				case <-l.stop:
				}
			}
			_ = l.flush(always)
		}
	}
}

// syncer fsyncs once per SyncInterval under FsyncEverySec. It does not
// hold fileMu during the fsync, so the writer keeps writing meanwhile and
// appenders are not held up by a slow disk.
func (l *Log) syncer() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			_ = l.syncWritten()
		}
	}
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
	err := f.Sync()
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
		err = f.Sync()
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
	l.written = end
	if needSync {
		l.synced = end
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

// Size returns the bytes of the current log file, counting records
// appended but not yet written. It is what a caller compares against a
// threshold to decide when to Rewrite.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Close writes and fsyncs everything appended, abandons a rewrite that was
// not committed, stops the background writer and releases the directory
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
	l.mu.Unlock()
	closeErr := l.file.Close()
	l.fileMu.Unlock()

	var rwErr error
	if rw != nil {
		rwErr = rw.discard()
	}
	lockErr := l.lock.Close()
	return errors.Join(flushErr, wrapErr("close log", closeErr), rwErr, wrapErr("release lock", lockErr))
}

// fileErr describes a failed operation on the log file at path. The
// *os.PathError's own name is dropped: it is the name the file was opened
// under, which for a generation created by a rewrite is the temporary one.
func fileErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("wal: %s %s: %w", op, path, err)
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("wal: %s: %w", what, err)
}
