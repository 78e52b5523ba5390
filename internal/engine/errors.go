package engine

import "errors"

// Sentinel errors shared by every engine; package sluice re-exports them.
var (
	// ErrClosed is returned by calls on a closed engine.
	ErrClosed = errors.New("sluice: engine closed")
	// ErrLeaseNotFound means the delivery is unknown, already settled, or
	// its lease expired and the item was handed to someone else.
	ErrLeaseNotFound = errors.New("sluice: lease not found or expired")
	// ErrLockNotHeld means the token no longer holds the lock.
	ErrLockNotHeld = errors.New("sluice: lock not held")
	// ErrWrongType means a key exists with a type the operation cannot use
	// (for example a cache string where a queue list is expected): queues,
	// DLQs, cache entries and locks share one key space, as on Redis.
	ErrWrongType = errors.New("sluice: key holds the wrong kind of value")
	// ErrIdempotencyConflict means an idempotency key was reused, within
	// its window, for other items than the add it first came with.
	ErrIdempotencyConflict = errors.New("sluice: idempotency key reused with other items")
)
