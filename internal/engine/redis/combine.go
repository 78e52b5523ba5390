package redis

import (
	"sync"

	"github.com/sluicehq/sluice/internal/engine"
)

// addCombiner merges concurrent adds to one queue into one script call.
//
// Every add costs Redis a script invocation whatever its size, and under
// concurrency that fixed cost, not the items, bounds throughput. So while
// an add to a queue is in flight, later adds to the same queue (with the
// same policy and bound) gather in an open group, and when the call in
// flight returns, the first of them sends the whole group as one batch.
// The script handles a batch item by item in order, exactly as separate
// calls would, so every caller gets the results of its own items, each
// caller's items stay contiguous and in order, and nothing changes for a
// lone caller: with nothing in flight, an add goes out at once.
type addCombiner struct {
	mu   sync.Mutex
	open map[addKey]*addGroup // gathering joiners
	busy map[addKey]*addGroup // in flight
}

type addKey struct {
	queue  string
	policy engine.Policy
	max    int64
}

type addGroup struct {
	items []string
	done  chan struct{}
	res   []engine.AddResult
	err   error
}

// maxCombined bounds a group, so that one script call stays small.
const maxCombined = 1000

// add runs exec for items, alone or as part of a group; exec must be safe
// to call for a group's merged items and return one result per item.
func (c *addCombiner) add(key addKey, items []string, exec func([]string) ([]engine.AddResult, error)) ([]engine.AddResult, error) {
	c.mu.Lock()
	if c.open == nil {
		c.open, c.busy = map[addKey]*addGroup{}, map[addKey]*addGroup{}
	}
	g := c.open[key]
	if g != nil && len(g.items)+len(items) > maxCombined {
		// The open group is full: go out alone rather than wait for it.
		c.mu.Unlock()
		return exec(items)
	}
	leader := g == nil
	if leader {
		g = &addGroup{done: make(chan struct{})}
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
func (g *addGroup) slice(off, n int) ([]engine.AddResult, error) {
	if len(g.res) < off+n {
		return nil, g.err
	}
	return g.res[off : off+n : off+n], g.err
}
