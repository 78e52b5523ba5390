package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

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
		return nil, fmt.Errorf("wal: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (close the other Log or stop the process using it)", ErrLocked, path)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", path, err)
	}
	return f, nil
}

// listDir returns the complete generations in dir, oldest first, and the
// names of unfinished rewrite files. Unrelated files are left alone.
func listDir(dir string) (gens []uint64, temps []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: list directory: %w", err)
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
		return nil, fmt.Errorf("wal: create %s: %w", path, err)
	}
	if _, err := f.Write(encodeHeader()); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("wal: write header of %s: %w", path, err)
	}
	return f, nil
}

// publish makes the finished temp file of generation g the current log:
// fsync the data, rename, then fsync the directory so the rename itself
// survives a crash. Until the rename the previous generation is current.
func publish(dir string, g uint64, f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: fsync %s: %w", f.Name(), err)
	}
	if err := os.Rename(filepath.Join(dir, tmpName(g)), filepath.Join(dir, genName(g))); err != nil {
		return fmt.Errorf("wal: publish generation %d: %w", g, err)
	}
	return syncDir(dir)
}

// createGeneration creates an empty, published generation g and returns it
// open for appending.
func createGeneration(dir string, g uint64) (*os.File, error) {
	f, err := createTemp(dir, g)
	if err != nil {
		return nil, err
	}
	if err := publish(dir, g, f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: open directory for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: fsync directory: %w", err)
	}
	return nil
}
