// Package keyspace builds every key name Sluice uses, in one place, so that
// the layout of docs/compat.md and its Redis Cluster variant stay in step.
//
// Standalone layout (docs/compat.md), for a queue Q:
//
//	Q                      list   the queue (RPUSH at the tail, LPOP at the head)
//	dlq:overflow:Q         list   overflow dead-letter queue
//	dlq:Q                  list   failed-job dead-letter queue
//	sluice#leases:Q        zset   delivery id -> lease deadline (ms)
//	sluice#jobs:Q          hash   delivery state of leased items, and of leased batches
//	sluice#batches:Q       zset   "<seq>.<token>" of a leased batch -> lease deadline (ms)
//	sluice#handoff:Q       list   items moved out by a blocking receive, not yet leased
//	sluice#seq:Q           string delivery id counter
//	sluice#settings:Q      hash   declared settings and the paused flag
//	sluice#sched:Q         zset   scheduled items, "<seq>:<item>" -> not-before (ms)
//	sluice#stats:Q         hash   counters of the queue (engine.QueueStats)
//	sluice#wake:Q          list   wakes consumers waiting for a paused queue's
//	                              resume (holds one element once resumed)
//	sluice#idem:Q:K        string record of the add made with idempotency key K
//	                              (expires with the key's window)
//
// In cluster mode the queue's name is wrapped in a hash tag, {Q}, in every
// key above (Q itself becomes "{Q}"), so that one queue's keys share a slot
// and each Lua script touches a single slot. A name that already carries a
// hash tag ("{user}:jobs") keeps it as it is.
//
// Queue names may not contain '#', so Sluice's own keys can never collide
// with a user's queue, and may not start with a dead-letter prefix
// ("dlq:", "overflow:"), so a queue can never be, or share its failed
// DLQ with, another queue's DLQ (see ValidateQueueName).
//
// Cache keys and lock names given to the library are raw key names in the
// same key space (docs/compat.md: a cache entry is the key itself), so that the
// original service's entries stay readable. The HTTP service instead
// gives each kind its own namespace, with a '#' that no queue name can
// hold:
//
//	cache#K                string the HTTP cache entry K (ServiceCacheKey)
//	lock#L                 string the HTTP lock L (ServiceLockName), and
//	sluice#fence:lock#L    string its fencing counter
//
// so that no cache key or lock name given over HTTP can address a queue, a
// DLQ, Sluice's own keys, or an entry of the other kind.
package keyspace

import (
	"fmt"
	"strings"
)

// MaxNameLen bounds queue names (names.go has the other names' limits).
const MaxNameLen = 200

// Space builds keys. The zero value is the standalone, unprefixed layout.
type Space struct {
	// Prefix is prepended to every key (off by default, as in docs/compat.md).
	Prefix string
	// Cluster wraps names in a hash tag.
	Cluster bool
}

// Queue holds the keys of one queue.
type Queue struct {
	Name        string
	List        string
	OverflowDLQ string
	FailedDLQ   string
	Leases      string
	Jobs        string
	Batches     string
	Handoff     string
	Seq         string
	Settings    string
	Wake        string
	Scheduled   string
	Stats       string
}

// Queue returns the keys of queue name.
func (s Space) Queue(name string) Queue {
	t := s.tag(name)
	p := s.Prefix
	return Queue{
		Name:        name,
		List:        p + t,
		OverflowDLQ: p + "dlq:overflow:" + t,
		FailedDLQ:   p + "dlq:" + t,
		Leases:      p + "sluice#leases:" + t,
		Jobs:        p + "sluice#jobs:" + t,
		Batches:     p + "sluice#batches:" + t,
		Handoff:     p + "sluice#handoff:" + t,
		Seq:         p + "sluice#seq:" + t,
		Settings:    p + "sluice#settings:" + t,
		Wake:        p + "sluice#wake:" + t,
		Scheduled:   p + "sluice#sched:" + t,
		Stats:       p + "sluice#stats:" + t,
	}
}

