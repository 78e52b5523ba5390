// Package wal is the append-only log that makes the embedded engine
// durable, in the manner of Redis's AOF: the engine appends one opaque
// record per state change, replays them all at start-up, and from time to
// time rewrites the log from a snapshot of its live state so the file does
// not grow without bound.
//
// # Use
//
//	l, err := wal.Open(dir, wal.Options{Fsync: wal.FsyncAlways})
//	rep, err := l.Replay(apply)     // once, before any Append
//	err = l.Append(rec1, rec2)      // one write, one group-committed fsync
//	pos, err := l.Enqueue(rec3)     // under the caller's lock: copy or buffer
//	err = l.Wait(pos)               // after unlocking it: written (and fsynced)
//	if l.Size() > limit {           // compaction; see BeginRewrite
//		err = l.Rewrite(func(emit func([]byte) error) error { ... })
//	}
//	err = l.Close()                 // flushes, fsyncs, releases the lock
//
// # Directory
//
// A log directory holds:
//
//   - LOCK: an empty file on which the open Log holds an exclusive flock.
//     A second Open, in any process, fails with ErrLocked. The kernel drops
//     the lock when its holder dies, so no stale lock survives a crash.
//   - NNNNNNNNNNNNNNNNNNNN.wal: a generation of the log (20-digit decimal
//     number). The highest-numbered one is the log; Open deletes lower ones,
//     which a completed rewrite supersedes.
//   - NNNNNNNNNNNNNNNNNNNN.wal.tmp: a rewrite being built. It becomes the
//     next generation only by an atomic rename after it is complete and
//     fsynced, and Open deletes it if a crash interrupted the rewrite.
//
// # File format
//
// All integers are little-endian. A file is a 16-byte header followed by
// records, with nothing between them, and while the log is open zero
// bytes after them (space allocated ahead; see Guarantees):
//
//	header: magic "SLUICEWL" (8 bytes) | version uint32 (= 1) | 4 zero bytes
//	record: length uint32 | crc uint32 | payload (length bytes)
//
// crc is CRC-32C (Castagnoli) over the 4 length bytes then the payload, so
// a damaged length is caught as surely as a damaged payload. A payload is
// at most MaxRecordSize bytes; it may be empty.
//
// # Guarantees
//
// Durability: an Append (or a Wait) that returned nil has had its records
// handed to the operating system: a crash of the process loses none of
// them. Under FsyncEverySec on Linux the file is allocated ahead of the
// records (fallocate, 16 MiB at a time, so a full disk is an error and
// not a SIGBUS) and mapped shared, and Enqueue copies the records into
// the mapping, which is the page cache itself: no system call per record.
// Under FsyncAlways (which pays an fsync per group anyway), elsewhere,
// with Options.NoMap, or on a filesystem that cannot allocate or map the
// file, the records are written with write(2). With FsyncAlways they are
// also fsynced, so a crash of the machine loses none either; with
// FsyncEverySec (the default) a background goroutine fsyncs once a
// second, and a crash of the machine loses at most about the last second.
// Concurrent appenders share writes and fsyncs (group commit); Enqueue,
// which only copies or buffers, lets a caller hold its own lock for the
// ordering and release it before Wait.
// A failed write or fsync is sticky: every later Append returns it, because
// what reached the disk is no longer known.
//
// Order: Replay returns records in the order their Appends acquired the
// log; a batch passed to one Append is contiguous.
//
// Crashes: a crash during a write can leave a torn record at the very end
// of the file. Replay cuts it off, fsyncs, and reports it in ReplayReport.
// Zeros after the last record are the space allocated ahead, not a torn
// record: appends continue after the last record, and Close cuts the
// zeros off.
// Damage anywhere else, meaning a bad record followed by any intact record,
// is never repaired silently: Replay returns ErrCorrupt naming the file and
// offset. A crash at any point of a rewrite leaves either the old or the
// new generation as the log, each complete.
//
// Compaction: see BeginRewrite for the consistency a caller must provide.
package wal
