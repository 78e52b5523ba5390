package sluice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// MaxPeek is the most items one Peek returns.
const MaxPeek = 1000

// Queue is a handle on one named queue. It is cheap; make one per use or
// keep it. Names are 1-200 characters of A-Z a-z 0-9 _ . : - { }.
type Queue struct {
	c    *Client
	name string
	// nameErr is what every call on the handle reports: an invalid name,
	// or settings QueueWith was given that are invalid.
	nameErr error
	// settings are what the handle runs under on a queue that declares
	// none; explicit are the fields QueueWith was given (they may only be
	// stricter than declared ones), configured those QueueWithDefaults
	// was given (declared ones replace them). See declare.go.
	settings   QueueSettings
	explicit   QueueSettings
	configured QueueSettings
}

// Queue returns a handle on the queue name, with the client's queue
// settings (Config.Queue). An invalid name is reported (ErrInvalidName) by
// every call on the handle.
func (c *Client) Queue(name string) *Queue {
	return c.queue(name, c.cfg.Queue)
}

// QueueWith returns a handle on the queue name with settings of its own:
// the non-zero fields of s replace the client's (Config.Queue), the zero
// ones keep them. Invalid settings are reported (ErrInvalidArgument) by
// every call on the handle, as an invalid name is. On a declared queue the
// non-zero MaxSize and Policy of s may only be stricter than the declared
// ones (see DeclareQueue); QueueWithDefaults gives settings that yield to
// declared ones instead.
func (c *Client) QueueWith(name string, s QueueSettings) *Queue {
	q := c.queue(name, s.or(c.cfg.Queue))
	q.explicit = s
	if q.nameErr == nil {
		if err := s.validate(); err != nil {
			q.nameErr = fmt.Errorf("sluice: queue %q: %w", name, err)
		}
	}
	return q
}

