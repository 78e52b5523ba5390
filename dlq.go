package sluice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/internal/engine"
)

// DLQKind selects one of a queue's two dead-letter queues.
type DLQKind string

const (
	// DLQOverflow (dlq:overflow:<queue>) holds items the dlq policy pushed out.
	DLQOverflow DLQKind = "overflow"
	// DLQFailed (dlq:<queue>) holds items that used up their deliveries.
	DLQFailed DLQKind = "failed"
)

// ParseDLQKind parses "overflow" or "failed".
func ParseDLQKind(s string) (DLQKind, error) {
	if k := engine.DLQKind(s); k.Valid() {
		return DLQKind(k), nil
	}
	return "", fmt.Errorf("sluice: %w: unknown DLQ kind %q (want overflow or failed)", ErrInvalidArgument, s)
}

// DLQ is a handle on one dead-letter queue of a queue.
type DLQ struct {
	q    *Queue
	kind DLQKind
}

// DLQ returns a handle on the queue's DLQ of the given kind.
func (q *Queue) DLQ(kind DLQKind) *DLQ { return &DLQ{q: q, kind: kind} }

func (d *DLQ) check() error {
	if d.q.nameErr != nil {
		return d.q.nameErr
	}
	if !engine.DLQKind(d.kind).Valid() {
		return fmt.Errorf("sluice: %w: unknown DLQ kind %q", ErrInvalidArgument, d.kind)
	}
	return nil
}

// Len is the number of entries.
func (d *DLQ) Len(ctx context.Context) (int64, error) {
	if err := d.check(); err != nil {
		return 0, err
	}
	n, err := d.q.c.eng.DLQLen(ctx, d.q.name, engine.DLQKind(d.kind))
	if err != nil {
		return 0, fmt.Errorf("sluice: %s DLQ length of queue %q: %w", d.kind, d.q.name, err)
	}
	return n, nil
}

// DLQEntry is one dead-letter entry. Fields of the envelope are filled
// when it parses; a malformed entry has only Raw (and Malformed set).
type DLQEntry struct {
	Index int64 `json:"index"`
	// Raw is the entry as stored.
	Raw string `json:"raw,omitempty"`
	// Malformed is true when Raw is not a recognisable envelope.
	Malformed bool `json:"malformed,omitempty"`
	// Digest identifies the entry as stored (hex SHA-256): give it to
	// Remove, which deletes the entry only while it is still this one.
	Digest string `json:"digest"`
	// Item is the dead-lettered item, decoded.
	Item *Item `json:"item,omitempty"`
	// Overflow envelopes.
	OriginalQueue  string `json:"original_queue,omitempty"`
	Reason         string `json:"reason,omitempty"`
	OverflowPolicy string `json:"overflow_policy,omitempty"`
	// Failed envelopes.
	QueueName     string `json:"queue_name,omitempty"`
	Error         string `json:"error,omitempty"`
	AttemptCount  int    `json:"attempt_count,omitempty"`
	FirstFailedAt string `json:"first_failed_at,omitempty"`
	LastFailedAt  string `json:"last_failed_at,omitempty"`
}

type envelope struct {
	OriginalQueue  string          `json:"original_queue"`
	Data           *string         `json:"data"`
	Reason         string          `json:"reason"`
	OverflowPolicy string          `json:"overflow_policy"`
	OriginalJob    json.RawMessage `json:"original_job"`
	Error          string          `json:"error"`
	AttemptCount   int             `json:"attempt_count"`
	FirstFailedAt  string          `json:"first_failed_at"`
	LastFailedAt   string          `json:"last_failed_at"`
	QueueName      string          `json:"queue_name"`
}

// List returns up to limit entries from index start (oldest first), and the
// DLQ's total length. One malformed entry never fails the page: it comes
// back raw.
func (d *DLQ) List(ctx context.Context, start, limit int64) ([]DLQEntry, int64, error) {
	if err := d.check(); err != nil {
		return nil, 0, err
	}
	if start < 0 || limit < 1 {
		return nil, 0, fmt.Errorf("sluice: %w: DLQ list needs start >= 0 and limit >= 1", ErrInvalidArgument)
	}
	limit = min(limit, MaxPeek)
	kind := engine.DLQKind(d.kind)
	raw, err := d.q.c.eng.DLQRange(ctx, d.q.name, kind, start, start+limit-1)
	if err != nil {
		return nil, 0, fmt.Errorf("sluice: list %s DLQ of queue %q: %w", d.kind, d.q.name, err)
	}
	total, err := d.q.c.eng.DLQLen(ctx, d.q.name, kind)
	if err != nil {
		return nil, 0, fmt.Errorf("sluice: list %s DLQ of queue %q: %w", d.kind, d.q.name, err)
	}
	out := make([]DLQEntry, len(raw))
	for i, s := range raw {
		out[i] = d.q.c.parseEntry(start+int64(i), s)
	}
	return out, total, nil
}

