// Package keyspace builds every key name Sluice uses, in one place, so that
// the layout of compat.md and its Redis Cluster variant stay in step.
//
// Standalone layout (compat.md), for a queue Q:
//
//	Q                      list   the queue (RPUSH at the tail, LPOP at the head)
//	dlq:overflow:Q         list   overflow dead-letter queue
//	dlq:Q                  list   failed-job dead-letter queue
//	sluice#leases:Q        zset   delivery id -> lease deadline (ms)
//	sluice#jobs:Q          hash   delivery state of leased items
//	sluice#handoff:Q       list   items moved out by a blocking receive, not yet leased
//	sluice#seq:Q           string delivery id counter
//	sluice#idem:Q:K        string record of the add made with idempotency key K
//	                              (expires with the key's window)
//
// In cluster mode the queue's name is wrapped in a hash tag, {Q}, in every
// key above (Q itself becomes "{Q}"), so that one queue's keys share a slot
// and each Lua script touches a single slot. A name that already carries a
// hash tag ("{user}:jobs") keeps it as it is.
//
// Queue names may not contain '#', so Sluice's own keys can never collide
// with a user's queue.
package keyspace

import (
	"fmt"
	"strings"
)

// MaxNameLen bounds queue, channel and lock names.
const MaxNameLen = 200

// Space builds keys. The zero value is the standalone, unprefixed layout.
type Space struct {
	// Prefix is prepended to every key (off by default, as in compat.md).
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
	Handoff     string
	Seq         string
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
		Handoff:     p + "sluice#handoff:" + t,
		Seq:         p + "sluice#seq:" + t,
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
	close := strings.IndexByte(name[open+1:], '}')
	return close > 0
}

// ValidateQueueName checks a queue name: 1-200 characters of
// A-Z a-z 0-9 _ . : - { }.
func ValidateQueueName(name string) error {
	if name == "" {
		return fmt.Errorf("queue name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("queue name is %d characters long; the limit is %d", len(name), MaxNameLen)
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
