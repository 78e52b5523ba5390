package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

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
	defer lock.Close()
	gens, _, err := listDir(dir)
	if err != nil {
		return ReplayReport{}, err
	}
	if len(gens) == 0 {
		return ReplayReport{}, fmt.Errorf("wal: repair: no log in %s", dir)
	}
	path := filepath.Join(dir, genName(gens[len(gens)-1]))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return ReplayReport{}, fmt.Errorf("wal: repair: %w", err)
	}
	defer f.Close()

	rep, err := replayFile(f, nil)
	switch {
	case err == nil && !rep.Truncated:
		return rep, nil
	case err != nil && !errors.Is(err, ErrCorrupt):
		return rep, err
	case err != nil && rep.Bytes < headerSize:
		return rep, fmt.Errorf("wal: repair: the file header itself is damaged, nothing to keep: %w", err)
	}
	st, serr := f.Stat()
	if serr != nil {
		return rep, fmt.Errorf("wal: repair: %w", serr)
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
		return rep, fmt.Errorf("wal: repair: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return rep, fmt.Errorf("wal: repair: fsync %s: %w", path, err)
	}
	return rep, nil
}

// saveRange copies f from offset to its end into a new file at path and
// fsyncs it.
func saveRange(f *os.File, offset int64, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("wal: repair: save damaged part: %w", err)
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
		return fmt.Errorf("wal: repair: save damaged part to %s: %w", path, err)
	}
	return nil
}