// Idempotency returns the key of the record of the add to queue name made
// with idempotency key. The queue's (tagged) name comes before the key, so
// in cluster mode the record shares the queue's slot whatever the key
// holds: Redis hashes the first {...} of a name only.
func (s Space) Idempotency(name, key string) string {
	return s.Prefix + "sluice#idem:" + s.tag(name) + ":" + key
}

// Lock returns the key of lock name and of its fencing counter.
func (s Space) Lock(name string) (lock, fence string) {
	t := s.tag(name)
	return s.Prefix + t, s.Prefix + "sluice#fence:" + t
}

// Cache returns the key of a cache entry (the key itself, prefixed).
func (s Space) Cache(key string) string { return s.Prefix + key }

// Channel returns the name of a pub/sub channel (prefixed).
func (s Space) Channel(name string) string { return s.Prefix + name }

// CacheLockFence returns the fencing counter of the lock whose key is the
// cache key of key, or "" when no lock can share that key. A cache write
// that finds this counter refuses the key: the name belongs to a lock (the
// counter never expires, so a name once locked stays a lock's name). In
// cluster mode a lock's key always carries a hash tag, so only a cache key
// that has one can coincide with a lock's.
func (s Space) CacheLockFence(key string) string {
	lock, fence := s.Lock(key)
	if lock != s.Cache(key) {
		return ""
	}
	return fence
}

// The HTTP service's namespaces (see the package comment).
const (
	serviceCache = "cache#"
	serviceLock  = "lock#"
)

// ServiceCacheKey is the library cache key under which the HTTP service
// stores its cache entry key.
func ServiceCacheKey(key string) string { return serviceCache + key }

// ServiceLockName is the library lock name under which the HTTP service
// keeps its lock name.
func ServiceLockName(name string) string { return serviceLock + name }

// Registry is the set of known queue names (best effort, for listing).
func (s Space) Registry() string { return s.Prefix + "sluice#queues" }

func (s Space) tag(name string) string {
	if !s.Cluster || HasHashTag(name) {
		return name
	}
	return "{" + name + "}"
}

// HasHashTag reports whether Redis Cluster would hash only part of name:
// a '{' followed later by '}' with at least one byte between them.
func HasHashTag(name string) bool {
	open := strings.IndexByte(name, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(name[open+1:], '}')
	return end > 0
}

// Prefixes a queue name may not start with.
const (
	// Internal starts the names of Sluice's own keys.
	Internal = "sluice#"
	// dlqPrefix starts every dead-letter queue's key: dlq:Q (failed) and
	// dlq:overflow:Q (overflow). A queue named "dlq:..." would be the DLQ
	// of another queue.
	dlqPrefix = "dlq:"
	// overflowPrefix: the failed DLQ of a queue "overflow:Q", dlq:overflow:Q,
	// would be the overflow DLQ of queue Q.
	overflowPrefix = "overflow:"
)

// ValidateQueueName checks a queue name: 1-200 characters of
// A-Z a-z 0-9 _ . : - { }, not starting with "dlq:" or "overflow:" (the
// keys of dead-letter queues) nor "sluice#" (Sluice's own keys).
func ValidateQueueName(name string) error {
	if name == "" {
		return fmt.Errorf("queue name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("queue name is %d characters long; the limit is %d", len(name), MaxNameLen)
	}
	if strings.HasPrefix(name, Internal) {
		return fmt.Errorf("queue name %q starts with %q, which is reserved for Sluice's own keys", name, Internal)
	}
	if rest, ok := strings.CutPrefix(name, dlqPrefix); ok {
		kind, of := "failed", rest
		if q, ok := strings.CutPrefix(rest, overflowPrefix); ok {
			kind, of = "overflow", q
		}
		return fmt.Errorf("queue name %q starts with %q, which is reserved for dead-letter queues (it is the %s DLQ of queue %q: use that queue's DLQ routes)", name, dlqPrefix, kind, of)
	}
	if q, ok := strings.CutPrefix(name, overflowPrefix); ok {
		return fmt.Errorf("queue name %q starts with %q, which is reserved: its failed DLQ would be the overflow DLQ of queue %q", name, overflowPrefix, q)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("queue name %q has %q at byte %d; allowed: letters, digits and _ . : - { }", name, name[i], i)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("_.:-{}", c) >= 0
}
