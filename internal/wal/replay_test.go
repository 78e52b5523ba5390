package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLog builds a closed log holding recs and returns its directory, the
// file's bytes and each record's start offset.
func writeLog(t *testing.T, recs [][]byte) (string, []byte, []int64) {
	t.Helper()
	dir := t.TempDir()
	l, _ := openT(t, dir, Options{})
	offsets := make([]int64, len(recs))
	for i, r := range recs {
		offsets[i] = l.Size()
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, genName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return dir, data, offsets
}

func sampleRecs(n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 10+i*7)
	}
	return recs
}

// replayBytes writes data as the only generation of a fresh directory,
// opens and replays it.
func replayBytes(t testing.TB, data []byte) (*Log, [][]byte, ReplayReport, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, genName(1)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	recs, rep, err := replayAll(l)
	return l, recs, rep, err
}

func TestTornTailAtEveryOffset(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(5)
	_, data, offsets := writeLog(t, recs)
	last := offsets[len(offsets)-1]
	for cut := last + 1; cut < int64(len(data)); cut++ {
		l, got, rep, err := replayBytes(t, data[:cut])
		if err != nil {
			t.Fatalf("cut at %d: Replay: %v", cut, err)
		}
		equalRecs(t, got, recs[:len(recs)-1])
		want := ReplayReport{File: rep.File, Records: len(recs) - 1, Bytes: last,
			Truncated: true, TornOffset: last, DroppedBytes: cut - last}
		if rep != want {
			t.Fatalf("cut at %d: report %+v, want %+v", cut, rep, want)
		}
		// The file is cut back, so appending continues cleanly after the
		// last intact record.
		if err := l.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		after, err := os.ReadFile(rep.File)
		if err != nil {
			t.Fatal(err)
		}
		_, again, rep2, err := replayBytes(t, after)
		if err != nil || rep2.Truncated {
			t.Fatalf("cut at %d: replay after repair: %v %+v", cut, err, rep2)
		}
		equalRecs(t, again, append(recs[:len(recs)-1:len(recs)-1], []byte("after")))
	}
}

func TestCleanCutsAreNotTorn(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(4)
	_, data, offsets := writeLog(t, recs)
	for i, off := range append(offsets, int64(len(data))) {
		_, got, rep, err := replayBytes(t, data[:off])
		if err != nil || rep.Truncated {
			t.Fatalf("cut at record boundary %d: %v %+v", off, err, rep)
		}
		equalRecs(t, got, recs[:i])
	}
}

func TestDamagedLastRecordIsTorn(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(3)
	_, data, offsets := writeLog(t, recs)
	last := offsets[len(offsets)-1]
	for pos := last; pos < int64(len(data)); pos++ {
		bad := bytes.Clone(data)
		bad[pos] ^= 0x40
		_, got, rep, err := replayBytes(t, bad)
		if err != nil {
			t.Fatalf("flip at %d: %v", pos, err)
		}
		if !rep.Truncated || rep.TornOffset != last {
			t.Fatalf("flip at %d: report %+v", pos, rep)
		}
		equalRecs(t, got, recs[:len(recs)-1])
	}
}

func TestFlippedByteInMiddleIsAnError(t *testing.T) {
	t.Parallel()
	recs := sampleRecs(6)
	_, data, offsets := writeLog(t, recs)
	// Every byte of every record but the last: damage followed by intact
	// data must never load as a shorter log.
	for k := 0; k < len(recs)-1; k++ {
		for pos := offsets[k]; pos < offsets[k+1]; pos++ {
			bad := bytes.Clone(data)
			bad[pos] ^= 0x01
			_, _, _, err := replayBytes(t, bad)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip at %d (record %d): err = %v, want ErrCorrupt", pos, k, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("offset %d", offsets[k])) || !strings.Contains(msg, genName(1)) {
				t.Fatalf("flip at %d: error %q does not name the file and offset %d", pos, msg, offsets[k])
			}
		}
	}
}

