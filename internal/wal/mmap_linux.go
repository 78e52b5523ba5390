//go:build linux

package wal

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// mapChunk is how far ahead of the records the log file is allocated and
// mapped: growing the mapping costs two system calls once per chunk
// instead of a write(2) per acknowledged record.
const mapChunk = 16 << 20

// mapFile allocates f up to the chunk boundary after size and maps it
// from offset 0. The blocks are reserved with fallocate so that a full
// disk is an error here rather than a SIGBUS when a page is first
// touched; a filesystem without fallocate or mmap gets the write(2) path.
func mapFile(f *os.File, size int64) ([]byte, error) {
	n := roundChunk(size + 1)
	if err := fallocate(f, size, n); err != nil {
		return nil, err
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	prefault(m[size:])
	return m, nil
}

// growMap extends the allocation and the mapping m of f to hold at least
// need bytes. On error m is still mapped and unchanged.
func growMap(f *os.File, m []byte, need int64) ([]byte, error) {
	n := roundChunk(need)
	if err := fallocate(f, int64(len(m)), n); err != nil {
		return m, err
	}
	old := len(m)
	m, err := unix.Mremap(m, int(n), unix.MREMAP_MAYMOVE)
	if err != nil {
		return m, err
	}
	prefault(m[old:])
	return m, nil
}

// prefault makes the pages of a new chunk writable in one system call
// (MADV_POPULATE_WRITE), where a first write to each page would otherwise
// fault on its own, under the log's lock: a batch of records spans pages,
// and a fault costs more than the copy. Pages that cannot be populated
// (a kernel before 5.14) fault on first write as before, so a failure is
// ignored.
func prefault(b []byte) {
	if len(b) > 0 {
		_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	}
}

func unmapFile(m []byte) error { return unix.Munmap(m) }

// fallocate reserves the blocks of f in [from, to), extending its size.
func fallocate(f *os.File, from, to int64) error {
	if to <= from {
		return nil
	}
	for {
		err := unix.Fallocate(int(f.Fd()), 0, from, to-from)
		if err != unix.EINTR {
			return err
		}
	}
}

// syncData makes f's data durable. fdatasync skips the timestamps that
// writes through the mapping keep touching; a size change is still
// synced, as the data cannot be read back without it.
//
// The descriptor is used through RawConn.Control, which holds a reference
// on it: the syncer fsyncs without fileMu, so a rewrite may close the file
// meanwhile, and Control keeps the descriptor open (and its number from
// being reused by another file) until the fsync returns, or fails with
// os.ErrClosed when the close came first. f.Fd() would read the descriptor
// unsynchronised with that close.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	})
	if err := errors.Join(cerr, serr); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

func roundChunk(n int64) int64 { return (n + mapChunk - 1) / mapChunk * mapChunk }
