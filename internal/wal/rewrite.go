package wal

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// errRewriteFinished is returned by Emit, Commit and Abort after the
// rewrite was committed or aborted.
var errRewriteFinished = errors.New("rewrite already committed or aborted")

// drainThreshold is how much of the buffered tail Commit may still copy
// while appends are blocked; larger tails are copied before that pause.
const drainThreshold = 256 << 10

// Rewriter is a compaction in progress: a new log file made of snapshot
// records (Emit) followed by every record appended since BeginRewrite.
// Emit, Commit and Abort may be called from any goroutine but are
// serialised; records appended meanwhile go on being accepted.
type Rewriter struct {
	l   *Log
	gen uint64

	mu       sync.Mutex // guards f, w, size, records, finished
	f        *os.File
	w        *bufio.Writer
	size     int64
	records  int
	finished bool
	scratch  []byte

	// tail holds the frames appended since the switch point, in order.
	// Guarded by l.mu: Append extends it.
	tail []byte

	discardOnce sync.Once
	discardErr  error
}

// BeginRewrite starts a compaction and marks the switch point: every record
// appended after BeginRewrite returns (and possibly some appended while it
// runs) will follow the snapshot in the new log; records appended before
// it are dropped with the old log. Appends are not blocked.
//
// The caller then writes, with Emit, records that rebuild the state the log
// described at the switch point, and calls Commit (or Abort). Two protocols
// make that correct:
//
//  1. Frozen cut. The caller calls BeginRewrite while it holds every
//     Append still (for example under the write side of its own lock,
//     taken in read mode around each state change and its Append), copies
//     the state it needs, releases its lock, then Emits from the copy. The
//     pause is the copy, not the disk work.
//  2. Fuzzy cut, no global pause. The caller snapshots each unit (a queue,
//     say) at its own moment after BeginRewrite, under that unit's lock.
//     Records of that unit appended between BeginRewrite and its snapshot
//     are then both in the snapshot and in the tail, so replay must apply
//     them idempotently: for example each record carries the unit's
//     sequence number, the snapshot carries the sequence it reflects, and
//     replay skips records at or below it.
//
// Appended records are buffered in memory until Commit, so keep the time
// between BeginRewrite and Commit short relative to the append rate.
// Only one rewrite runs at a time (ErrRewriteInProgress).
func (l *Log) BeginRewrite() (*Rewriter, error) {
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	if l.rw != nil {
		l.mu.Unlock()
		return nil, ErrRewriteInProgress
	}
	r := &Rewriter{l: l, gen: l.gen + 1}
	l.rw = r
	l.mu.Unlock()

	f, err := createTemp(l.dir, r.gen)
	if err != nil {
		l.mu.Lock()
		l.rw = nil
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Lock()
	if l.rw != r {
		// Close abandoned the rewrite while the file was being created.
		l.mu.Unlock()
		_ = f.Close()
		_ = os.Remove(filepath.Join(l.dir, tmpName(r.gen)))
		return nil, ErrClosed
	}
	// Set under l.mu so Close, which finds r under l.mu, sees the file.
	r.f = f
	r.w = bufio.NewWriterSize(f, 1<<20)
	r.size = headerSize
	l.mu.Unlock()
	return r, nil
}

// Emit adds one snapshot record to the new log. The slice may be reused
// once Emit returns.
func (r *Rewriter) Emit(rec []byte) error {
	if len(rec) > MaxRecordSize {
		return fmt.Errorf("snapshot record of %d bytes: %w", len(rec), ErrRecordTooLarge)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return errRewriteFinished
	}
	r.scratch = appendFrame(r.scratch[:0], rec)
	if _, err := r.w.Write(r.scratch); err != nil {
		return fmt.Errorf("write snapshot to %s: %w", r.f.Name(), err)
	}
	r.size += int64(len(r.scratch))
	r.records++
	return nil
}

// Commit appends the records buffered since the switch point, makes the
// new file durable and atomically makes it the log. Appends are blocked
// only for the last small part of the tail, one fsync, a rename and a
// directory fsync. A crash before the rename leaves the old log; after it,
// the new one. On error the old log stays current and the rewrite is
// abandoned; Append is unaffected.
func (r *Rewriter) Commit() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return errRewriteFinished
	}
	r.finished = true
	err := r.commit()
	if err != nil {
		r.l.mu.Lock()
		if r.l.rw == r {
			r.l.rw = nil
		}
		r.l.mu.Unlock()
		return errors.Join(err, r.discard())
	}
	return nil
}