func (c *Client) parseEntry(idx int64, s string) DLQEntry {
	e := DLQEntry{Index: idx, Raw: s, Digest: entryDigest(s)}
	var env envelope
	if err := json.Unmarshal([]byte(s), &env); err != nil {
		e.Malformed = true
		return e
	}
	var stored string
	switch {
	case env.Data != nil:
		stored = *env.Data
	case len(env.OriginalJob) > 0:
		var str string
		if json.Unmarshal(env.OriginalJob, &str) == nil {
			stored = str
		} else {
			stored = string(env.OriginalJob)
		}
	default:
		e.Malformed = true
		return e
	}
	it := c.decode(stored)
	e.Item = &it
	e.Raw = ""
	e.OriginalQueue, e.Reason, e.OverflowPolicy = env.OriginalQueue, env.Reason, env.OverflowPolicy
	e.QueueName, e.Error, e.AttemptCount = env.QueueName, env.Error, env.AttemptCount
	e.FirstFailedAt, e.LastFailedAt = env.FirstFailedAt, env.LastFailedAt
	return e
}

// entryDigest is DLQEntry.Digest.
func entryDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Remove deletes the entry at index (0 is the oldest) when its Digest is
// digest, and reports whether it did. Indexes shift when entries leave the
// head (a requeue, a purge, another removal): an entry read before such a
// change is then found at another index, or not at all, and nothing is
// deleted (false), so a stale index never deletes the wrong entry. Read
// the DLQ again to find it. The check and the deletion are one step in the
// engine.
func (d *DLQ) Remove(ctx context.Context, index int64, digest string) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if index < 0 {
		return false, fmt.Errorf("sluice: %w: DLQ remove needs index >= 0", ErrInvalidArgument)
	}
	if b, err := hex.DecodeString(digest); err != nil || len(b) != sha256.Size {
		return false, fmt.Errorf("sluice: %w: DLQ entry digest %q: want 64 hex digits (DLQEntry.Digest)", ErrInvalidArgument, digest)
	}
	kind := engine.DLQKind(d.kind)
	raw, err := d.q.c.eng.DLQRange(ctx, d.q.name, kind, index, index)
	if err != nil {
		return false, fmt.Errorf("sluice: remove entry %d of %s DLQ of queue %q: %w", index, d.kind, d.q.name, err)
	}
	if len(raw) != 1 || !strings.EqualFold(entryDigest(raw[0]), digest) {
		return false, nil
	}
	ok, err := d.q.c.eng.DLQRemove(ctx, d.q.name, kind, index, raw[0])
	if err != nil {
		return false, fmt.Errorf("sluice: remove entry %d of %s DLQ of queue %q: %w", index, d.kind, d.q.name, err)
	}
	return ok, nil
}

// RequeueResult reports a requeue.
type RequeueResult struct {
	Requeued  int64 `json:"requeued"`
	Remaining int64 `json:"remaining"`
	// Displaced counts items the queue's own overflow policy pushed out to
	// make room (dropped, or moved to the overflow DLQ).
	Displaced int64 `json:"displaced"`
}

// Requeue moves up to n entries (all when n <= 0), oldest first, back to
// the tail of the queue, each one atomically and under the queue's overflow
// policy. An entry that does not fit (reject policy, queue full) stays in
// the DLQ and the requeue stops there; malformed entries stay where they
// are. A declared bound and policy apply as to an add (see DeclareQueue).
func (d *DLQ) Requeue(ctx context.Context, n int64) (RequeueResult, error) {
	if err := d.check(); err != nil {
		return RequeueResult{}, err
	}
	s := d.q.settings
	r, err := d.q.c.eng.DLQRequeue(ctx, engine.RequeueParams{
		Queue: d.q.name, Kind: engine.DLQKind(d.kind), Count: n,
		Policy: engine.Policy(s.Policy).Normalize(), MaxSize: s.MaxSize,
		MaxSizeExplicit: d.q.explicit.MaxSize != 0, PolicyExplicit: d.q.explicit.Policy != "",
	})
	if err != nil {
		if errors.Is(err, ErrSettingsConflict) {
			return RequeueResult{}, fmt.Errorf("sluice: requeue %s DLQ of queue %q: %w; nothing moved", d.kind, d.q.name, publicError(err))
		}
		return RequeueResult{}, fmt.Errorf("sluice: requeue %s DLQ of queue %q: %w", d.kind, d.q.name, publicError(err))
	}
	return RequeueResult{Requeued: r.Requeued, Remaining: r.Remaining, Displaced: r.Displaced}, nil
}

// Purge deletes every entry and returns how many there were.
func (d *DLQ) Purge(ctx context.Context) (int64, error) {
	if err := d.check(); err != nil {
		return 0, err
	}
	n, err := d.q.c.eng.DLQPurge(ctx, d.q.name, engine.DLQKind(d.kind))
	if err != nil {
		return 0, fmt.Errorf("sluice: purge %s DLQ of queue %q: %w", d.kind, d.q.name, err)
	}
	return n, nil
}
