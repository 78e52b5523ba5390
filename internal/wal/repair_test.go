package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestRepairCutsAtDamageAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(5)
	dir, data, offsets := writeLog(t, recs)
	path := filepath.Join(dir, genName(1))
	bad := bytes.Clone(data)
	bad[offsets[2]+frameHeaderSize+1] ^= 0x10
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Repair(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open log = %v, want ErrLocked", err)
	}
	if _, err := l.Replay(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Replay = %v, want ErrCorrupt", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err := Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || rep.TornOffset != offsets[2] || rep.DroppedBytes != int64(len(bad))-offsets[2] {
		t.Fatalf("report %+v, want a cut at %d", rep, offsets[2])
	}
	saved, err := os.ReadFile(fmt.Sprintf("%s.corrupt-%d", path, offsets[2]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved, bad[offsets[2]:]) {
		t.Fatal("the saved part differs from what was cut")
	}
	_, got := openT(t, dir, Options{})
	equalRecs(t, got, recs[:2])
}

func TestRepairLeavesHealthyLogAlone(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(3)
	dir, data, _ := writeLog(t, recs)
	rep, err := Repair(dir)
	if err != nil || rep.Truncated || rep.Records != len(recs) {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	after, err := os.ReadFile(filepath.Join(dir, genName(1)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, data) {
		t.Fatal("Repair changed a healthy log")
	}
}

func TestRepairRefusesDamagedHeader(t *testing.T) {
	t.Parallel()
	dir, data, _ := writeLog(t, sampleRecs(2))
	data[0] = 'X'
	if err := os.WriteFile(filepath.Join(dir, genName(1)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Repair(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Repair = %v, want ErrCorrupt", err)
	}
	if _, err := Repair(t.TempDir()); err == nil {
		t.Fatal("Repair of an empty directory succeeded")
	}
}
