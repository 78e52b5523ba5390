package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ReplayReport describes what Replay found.
type ReplayReport struct {
	// File is the path of the log file that was read.
	File string
	// Records is the number of records passed to the callback.
	Records int
	// Bytes is the length of the log's records after Replay, header
	// included: where appends continue. A zero-filled tail after the last
	// record is space the log allocated ahead, not counted and not a torn
	// record; Close cuts it off.
	Bytes int64
	// Truncated is set when a torn tail was cut off: the file ended in a
	// short or damaged record with nothing intact after it, the trace of a
	// crash in the middle of a write.
	Truncated bool
	// TornOffset is the file offset where the dropped tail began (equal to
	// Bytes when Truncated).
	TornOffset int64
	// DroppedBytes is how many bytes were cut off.
	DroppedBytes int64
}

// Replay passes every record in the log to fn, oldest first, and must be
// called once, before the first Append. The slice passed to fn is only
// valid during the call. fn may be nil to check and repair the log only.
//
// A torn tail is cut off (the file is truncated and fsynced) and described
// in the report; it holds only records whose Append had not returned under
// FsyncAlways, or that were inside the loss window under FsyncEverySec.
// Damage followed by intact data is not a torn tail: Replay then returns an
// error matching ErrCorrupt that names the file and offset, and changes
// nothing on disk. If fn fails, Replay stops and returns its error wrapped
// with the record's offset. On any error the records already passed to fn
// are only a prefix of the log, and the caller must discard what it built
// and Close the Log, which accepts no Append after a failed Replay.
func (l *Log) Replay(fn func(rec []byte) error) (ReplayReport, error) {
	var at func(int64, []byte) error
	if fn != nil {
		at = func(_ int64, rec []byte) error { return fn(rec) }
	}
	return l.ReplayOffsets(at)
}

// ReplayOffsets is Replay that also passes each record's file offset, for
// a caller that may find the log ends inside a unit of its own made of
// several records (see DropTail).
func (l *Log) ReplayOffsets(fn func(off int64, rec []byte) error) (ReplayReport, error) {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	l.mu.Lock()
	switch {
	case l.closing:
		l.mu.Unlock()
		return ReplayReport{}, ErrClosed
	case l.replayed:
		l.mu.Unlock()
		return ReplayReport{}, errors.New("Replay already ran on this Log")
	}
	l.mu.Unlock()

	rep, err := replayFile(l.file, l.path, fn)
	if err != nil {
		return rep, err
	}
	if rep.Truncated {
		if err := l.file.Truncate(rep.Bytes); err != nil {
			return rep, fmt.Errorf("truncate torn tail of %s: %w", rep.File, err)
		}
		if err := l.file.Sync(); err != nil {
			return rep, fmt.Errorf("fsync %s after truncating torn tail: %w", rep.File, err)
		}
		l.opts.Logger.Warn("write-ahead log ended in a torn record; dropped it",
			"file", rep.File, "offset", rep.TornOffset, "dropped_bytes", rep.DroppedBytes,
			"records_loaded", rep.Records)
	}
	if _, err := l.file.Seek(rep.Bytes, io.SeekStart); err != nil {
		return rep, fmt.Errorf("seek to end of %s: %w", rep.File, err)
	}
	l.mu.Lock()
	l.replayed = true
	l.size = rep.Bytes
	l.mu.Unlock()
	return rep, nil
}

