package sluice

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	redisengine "github.com/sluicehq/sluice/internal/engine/redis"
	"github.com/sluicehq/sluice/internal/redisconn"
)

// Errors users can match with errors.Is. Engine errors are re-exported so
// callers never import an internal package.
//
// Their texts carry no "sluice:" prefix: an error returned by this package
// starts with "sluice: ", the operation and the names it concerns, once,
// followed by the sentinel's text, as in
// `sluice: ack "1700000000000-0" on queue "jobs": lease not found or expired`.
var (
	// ErrQueueFull: an add was rejected because the queue is at capacity
	// under the reject policy. Nothing was written.
	ErrQueueFull = errors.New("queue full")
	// ErrInvalidName: a queue, channel or lock name breaks the naming rules.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidArgument: a parameter is out of range (negative timeout,
	// unknown DLQ kind, ...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotJSON: a payload that must be JSON is not.
	ErrNotJSON = errors.New("not valid JSON")
	// ErrClosed: the client (or its engine) is closed.
	ErrClosed = engine.ErrClosed
	// ErrLeaseNotFound: a delivery was already settled, or its lease expired
	// and the item went to another consumer.
	ErrLeaseNotFound = engine.ErrLeaseNotFound
	// ErrLockNotHeld: the lock expired or another holder owns it now.
	ErrLockNotHeld = engine.ErrLockNotHeld
	// ErrLockHeld: the lock stayed held by someone else for as long as
	// the caller was willing to wait.
	ErrLockHeld = errors.New("lock held by another owner")
	// ErrWrongType: the key holds another kind of value.
	ErrWrongType = engine.ErrWrongType
	// ErrIdempotencyConflict: an add reused an idempotency key, within its
	// window, for other items than the add the key first came with.
	// Nothing was written.
	ErrIdempotencyConflict = engine.ErrIdempotencyConflict
	// ErrUnavailable: the engine could not serve the call (connection
	// refused or lost, server loading, cluster down, failover in
	// progress). A later retry may succeed; after a lost connection a
	// write's outcome is unknown.
	ErrUnavailable = engine.ErrUnavailable
	// ErrSettingsConflict: an add's or a handle's bound or policy is looser
	// than, or other than, the queue's declared settings (see
	// DeclareQueue). Nothing was written.
	ErrSettingsConflict = engine.ErrSettingsConflict
	// ErrQueueInFlight: DeleteQueue without Force found items of the queue
	// in flight (leased, waiting for redelivery, being handed over).
	// Nothing was removed.
	ErrQueueInFlight = engine.ErrQueueInFlight
	// ErrInvalidUTF8: an item, message, cache value, name or reason is not
	// valid UTF-8 text. Nothing was written: invalid bytes are refused,
	// never replaced (with U+FFFD or otherwise). It matches
	// ErrInvalidArgument too.
	ErrInvalidUTF8 error = &refinedError{"not valid UTF-8 text", ErrInvalidArgument}
)

// refinedError is a sentinel that also matches a broader one, without
// repeating that one's text.
type refinedError struct {
	msg   string
	broad error
}

func (e *refinedError) Error() string { return e.msg }
func (e *refinedError) Unwrap() error { return e.broad }

// URLError reports an engine URL that Open cannot use: an unknown scheme,
// a malformed Redis or file URL. It matches ErrInvalidArgument. The URL is
// quoted with any password redacted (see RedactURL).
type URLError struct {
	// URL is the URL as RedactURL prints it.
	URL string
	// Reason says what is wrong and how to fix it.
	Reason string
}

// Error quotes the (redacted) URL and says what is wrong with it.
func (e *URLError) Error() string {
	return fmt.Sprintf("invalid engine URL %q: %s", e.URL, e.Reason)
}

// Unwrap makes a URLError match ErrInvalidArgument.
func (e *URLError) Unwrap() error { return ErrInvalidArgument }

// RedactURL returns an engine URL fit for logs and messages: the password
// of a Redis URL is replaced by "xxxxx" (redis://user:secret@h:6379/0
// becomes redis://user:xxxxx@h:6379/0). The embedded engine's URLs carry
// none and come back as they are.
func RedactURL(rawURL string) string {
	if strings.HasPrefix(rawURL, "mem:") || strings.HasPrefix(rawURL, "file:") {
		return rawURL
	}
	return redisconn.Redact(rawURL)
}

// ReplicaAckError reports an add (or a DLQ requeue) that the Redis primary
// applied but that fewer replicas than Config.MinReplicasAck confirmed
// within the wait. The write is in place; it may still be lost should the
// primary fail before its replicas catch up.
type ReplicaAckError struct {
	// Acked is how many replicas confirmed the write.
	Acked int64
	// Wanted is how many were asked for (MinReplicasAck).
	Wanted int
	// Timeout is how long the confirmation was waited for.
	Timeout time.Duration
	// Cause is set when the wait itself failed (for example the connection
	// broke after the write was sent), so nothing was confirmed.
	Cause error
}

// Error says how many replicas confirmed the write of how many asked
// for, and that the write may be lost.
func (e *ReplicaAckError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("applied on the primary but not confirmed by any of %d replica(s): the wait failed: %v; it may be lost if the primary fails now",
			e.Wanted, e.Cause)
	}
	return fmt.Sprintf("applied on the primary but confirmed by only %d of %d replica(s) within %s; it may be lost if the primary fails now",
		e.Acked, e.Wanted, e.Timeout)
}

// Unwrap returns the cause of a failed wait, if any.
func (e *ReplicaAckError) Unwrap() error { return e.Cause }

// publicError maps an internal error type to its exported counterpart, so
// that callers can match it without importing an internal package.
func publicError(err error) error {
	var ae *redisengine.ReplicaAckError
	if errors.As(err, &ae) {
		return &ReplicaAckError{Acked: ae.Acked, Wanted: ae.Wanted, Timeout: ae.Timeout, Cause: ae.Cause}
	}
	var ue *redisconn.URLError
	if errors.As(err, &ue) {
		return &URLError{URL: ue.Redacted, Reason: ue.Reason}
	}
	return err
}
