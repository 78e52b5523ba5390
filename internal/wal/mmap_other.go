//go:build !linux

package wal

import (
	"errors"
	"os"
)

var errNoMap = errors.New("mapping the log is only done on Linux")

// Elsewhere the log is always written with write(2).
func mapFile(*os.File, int64) ([]byte, error)               { return nil, errNoMap }
func growMap(_ *os.File, m []byte, _ int64) ([]byte, error) { return m, errNoMap }
func unmapFile([]byte) error                                { return nil }
func syncData(f *os.File) error                             { return f.Sync() }