// replayFile reads f without modifying it. On a torn tail it returns a
// report with Truncated set and Bytes at the cut; the caller truncates.
func replayFile(f *os.File, path string, fn func(off int64, rec []byte) error) (ReplayReport, error) {
	rep := ReplayReport{File: path}
	st, err := f.Stat()
	if err != nil {
		return rep, fmt.Errorf("stat %s: %w", rep.File, err)
	}
	size := st.Size()
	hdr := make([]byte, headerSize)
	if n, err := f.ReadAt(hdr, 0); n < headerSize {
		return rep, fmt.Errorf("%w: %s: file header: %v", ErrCorrupt, rep.File, describe(err))
	}
	if err := checkHeader(hdr); err != nil {
		return rep, fmt.Errorf("%w: %s: %v", ErrCorrupt, rep.File, err)
	}

	br := bufio.NewReaderSize(io.NewSectionReader(f, headerSize, size-headerSize), 1<<20)
	off := int64(headerSize)
	var fh [frameHeaderSize]byte
	var payload []byte
	for off < size {
		if size-off < frameHeaderSize {
			break // a torn frame header
		}
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			return rep, fmt.Errorf("read %s at offset %d: %w", rep.File, off, err)
		}
		n := frameLen(fh[:])
		if n > MaxRecordSize || int64(n) > size-off-frameHeaderSize {
			break // a torn payload, or a damaged length
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return rep, fmt.Errorf("read %s at offset %d: %w", rep.File, off, err)
		}
		if !frameValid(fh[:], payload) {
			break
		}
		if fn != nil {
			if err := fn(off, payload); err != nil {
				return rep, fmt.Errorf("replay %s: record at offset %d: %w", rep.File, off, err)
			}
		}
		rep.Records++
		off += frameHeaderSize + int64(n)
	}
	rep.Bytes = off
	if off == size {
		return rep, nil
	}
	// The log allocates its file ahead of the records and fills it through
	// a mapping, so zeros after the last record are free space, not damage.
	// (A zero frame header is never valid: the CRC of a zero length is not
	// zero.)
	zero, err := allZero(f, off, size)
	if err != nil {
		return rep, fmt.Errorf("read %s after offset %d: %w", rep.File, off, err)
	}
	if zero {
		return rep, nil
	}

	// Something at off is damaged. It is a torn tail only if nothing intact
	// follows; otherwise dropping the rest would silently lose records.
	next, found, err := findFrame(f, off+1, size)
	if err != nil {
		return rep, fmt.Errorf("scan %s after damaged record at offset %d: %w", rep.File, off, err)
	}
	if found {
		return rep, fmt.Errorf("%w: %s: damaged record at offset %d is followed by an intact record at offset %d (file size %d); refusing to load a partial log",
			ErrCorrupt, rep.File, off, next, size)
	}
	rep.Truncated = true
	rep.TornOffset = off
	rep.DroppedBytes = size - off
	return rep, nil
}

// DropTail cuts the log back to off, the offset ReplayOffsets reported
// for a record, dropping that record and every later one; it returns how
// many bytes were dropped. It is for a caller whose own unit spans several
// records appended together (one Append) and whose last records a crash
// tore away: the unit's intact first records must not stay in the log, or
// records appended later would follow them. It may only be called after
// Replay and before the first Append.
func (l *Log) DropTail(off int64) (int64, error) {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closing:
		return 0, ErrClosed
	case !l.replayed:
		return 0, ErrNotReplayed
	case l.appended > 0 || l.rw != nil:
		return 0, errors.New("DropTail after Append or BeginRewrite")
	case off < headerSize || off > l.size:
		return 0, fmt.Errorf("DropTail at offset %d outside %s (records span %d..%d)", off, l.path, headerSize, l.size)
	}
	dropped := l.size - off
	if dropped == 0 {
		return 0, nil
	}
	if err := l.file.Truncate(off); err != nil {
		return 0, fmt.Errorf("truncate %s to %d: %w", l.path, off, err)
	}
	if err := l.file.Sync(); err != nil {
		return 0, fmt.Errorf("fsync %s after truncating to %d: %w", l.path, off, err)
	}
	if _, err := l.file.Seek(off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek to end of %s: %w", l.path, err)
	}
	l.size = off
	l.opts.Logger.Warn("write-ahead log cut back by its caller",
		"file", l.path, "offset", off, "dropped_bytes", dropped)
	return dropped, nil
}

// allZero reports whether r holds only zero bytes in [from, end).
func allZero(r io.ReaderAt, from, end int64) (bool, error) {
	buf := make([]byte, min(1<<20, end-from))
	for p := from; p < end; {
		chunk := buf[:min(int64(len(buf)), end-p)]
		if n, err := r.ReadAt(chunk, p); n < len(chunk) {
			return false, readErr(err)
		}
		for _, b := range chunk {
			if b != 0 {
				return false, nil
			}
		}
		p += int64(len(chunk))
	}
	return true, nil
}