func (c *Client) queue(name string, s QueueSettings) *Queue {
	q := &Queue{c: c, name: name, settings: s}
	if err := keyspace.ValidateQueueName(name); err != nil {
		q.nameErr = fmt.Errorf("sluice: %w: %v", ErrInvalidName, err)
	}
	return q
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// AddOptions override the queue's settings for one add. A nil
// *AddOptions, like the zero value, means the queue's settings and no
// idempotency key.
type AddOptions struct {
	// Policy is the overflow policy of this add; "" means the queue's.
	Policy Policy
	// MaxSize is the capacity for this add: 0 means the queue's, Unbounded
	// no bound; any other negative value is invalid (ErrInvalidArgument).
	// On a declared queue, Policy and MaxSize may only be stricter than the
	// declared ones (ErrSettingsConflict otherwise, nothing written).
	MaxSize int64
	// IdempotencyKey, when set, makes the add happen at most once for the
	// key on this queue within IdempotencyWindow: an add that repeats the
	// key (a retry after a timeout, say) writes nothing and returns the
	// first add's results, each with Replayed set. The check, the add and
	// the record of the key are one atomic step, so of concurrent adds
	// with one key exactly one writes. Reusing a key for other items
	// (compared by content, in order) fails with ErrIdempotencyConflict;
	// the first add's policy and capacity decide the replayed results,
	// whatever the repeat asks. Keys are 1-255 printable ASCII characters
	// (ErrInvalidArgument otherwise). Without a key an add costs nothing
	// extra.
	IdempotencyKey string
	// IdempotencyWindow is how long IdempotencyKey is remembered: 0 means
	// DefaultIdempotencyWindow; 1ms to MaxIdempotencyWindow. Without a key
	// it has no effect.
	IdempotencyWindow time.Duration
	// Delay schedules the items: each becomes visible (to Get, Receive and
	// batch consumers) once Delay has passed. 0 means at once; negative is
	// invalid (ErrInvalidArgument). A scheduled item counts toward the
	// queue's bound from the moment it is accepted (AddResult.QueueLength
	// and Pressure count it), survives restarts and failovers like any
	// item, and is moved to the queue's tail when due by the next Receive
	// or Get of the queue (a blocked one wakes for it) or by a
	// maintainer's sweep (RunMaintainer). When the queue is
	// full, drop_oldest and dlq make room from the queue's head and, with
	// no visible item left, from the scheduled items due soonest. On Redis
	// the time is counted on the server's clock.
	Delay time.Duration
	// NotBefore schedules the items as Delay does, until a point in time
	// (a time already past adds them at once). Set Delay or NotBefore, not
	// both (ErrInvalidArgument).
	NotBefore time.Time
}

// addSettings are an add's effective options.
type addSettings struct {
	policy  Policy
	maxSize int64
	// notBefore is when the items become visible; zero: at once.
	notBefore time.Time
	// maxExplicit and policyExplicit: the caller gave them (AddOptions or
	// QueueWith), so on a declared queue they may only be stricter.
	maxExplicit, policyExplicit bool
	// idem is set for an add with an idempotency key only.
	idem *idemSettings
}

type idemSettings struct {
	key    string
	window time.Duration
}

// DefaultIdempotencyWindow is how long an idempotency key is remembered
// unless AddOptions.IdempotencyWindow says otherwise.
const DefaultIdempotencyWindow = engine.DefaultIdempotencyWindow

// MaxIdempotencyWindow is the longest idempotency window (365 days).
const MaxIdempotencyWindow = engine.MaxIdempotencyWindow

// AddResult is the outcome of adding one item, with docs/compat.md's fields.
type AddResult struct {
	// Success is false only when the item was rejected: nothing was written.
	Success bool `json:"success"`
	// QueueLength is the queue's length after the add, scheduled items
	// (AddOptions.Delay) included, as the bound counts them.
	QueueLength     int64  `json:"queue_length"`
	DroppedCount    int64  `json:"dropped_count"`
	MovedToDLQCount int64  `json:"moved_to_dlq_count"`
	Error           string `json:"error,omitempty"`
	Warning         string `json:"warning,omitempty"`
	// HadBackpressure is true when anything was dropped, moved or rejected.
	HadBackpressure bool `json:"had_backpressure"`
	// Replayed is true when the add repeated an idempotency key: this is
	// the first add's result, and nothing was written now. (Not part of
	// docs/compat.md's JSON; the HTTP service says it in a header.)
	Replayed bool `json:"-"`
}

// Add appends v to the tail of the queue, applying the overflow policy
// atomically with the push. v is stored as docs/compat.md says: a string as
// itself, a json.RawMessage as given, anything else as JSON.
//
// When the queue is full under the reject policy, the result has
// Success=false and the error matches ErrQueueFull; nothing was written.
// Any other error means the outcome is unknown only if it is a connection
// error during the call (the item may or may not have been written); an
// encoding or validation error means nothing was written.
func (q *Queue) Add(ctx context.Context, v any, opts *AddOptions) (AddResult, error) {
	// AddBatch's steps for one item, without its slices: an add is the
	// hot path.
	if q.nameErr != nil {
		return AddResult{}, q.nameErr
	}
	s, err := q.addSettings(opts)
	if err != nil {
		return AddResult{}, err
	}
	enc, err := q.encodeItem(0, v)
	if err != nil {
		return AddResult{}, err
	}
	raw, bound, err := q.addEngine(ctx, []string{enc}, s)
	if err != nil {
		return AddResult{}, err
	}
	r := q.result(raw[0], bound)
	if !r.Success {
		return r, fmt.Errorf("sluice: add to queue %q: %w (%d/%d); nothing written", q.name, ErrQueueFull, r.QueueLength, bound)
	}
	return r, nil
}

// AddBatch appends items in order in one atomic step (one round trip on
// Redis), each subject to the policy as if added one by one. Rejected items
// have Success=false in their result; AddBatch itself does not return
// ErrQueueFull. opts apply to every item.
func (q *Queue) AddBatch(ctx context.Context, items []any, opts *AddOptions) ([]AddResult, error) {
	if q.nameErr != nil {
		return nil, q.nameErr
	}
	if len(items) == 0 {
		return nil, nil
	}
	s, err := q.addSettings(opts)
	if err != nil {
		return nil, err
	}
	stored := make([]string, len(items))
	for i, v := range items {
		if stored[i], err = q.encodeItem(i, v); err != nil {
			return nil, err
		}
	}
	raw, bound, err := q.addEngine(ctx, stored, s)
	if err != nil {
		return nil, err
	}
	out := make([]AddResult, len(raw))
	for i, r := range raw {
		out[i] = q.result(r, bound)
	}
	return out, nil
}

// encodeItem encodes item i of an add; its error says nothing was written.
func (q *Queue) encodeItem(i int, v any) (string, error) {
	enc, err := q.c.codec.Encode(v)
	if err != nil {
		return "", fmt.Errorf("sluice: add to queue %q: item %d: %w (nothing written)", q.name, i, encodeErr(err))
	}
	return enc, nil
}

// addSettings resolves an add's options against the queue's settings.
func (q *Queue) addSettings(o *AddOptions) (addSettings, error) {
	s := addSettings{
		policy: q.settings.Policy, maxSize: q.settings.MaxSize,
		maxExplicit: q.explicit.MaxSize != 0, policyExplicit: q.explicit.Policy != "",
	}
	if o == nil {
		return s, nil
	}
	if o.Policy != "" {
		s.policy, s.policyExplicit = o.Policy, true
	}
	if err := validMaxSize("add MaxSize", o.MaxSize); err != nil {
		return s, fmt.Errorf("sluice: %w (nothing written)", err)
	}
	if o.MaxSize != 0 {
		s.maxSize, s.maxExplicit = o.MaxSize, true
	}
	switch {
	case o.Delay < 0:
		return s, fmt.Errorf("sluice: %w: add Delay %v is negative (nothing written)", ErrInvalidArgument, o.Delay)
	case o.Delay > 0 && !o.NotBefore.IsZero():
		return s, fmt.Errorf("sluice: %w: add Delay and NotBefore are both set; set one (nothing written)", ErrInvalidArgument)
	case o.Delay > 0:
		s.notBefore = q.c.now().Add(o.Delay)
	default:
		s.notBefore = o.NotBefore
	}
	if o.IdempotencyKey == "" {
		return s, nil
	}
	if err := engine.ValidateIdempotencyKey(o.IdempotencyKey); err != nil {
		return s, fmt.Errorf("sluice: %w: %v (nothing written)", ErrInvalidArgument, err)
	}
	window := o.IdempotencyWindow
	if window == 0 {
		window = DefaultIdempotencyWindow
	}
	if err := engine.ValidateIdempotencyWindow(window); err != nil {
		return s, fmt.Errorf("sluice: %w: %v (nothing written)", ErrInvalidArgument, err)
	}
	s.idem = &idemSettings{key: o.IdempotencyKey, window: window}
	return s, nil
}

// addEngine adds encoded items and returns the engine's results and the
// bound they met.
func (q *Queue) addEngine(ctx context.Context, stored []string, s addSettings) ([]engine.AddResult, int64, error) {
	p := engine.AddParams{
		Queue: q.name, Items: stored, Policy: engine.Policy(s.policy).Normalize(), MaxSize: s.maxSize,
		MaxSizeExplicit: s.maxExplicit, PolicyExplicit: s.policyExplicit, NotBefore: s.notBefore,
	}
	if s.idem != nil {
		p.IdempotencyKey, p.IdempotencyWindow = s.idem.key, s.idem.window
	}
	raw, err := q.c.eng.QueueAdd(ctx, p)
	if err != nil {
		if errors.Is(err, ErrSettingsConflict) {
			// Refused before anything was pushed: say so, as the other refusals do.
			return nil, 0, fmt.Errorf("sluice: add to queue %q: %w; nothing written", q.name, publicError(err))
		}
		return nil, 0, fmt.Errorf("sluice: add to queue %q: %w", q.name, publicError(err))
	}
	bound := s.maxSize
	for _, r := range raw {
		if !r.Accepted && !s.maxExplicit {
			// The bound that rejected it may be the declared one: read it
			// (only on this path, so that an accepted add costs nothing
			// more), to name the real capacity in the message.
			if es, err := q.declared(ctx); err == nil && es.Has(engine.SetMaxSize) {
				bound = es.MaxSize
			}
			break
		}
	}
	return raw, bound, nil
}

func (q *Queue) result(r engine.AddResult, maxSize int64) AddResult {
	res := AddResult{
		Success:         r.Accepted,
		QueueLength:     r.QueueLength,
		DroppedCount:    r.Dropped,
		MovedToDLQCount: r.MovedToDLQ,
		HadBackpressure: !r.Accepted || r.Dropped > 0 || r.MovedToDLQ > 0,
		Replayed:        r.Replayed,
	}
	switch {
	case !r.Accepted:
		res.Error = fmt.Sprintf("Queue '%s' is full (%d/%d). Item rejected to prevent data loss.", q.name, r.QueueLength, maxSize)
	case r.MovedToDLQ > 0:
		res.Warning = fmt.Sprintf("Moved %d items to DLQ due to overflow", r.MovedToDLQ)
	case r.Dropped > 0:
		res.Warning = fmt.Sprintf("Dropped %d oldest items due to overflow", r.Dropped)
	}
	return res
}

// Get removes and returns the head of the queue, waiting up to timeout for
// one (0: do not wait). ok is false when the queue stayed empty; that is not
// an error. Cancelling ctx ends the wait at once.
//
// Get is at-most-once: once it returns an item, the queue no longer has it.
// Use Receive for acknowledged delivery.
func (q *Queue) Get(ctx context.Context, timeout time.Duration) (item Item, ok bool, err error) {
	if q.nameErr != nil {
		return Item{}, false, q.nameErr
	}
	if timeout < 0 {
		return Item{}, false, fmt.Errorf("sluice: %w: negative timeout %v", ErrInvalidArgument, timeout)
	}
	stored, ok, err := q.c.eng.QueuePop(ctx, q.name, timeout)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("sluice: get from queue %q: %w", q.name, err)
		}
		return Item{}, false, err
	}
	return q.c.decode(stored), true, nil
}

