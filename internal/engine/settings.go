package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Declared queues. A queue may carry settings stored in the engine beside
// its items (Redis: a hash in the queue's hash slot; embedded: in the log),
// so that every client, the CLI and the service see the same bound and
// policy. The engine applies the declared bound and policy inside the add's
// own atomic step, so a declared queue costs no extra round trip.
//
// Precedence: declared settings win. A per-call bound or policy that the
// caller gave explicitly (AddParams.MaxSizeExplicit, PolicyExplicit) may
// only be stricter: a smaller bound is applied to that call, a larger one
// (or no bound against a declared one) or another policy is refused with
// ErrSettingsConflict and nothing is written. Per-call values that were
// not given explicitly (client defaults) yield to the declared ones. A
// queue without declared settings behaves as before: per-call values only.

// Sentinel errors of declared queues.
var (
	// ErrSettingsConflict means a per-call bound or policy is looser than,
	// or other than, the queue's declared settings; nothing was written.
	ErrSettingsConflict = errors.New("conflicts with the queue's declared settings")
	// ErrQueueInFlight means a queue cannot be deleted without force while
	// items of it are leased, waiting for redelivery, or being handed over.
	ErrQueueInFlight = errors.New("queue has items in flight")
)

// Unbounded as a declared MaxSize declares that the queue has no bound.
const Unbounded int64 = -1

// SettingsField names one declarable field of QueueSettings.
type SettingsField uint8

// The declarable fields, as bits of QueueSettings.Set.
const (
	SetMaxSize SettingsField = 1 << iota
	SetPolicy
	SetPressureThreshold
	SetLease
	SetMaxDeliveries

	setAll = SetMaxSize | SetPolicy | SetPressureThreshold | SetLease | SetMaxDeliveries
)

// QueueSettings are the settings declared for one queue. A field counts
// only when its bit is in Set; the zero value declares nothing. Paused is
// kept apart from the declared fields: QueuePause and QueueResume change
// it, QueueDeclare leaves it as it is.
type QueueSettings struct {
	// MaxSize bounds the queue: > 0, or Unbounded.
	MaxSize int64
	// Policy is what an add does when the queue is full.
	Policy Policy
	// PressureThreshold is the fill ratio, in (0, 1], from which the queue
	// reports pressure. The engine stores it; it does not act on it.
	PressureThreshold float64
	// Lease is the default lease of a receive (whole milliseconds, > 0).
	// The engine stores it; callers apply it.
	Lease time.Duration
	// MaxDeliveries is the default number of deliveries before an item is
	// dead-lettered (>= 1). The engine stores it; callers apply it.
	MaxDeliveries int
	// Set says which of the fields above are declared.
	Set SettingsField
	// Paused makes the queue hand nothing out: pops and receives behave as
	// if it were empty (blocking ones wait) until it is resumed. Adds go on
	// under the queue's policy.
	Paused bool
}

// Has reports whether field f is declared.
func (s QueueSettings) Has(f SettingsField) bool { return s.Set&f != 0 }

// Validate checks the declared fields.
func (s QueueSettings) Validate() error {
	if s.Set&^setAll != 0 {
		return fmt.Errorf("queue settings: unknown fields %#x declared", uint8(s.Set&^setAll))
	}
	if s.Has(SetMaxSize) && s.MaxSize <= 0 && s.MaxSize != Unbounded {
		return fmt.Errorf("queue settings: max size %d: want > 0, or %d for no bound", s.MaxSize, Unbounded)
	}
	if s.Has(SetPolicy) && s.Policy.Normalize() != s.Policy {
		return fmt.Errorf("queue settings: policy %q is unknown: use %q, %q or %q", s.Policy, PolicyReject, PolicyDLQ, PolicyDropOldest)
	}
	if s.Has(SetPressureThreshold) && !(s.PressureThreshold > 0 && s.PressureThreshold <= 1) {
		return fmt.Errorf("queue settings: pressure threshold %v: want more than 0, at most 1", s.PressureThreshold)
	}
	if s.Has(SetLease) && (s.Lease < time.Millisecond || s.Lease%time.Millisecond != 0) {
		return fmt.Errorf("queue settings: lease %v: want a positive whole number of milliseconds", s.Lease)
	}
	if s.Has(SetMaxDeliveries) && s.MaxDeliveries < 1 {
		return fmt.Errorf("queue settings: max deliveries %d: want at least 1", s.MaxDeliveries)
	}
	return nil
}

