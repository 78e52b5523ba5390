package sluice

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// Declared queues.
//
// A queue may be declared with settings that are stored in the engine with
// the queue (Redis: beside its keys, in its hash slot; embedded: in the
// log), so that every client, the CLI and the HTTP service apply the same
// bound and policy. The engine applies a declared bound and policy inside
// the add's own atomic step: a declared queue costs no extra round trip.
//
// Precedence, from strongest:
//
//  1. Declared settings (DeclareQueue).
//  2. Values the caller gives explicitly: AddOptions.MaxSize and
//     AddOptions.Policy, and the non-zero fields of QueueWith. On a
//     declared queue an explicit bound may only be stricter (smaller); a
//     looser bound, no bound against a declared one, or another policy
//     fails with ErrSettingsConflict and writes nothing. An explicit lease
//     or max deliveries (ReceiveOptions, NackOptions, QueueWith) is the
//     consumer's choice and applies as given. Without one, a receive uses
//     the declared lease and max deliveries, which a client reads at most
//     once a second per queue: another client's declaration reaches its
//     receives within a second, its own at once.
//  3. Defaults: Config.Queue, the settings of QueueWithDefaults, then the
//     package defaults. They yield to declared settings.
//
// A queue that declares nothing behaves as it always did: the caller's
// settings alone apply.

// SettingSource says where an effective queue setting comes from.
type SettingSource string

// The sources of a queue setting.
const (
	// SourceDeclared: the queue's declared settings (DeclareQueue).
	SourceDeclared SettingSource = "declared"
	// SourceHandle: the handle's own settings (QueueWith).
	SourceHandle SettingSource = "handle"
	// SourceConfig: the client's configuration (Config.Queue) or the
	// defaults of QueueWithDefaults.
	SourceConfig SettingSource = "config"
	// SourceDefault: the package's default (DefaultMaxSize, ...).
	SourceDefault SettingSource = "default"
)

// SettingSources give the source of each field of QueueSettings.
type SettingSources struct {
	MaxSize           SettingSource `json:"max_size"`
	Policy            SettingSource `json:"policy"`
	PressureThreshold SettingSource `json:"pressure_threshold"`
	Lease             SettingSource `json:"lease"`
	MaxDeliveries     SettingSource `json:"max_deliveries"`
}

// EffectiveSettings are what a queue handle runs under, read from the
// engine: the declared settings merged with the handle's, by the
// precedence above.
type EffectiveSettings struct {
	// Settings has every field filled in; MaxSize is Unbounded for a
	// queue without bound.
	Settings QueueSettings
	// Declared holds the declared fields; a zero field is not declared.
	Declared QueueSettings
	// Sources says where each field of Settings comes from.
	Sources SettingSources
	// Paused is true while the queue hands nothing out (Pause).
	Paused bool
}

// IsDeclared reports whether any setting of the queue is declared.
func (e EffectiveSettings) IsDeclared() bool { return e.Declared != QueueSettings{} }

// QueueWithDefaults returns a handle on the queue name whose settings s
// (zero fields: the client's, Config.Queue) are defaults, as Config.Queue
// is: a queue's declared settings replace them rather than conflict with
// them. Use it where settings are a fallback for queues that may be
// declared elsewhere, such as a service's configured defaults; QueueWith's
// settings are the caller's own and may only be stricter than declared
// ones.
func (c *Client) QueueWithDefaults(name string, s QueueSettings) *Queue {
	q := c.queue(name, s.or(c.cfg.Queue))
	q.configured = s
	if q.nameErr == nil {
		if err := s.validate(); err != nil {
			q.nameErr = fmt.Errorf("sluice: queue %q: %w", name, err)
		}
	}
	return q
}

