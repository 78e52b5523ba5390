package redis

import (
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// combiner merges concurrent calls of one kind on one queue into one
// script call (adds, acks, receives).
//
// Every call costs Redis a script invocation whatever its size, and under
// concurrency that fixed cost, not the items, bounds throughput. Up to
// maxInFlight calls per key go out at once, pipelined as without merging;
// past that, later calls for the key gather in an open group, and when a
// call in flight returns, the first of them sends the whole group as one
// batch. The scripts handle a batch element by element in order, exactly
// as separate calls would, so every caller gets the results of its own
// elements, each caller's elements stay contiguous and in order, and a
// caller with few others around never waits.
type combiner[K comparable, R any] struct {
	mu       sync.Mutex
	open     map[K]*group[R]     // gathering joiners
	inflight map[K]int           // calls on the wire
	freed    map[K]chan struct{} // closed when a call of the key returns
	limit    int                 // maxInFlight unless set (tests)
}

// maxInFlight is how many calls per key go out before merging starts.
const maxInFlight = 4

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
	paused  bool
}

type addKey struct {
	queue  string
	policy engine.Policy
	max    int64
	// maxExplicit and policyExplicit are AddParams': they decide how the
	// call meets declared settings, so calls merge only when they agree.
	maxExplicit    bool
	policyExplicit bool
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
		c.open, c.inflight, c.freed = map[K]*group[R]{}, map[K]int{}, map[K]chan struct{}{}
	}
	limit := c.limit
	if limit <= 0 {
		limit = maxInFlight
	}
	g := c.open[key]
	if g != nil && len(g.items)+len(items) > maxCombined {
		// The open group is full: go out alone rather than wait for it.
		c.inflight[key]++
		c.mu.Unlock()
		res, err := exec(items)
		c.finished(key)
		return res, err
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
	// Wait for room on the wire; meanwhile joiners gather in g.
	for c.inflight[key] >= limit {
		ch := c.freed[key]
		if ch == nil {
			ch = make(chan struct{})
			c.freed[key] = ch
		}
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	delete(c.open, key)
	c.inflight[key]++
	c.mu.Unlock()

	g.res, g.err = exec(g.items)
	c.finished(key)
	close(g.done)
	return g.slice(off, len(items))
}

// finished records that a call of key returned and wakes a waiting leader.
func (c *combiner[K, R]) finished(key K) {
	c.mu.Lock()
	if c.inflight[key]--; c.inflight[key] == 0 {
		delete(c.inflight, key)
	}
	if ch := c.freed[key]; ch != nil {
		close(ch)
		delete(c.freed, key)
	}
	c.mu.Unlock()
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
