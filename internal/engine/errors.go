package engine

import "errors"

// Sentinel errors shared by every engine; package sluice re-exports them.
var (
	// ErrClosed is returned by calls on a closed engine.
	ErrClosed = errors.New("engine closed")
	// ErrLeaseNotFound means the delivery is unknown, already settled, or
	// its lease expired and the item was handed to someone else.
	ErrLeaseNotFound = errors.New("lease not found or expired")
	// ErrLockNotHeld means the token no longer holds the lock.
	ErrLockNotHeld = errors.New("lock not held")
	// ErrWrongType means a key exists with a type the operation cannot use
	// (for example a cache string where a queue list is expected): queues,
	// DLQs, cache entries and locks share one key space, as on Redis.
	ErrWrongType = errors.New("key holds the wrong kind of value")
	// ErrUnavailable means the engine cannot serve the call right now: the
	// connection is refused or lost, the server is loading its data, the
	// cluster is down or a failover is in progress. Nothing was done, or
	// (for a lost connection) the outcome is unknown; a later retry may
	// succeed.
	ErrUnavailable = errors.New("engine unavailable")
	// ErrIdempotencyConflict means an idempotency key was reused, within
	// its window, for other items than the add it first came with.
	ErrIdempotencyConflict = errors.New("idempotency key reused with other items")
)