func TestCorruptLogIsLeftUntouched(t *testing.T) {
	t.Parallel()
	_, data, offsets := writeLog(t, sampleRecs(3))
	bad := bytes.Clone(data)
	bad[offsets[1]+frameHeaderSize] ^= 0xFF
	l, _, _, err := replayBytes(t, bad)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	onDisk, rerr := os.ReadFile(filepath.Join(l.dir, genName(1)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !bytes.Equal(onDisk, bad) {
		t.Fatal("Replay modified a corrupt log")
	}
}

func TestBadHeader(t *testing.T) {
	t.Parallel()
	good := encodeHeader()
	wrongVersion := bytes.Clone(good)
	wrongVersion[8] = 9
	for name, data := range map[string][]byte{
		"empty":         {},
		"short":         good[:10],
		"magic":         append([]byte("NOTALOG!"), good[8:]...),
		"wrong version": wrongVersion,
	} {
		if _, _, _, err := replayBytes(t, data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestReplayCallbackError(t *testing.T) {
	t.Parallel()
	dir, _, offsets := writeLog(t, sampleRecs(3))
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	boom := errors.New("boom")
	n := 0
	_, err = l.Replay(func([]byte) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", offsets[1])) {
		t.Fatalf("err = %v, want boom at offset %d", err, offsets[1])
	}
}

// FuzzReplay feeds arbitrary files to Replay. It must never panic, and it
// must either fail or load a prefix, cutting a torn tail so that a second
// Replay of the repaired file loads the same records with nothing torn.
// The same file followed by pad zero bytes, as the log leaves it when it
// allocated space ahead of its records, must load those records too (a
// torn record may become whole only if its missing bytes were zeros), and
// a file that loaded whole must load whole again, with appends continuing
// at the same offset and nothing reported.
func FuzzReplay(f *testing.F) {
	header := encodeHeader()
	f.Add(header, uint16(0))
	f.Add([]byte{}, uint16(0))
	var valid []byte
	valid = append(valid, header...)
	for _, r := range sampleRecs(4) {
		valid = appendFrame(valid, r)
	}
	f.Add(valid, uint16(0))
	f.Add(valid, uint16(4096))
	f.Add(valid[:len(valid)-3], uint16(0))
	f.Add(valid[:len(valid)-3], uint16(100))
	f.Add(valid[:headerSize+3], uint16(9))
	f.Add(appendFrame(bytes.Clone(header), nil), uint16(1))
	mid := bytes.Clone(valid)
	mid[headerSize+frameHeaderSize+2] ^= 1
	f.Add(mid, uint16(0))
	f.Add(mid, uint16(64))

	f.Fuzz(func(t *testing.T, data []byte, pad uint16) {
		l, recs, rep, err := replayBytes(t, data)
		if err != nil {
			return
		}
		if rep.Records != len(recs) {
			t.Fatalf("report counts %d records, callback saw %d", rep.Records, len(recs))
		}
		if rep.Bytes > int64(len(data)) || !bytes.HasPrefix(data, mustRead(t, l)) {
			t.Fatalf("repaired file is not a prefix of the input (report %+v)", rep)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		_, again, rep2, err := replayBytes(t, mustRead(t, l))
		if err != nil || rep2.Truncated {
			t.Fatalf("second replay: %v %+v", err, rep2)
		}
		equalRecs(t, again, recs)

		padded := append(bytes.Clone(data), make([]byte, pad)...)
		pl, precs, prep, err := replayBytes(t, padded)
		if err != nil {
			t.Fatalf("replay with %d zero bytes after: %v", pad, err)
		}
		if len(precs) < len(recs) {
			t.Fatalf("replay with %d zero bytes after loaded %d records, without %d", pad, len(precs), len(recs))
		}
		equalRecs(t, precs[:len(recs)], recs)
		if !rep.Truncated && (prep.Truncated || prep.Bytes != rep.Bytes || len(precs) != len(recs)) {
			t.Fatalf("zero bytes after an intact file changed the replay: %+v, was %+v", prep, rep)
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, pl); int64(len(got)) != prep.Bytes {
			t.Fatalf("file after Close is %d bytes, want the %d of its records", len(got), prep.Bytes)
		}
	})
}

func mustRead(t testing.TB, l *Log) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(l.dir, genName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

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
