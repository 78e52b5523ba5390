package wal_test

import (
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/internal/wal"
)

// store is a toy engine: a string map whose every change is one "key=value"
// record. mu is taken in read mode around each change and its Append and
// in write mode for the rewrite's cut, which is what makes the cut exact.
type store struct {
	mu   sync.RWMutex
	dmu  sync.Mutex // guards data among concurrent readers of mu
	log  *wal.Log
	data map[string]string
}

func (s *store) apply(rec []byte) error {
	k, v, ok := strings.Cut(string(rec), "=")
	if !ok {
		return fmt.Errorf("bad record %q", rec)
	}
	s.data[k] = v
	return nil
}

// Set logs then applies a change. Two Sets of one key racing each other
// could apply in the opposite order to the log's; a real engine holds the
// key's (or queue's) own lock across both steps.
func (s *store) Set(k, v string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.log.Append([]byte(k + "=" + v)); err != nil {
		return err // not applied: the change was never accepted
	}
	s.dmu.Lock()
	s.data[k] = v
	s.dmu.Unlock()
	return nil
}

// compact uses the frozen-cut protocol: appends pause only while the map
// is copied; the snapshot is written while they continue.
func (s *store) compact() error {
	s.mu.Lock()
	rw, err := s.log.BeginRewrite()
	snap := make(map[string]string, len(s.data))
	for k, v := range s.data {
		snap[k] = v
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for k, v := range snap {
		if err := rw.Emit([]byte(k + "=" + v)); err != nil {
			return fmt.Errorf("%w (abort: %v)", err, rw.Abort())
		}
	}
	return rw.Commit()
}

func openStore(dir string) (*store, error) {
	l, err := wal.Open(dir, wal.Options{Fsync: wal.FsyncAlways})
	if err != nil {
		return nil, err
	}
	s := &store{log: l, data: map[string]string{}}
	if _, err := l.Replay(s.apply); err != nil {
		return nil, fmt.Errorf("%w (close: %v)", err, l.Close())
	}
	return s, nil
}

func Example() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := openStore(dir)
	if err != nil {
		log.Fatal(err)
	}
	for i := range 100 {
		if err := s.Set("counter", fmt.Sprint(i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.Set("name", "sluice"); err != nil {
		log.Fatal(err)
	}
	before := s.log.Size()
	if err := s.compact(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("smaller after rewrite:", s.log.Size() < before)
	if err := s.log.Close(); err != nil {
		log.Fatal(err)
	}

	s, err = openStore(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer s.log.Close()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s=%s\n", k, s.data[k])
	}
	// Output:
	// smaller after rewrite: true
	// counter=99
	// name=sluice
}