// DeclareQueue stores s as the declared settings of the queue name, for
// every client of the engine. A zero field declares nothing (the callers'
// settings then apply to it, as on an undeclared queue); MaxSize Unbounded
// declares that the queue has no bound. Declaring replaces what was
// declared before, field by field, and declaring the same settings again
// changes nothing; a paused queue stays paused. Lease must be a whole
// number of milliseconds. Items already in the queue stay, even past a
// smaller bound; only adds are bounded.
func (c *Client) DeclareQueue(ctx context.Context, name string, s QueueSettings) error {
	if err := keyspace.ValidateQueueName(name); err != nil {
		return fmt.Errorf("sluice: declare queue: %w: %v", ErrInvalidName, err)
	}
	es, err := engineSettings(s)
	if err != nil {
		return fmt.Errorf("sluice: declare queue %q: %w", name, err)
	}
	defer c.settings.forget(name)
	if _, err := c.eng.QueueDeclare(ctx, name, es); err != nil {
		return fmt.Errorf("sluice: declare queue %q: %w", name, publicError(err))
	}
	return nil
}

// engineSettings checks s and converts it, its non-zero fields declared.
func engineSettings(s QueueSettings) (engine.QueueSettings, error) {
	if err := s.validate(); err != nil {
		return engine.QueueSettings{}, err
	}
	if s.Policy != "" {
		if _, err := ParsePolicy(string(s.Policy)); err != nil {
			return engine.QueueSettings{}, fmt.Errorf("%w: unknown overflow policy %q (want reject, dlq or drop_oldest)", ErrInvalidArgument, s.Policy)
		}
	}
	if s.Lease%time.Millisecond != 0 {
		return engine.QueueSettings{}, fmt.Errorf("%w: queue Lease %v (want a whole number of milliseconds)", ErrInvalidArgument, s.Lease)
	}
	var es engine.QueueSettings
	if s.MaxSize != 0 {
		es.MaxSize, es.Set = s.MaxSize, es.Set|engine.SetMaxSize
	}
	if s.Policy != "" {
		es.Policy, es.Set = engine.Policy(s.Policy), es.Set|engine.SetPolicy
	}
	if s.PressureThreshold != 0 {
		es.PressureThreshold, es.Set = s.PressureThreshold, es.Set|engine.SetPressureThreshold
	}
	if s.Lease != 0 {
		es.Lease, es.Set = s.Lease, es.Set|engine.SetLease
	}
	if s.MaxDeliveries != 0 {
		es.MaxDeliveries, es.Set = s.MaxDeliveries, es.Set|engine.SetMaxDeliveries
	}
	if err := es.Validate(); err != nil {
		return engine.QueueSettings{}, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	return es, nil
}

// publicSettings is the declared part of es as QueueSettings.
func publicSettings(es engine.QueueSettings) QueueSettings {
	var s QueueSettings
	if es.Has(engine.SetMaxSize) {
		s.MaxSize = es.MaxSize
	}
	if es.Has(engine.SetPolicy) {
		s.Policy = Policy(es.Policy)
	}
	if es.Has(engine.SetPressureThreshold) {
		s.PressureThreshold = es.PressureThreshold
	}
	if es.Has(engine.SetLease) {
		s.Lease = es.Lease
	}
	if es.Has(engine.SetMaxDeliveries) {
		s.MaxDeliveries = es.MaxDeliveries
	}
	return s
}

// Settings reads the queue's declared settings and returns what this
// handle runs under, with the source of each value. It is one engine read.
func (q *Queue) Settings(ctx context.Context) (EffectiveSettings, error) {
	if q.nameErr != nil {
		return EffectiveSettings{}, q.nameErr
	}
	es, err := q.declared(ctx)
	if err != nil {
		return EffectiveSettings{}, fmt.Errorf("sluice: settings of queue %q: %w", q.name, err)
	}
	return q.effective(es), nil
}

// HandleSettings returns the settings this handle adds and receives with
// on a queue that declares none: QueueWith's, QueueWithDefaults' or the
// client's, with every default filled in. It reads nothing; Settings
// reads the engine.
func (q *Queue) HandleSettings() QueueSettings { return q.settings }

// declared reads the queue's stored settings (the zero value when none).
func (q *Queue) declared(ctx context.Context) (engine.QueueSettings, error) {
	es, _, err := q.c.eng.QueueSettings(ctx, q.name)
	return es, err
}

// effective merges the declared settings es with the handle's.
func (q *Queue) effective(es engine.QueueSettings) EffectiveSettings {
	out := EffectiveSettings{Settings: q.settings, Declared: publicSettings(es), Paused: es.Paused}
	cq, ex, cf := q.c.cfg.Queue, q.explicit, q.configured
	out.Sources = SettingSources{
		MaxSize:           source(ex.MaxSize != 0, cf.MaxSize != 0, cq.MaxSize, DefaultMaxSize),
		Policy:            source(ex.Policy != "", cf.Policy != "", cq.Policy, DefaultPolicy),
		PressureThreshold: source(ex.PressureThreshold != 0, cf.PressureThreshold != 0, cq.PressureThreshold, DefaultPressureThreshold),
		Lease:             source(ex.Lease != 0, cf.Lease != 0, cq.Lease, DefaultLease),
		MaxDeliveries:     source(ex.MaxDeliveries != 0, cf.MaxDeliveries != 0, cq.MaxDeliveries, DefaultMaxDeliveries),
	}
	if es.Has(engine.SetMaxSize) {
		// A stricter bound of the handle's own applies to its adds.
		if !(ex.MaxSize > 0 && (es.MaxSize == engine.Unbounded || ex.MaxSize <= es.MaxSize)) {
			out.Settings.MaxSize, out.Sources.MaxSize = es.MaxSize, SourceDeclared
		}
	}
	if es.Has(engine.SetPolicy) {
		out.Settings.Policy, out.Sources.Policy = Policy(es.Policy), SourceDeclared
	}
	if es.Has(engine.SetPressureThreshold) {
		out.Settings.PressureThreshold, out.Sources.PressureThreshold = es.PressureThreshold, SourceDeclared
	}
	if es.Has(engine.SetLease) && ex.Lease == 0 {
		out.Settings.Lease, out.Sources.Lease = es.Lease, SourceDeclared
	}
	if es.Has(engine.SetMaxDeliveries) && ex.MaxDeliveries == 0 {
		out.Settings.MaxDeliveries, out.Sources.MaxDeliveries = es.MaxDeliveries, SourceDeclared
	}
	return out
}

// source is where an undeclared setting of a handle comes from: QueueWith
// (explicit), QueueWithDefaults (configured), the client's configuration
// when it differs from the package default, else the default. (A client
// configured with the default value itself reports "default": the two
// cannot be told apart once Open has filled the defaults in.)
func source[T comparable](explicit, configured bool, clientVal, def T) SettingSource {
	switch {
	case explicit:
		return SourceHandle
	case configured || clientVal != def:
		return SourceConfig
	}
	return SourceDefault
}

// Pause makes the queue hand nothing out, for every client: Get, Receive
// and batch consumers behave as if it were empty (blocking ones wait)
// until Resume. Adds go on under the queue's policy. Pausing a paused
// queue changes nothing.
func (q *Queue) Pause(ctx context.Context) error {
	if q.nameErr != nil {
		return q.nameErr
	}
	if err := q.c.eng.QueuePause(ctx, q.name); err != nil {
		return fmt.Errorf("sluice: pause queue %q: %w", q.name, err)
	}
	return nil
}

// Resume ends a pause and wakes the consumers waiting on the queue.
// Resuming a queue that is not paused changes nothing.
func (q *Queue) Resume(ctx context.Context) error {
	if q.nameErr != nil {
		return q.nameErr
	}
	if err := q.c.eng.QueueResume(ctx, q.name); err != nil {
		return fmt.Errorf("sluice: resume queue %q: %w", q.name, err)
	}
	return nil
}

// DeleteQueueOptions tune DeleteQueue. A nil *DeleteQueueOptions, like the
// zero value, refuses to delete a queue with items in flight.
type DeleteQueueOptions struct {
	// Force deletes the queue even while items of it are leased, waiting
	// for redelivery or being handed over; their consumers' acks then fail
	// with ErrLeaseNotFound.
	Force bool
}

// DeleteQueueResult reports what DeleteQueue removed.
type DeleteQueueResult struct {
	// Items is how many items were waiting in the queue.
	Items int64 `json:"items"`
	// OverflowDLQ and FailedDLQ are the entries of its two DLQs.
	OverflowDLQ int64 `json:"overflow_dlq"`
	FailedDLQ   int64 `json:"failed_dlq"`
	// InFlight is how many leased or pending items went with it (only
	// with Force).
	InFlight int64 `json:"in_flight"`
	// Settings is true when declared settings (or a pause) were removed.
	Settings bool `json:"settings"`
}

// DeleteQueue removes the queue name as a whole: its items, both DLQs, its
// delivery state and its declared settings; Queues no longer lists it.
// While items are in flight it fails with ErrQueueInFlight and removes
// nothing, unless opts.Force is set. Idempotency keys of past adds expire
// with their window. Deleting a queue that does not exist removes nothing
// and is not an error.
func (c *Client) DeleteQueue(ctx context.Context, name string, opts *DeleteQueueOptions) (DeleteQueueResult, error) {
	if err := keyspace.ValidateQueueName(name); err != nil {
		return DeleteQueueResult{}, fmt.Errorf("sluice: delete queue: %w: %v", ErrInvalidName, err)
	}
	force := opts != nil && opts.Force
	defer c.settings.forget(name)
	r, err := c.eng.QueueDelete(ctx, name, force)
	if err != nil {
		return DeleteQueueResult{}, fmt.Errorf("sluice: delete queue %q: %w", name, publicError(err))
	}
	return DeleteQueueResult{Items: r.Items, OverflowDLQ: r.OverflowDLQ, FailedDLQ: r.FailedDLQ, InFlight: r.InFlight, Settings: r.Settings}, nil
}

// settingsTTL is how long a client reuses the declared settings it read
// for a receive's or a nack's default lease and max deliveries, so that a
// consumer does not pay an engine read per receive. A declaration made by
// another client reaches this client's receives within it; one made by
// this client at once.
const settingsTTL = time.Second

// maxCachedSettings bounds the queues whose settings a client remembers;
// past it the cache starts over.
const maxCachedSettings = 4096

// settingsCache holds declared settings read for deliveries, by queue.
type settingsCache struct {
	mu sync.Mutex
	m  map[string]cachedSettings
}

type cachedSettings struct {
	s  engine.QueueSettings
	at time.Time
}

func (sc *settingsCache) get(name string, now time.Time) (engine.QueueSettings, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.m[name]
	if !ok || now.Sub(e.at) >= settingsTTL || now.Before(e.at) {
		return engine.QueueSettings{}, false
	}
	return e.s, true
}

func (sc *settingsCache) put(name string, s engine.QueueSettings, now time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.m == nil || len(sc.m) >= maxCachedSettings {
		sc.m = make(map[string]cachedSettings)
	}
	sc.m[name] = cachedSettings{s: s, at: now}
}

// forget drops name, after this client changed its settings.
func (sc *settingsCache) forget(name string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	delete(sc.m, name)
}

// deliverySettings returns the queue's declared settings for a delivery's
// defaults, from the cache when it is fresh.
func (q *Queue) deliverySettings(ctx context.Context) (engine.QueueSettings, error) {
	now := time.Now()
	if s, ok := q.c.settings.get(q.name, now); ok {
		return s, nil
	}
	s, err := q.declared(ctx)
	if err != nil {
		return engine.QueueSettings{}, err
	}
	q.c.settings.put(q.name, s, now)
	return s, nil
}
