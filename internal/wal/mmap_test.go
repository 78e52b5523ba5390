package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lockedBuffer collects log output that may come from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// writeGen writes data as generation 1 of a fresh directory.
func writeGen(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, genName(1)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A log file allocated ahead of its records ends in zeros after a crash:
// replay must load the records without calling the zeros torn, appends
// must continue right after the last record, and Close must cut the
// zeros off. Both with the file mapped and written with write(2).
func TestZeroTailIsFreeSpace(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(5)
	_, data, _ := writeLog(t, recs)
	padded := append(bytes.Clone(data), make([]byte, 1<<20+123)...)
	for _, noMap := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoMap=%v", noMap), func(t *testing.T) {
			t.Parallel()
			dir := writeGen(t, padded)
			var logs lockedBuffer
			l, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoMap: noMap})
			if err != nil {
				t.Fatal(err)
			}
			got, rep, err := replayAll(l)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if rep.Truncated || rep.Bytes != int64(len(data)) || rep.Records != len(recs) {
				t.Fatalf("report %+v, want %d records, %d bytes, nothing torn", rep, len(recs), len(data))
			}
			if out := logs.String(); out != "" {
				t.Errorf("replay of a zero tail logged:\n%s", out)
			}
			equalRecs(t, got, recs)
			extra := []byte("after the zeros")
			if err := l.Append(extra); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			onDisk, err := os.ReadFile(filepath.Join(dir, genName(1)))
			if err != nil {
				t.Fatal(err)
			}
			if want := appendFrame(bytes.Clone(data), extra); !bytes.Equal(onDisk, want) {
				t.Fatalf("file after Close is %d bytes, want the %d bytes of the records and nothing after", len(onDisk), len(want))
			}
			_, all := openT(t, dir, Options{})
			equalRecs(t, all, append(recs, extra))
		})
	}
}

// A crash in the middle of copying a record leaves part of it followed
// by the zeros allocated ahead: that is a torn record, reported and cut
// off like one at the end of the file.
func TestTornRecordBeforeZeroTail(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(5)
	_, data, offsets := writeLog(t, recs)
	last := offsets[len(offsets)-1]
	for _, cut := range []int64{last + 1, last + frameHeaderSize - 1, last + frameHeaderSize + 1, int64(len(data)) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			t.Parallel()
			dir := writeGen(t, append(bytes.Clone(data[:cut]), make([]byte, 64<<10)...))
			var logs lockedBuffer
			l, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			got, rep, err := replayAll(l)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if !rep.Truncated || rep.TornOffset != last || rep.Bytes != last {
				t.Fatalf("report %+v, want the record at %d reported torn", rep, last)
			}
			if !strings.Contains(logs.String(), "torn record") {
				t.Errorf("the torn record was not reported; log:\n%s", logs.String())
			}
			equalRecs(t, got, recs[:len(recs)-1])
			onDisk, err := os.ReadFile(filepath.Join(dir, genName(1)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(onDisk, data[:last]) {
				t.Fatalf("file after Replay is %d bytes, want the %d before the torn record", len(onDisk), last)
			}
		})
	}
}

// mappedLen reports how many bytes of the current file are mapped.
func mappedLen(l *Log) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.mapped)
}

// Appends grow the mapping chunk by chunk. At any moment the file, as a
// crash of the process would leave it, replays to every acknowledged
// record, and Close leaves only the records.
func TestMappingGrowsAcrossChunks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the log maps its file only on Linux")
	}
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{SyncInterval: 1 << 40})
	payload := bytes.Repeat([]byte("m"), 4000)
	var recs [][]byte
	for i := 0; l.Size() < 2*mapChunk+mapChunk/2; i++ {
		r := fmt.Appendf(bytes.Clone(payload), "-%d", i)
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	path := filepath.Join(dir, genName(1))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := mappedLen(l); n != 3*mapChunk || st.Size() != int64(n) {
		t.Fatalf("%d bytes of records: file is %d bytes, %d mapped; want %d of both", l.Size(), st.Size(), n, 3*mapChunk)
	}

	// What another process reads now is what a SIGKILL would leave.
	snap, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	c, err := Open(writeGen(t, snap), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	got, rep, err := replayAll(c)
	if err != nil || rep.Truncated || rep.Bytes != l.Size() {
		t.Fatalf("replay of the running log's file: %v %+v, want %d bytes and nothing torn", err, rep, l.Size())
	}
	if logs.String() != "" {
		t.Errorf("replay logged:\n%s", logs.String())
	}
	equalRecs(t, got, recs)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	size := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != size {
		t.Fatalf("file after Close: %v, %v bytes; want %d", err, st.Size(), size)
	}
	_, again := openT(t, dir, Options{})
	equalRecs(t, again, recs)
}

// A rewrite's new generation is mapped like the first one, and records
// appended after it follow the snapshot.
func TestRewriteMapsNewGeneration(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the log maps its file only on Linux")
	}
	t.Parallel()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	for i := range 100 {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Rewrite(func(emit func([]byte) error) error { return emit([]byte("snapshot")) }); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec(100)); err != nil {
		t.Fatal(err)
	}
	if mappedLen(l) == 0 {
		t.Fatal("the rewritten generation is not mapped")
	}
	snap, err := os.ReadFile(filepath.Join(dir, genName(2)))
	if err != nil {
		t.Fatal(err)
	}
	if want := appendFrame(appendFrame(encodeHeader(), []byte("snapshot")), rec(100)); !bytes.HasPrefix(snap, want) {
		t.Fatalf("new generation starts %q, want %q", snap[:min(len(snap), len(want))], want)
	}
	equalRecs(t, reopen(t, l, dir), [][]byte{[]byte("snapshot"), rec(100)})
}

// Space for the mapping is allocated before it is used, so a full disk
// (here: the file size limit) fails an Append with the error rather than
// killing the process with SIGBUS when a page is touched. Not parallel:
// the limit applies to the whole process.
func TestNoSpaceToGrowTheMappingIsAnError(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the log maps its file only on Linux")
	}
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	if err := l.Append(rec(0)); err != nil {
		t.Fatal(err)
	}
	if n := mappedLen(l); n != mapChunk {
		t.Fatalf("%d bytes mapped, want %d", n, mapChunk)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: mapChunk, Max: old.Max}); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	acked := [][]byte{rec(0)}
	big := bytes.Repeat([]byte("b"), 1<<20)
	var err error
	for i := 0; i < mapChunk/len(big)+1; i++ {
		r := fmt.Appendf(bytes.Clone(big), "%d", i)
		if err = l.Append(r); err != nil {
			break
		}
		acked = append(acked, r)
	}
	err2 := l.Append(rec(1))
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatalf("restore RLIMIT_FSIZE: %v", rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Append beyond the allocated space = %v, want EFBIG", err)
	}
	if err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("Append after the failure = %v, want the sticky %v", err2, err)
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close hid the failure")
	}
	// The write(2) that reported the failure may have written part of
	// its record: a torn tail, which replay cuts like any other.
	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	got, rep, err := replayAll(c)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if rep.Truncated && rep.TornOffset != rep.Bytes {
		t.Fatalf("report %+v: the torn part does not start after the acknowledged records", rep)
	}
	equalRecs(t, got, acked)
}