func (r *Rewriter) commit() error {
	l := r.l
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("write snapshot to %s: %w", r.f.Name(), err)
	}
	// Copy the bulk of the tail while appends continue.
	for {
		l.mu.Lock()
		if err := r.stillCurrentLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
		if len(r.tail) <= drainThreshold {
			l.mu.Unlock()
			break
		}
		chunk := r.tail
		r.tail = nil
		l.mu.Unlock()
		if err := r.writeRaw(chunk); err != nil {
			return err
		}
	}
	// Most data is now written; fsyncing it here shortens the final fsync
	// taken while appends wait.
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", r.f.Name(), err)
	}

	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := r.stillCurrentLocked(); err != nil {
		return err
	}
	if err := r.writeRaw(r.tail); err != nil {
		return err
	}
	r.tail = nil
	if err := publish(l.dir, r.gen, r.f, l.syncDir); err != nil {
		if errors.Is(err, errPublishedUnsynced) {
			// The old file is superseded on disk: no record may be
			// acknowledged in it from now on.
			l.failLocked(err)
		}
		return err
	}

	// The new file holds the snapshot (covering everything before the
	// switch point) and every record since, fsynced: whatever the old file
	// had not yet received is no longer needed, and every waiter is done.
	old, oldGen := l.file, l.gen
	// The old file is removed below; the next Enqueue maps the new one.
	l.unmapLocked()
	l.noMap = !l.opts.mapped()
	l.file, l.gen, l.path = r.f, r.gen, filepath.Join(l.dir, genName(r.gen))
	l.buf = l.buf[:0]
	l.written, l.synced = l.appended, l.appended
	l.size = r.size
	l.rw = nil
	l.cond.Broadcast()

	oldPath := filepath.Join(l.dir, genName(oldGen))
	cerr := old.Close()
	// If this removal is lost in a crash, Open removes the superseded file.
	rerr := os.Remove(oldPath)
	l.opts.Logger.Info("write-ahead log rewritten",
		"file", l.path, "snapshot_records", r.records, "bytes", r.size)
	if err := errors.Join(cerr, rerr); err != nil {
		l.opts.Logger.Warn("could not remove superseded log; Open will", "file", oldPath, "err", err)
	}
	return nil
}

// stillCurrentLocked reports why the rewrite can no longer be committed.
func (r *Rewriter) stillCurrentLocked() error {
	l := r.l
	switch {
	case l.closing:
		return ErrClosed
	case l.err != nil:
		return l.err
	case l.rw != r:
		return errRewriteFinished
	}
	return nil
}

func (r *Rewriter) writeRaw(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := r.f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", r.f.Name(), err)
	}
	r.size += int64(len(b))
	return nil
}

// Abort abandons the rewrite and removes its file; the old log stays
// current and nothing appended is lost.
func (r *Rewriter) Abort() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return errRewriteFinished
	}
	r.finished = true
	r.l.mu.Lock()
	if r.l.rw == r {
		r.l.rw = nil
	}
	r.l.mu.Unlock()
	return r.discard()
}

// discard closes and removes the unfinished file, once.
func (r *Rewriter) discard() error {
	r.discardOnce.Do(func() {
		if r.f == nil {
			return
		}
		cerr := r.f.Close()
		rerr := os.Remove(filepath.Join(r.l.dir, tmpName(r.gen)))
		if errors.Is(rerr, os.ErrNotExist) {
			rerr = nil
		}
		r.discardErr = wrapErr("discard unfinished rewrite", errors.Join(cerr, rerr))
	})
	return r.discardErr
}

// Rewrite compacts the log in one call: BeginRewrite, snapshot(emit), then
// Commit, or Abort if snapshot fails. Because the switch point is taken
// before snapshot runs and appends continue meanwhile, this suits the
// fuzzy-cut protocol described on BeginRewrite; for a frozen cut call
// BeginRewrite under the caller's own lock instead.
func (l *Log) Rewrite(snapshot func(emit func(rec []byte) error) error) error {
	r, err := l.BeginRewrite()
	if err != nil {
		return err
	}
	if err := snapshot(r.Emit); err != nil {
		return errors.Join(fmt.Errorf("rewrite snapshot: %w", err), r.Abort())
	}
	return r.Commit()
}
