package wal

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// A generation created in an empty directory, or by a rewrite, is written
// under its temporary name and renamed into place; messages must name the
// file an operator will find.
func TestMessagesNamePublishedFile(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	l, err := Open(dir, Options{Fsync: FsyncAlways, Logger: logger})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	rep, err := l.Replay(nil)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if want := filepath.Join(dir, genName(1)); rep.File != want {
		t.Errorf("ReplayReport.File = %q, want %q", rep.File, want)
	}
	if err := l.Append([]byte("a")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := l.Rewrite(func(emit func([]byte) error) error { return emit([]byte("a")) }); err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if strings.Contains(logs.String(), tmpSuffix) {
		t.Errorf("rewrite notice names the temporary file:\n%s", logs.String())
	}
	// Make the next write fail: its error must name generation 2 as it
	// now is on disk.
	l.fileMu.Lock()
	_ = l.file.Close()
	l.fileMu.Unlock()
	err = l.Append([]byte("b"))
	if err == nil {
		t.Fatal("Append to a closed file succeeded")
	}
	want := filepath.Join(dir, genName(2))
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), tmpSuffix) {
		t.Errorf("Append error = %q, want it to name %q", err, want)
	}
	_ = l.Close()
}

func TestDropTail(t *testing.T) {
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{Fsync: FsyncAlways})
	if err := l.Append([]byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l2, err := Open(dir, Options{Fsync: FsyncAlways})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l2.Close()
	var offs []int64
	if _, err := l2.ReplayOffsets(func(off int64, rec []byte) error {
		offs = append(offs, off)
		return nil
	}); err != nil {
		t.Fatalf("ReplayOffsets: %v", err)
	}
	if len(offs) != 3 || offs[0] != headerSize {
		t.Fatalf("offsets = %v, want 3 starting at %d", offs, headerSize)
	}
	before := l2.Size()
	dropped, err := l2.DropTail(offs[1])
	if err != nil {
		t.Fatalf("DropTail: %v", err)
	}
	if dropped != before-offs[1] || l2.Size() != offs[1] {
		t.Errorf("DropTail dropped %d bytes, size now %d; want %d dropped, size %d", dropped, l2.Size(), before-offs[1], offs[1])
	}
	if err := l2.Append([]byte("d")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, err := l2.DropTail(offs[0]); err == nil {
		t.Error("DropTail after Append succeeded")
	}
	got := reopen(t, l2, dir)
	if len(got) != 2 || string(got[0]) != "a" || string(got[1]) != "d" {
		t.Errorf("records after DropTail and Append = %q, want [a d]", got)
	}
}

func TestDropTailBeforeReplay(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	if _, err := l.DropTail(headerSize); !errors.Is(err, ErrNotReplayed) {
		t.Errorf("DropTail before Replay = %v, want ErrNotReplayed", err)
	}
}
