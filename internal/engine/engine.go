// Package engine defines the seam between Sluice's public API and its
// storage backends. Every backend (Redis, and the embedded engine in memory
// or durable on file) implements Engine, and every backend is held to the
// same behaviour by the conformance suite in package enginetest.
//
// Engines deal in stored strings: the public package encodes values with
// package codec before they reach an engine and decodes what comes back.
// An engine never interprets an item, except to wrap it in a dead-letter
// envelope (see envelope.go), which every engine must build identically.
package engine

import (
	"context"
	"time"
)

// Engine is what a storage backend must provide. All methods are safe for
// concurrent use. Methods that block (QueuePop, QueueReceive) return as soon
// as ctx is done, with ctx.Err() wrapped.
type Engine interface {
	// Kind names the backend: "redis" or "embedded".
	Kind() string
	// Health reports connectivity; it never returns an error, it describes it.
	Health(ctx context.Context) Health
	// Close releases every resource the engine owns. It is idempotent;
	// blocked calls return ErrClosed, and so does every later call.
	Close() error

	QueueEngine
	LeaseEngine
	PubSubEngine
	CacheEngine
	LockEngine
	SettingsEngine
	StatsEngine
}

// QueueEngine is the bounded FIFO queue capability.
type QueueEngine interface {
	// QueueAdd pushes params.Items in order, each one subject to the overflow
	// policy as one atomic step with the push (the whole batch is one atomic
	// step on every engine). It returns one result per item. A queue's
	// declared bound and policy apply in that same step (see settings.go);
	// ErrSettingsConflict when the call's explicit values are looser, and
	// then nothing is written.
	QueueAdd(ctx context.Context, params AddParams) ([]AddResult, error)
	// QueuePop removes and returns the head of the queue. With timeout 0 it
	// does not block; otherwise it waits up to timeout for an item.
	// ok is false when the queue stayed empty. A paused queue counts as
	// empty until it is resumed.
	QueuePop(ctx context.Context, queue string, timeout time.Duration) (item string, ok bool, err error)
	// QueuePushFront puts items back at the head of the queue, so that
	// items[0] becomes the head. It ignores the queue's capacity on purpose:
	// it exists to hand back items that were already accepted once.
	QueuePushFront(ctx context.Context, queue string, items []string) error
	// QueueLen is the number of items waiting in the queue.
	QueueLen(ctx context.Context, queue string) (int64, error)
	// QueueRange returns items start..end inclusive, with LRANGE semantics
	// (negative indexes count from the tail). Callers bound the span.
	QueueRange(ctx context.Context, queue string, start, end int64) ([]string, error)
	// QueueClear deletes the queue's waiting items; it reports whether
	// anything was deleted. DLQs, leases and counters are untouched.
	QueueClear(ctx context.Context, queue string) (bool, error)
	// QueueNames lists queues this engine knows of (that were added to).
	QueueNames(ctx context.Context) ([]string, error)

	// DLQLen, DLQRange and DLQPurge address one of a queue's two
	// dead-letter queues.
	DLQLen(ctx context.Context, queue string, kind DLQKind) (int64, error)
	DLQRange(ctx context.Context, queue string, kind DLQKind, start, end int64) ([]string, error)
	DLQPurge(ctx context.Context, queue string, kind DLQKind) (int64, error)
	// DLQRemove deletes the entry at index (0 is the oldest) only when it
	// is entry, byte for byte, in one step: an index that shifted since the
	// entry was read (a requeue, a purge, another removal) deletes nothing
	// and answers false.
	DLQRemove(ctx context.Context, queue string, kind DLQKind, index int64, entry string) (bool, error)
	// DLQRequeue moves up to params.Count entries (all when <= 0), oldest
	// first, from a DLQ back to the tail of the queue, each one atomically
	// and subject to the queue's overflow policy. An entry that cannot go
	// back (the queue is full under reject) stays in the DLQ, in place, and
	// the requeue stops there. Count bounds the entries moved; malformed
	// entries (not an envelope) stay where they are and are skipped, so one
	// bad entry cannot block a bounded requeue. "All" means the entries
	// present when the call starts. The queue's declared bound and policy
	// apply as to an add.
	DLQRequeue(ctx context.Context, params RequeueParams) (RequeueResult, error)
}