// GetAs is Get followed by decoding into a T. When the item does not
// decode, the error is a *DecodeError holding the item, which is out of
// the queue by then: the caller decides its fate (PutBack to retry, a DLQ,
// a log). Putting it back automatically would make one bad item block the
// queue's head forever.
func GetAs[T any](ctx context.Context, q *Queue, timeout time.Duration) (v T, ok bool, err error) {
	it, ok, err := q.Get(ctx, timeout)
	if err != nil || !ok {
		return v, ok, err
	}
	v, err = As[T](it)
	return v, true, err
}

// TryGet is Get without waiting.
func (q *Queue) TryGet(ctx context.Context) (Item, bool, error) { return q.Get(ctx, 0) }

// PutBack returns items that were taken with Get to the head of the queue,
// in order (items[0] becomes the head), ignoring capacity: they had been
// accepted already.
func (q *Queue) PutBack(ctx context.Context, items ...Item) error {
	if q.nameErr != nil {
		return q.nameErr
	}
	stored := make([]string, len(items))
	for i, it := range items {
		stored[i] = it.stored
	}
	if err := q.c.eng.QueuePushFront(ctx, q.name, stored); err != nil {
		return fmt.Errorf("sluice: put back %d items to queue %q: %w", len(items), q.name, err)
	}
	return nil
}

