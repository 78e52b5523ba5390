// Package embedded is the embedded engine: every capability of the Redis
// engine, with the same semantics, held in process memory, and durable
// through an append-only log when given a directory.
//
// Keys follow the Redis layout (package keyspace), in one key space shared
// by queues, dead-letter queues, cache entries and locks, so that the same
// names collide or not as they would on Redis: a queue's dead-letter queues
// are readable as queues ("dlq:Q"), a cache string where a list is expected
// is ErrWrongType, and an emptied list stops existing.
//
// Concurrency: the key space is sharded; a shard's lock is held only to
// find or create a key's object, and each object has its own mutex, so
// unrelated queues never serialise. A call touching several keys (an add
// that moves items to the overflow DLQ) locks them in one global order:
// shorter keys first, then by bytes. A queue's DLQ keys are always longer
// than the queue's own key, so a queue is always locked before its DLQs.
//
// Durability (Options.Dir): every call that changes state appends one
// record of its changes to the log (package wal) before it returns, while
// it still holds the locks of the keys it changed, so the log orders the
// changes of each key as they happened; with wal.FsyncAlways the record is
// on disk first. New replays the log. Lease deadlines and cache expiries
// are logged as absolute times, so an item leased before a crash comes
// back once its lease has run out. When the log grows past twice the size
// of the last snapshot (and past CompactMinBytes), the engine rewrites it
// from a snapshot of its live state, taken while changes are held off just
// long enough to copy the state in memory; changes made while the snapshot
// is written follow it in the new log; a compaction that fails is logged
// and retried after a pause that doubles with each failure.
//
// A failed log write makes the engine read-only: every later change is
// refused before it touches anything, with an error that wraps the log's
// failure, and Health reports it. The call whose write failed has already
// applied its change in memory; a pop is rolled back (its item stays at the
// head), any other change stays in memory without being durable, and its
// error says so. Reads keep working; reopening the engine recovers what
// the log holds.
package embedded

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/wal"
)

var _ engine.Engine = (*Engine)(nil)

// Options configure the engine.
type Options struct {
	// Dir makes the engine durable: every change is logged there before the
	// call returns. "" (the default) keeps everything in memory only.
	Dir string
	// Fsync is wal.FsyncEverySec (the zero value) or wal.FsyncAlways
	// (every change fsynced before its call returns); the log refuses
	// any other value. Ignored without Dir.
	Fsync wal.FsyncPolicy
	// Now is the time source for lease deadlines, cache TTLs, lock expiry
	// and idempotency windows, so that a test can move time forward instead
	// of waiting for it. Default: time.Now. Blocking timeouts (a receive or
	// pop that waits for an item) always use real time.
	Now func() time.Time
	// Keys is the key layout; only Prefix matters to this engine.
	Keys keyspace.Space
	// SweepInterval is how often expired cache entries are swept out.
	// Default 1s.
	SweepInterval time.Duration
	// CompactMinBytes is the smallest log that is ever compacted.
	// Default 64 MiB.
	CompactMinBytes int64
	// Logger receives what the durable engine reports: what replay found
	// at open (a torn tail cut off, an unfinished record dropped), failed
	// compactions and log failures. Default: discard.
	Logger *slog.Logger

	// noMap makes the log write its records with write(2), for tests that
	// make writes fail with a file size limit, which copies into a mapping
	// of space already allocated do not meet.
	noMap bool
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	if o.CompactMinBytes <= 0 {
		o.CompactMinBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Keys = keyspace.Space{Prefix: o.Keys.Prefix}
	return o
}

const numShards = 64

type shard struct {
	mu sync.RWMutex
	m  map[string]*object
}

// Engine is the embedded engine.
type Engine struct {
	opts  Options
	keys  keyspace.Space
	clock func() time.Time
	seed  maphash.Seed

	shards [numShards]shard

	namesMu sync.Mutex
	names   map[string]struct{}

	// stats holds each queue's counters by list key (stats.go).
	stats sync.Map

	hub hub

	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup

	store *store // nil when not durable
}

// New creates an engine; with opts.Dir it replays the log found there.
func New(opts Options) (*Engine, error) {
	opts = opts.withDefaults()
	e := &Engine{
		opts:  opts,
		keys:  opts.Keys,
		clock: opts.Now,
		seed:  maphash.MakeSeed(),
		names: make(map[string]struct{}),
		done:  make(chan struct{}),
	}
	for i := range e.shards {
		e.shards[i].m = make(map[string]*object)
	}
	e.hub.init()
	if opts.Dir != "" {
		st, err := openStore(e, opts)
		if err != nil {
			return nil, err
		}
		e.store = st
	}
	e.wg.Add(1)
	go e.sweeper()
	return e, nil
}

// Kind reports "embedded".
func (e *Engine) Kind() string { return "embedded" }

// Health reports the engine as connected while it is open.
func (e *Engine) Health(ctx context.Context) engine.Health {
	if e.closed.Load() {
		return engine.Health{Status: "unhealthy", Connected: false, Error: engine.ErrClosed.Error()}
	}
	if e.store != nil {
		if err := e.store.failed(); err != nil {
			return engine.Health{Status: "unhealthy", Connected: false, Error: err.Error()}
		}
	}
	h := engine.Health{Status: "healthy", Connected: true}
	if e.store == nil {
		h.Warnings = []string{"the embedded engine keeps its queues in memory (mem://): a restart loses every item; use file://DIR (sluice serve --data-dir) to keep them"}
	}
	return h
}

// Close wakes every blocked call with ErrClosed, ends subscriptions, stops
// the sweeper and, when durable, flushes and closes the log.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(e.done)
	e.forEachObject(func(o *object) {
		o.mu.Lock()
		if o.q != nil {
			o.q.closeAll()
		}
		o.mu.Unlock()
	})
	e.hub.closeAll()
	e.wg.Wait()
	if e.store != nil {
		// Writers hold the gate while they log; taking it waits them out.
		e.store.gate.Lock()
		defer e.store.gate.Unlock()
		return e.store.close()
	}
	return nil
}

