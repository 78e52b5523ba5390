package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Idempotent adds. An add that carries an idempotency key is applied at
// most once per key and queue within its window: the engine keeps, beside
// the queue (under its lock on the embedded engine, in its hash slot on
// Redis), a record of the first add under the key, written in the same
// atomic step as the add itself. A later add with the key writes nothing
// and answers the first add's results, rebuilt from the record.
//
// The record holds what the results follow from (see SimulateAdd): the
// queue's length before the add, the number of items, the bound and the
// policy it ran under, plus a fingerprint of the items, so that a key
// reused for other items is refused (ErrIdempotencyConflict) rather than
// answered with results that are not theirs.

// MaxIdempotencyKeyLen bounds an idempotency key.
const MaxIdempotencyKeyLen = 255

// DefaultIdempotencyWindow is how long a key is remembered by default.
const DefaultIdempotencyWindow = 24 * time.Hour

// MaxIdempotencyWindow bounds the window: beyond it a key is no retry.
const MaxIdempotencyWindow = 365 * 24 * time.Hour

// ValidateIdempotencyKey checks a key: 1-255 printable ASCII characters
// (space to '~'), which any HTTP header carries unchanged.
func ValidateIdempotencyKey(key string) error {
	if key == "" {
		return fmt.Errorf("idempotency key is empty")
	}
	if len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("idempotency key is %d bytes long; the limit is %d", len(key), MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("idempotency key has byte 0x%02x at %d; allowed: printable ASCII (0x20-0x7e)", c, i)
		}
	}
	return nil
}

// ValidateIdempotencyWindow checks a window: 1 ms to MaxIdempotencyWindow.
func ValidateIdempotencyWindow(d time.Duration) error {
	if d < time.Millisecond || d > MaxIdempotencyWindow {
		return fmt.Errorf("idempotency window %v: want 1ms to %v", d, MaxIdempotencyWindow)
	}
	return nil
}

// Fingerprint identifies a batch of stored items, in order: the first 16
// bytes of a SHA-256 over each item's length and bytes, in hex.
func Fingerprint(items []string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, it := range items {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(it)))])
		h.Write([]byte(it))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// IdempotencyRecord is what an engine stores for a key.
type IdempotencyRecord struct {
	// Before is the queue's length before the add.
	Before int64
	// Count is how many items the add had.
	Count   int64
	MaxSize int64
	Policy  Policy
	// Fingerprint is Fingerprint of the add's items.
	Fingerprint string
}

// NewIdempotencyRecord describes add p, minus the length before it, which
// only the engine's atomic step knows.
func NewIdempotencyRecord(p AddParams) IdempotencyRecord {
	return IdempotencyRecord{
		Count: int64(len(p.Items)), MaxSize: p.MaxSize, Policy: p.Policy.Normalize(),
		Fingerprint: Fingerprint(p.Items),
	}
}

// Tail is the record's encoding without its leading length: the Redis
// script prepends the length it finds ("<before>:" + Tail).
func (r IdempotencyRecord) Tail() string {
	return strconv.FormatInt(r.Count, 10) + ":" + strconv.FormatInt(r.MaxSize, 10) + ":" +
		string(r.Policy) + ":" + r.Fingerprint
}

// Encode is the stored form: "<before>:<count>:<max>:<policy>:<fingerprint>".
func (r IdempotencyRecord) Encode() string {
	return strconv.FormatInt(r.Before, 10) + ":" + r.Tail()
}

// DecodeIdempotencyRecord parses Encode's form.
func DecodeIdempotencyRecord(s string) (IdempotencyRecord, error) {
	f := strings.SplitN(s, ":", 5)
	if len(f) != 5 {
		return IdempotencyRecord{}, fmt.Errorf("idempotency record %q: want 5 fields", s)
	}
	var r IdempotencyRecord
	var err1, err2, err3 error
	r.Before, err1 = strconv.ParseInt(f[0], 10, 64)
	r.Count, err2 = strconv.ParseInt(f[1], 10, 64)
	r.MaxSize, err3 = strconv.ParseInt(f[2], 10, 64)
	r.Policy, r.Fingerprint = Policy(f[3]), f[4]
	if err1 != nil || err2 != nil || err3 != nil || r.Count < 1 || r.Before < 0 {
		return IdempotencyRecord{}, fmt.Errorf("idempotency record %q is malformed", s)
	}
	return r, nil
}

// Replay answers a repeated add with key, described by asked
// (NewIdempotencyRecord of it), with the recorded results, each marked
// Replayed; ErrIdempotencyConflict when its items are not the recorded
// ones. Policy and bound are not compared: the first add's stand.
func (r IdempotencyRecord) Replay(key string, asked IdempotencyRecord) ([]AddResult, error) {
	if asked.Count != r.Count || asked.Fingerprint != r.Fingerprint {
		return nil, fmt.Errorf("%w (key %q)", ErrIdempotencyConflict, key)
	}
	res := SimulateAdd(r.Before, r.MaxSize, r.Policy, int(r.Count))
	for i := range res {
		res[i].Replayed = true
	}
	return res, nil
}

// SimulateAdd derives each item's outcome from the queue's length before
// a batch of n, the bound and the policy, exactly as every engine applies
// them item by item (the conformance suite holds engines to it).
func SimulateAdd(length, limit int64, policy Policy, n int) []AddResult {
	results := make([]AddResult, n)
	for i := range results {
		r := &results[i]
		r.Accepted = true
		switch {
		case limit <= 0 || length < limit:
			length++
		case policy == PolicyDLQ:
			r.MovedToDLQ = length - limit + 1
			length = limit
		case policy == PolicyDropOldest:
			r.Dropped = length - limit + 1
			length = limit
		default:
			r.Accepted = false
		}
		r.QueueLength = length
	}
	return results
}