// Len is the number of items waiting (leased items are not counted).
func (q *Queue) Len(ctx context.Context) (int64, error) {
	if q.nameErr != nil {
		return 0, q.nameErr
	}
	n, err := q.c.eng.QueueLen(ctx, q.name)
	if err != nil {
		return 0, fmt.Errorf("sluice: length of queue %q: %w", q.name, err)
	}
	return n, nil
}

// Pressure describes how full a queue is (docs/compat.md's fields), plus the
// items in flight under leases.
type Pressure struct {
	QueueName     string `json:"queue_name"`
	CurrentLength int64  `json:"current_length"`
	// MaxSize is the queue's capacity, Unbounded (-1) when it has none
	// (then FillRatio is 0 and the queue is never full nor at pressure).
	MaxSize               int64   `json:"max_size"`
	FillRatio             float64 `json:"fill_ratio"`
	IsAtPressureThreshold bool    `json:"is_at_pressure_threshold"`
	IsFull                bool    `json:"is_full"`
	OverflowPolicy        Policy  `json:"overflow_policy"`
	// InFlight counts items under a live lease or within a nack's delay;
	// an expired lease is not in flight (it waits for redelivery, and a
	// maintainer's sweep dead-letters it at its last delivery).
	InFlight int64 `json:"in_flight"`
	// Scheduled counts items added with a delay that are not yet visible.
	// They are not in CurrentLength but count toward the bound: FillRatio,
	// IsFull and IsAtPressureThreshold include them.
	Scheduled int64 `json:"scheduled"`
}