// checkOpen fails calls made after Close with the bare sentinel: the caller
// names the operation (op documents the call site).
func (e *Engine) checkOpen(op string) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	return nil
}

func (e *Engine) now() int64 { return e.clock().UnixNano() }

func (e *Engine) shardOf(key string) *shard {
	return &e.shards[maphash.String(e.seed, key)%numShards]
}

// object is everything stored under one key: a list, or a string, plus the
// delivery state of the queue whose list this key is.
type object struct {
	key  string
	mu   sync.Mutex
	dead bool // removed from its shard; look the key up again

	list deque

	hasStr   bool
	str      string
	expireAt int64 // unix ns, 0: no expiry

	q *queueState // leases and waiters; nil until first needed
}

// strAlive reports whether the object holds an unexpired string.
func (o *object) strAlive(now int64) bool {
	return o.hasStr && (o.expireAt == 0 || now < o.expireAt)
}

// isStr is strAlive reading the clock only when it matters: queue calls
// check every key for a string, and almost never find one.
func (e *Engine) isStr(o *object) bool {
	return o.hasStr && (o.expireAt == 0 || e.now() < o.expireAt)
}

// bare reports whether the object holds nothing worth keeping.
func (o *object) bare(now int64) bool {
	return o.list.Len() == 0 && !o.strAlive(now) && (o.q == nil || o.q.idle())
}

func (e *Engine) lookup(key string, create bool) *object {
	s := e.shardOf(key)
	s.mu.RLock()
	o := s.m[key]
	s.mu.RUnlock()
	if o != nil || !create {
		return o
	}
	s.mu.Lock()
	if o = s.m[key]; o == nil {
		o = &object{key: key}
		s.m[key] = o
	}
	s.mu.Unlock()
	return o
}

// lock1 returns key's object locked, or nil when it does not exist and
// create is false.
func (e *Engine) lock1(key string, create bool) *object {
	for {
		o := e.lookup(key, create)
		if o == nil {
			return nil
		}
		o.mu.Lock()
		if !o.dead {
			return o
		}
		o.mu.Unlock()
	}
}

// lockN locks the objects of keys (created as needed) in the global lock
// order and returns them in the order of keys; duplicate keys share one
// object and one lock.
func (e *Engine) lockN(keys ...string) []*object {
	order := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	sort.Slice(order, func(i, j int) bool {
		if len(order[i]) != len(order[j]) {
			return len(order[i]) < len(order[j])
		}
		return order[i] < order[j]
	})
	for {
		objs := make(map[string]*object, len(order))
		locked := make([]*object, 0, len(order))
		retry := false
		for _, k := range order {
			o := e.lookup(k, true)
			o.mu.Lock()
			locked = append(locked, o)
			if o.dead {
				retry = true
				break
			}
			objs[k] = o
		}
		if retry {
			for _, o := range locked {
				o.mu.Unlock()
			}
			continue
		}
		out := make([]*object, len(keys))
		for i, k := range keys {
			out[i] = objs[k]
		}
		return out
	}
}

