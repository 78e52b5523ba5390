package redis

import (
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// combiner merges concurrent calls of one kind on one queue into one
// script call (adds, acks).
//
// Every call costs Redis a script invocation whatever its size, and under
// concurrency that fixed cost, not the items, bounds throughput. So while
// a call for a key is in flight, later calls for the same key gather in an
// open group, and when the call in flight returns, the first of them sends
// the whole group as one batch. The scripts handle a batch element by
// element in order, exactly as separate calls would, so every caller gets
// the results of its own elements, each caller's elements stay contiguous
// and in order, and nothing changes for a lone caller: with nothing in
// flight, a call goes out at once.
type combiner[K comparable, R any] struct {
	mu   sync.Mutex
	open map[K]*group[R] // gathering joiners
	busy map[K]*group[R] // in flight
}

// addCombiner merges adds with the same queue, policy and bound.
type addCombiner = combiner[addKey, engine.AddResult]

// ackCombiner merges acks of one queue.
type ackCombiner = combiner[string, bool]

// receiveCombiner merges receives of one queue with the same lease terms;
// each caller's requested count is that many slots of the merged call.
type receiveCombiner = combiner[receiveKey, receiveSlot]

type receiveKey struct {
	queue         string
	lease         time.Duration
	maxDeliveries int
	blocking      bool
}

// receiveSlot is one requested delivery of a merged receive: filled (ok)
// or not, with the merged call's time to the next due lease.
type receiveSlot struct {
	d       engine.Delivery
	ok      bool
	nextDue time.Duration
}

type addKey struct {
	queue  string
	policy engine.Policy
	max    int64
}

type group[R any] struct {
	items []string
	done  chan struct{}
	res   []R
	err   error
}

// maxCombined bounds a group, so that one script call stays small.
const maxCombined = 1000

// do runs exec for items, alone or as part of a group; exec must be safe
// to call for a group's merged items and return one result per item.
func (c *combiner[K, R]) do(key K, items []string, exec func([]string) ([]R, error)) ([]R, error) {
	c.mu.Lock()
	if c.open == nil {
		c.open, c.busy = map[K]*group[R]{}, map[K]*group[R]{}
	}
	g := c.open[key]
	if g != nil && len(g.items)+len(items) > maxCombined {
		// The open group is full: go out alone rather than wait for it.
		c.mu.Unlock()
		return exec(items)
	}
	leader := g == nil
	if leader {
		g = &group[R]{done: make(chan struct{})}
		c.open[key] = g
	}
	off := len(g.items)
	g.items = append(g.items, items...)
	if !leader {
		c.mu.Unlock()
		<-g.done
		return g.slice(off, len(items))
	}
	prev := c.busy[key]
	c.mu.Unlock()
	if prev != nil {
		<-prev.done // while it is in flight, joiners gather in g
	}
	c.mu.Lock()
	delete(c.open, key)
	c.busy[key] = g
	c.mu.Unlock()

	g.res, g.err = exec(g.items)

	c.mu.Lock()
	if c.busy[key] == g {
		delete(c.busy, key)
	}
	c.mu.Unlock()
	close(g.done)
	return g.slice(off, len(items))
}

// slice returns one caller's share of the group's outcome. An error
// without results (nothing was applied, or it is unknown whether it was)
// goes to every caller; results that come with an error (applied, but not
// confirmed by replicas) are shared out with it.
func (g *group[R]) slice(off, n int) ([]R, error) {
	if len(g.res) < off+n {
		return nil, g.err
	}
	return g.res[off : off+n : off+n], g.err
}
