package sluice

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/internal/engine"
)

// Errors users can match with errors.Is. Engine errors are re-exported so
// callers never import an internal package.
var (
	// ErrQueueFull: an add was rejected because the queue is at capacity
	// under the reject policy. Nothing was written.
	ErrQueueFull = errors.New("sluice: queue full")
	// ErrInvalidName: a queue, channel or lock name breaks the naming rules.
	ErrInvalidName = errors.New("sluice: invalid name")
	// ErrInvalidArgument: a parameter is out of range (negative timeout,
	// unknown DLQ kind, ...).
	ErrInvalidArgument = errors.New("sluice: invalid argument")
	// ErrNotJSON: a payload that must be JSON is not.
	ErrNotJSON = errors.New("sluice: not valid JSON")
	// ErrClosed: the client (or its engine) is closed.
	ErrClosed = engine.ErrClosed
	// ErrLeaseNotFound: a delivery was already settled, or its lease expired
	// and the item went to another consumer.
	ErrLeaseNotFound = engine.ErrLeaseNotFound
	// ErrLockNotHeld: the lock expired or another holder owns it now.
	ErrLockNotHeld = engine.ErrLockNotHeld
	// ErrWrongType: the key holds another kind of value.
	ErrWrongType = engine.ErrWrongType
	// ErrIdempotencyConflict: an add reused an idempotency key, within its
	// window, for other items than the add the key first came with.
	// Nothing was written.
	ErrIdempotencyConflict = engine.ErrIdempotencyConflict
	// ErrNotFound: a cache key does not exist.
	ErrNotFound = errors.New("sluice: not found")
	// ErrUnavailable: the engine could not serve the call (connection
	// refused or lost, server loading, cluster down, failover in
	// progress). A later retry may succeed; after a lost connection a
	// write's outcome is unknown.
	ErrUnavailable = engine.ErrUnavailable
	// ErrInvalidUTF8: an item, message, cache value, name or reason is not
	// valid UTF-8 text. Nothing was written: invalid bytes are refused,
	// never replaced (with U+FFFD or otherwise). It matches
	// ErrInvalidArgument too.
	ErrInvalidUTF8 = fmt.Errorf("%w: not valid UTF-8 text", ErrInvalidArgument)
)