// unlockN unlocks objects returned by lockN (each distinct one once).
func unlockN(objs []*object) {
	for i, o := range objs {
		dup := false
		for _, p := range objs[:i] {
			if p == o {
				dup = true
				break
			}
		}
		if !dup {
			o.mu.Unlock()
		}
	}
}

// forEachObject calls fn for every object, without holding a shard lock
// while fn runs.
func (e *Engine) forEachObject(fn func(o *object)) {
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.RLock()
		objs := make([]*object, 0, len(s.m))
		for _, o := range s.m {
			objs = append(objs, o)
		}
		s.mu.RUnlock()
		for _, o := range objs {
			fn(o)
		}
	}
}

// tryRemove drops o from its shard when it holds nothing. The caller holds
// neither lock; objects busy elsewhere are left for a later pass.
func (e *Engine) tryRemove(o *object) {
	s := e.shardOf(o.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !o.mu.TryLock() {
		return
	}
	defer o.mu.Unlock()
	if o.dead || !o.bare(e.now()) {
		return
	}
	o.dead = true
	if s.m[o.key] == o {
		delete(s.m, o.key)
	}
}

// sweeper expires cache entries in the background, sampling each shard the
// way Redis's active expiry does, so that a key never read again does not
// stay in memory; it drops the objects of drained queues the same way.
func (e *Engine) sweeper() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
			e.sweep()
			if e.store != nil {
				e.store.maybeCompact()
			}
		}
	}
}

const sweepSample = 64

func (e *Engine) sweep() {
	for i := range e.shards {
		s := &e.shards[i]
		for round := 0; round < 16; round++ {
			now := e.now()
			var victims []*object
			sampled := 0
			s.mu.RLock()
			for _, o := range s.m {
				if sampled == sweepSample {
					break
				}
				sampled++
				if o.mu.TryLock() {
					if o.hasStr && o.expireAt != 0 && now >= o.expireAt {
						o.hasStr, o.str, o.expireAt = false, "", 0
					}
					if o.q != nil {
						o.q.idemExpire(now)
					}
					// Expired entries and drained queues alike: a key
					// that holds nothing costs nothing once dropped.
					if o.bare(now) {
						victims = append(victims, o)
					}
					o.mu.Unlock()
				}
			}
			s.mu.RUnlock()
			for _, o := range victims {
				e.tryRemove(o)
			}
			if len(victims)*4 < sweepSample {
				break
			}
		}
	}
}

// registerQueue records name for QueueNames. It reports whether the name
// is new.
func (e *Engine) registerQueue(name string) bool {
	e.namesMu.Lock()
	defer e.namesMu.Unlock()
	if _, ok := e.names[name]; ok {
		return false
	}
	e.names[name] = struct{}{}
	return true
}

// QueueNames lists every queue added to, sorted.
func (e *Engine) QueueNames(ctx context.Context) ([]string, error) {
	if err := e.checkOpen("queue names"); err != nil {
		return nil, err
	}
	e.namesMu.Lock()
	out := make([]string, 0, len(e.names))
	for n := range e.names {
		out = append(out, n)
	}
	e.namesMu.Unlock()
	sort.Strings(out)
	return out, nil
}

// listKey is keyspace's Queue(name).List without building the queue's
// other keys: the hot paths need only this one. A test holds it to
// keyspace's answer.
func (e *Engine) listKey(name string) string {
	if e.keys.Prefix == "" {
		return name
	}
	return e.keys.Prefix + name
}

// queueKeys returns the keys of queue name, cached in the queue's state.
func (e *Engine) queueKeys(o *object, name string) *keyspace.Queue {
	q := o.queue()
	if q.keys == nil || q.keys.Name != name {
		k := e.keys.Queue(name)
		q.keys = &k
	}
	return q.keys
}

// lockAfter locks key's object while the caller holds objects whose keys
// are all shorter, which the global lock order allows (a queue's DLQ keys
// are longer than its own key).
func (e *Engine) lockAfter(key string) *object { return e.lock1(key, true) }

// wrongType is the error of a call that found key holding another kind of
// value. It is the bare sentinel, as the Redis engine's: the public layer
// names the operation and the queue or key; op and key document the call
// site.
func wrongType(op, key string) error {
	return engine.ErrWrongType
}