// LeaseEngine is acknowledged (at-least-once) delivery.
type LeaseEngine interface {
	// QueueReceive hands out up to params.Count items under a lease.
	// Expired leases are reclaimed first (redelivered, or dead-lettered when
	// they have used params.MaxDeliveries), then fresh items are taken from
	// the head of the queue. It blocks up to params.Timeout when there is
	// nothing to hand out (0: do not block). A paused queue hands nothing
	// out, redeliveries included, until it is resumed.
	QueueReceive(ctx context.Context, params ReceiveParams) ([]Delivery, error)
	// QueueAckBatch settles deliveries of one queue for good, in one atomic
	// step (one round trip on Redis). acked[i] reports whether ids[i] still
	// held its lease and is now settled; false is ErrLeaseNotFound for it:
	// the lease is unknown, expired and redelivered, or already settled.
	// A single ack is a batch of one (see Ack).
	QueueAckBatch(ctx context.Context, queue string, ids []string) (acked []bool, err error)
	// QueueNack ends a lease without success: the item becomes deliverable
	// again after params.Delay, or moves to the failed DLQ when it has been
	// delivered params.MaxDeliveries times.
	QueueNack(ctx context.Context, params NackParams) (NackResult, error)
	// QueueExtend pushes a lease's deadline to now+lease.
	QueueExtend(ctx context.Context, queue, id string, lease time.Duration) error
	// QueueInFlight counts items whose lease is live or whose nack delay
	// has not ended. An expired lease, or a nacked item past its delay, is
	// not in flight: it waits for the next receive, which hands it out
	// before the queue's items (or dead-letters it, as a sweep does).
	QueueInFlight(ctx context.Context, queue string) (int64, error)
	// QueueScheduled counts the queue's scheduled items that are not yet
	// visible (AddParams.NotBefore).
	QueueScheduled(ctx context.Context, queue string) (int64, error)
	// QueueReclaim is the queue's sweep, one atomic step: it dead-letters
	// due items (expired leases, nacked items past their delay) that used
	// up maxDeliveries (the queue's declared max deliveries when it has
	// one), leaves the other due items deliverable (the next
	// receive hands them out first), and moves due scheduled items to the
	// queue's tail. It returns how many moved to the failed DLQ. Receives
	// do the same on their own; a maintainer sweeps every queue.
	QueueReclaim(ctx context.Context, queue string, maxDeliveries int) (int64, error)
}

// Ack settles one delivery: QueueAckBatch of one id, with ErrLeaseNotFound
// when the id no longer holds its lease.
func Ack(ctx context.Context, e LeaseEngine, queue, id string) error {
	acked, err := e.QueueAckBatch(ctx, queue, []string{id})
	if err != nil {
		return err
	}
	if len(acked) != 1 || !acked[0] {
		return ErrLeaseNotFound
	}
	return nil
}

// PubSubEngine is fire-and-forget (at-most-once) publish/subscribe.
type PubSubEngine interface {
	// Publish sends payload to channel and returns how many subscribers
	// received it.
	Publish(ctx context.Context, channel, payload string) (int64, error)
	// Subscribe starts a subscription to channels and glob patterns.
	// It returns once the subscription is active.
	Subscribe(ctx context.Context, params SubscribeParams) (Subscription, error)
}

// Subscription delivers messages until Close.
type Subscription interface {
	// Messages is closed after Close, or when the engine closes.
	Messages() <-chan Message
	// Dropped counts messages discarded because the buffer was full.
	Dropped() uint64
	Close() error
}