// Declared returns s with only the declared fields kept (the others
// zeroed), so that two settings compare equal when they declare the same.
func (s QueueSettings) Declared() QueueSettings {
	out := QueueSettings{Set: s.Set & setAll, Paused: s.Paused}
	if out.Has(SetMaxSize) {
		out.MaxSize = s.MaxSize
	}
	if out.Has(SetPolicy) {
		out.Policy = s.Policy
	}
	if out.Has(SetPressureThreshold) {
		out.PressureThreshold = s.PressureThreshold
	}
	if out.Has(SetLease) {
		out.Lease = s.Lease
	}
	if out.Has(SetMaxDeliveries) {
		out.MaxDeliveries = s.MaxDeliveries
	}
	return out
}

// Resolve applies the declared bound and policy of s to one call's bound
// and policy (see the precedence above) and returns what the call runs
// under: maxSize <= 0 means unbounded, as in AddParams. Every engine's
// add and requeue apply it; the Redis scripts mirror it in Lua.
func (s QueueSettings) Resolve(maxSize int64, policy Policy, maxExplicit, policyExplicit bool) (int64, Policy, error) {
	policy = policy.Normalize()
	if s.Has(SetMaxSize) {
		declared := max(s.MaxSize, 0)
		switch {
		case !maxExplicit:
			maxSize = declared
		case maxSize > 0 && (declared == 0 || maxSize <= declared):
			// Stricter or equal: the call's own bound applies.
		case maxSize <= 0 && declared == 0:
			maxSize = 0
		default:
			return 0, "", fmt.Errorf("max size %s: %w (declared max size %s)", boundText(maxSize), ErrSettingsConflict, boundText(declared))
		}
	}
	if s.Has(SetPolicy) {
		if policyExplicit && policy != s.Policy {
			return 0, "", fmt.Errorf("policy %q: %w (declared policy %q)", policy, ErrSettingsConflict, s.Policy)
		}
		policy = s.Policy
	}
	return maxSize, policy, nil
}

func boundText(n int64) string {
	if n <= 0 {
		return "unbounded"
	}
	return strconv.FormatInt(n, 10)
}

// DeleteResult reports what QueueDelete removed.
type DeleteResult struct {
	// Items is how many items were waiting in the queue.
	Items int64
	// OverflowDLQ and FailedDLQ are the entries of its dead-letter queues.
	OverflowDLQ int64
	FailedDLQ   int64
	// InFlight is how many leased, pending or handed-over items went with
	// it (only with force).
	InFlight int64
	// Settings reports whether declared settings (or a paused flag) were
	// removed.
	Settings bool
}

// SettingsEngine stores declared queue settings and manages queues as a
// whole.
type SettingsEngine interface {
	// QueueDeclare stores s as the queue's declared settings: the fields
	// declared in s replace the stored ones, fields not declared in s are
	// no longer declared, and the paused flag stays as it is. Declaring the
	// same settings again changes nothing. It returns what is now stored.
	// The queue is registered (QueueNames lists it).
	QueueDeclare(ctx context.Context, queue string, s QueueSettings) (QueueSettings, error)
	// QueueSettings returns the queue's stored settings; ok is false when
	// nothing is declared and the queue is not paused.
	QueueSettings(ctx context.Context, queue string) (s QueueSettings, ok bool, err error)
	// QueueDelete removes the queue's items, both of its DLQs, its delivery
	// state and its settings, and drops it from QueueNames. While items are
	// in flight it refuses with ErrQueueInFlight and removes nothing,
	// unless force is set. Idempotency records are left to expire with
	// their window.
	QueueDelete(ctx context.Context, queue string, force bool) (DeleteResult, error)
	// QueuePause makes the queue hand nothing out until QueueResume (see
	// QueueSettings.Paused). Pausing a paused queue changes nothing.
	QueuePause(ctx context.Context, queue string) error
	// QueueResume ends a pause and wakes the pops and receives blocked on
	// the queue. Resuming a queue that is not paused changes nothing.
	QueueResume(ctx context.Context, queue string) error
}