func describe(err error) string {
	if err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return "file shorter than its header"
}

// findFrame looks for an intact frame starting anywhere in [from, end) and
// returns its offset. It reads in windows so a large damaged region costs
// bounded memory; a frame straddling a window is read on its own.
func findFrame(r io.ReaderAt, from, end int64) (int64, bool, error) {
	const window = 1 << 20
	buf := make([]byte, window)
	for p := from; p+frameHeaderSize <= end; {
		want := min(int64(window), end-p)
		chunk := buf[:want]
		if n, err := r.ReadAt(chunk, p); int64(n) < want {
			return 0, false, readErr(err)
		}
		last := len(chunk) - frameHeaderSize
		for i := 0; i <= last; i++ {
			at := p + int64(i)
			n := int64(frameLen(chunk[i:]))
			if n > MaxRecordSize || at+frameHeaderSize+n > end {
				continue
			}
			var payload []byte
			if i+frameHeaderSize+int(n) <= len(chunk) {
				payload = chunk[i+frameHeaderSize : i+frameHeaderSize+int(n)]
			} else {
				payload = make([]byte, n)
				if m, err := r.ReadAt(payload, at+frameHeaderSize); int64(m) < n {
					return 0, false, readErr(err)
				}
			}
			if frameValid(chunk[i:i+frameHeaderSize], payload) {
				return at, true, nil
			}
		}
		p += int64(last + 1)
	}
	return 0, false, nil
}

func readErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Repair makes a log that Replay rejects with ErrCorrupt loadable again, by
// cutting it at its first damaged record. Everything from there on,
// including any intact records after the damage, is first saved beside the
// log as NAME.corrupt-OFFSET and fsynced, so nothing is destroyed, but
// those records will not be replayed. Losing them is an operator's
// decision, which is why Replay never does this by itself.
//
// dir must not be open (Repair takes its lock). A log without damage is
// left as it is, and a torn tail is saved and cut the same way. The report
// describes the cut; Truncated is false if there was nothing to cut.
func Repair(dir string) (ReplayReport, error) {
	lock, err := lockDir(dir)
	if err != nil {
		return ReplayReport{}, err
	}
	defer func() { _ = unlockDir(lock) }()
	gens, _, err := listDir(dir)
	if err != nil {
		return ReplayReport{}, err
	}
	if len(gens) == 0 {
		return ReplayReport{}, fmt.Errorf("repair: no log in %s", dir)
	}
	path := filepath.Join(dir, genName(gens[len(gens)-1]))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("repair: %w", err)
	}
	defer f.Close()

	rep, err := replayFile(f, path, nil)
	switch {
	case err == nil && !rep.Truncated:
		return rep, nil
	case err != nil && !errors.Is(err, ErrCorrupt):
		return rep, err
	case err != nil && rep.Bytes < headerSize:
		return rep, fmt.Errorf("repair: the file header itself is damaged, nothing to keep: %w", err)
	}
	st, serr := f.Stat()
	if serr != nil {
		return rep, fmt.Errorf("repair: %w", serr)
	}
	cut := rep.Bytes
	rep.Truncated, rep.TornOffset, rep.DroppedBytes = true, cut, st.Size()-cut

	side := fmt.Sprintf("%s.corrupt-%d", path, cut)
	if err := saveRange(f, cut, side); err != nil {
		return rep, err
	}
	if err := syncDir(dir); err != nil {
		return rep, err
	}
	if err := f.Truncate(cut); err != nil {
		return rep, fmt.Errorf("repair: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return rep, fmt.Errorf("repair: fsync %s: %w", path, err)
	}
	return rep, nil
}

// saveRange copies f from offset to its end into a new file at path and
// fsyncs it.
func saveRange(f *os.File, offset int64, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("repair: save damaged part: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, offset, 1<<62))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("repair: save damaged part to %s: %w", path, err)
	}
	return nil
}