// CacheEngine is a string key/value store with TTLs.
type CacheEngine interface {
	CacheGet(ctx context.Context, key string) (value string, ok bool, err error)
	// CacheGetCached may answer from a client-side cache kept coherent by the
	// server (Redis), valid for at most ttl; engines without one just read.
	CacheGetCached(ctx context.Context, key string, ttl time.Duration) (value string, ok bool, err error)
	// CacheSet stores p.Value under p.Key with p.TTL (0: no expiry). With
	// p.OnlyIfAbsent it is SET NX and returns false when the key existed.
	CacheSet(ctx context.Context, p CacheSetParams) (bool, error)
	CacheExists(ctx context.Context, keys ...string) (int64, error)
	CacheDelete(ctx context.Context, keys ...string) (int64, error)
	// CacheExpire sets a new TTL; false when the key does not exist.
	CacheExpire(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// CacheTTL returns the remaining TTL; -1 when the key has none; ok is
	// false when the key does not exist.
	CacheTTL(ctx context.Context, key string) (ttl time.Duration, ok bool, err error)
}

// CacheSetParams describes one cache write.
type CacheSetParams struct {
	Key   string
	Value string // stored form, already encoded
	// TTL is the entry's lifetime; 0 means no expiry, negative is refused.
	TTL time.Duration
	// OnlyIfAbsent makes the write SET NX: nothing is written when the key
	// holds a live entry.
	OnlyIfAbsent bool
}

// LockEngine is token-checked mutual exclusion with fencing tokens.
type LockEngine interface {
	// LockAcquire takes the lock for token when it is free (one attempt, no
	// waiting). On success it returns the next fencing token for name, which
	// strictly increases across all acquisitions of that name.
	LockAcquire(ctx context.Context, name, token string, ttl time.Duration) (fence int64, ok bool, err error)
	// LockRelease deletes the lock only if token still holds it; otherwise
	// ErrLockNotHeld and nothing is deleted.
	LockRelease(ctx context.Context, name, token string) error
	// LockRefresh sets a new ttl only if token still holds the lock;
	// otherwise ErrLockNotHeld.
	LockRefresh(ctx context.Context, name, token string, ttl time.Duration) error
	// LockTTL reports whether name is held and its remaining ttl (with
	// millisecond precision; -1 when the key has no expiry), never the
	// token that holds it.
	LockTTL(ctx context.Context, name string) (ttl time.Duration, held bool, err error)
}

// Policy is what an add does when the queue is full.
type Policy string

// The overflow policies of docs/compat.md. Unknown names behave as reject.
const (
	PolicyReject     Policy = "reject"
	PolicyDLQ        Policy = "dlq"
	PolicyDropOldest Policy = "drop_oldest"
)

// Normalize maps unknown policy names to reject, as the original does.
func (p Policy) Normalize() Policy {
	switch p {
	case PolicyReject, PolicyDLQ, PolicyDropOldest:
		return p
	}
	return PolicyReject
}

// AddParams describes one add of one or more items.
type AddParams struct {
	Queue  string
	Items  []string // stored form, already encoded
	Policy Policy   // already normalized
	// MaxSize bounds the queue; <= 0 means unbounded.
	MaxSize int64
	// MaxSizeExplicit and PolicyExplicit say that the caller gave MaxSize
	// and Policy for this call (rather than defaults): on a queue with
	// declared settings such values may only be stricter, or the add fails
	// with ErrSettingsConflict; values not given explicitly yield to the
	// declared ones (see settings.go). Undeclared queues use the values as
	// they are.
	MaxSizeExplicit bool
	PolicyExplicit  bool
	// IdempotencyKey, when set (valid: ValidateIdempotencyKey), makes the
	// add happen at most once per key and queue within IdempotencyWindow
	// (> 0): a repeat writes nothing and gets the first add's results,
	// marked Replayed (see idempotency.go).
	IdempotencyKey    string
	IdempotencyWindow time.Duration
	// NotBefore, when not zero, schedules the items: each is stored apart
	// from the queue's visible items and becomes visible (is moved to the
	// queue's tail) once NotBefore has passed, by the next receive, pop or
	// sweep (QueueReclaim) of the queue; blocked receives and pops wake
	// for it. A scheduled item counts toward the
	// bound from the moment it is accepted: the bound applies to the
	// visible items plus the scheduled ones, and so does the policy. When
	// the queue is full, drop_oldest and dlq make room from the queue's
	// head first and, only when no visible item is left, from the
	// scheduled items due soonest (a producer's later add outranks an
	// earlier deferred one, as it outranks an earlier visible one).
	NotBefore time.Time
}

// AddResult is the outcome of adding one item.
type AddResult struct {
	// Accepted is false only when the item was rejected (nothing written).
	Accepted bool
	// Replayed marks the recorded result of an earlier add with the same
	// idempotency key: this call wrote nothing. (Next to Accepted, so the
	// two share a word and a result is no larger for it.)
	Replayed bool
	// QueueLength is the length right after this item's step: the visible
	// items plus the scheduled ones, as the bound counts them.
	QueueLength int64
	// Dropped counts items discarded by drop_oldest for this item.
	Dropped int64
	// MovedToDLQ counts items moved to the overflow DLQ for this item.
	MovedToDLQ int64
}

// DLQKind selects one of a queue's dead-letter queues.
type DLQKind string

const (
	// DLQOverflow holds items pushed out by the dlq overflow policy.
	DLQOverflow DLQKind = "overflow"
	// DLQFailed holds items that used up their deliveries.
	DLQFailed DLQKind = "failed"
)

// Valid reports whether k names a DLQ.
func (k DLQKind) Valid() bool { return k == DLQOverflow || k == DLQFailed }

// RequeueParams describes a DLQ requeue.
type RequeueParams struct {
	Queue   string
	Kind    DLQKind
	Count   int64 // <= 0: all
	Policy  Policy
	MaxSize int64
	// MaxSizeExplicit and PolicyExplicit are AddParams': a declared bound
	// and policy apply to the requeue as to an add.
	MaxSizeExplicit bool
	PolicyExplicit  bool
}

// RequeueResult reports a requeue.
type RequeueResult struct {
	Requeued  int64 // moved back to the queue
	Remaining int64 // still in the DLQ afterwards
	// Displaced counts items the requeue pushed out of the queue through the
	// queue's own overflow policy (dropped or moved to the overflow DLQ).
	Displaced int64
}

// ReceiveParams describes a leased receive.
type ReceiveParams struct {
	Queue   string
	Count   int           // >= 1
	Timeout time.Duration // 0: do not block
	Lease   time.Duration // > 0
	// MaxDeliveries is how many deliveries an item gets before an expired or
	// nacked lease moves it to the failed DLQ. >= 1.
	MaxDeliveries int
}

// Delivery is one leased item.
type Delivery struct {
	// ID identifies this delivery (item and attempt); settle it with it.
	ID   string
	Item string
	// Attempt is 1 on the first delivery.
	Attempt int
}

// NackParams describes a negative acknowledgement.
type NackParams struct {
	Queue string
	ID    string
	// Delay before the item is deliverable again.
	Delay time.Duration
	// Error is recorded in the failed DLQ envelope if the item dead-letters.
	Error         string
	MaxDeliveries int
	// Release hands the item back without counting this delivery against
	// MaxDeliveries: it never dead-letters, and its next delivery carries
	// the same attempt number as this one. Consumers that stop before
	// handling an item (shutdown) use it.
	Release bool
}

// NackResult says what a nack did with the item.
type NackResult struct {
	DeadLettered bool
}

// SubscribeParams describes a subscription.
type SubscribeParams struct {
	Channels []string
	Patterns []string
	// Buffer bounds the messages held for a slow reader; when full, new
	// messages are dropped and counted. Engines default it when <= 0.
	Buffer int
}

// MessageKind distinguishes data from notices in a subscription.
type MessageKind int

const (
	// MessageData carries a published payload.
	MessageData MessageKind = iota
	// MessageGap says the subscription was interrupted (connection lost and
	// re-established); messages published meanwhile were missed.
	MessageGap
)

// Message is one event of a subscription.
type Message struct {
	Kind    MessageKind
	Channel string
	// Pattern is the matching pattern for pattern subscriptions, else "".
	Pattern string
	Payload string
}

// Health is what an engine knows of its own state. The public package
// owns the JSON shape that reports it (docs/compat.md's health check).
type Health struct {
	// Status is "healthy" or "unhealthy".
	Status    string
	Connected bool
	// Version is the server's version, when there is a server.
	Version string
	// Error describes why the engine is unhealthy.
	Error string
	// Warnings name settings under which the engine can lose items it
	// acknowledged (a Redis that evicts keys without a TTL or keeps nothing
	// on disk, an embedded engine in memory), each with its fix. They do
	// not make the engine unhealthy.
	Warnings []string
}
