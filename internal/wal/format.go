package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/internal/engine"
)

const (
	// headerSize is the size of the file header: 8 bytes of magic, a
	// little-endian uint32 version and 4 reserved zero bytes.
	headerSize = 16
	// frameHeaderSize is the size of a record's frame header: a
	// little-endian uint32 payload length and a little-endian uint32
	// CRC-32C over the length bytes and the payload.
	frameHeaderSize = 8
	// formatVersion is written into every file and checked on Replay.
	formatVersion = 1

	// MaxRecordSize is the largest payload Append accepts. It also bounds
	// what Replay believes: a length field above it is treated as damage,
	// so a flipped bit cannot make the reader allocate gigabytes.
	MaxRecordSize = 64 << 20
)

var fileMagic = [8]byte{'S', 'L', 'U', 'I', 'C', 'E', 'W', 'L'}

// castagnoli is built once per process by the standard library; the table
// is immutable, so sharing it is not shared mutable state.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by the package. Match them with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Log. It matches
	// engine.ErrClosed so an engine can return it unchanged.
	ErrClosed = fmt.Errorf("log closed: %w", engine.ErrClosed)
	// ErrLocked means another Log (in this or another process) holds the
	// directory's LOCK file.
	ErrLocked = errors.New("directory is locked by another open log")
	// ErrCorrupt means a damaged record is followed by intact data, so the
	// damage is not a torn tail from a crash and loading only the prefix
	// would silently lose records. The error text names file and offset.
	// Repair cuts such a log at the damage, keeping the rest aside.
	ErrCorrupt = errors.New("corrupt log")
	// ErrNotReplayed is returned by Append and BeginRewrite before Replay
	// has run: appending behind an unchecked (possibly torn) tail would turn
	// the torn record into corruption in the middle of the log.
	ErrNotReplayed = errors.New("Replay must run before Append")
	// ErrRewriteInProgress is returned by BeginRewrite while another
	// rewrite has not been committed or aborted.
	ErrRewriteInProgress = errors.New("a rewrite is already in progress")
	// ErrRecordTooLarge is returned by Append and Emit for a record over
	// MaxRecordSize.
	ErrRecordTooLarge = errors.New("record larger than MaxRecordSize")
)

// encodeHeader returns the file header for the current format version.
func encodeHeader() []byte {
	h := make([]byte, headerSize)
	copy(h, fileMagic[:])
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	return h
}

// checkHeader validates a file header read from disk.
func checkHeader(h []byte) error {
	if len(h) < headerSize {
		return fmt.Errorf("file header is %d bytes, want %d", len(h), headerSize)
	}
	if [8]byte(h[:8]) != fileMagic {
		return fmt.Errorf("bad magic %q: not a sluice log", h[:8])
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != formatVersion {
		return fmt.Errorf("unsupported format version %d (this build reads %d)", v, formatVersion)
	}
	return nil
}

// appendFrame appends rec, framed, to dst and returns the extended slice.
// The caller has checked len(rec) <= MaxRecordSize.
func appendFrame(dst, rec []byte) []byte {
	// The header is built inside dst: a local array would escape through
	// the crc32 call and cost an allocation per record.
	at := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rec)))
	crc := crc32.Update(0, castagnoli, dst[at:at+4])
	crc = crc32.Update(crc, castagnoli, rec)
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return append(dst, rec...)
}

// frameLen returns the payload length announced by a frame header.
func frameLen(hdr []byte) uint32 { return binary.LittleEndian.Uint32(hdr[0:4]) }

// frameValid reports whether payload matches the checksum in hdr.
func frameValid(hdr, payload []byte) bool {
	crc := crc32.Update(0, castagnoli, hdr[0:4])
	crc = crc32.Update(crc, castagnoli, payload)
	return crc == binary.LittleEndian.Uint32(hdr[4:8])
}

// checkRecords rejects oversized records before anything is written, so a
// batch is either accepted whole or not at all.
func checkRecords(recs [][]byte) (int, error) {
	n := 0
	for i, r := range recs {
		if len(r) > MaxRecordSize {
			return 0, fmt.Errorf("record %d is %d bytes: %w", i, len(r), ErrRecordTooLarge)
		}
		n += frameHeaderSize + len(r)
	}
	return n, nil
}

const (
	lockName  = "LOCK"
	genSuffix = ".wal"
	tmpSuffix = ".wal.tmp"
)

// genName is the file name of generation g. Fixed-width decimal keeps a
// directory listing in generation order for a person reading it.
func genName(g uint64) string { return fmt.Sprintf("%020d%s", g, genSuffix) }

func tmpName(g uint64) string { return fmt.Sprintf("%020d%s", g, tmpSuffix) }

// lockDir takes an exclusive flock on dir/LOCK. flock locks belong to the
// open file description, so a second Open in the same process conflicts
// just like one in another process. The lock dies with the descriptor,
// so a crashed process never leaves the directory locked.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (close the other Log or stop the process using it)", ErrLocked, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// unlockDir releases the lock lockDir took, then closes its file. Closing
// alone is not enough: a process forked by another goroutine holds a copy
// of the descriptor until it execs, and the lock lives as long as any copy
// does, so a Log reopened right after Close would find its own directory
// locked. LOCK_UN releases the lock of the open file description, whoever
// else holds a copy of it.
func unlockDir(f *os.File) error {
	unlockErr := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return errors.Join(unlockErr, f.Close())
}

// listDir returns the complete generations in dir, oldest first, and the
// names of unfinished rewrite files. Unrelated files are left alone.
func listDir(dir string) (gens []uint64, temps []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			if _, ok := parseGen(strings.TrimSuffix(name, tmpSuffix)); ok {
				temps = append(temps, name)
			}
		case strings.HasSuffix(name, genSuffix):
			if g, ok := parseGen(strings.TrimSuffix(name, genSuffix)); ok {
				gens = append(gens, g)
			}
		}
	}
	slices.Sort(gens)
	return gens, temps, nil
}

func parseGen(s string) (uint64, bool) {
	if len(s) != 20 {
		return 0, false
	}
	g, err := strconv.ParseUint(s, 10, 64)
	return g, err == nil && g > 0
}

// createTemp creates the unfinished file for generation g with its header.
func createTemp(dir string, g uint64) (*os.File, error) {
	path := filepath.Join(dir, tmpName(g))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(encodeHeader()); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write header of %s: %w", path, err)
	}
	return f, nil
}

// publish makes the finished temp file of generation g the current log:
// fsync the data, rename, then fsync the directory so the rename itself
// survives a crash. Until the rename the previous generation is current.
func publish(dir string, g uint64, f *os.File, syncDir func(string) error) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", filepath.Join(dir, tmpName(g)), err)
	}
	if err := os.Rename(filepath.Join(dir, tmpName(g)), filepath.Join(dir, genName(g))); err != nil {
		return fmt.Errorf("publish generation %d: %w", g, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", errPublishedUnsynced, err)
	}
	return nil
}

// errPublishedUnsynced marks a publish whose rename happened but whose
// directory fsync failed: the new generation is in place (Open will pick
// it), so appending to the old one would write records Open never reads.
var errPublishedUnsynced = errors.New("new generation renamed into place but the directory fsync failed")

// createGeneration creates an empty, published generation g and returns it
// open for appending.
func createGeneration(dir string, g uint64) (*os.File, error) {
	f, err := createTemp(dir, g)
	if err != nil {
		return nil, err
	}
	if err := publish(dir, g, f, syncDir); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	return nil
}