// Pressure reports the queue's fill level against its effective settings:
// the declared bound, policy and threshold when the queue declares them
// (see Settings), the handle's otherwise.
func (q *Queue) Pressure(ctx context.Context) (Pressure, error) {
	n, err := q.Len(ctx)
	if err != nil {
		return Pressure{}, err
	}
	inflight, err := q.c.eng.QueueInFlight(ctx, q.name)
	if err != nil {
		return Pressure{}, fmt.Errorf("sluice: in-flight count of queue %q: %w", q.name, err)
	}
	scheduled, err := q.c.eng.QueueScheduled(ctx, q.name)
	if err != nil {
		return Pressure{}, fmt.Errorf("sluice: scheduled count of queue %q: %w", q.name, err)
	}
	es, err := q.declared(ctx)
	if err != nil {
		return Pressure{}, fmt.Errorf("sluice: settings of queue %q: %w", q.name, err)
	}
	p := q.pressure(q.effective(es).Settings, n+scheduled, inflight)
	p.CurrentLength, p.Scheduled = n, scheduled
	return p, nil
}

// pressure computes the fill of a queue holding n items (visible plus
// scheduled: what the bound counts) under settings d.
func (q *Queue) pressure(d QueueSettings, n, inflight int64) Pressure {
	p := Pressure{
		QueueName: q.name, CurrentLength: n, MaxSize: d.MaxSize,
		OverflowPolicy: Policy(engine.Policy(d.Policy).Normalize()), InFlight: inflight,
	}
	if d.MaxSize > 0 {
		p.FillRatio = float64(n) / float64(d.MaxSize)
		p.IsFull = n >= d.MaxSize
		p.IsAtPressureThreshold = p.FillRatio >= d.PressureThreshold
	}
	return p
}

// Peek returns items start..end inclusive without removing them (LRANGE
// semantics: negative indexes count from the tail), at most MaxPeek.
func (q *Queue) Peek(ctx context.Context, start, end int64) ([]Item, error) {
	if q.nameErr != nil {
		return nil, q.nameErr
	}
	start, end, err := q.boundRange(ctx, start, end)
	if err != nil {
		return nil, err
	}
	if end < start {
		return []Item{}, nil
	}
	stored, err := q.c.eng.QueueRange(ctx, q.name, start, end)
	if err != nil {
		return nil, fmt.Errorf("sluice: peek queue %q: %w", q.name, err)
	}
	return q.c.decodeAll(stored), nil
}

// boundRange caps a span at MaxPeek items, resolving negative indexes
// against the current length only when it has to.
func (q *Queue) boundRange(ctx context.Context, start, end int64) (int64, int64, error) {
	if start < 0 || end < 0 {
		n, err := q.c.eng.QueueLen(ctx, q.name)
		if err != nil {
			return 0, 0, fmt.Errorf("sluice: peek queue %q: %w", q.name, err)
		}
		if start < 0 {
			start = max(n+start, 0)
		}
		if end < 0 {
			end = n + end
		}
	}
	if end < start {
		return 0, -1, nil // empty, as LRANGE answers for a reversed range
	}
	if end-start+1 > MaxPeek {
		end = start + MaxPeek - 1
	}
	return start, end, nil
}

// Clear deletes the queue's waiting items; it reports whether there were
// any. The queue's DLQs and in-flight leases are untouched.
func (q *Queue) Clear(ctx context.Context) (bool, error) {
	if q.nameErr != nil {
		return false, q.nameErr
	}
	ok, err := q.c.eng.QueueClear(ctx, q.name)
	if err != nil {
		return false, fmt.Errorf("sluice: clear queue %q: %w", q.name, err)
	}
	return ok, nil
}

// Queues lists the queues the engine knows of (on Redis: those added to
// through Sluice). A listed name can be unusable: its key may now hold
// another kind of value (ErrWrongType from the queue's calls), or it may
// break naming rules made after it was recorded (ErrInvalidName); a
// listing built on it should skip such names rather than fail.
func (c *Client) Queues(ctx context.Context) ([]string, error) {
	names, err := c.eng.QueueNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("sluice: list queues: %w", err)
	}
	return names, nil
}
