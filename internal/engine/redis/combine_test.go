package redis

import (
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

// fakeExec numbers items in arrival order, so each caller can check that
// it got the results of its own items, contiguous and in order.
type fakeExec struct {
	mu      sync.Mutex
	calls   [][]string
	next    int64
	release chan struct{} // when set, the first call waits on it
}

func (f *fakeExec) exec(items []string) ([]engine.AddResult, error) {
	f.mu.Lock()
	first := len(f.calls) == 0
	f.calls = append(f.calls, append([]string(nil), items...))
	f.mu.Unlock()
	if first && f.release != nil {
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]engine.AddResult, len(items))
	for i := range items {
		f.next++
		out[i] = engine.AddResult{Accepted: true, QueueLength: f.next}
	}
	return out, nil
}

func (c *combiner[K, R]) openSize(k K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.open[k]; g != nil {
		return len(g.items)
	}
	return 0
}

func TestCombinerGroupsAddsWhileOneIsInFlight(t *testing.T) {
	c := addCombiner{limit: 1}
	f := &fakeExec{release: make(chan struct{})}
	key := addKey{queue: "q", policy: engine.PolicyDLQ, max: 10}
	var wg sync.WaitGroup
	results := make([][]engine.AddResult, 11)
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0], _ = c.do(key, []string{"first"}, f.exec)
	}()
	// Wait until the first add is in flight, then start ten more, of two
	// items each; they gather while the first is held.
	for {
		f.mu.Lock()
		n := len(f.calls)
		f.mu.Unlock()
		if n == 1 {
			break
		}
	}
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := strconv.Itoa(i)
			results[i], _ = c.do(key, []string{s + "a", s + "b"}, f.exec)
		}()
	}
	for c.openSize(key) != 20 {
		runtime.Gosched()
	}
	close(f.release)
	wg.Wait()
	if len(f.calls) != 2 || len(f.calls[1]) != 20 {
		t.Fatalf("calls: %d, second of %d items; want 2 calls, the second of 20", len(f.calls), len(f.calls[1]))
	}
	for i := 1; i <= 10; i++ {
		r := results[i]
		if len(r) != 2 || r[1].QueueLength != r[0].QueueLength+1 {
			t.Fatalf("caller %d got %+v", i, r)
		}
		// Its results are those of its own items in the merged call.
		pos := int(r[0].QueueLength) - 2 // minus the first call's item, zero-based
		if f.calls[1][pos] != strconv.Itoa(i)+"a" || f.calls[1][pos+1] != strconv.Itoa(i)+"b" {
			t.Fatalf("caller %d's results point at %q, %q", i, f.calls[1][pos], f.calls[1][pos+1])
		}
	}
}

func TestCombinerLoneAddGoesOutAtOnce(t *testing.T) {
	var c addCombiner
	f := &fakeExec{}
	key := addKey{queue: "q"}
	for i := range 3 {
		r, err := c.do(key, []string{"x"}, f.exec)
		if err != nil || len(r) != 1 || r[0].QueueLength != int64(i+1) {
			t.Fatalf("add %d: %+v %v", i, r, err)
		}
	}
	if len(f.calls) != 3 {
		t.Fatalf("%d calls, want 3", len(f.calls))
	}
}

func TestCombinerSharesErrors(t *testing.T) {
	var c addCombiner
	boom := errors.New("connection lost")
	_, err := c.do(addKey{queue: "q"}, []string{"x"}, func([]string) ([]engine.AddResult, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	applied := []engine.AddResult{{Accepted: true, QueueLength: 1}}
	r, err := c.do(addKey{queue: "q"}, []string{"x"}, func([]string) ([]engine.AddResult, error) { return applied, boom })
	if !errors.Is(err, boom) || len(r) != 1 {
		t.Fatalf("applied with error: %+v %v", r, err)
	}
}

func TestCombinerPipelinesUpToItsLimit(t *testing.T) {
	c := addCombiner{limit: 3}
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var mu sync.Mutex
	var sizes []int
	exec := func(items []string) ([]engine.AddResult, error) {
		mu.Lock()
		sizes = append(sizes, len(items))
		mu.Unlock()
		started <- struct{}{}
		<-release
		return make([]engine.AddResult, len(items)), nil
	}
	key := addKey{queue: "q"}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.do(key, []string{"x"}, exec); err != nil {
				t.Error(err)
			}
		}()
	}
	// Three calls go out at once, none waiting for another.
	for range 3 {
		<-started
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.do(key, []string{"y"}, exec); err != nil {
				t.Error(err)
			}
		}()
	}
	for c.openSize(key) != 4 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if len(sizes) != 4 || sizes[3] != 4 {
		t.Fatalf("call sizes %v, want three single calls then one of 4", sizes)
	}
}
