package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// Declared queues keep their settings in a hash beside the queue's keys,
// in its hash slot (keyspace.Queue.Settings, "sluice#settings:Q"), which
// the Python service never reads or writes: its producers go on pushing
// to the list (under their own bound: a plain RPUSH knows nothing of the
// declared one, and its items count toward it for Sluice's next add), and
// its consumers go on popping, paused or not. Sluice's adds resolve the
// declared bound and policy inside their own script (settings.lua), with
// no extra round trip.
//
// Pause: the paused flag is a field of the same hash. Every script that
// hands items out checks it in the same atomic step (queue_pop.lua,
// lease_receive.lua), so a paused queue hands nothing out. A consumer that
// finds the queue paused and may block waits on the queue's wake list
// (keyspace.Queue.Wake) with BLMOVE from the list to itself: resuming
// (queue_pause.lua) puts one element there, which each blocked waiter in
// turn moves back in place, so a single push wakes them all; pausing
// deletes the list. A BLPOP that was already blocked on the list when the
// queue was paused may still take an item: the read of the paused flag
// pipelined behind the BLPOP (blockingPop) shows the pause, and
// queue_pop_check.lua then puts the item back at the head, atomically with
// a second look at the flag, and the pop waits for the resume; a blocked receive's BLMOVE moves its item to the handoff
// list, which lease_receive.lua moves back to the head while paused.

// Hash fields of the settings hash (see scripts/settings.lua).
const (
	fieldMaxSize       = "max_size"
	fieldPolicy        = "policy"
	fieldPressure      = "pressure"
	fieldLeaseMS       = "lease_ms"
	fieldMaxDeliveries = "max_deliveries"
	fieldPaused        = "paused"
)

// addFlags is the flags argument of the add scripts.
func addFlags(maxExplicit, policyExplicit, full bool) string {
	b := []byte("000")
	if maxExplicit {
		b[0] = '1'
	}
	if policyExplicit {
		b[1] = '1'
	}
	if full {
		b[2] = '1'
	}
	return string(b)
}

// conflictError builds the error of a call whose explicit bound or policy
// a script found in conflict with the declared max_size and policy it
// returned (as stored, "" when absent): engine.QueueSettings.Resolve says
// what conflicts, exactly as the embedded engine would. It names no
// operation: the public package does, once.
func conflictError(dmax, dpol string, maxSize int64, policy engine.Policy, maxExplicit, policyExplicit bool) error {
	var s engine.QueueSettings
	if dmax != "" {
		if n, err := strconv.ParseInt(dmax, 10, 64); err == nil {
			s.MaxSize, s.Set = n, s.Set|engine.SetMaxSize
		}
	}
	if dpol != "" {
		s.Policy, s.Set = engine.Policy(dpol), s.Set|engine.SetPolicy
	}
	if _, _, err := s.Resolve(maxSize, policy, maxExplicit, policyExplicit); err != nil {
		return err // the caller names the operation (one layer adds it)
	}
	return fmt.Errorf("%w (declared max size %q, policy %q)", engine.ErrSettingsConflict, dmax, dpol)
}

// scriptString reads a reply element that a script returned as a string
// or, when it was a Lua number, as an integer.
func scriptString(m rueidis.RedisMessage) (string, error) {
	if m.IsInt64() {
		n, err := m.AsInt64()
		return strconv.FormatInt(n, 10), err
	}
	return m.ToString()
}

// parseSettings reads the settings hash (HGETALL's field/value pairs).
func parseSettings(kv map[string]string) (engine.QueueSettings, error) {
	var s engine.QueueSettings
	var err error
	if v, ok := kv[fieldMaxSize]; ok {
		s.Set |= engine.SetMaxSize
		if s.MaxSize, err = strconv.ParseInt(v, 10, 64); err != nil {
			return s, fmt.Errorf("settings field %s %q: %w", fieldMaxSize, v, err)
		}
	}
	if v, ok := kv[fieldPolicy]; ok {
		s.Set |= engine.SetPolicy
		s.Policy = engine.Policy(v)
	}
	if v, ok := kv[fieldPressure]; ok {
		s.Set |= engine.SetPressureThreshold
		if s.PressureThreshold, err = strconv.ParseFloat(v, 64); err != nil {
			return s, fmt.Errorf("settings field %s %q: %w", fieldPressure, v, err)
		}
	}
	if v, ok := kv[fieldLeaseMS]; ok {
		s.Set |= engine.SetLease
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("settings field %s %q: %w", fieldLeaseMS, v, err)
		}
		s.Lease = time.Duration(n) * time.Millisecond
	}
	if v, ok := kv[fieldMaxDeliveries]; ok {
		s.Set |= engine.SetMaxDeliveries
		if s.MaxDeliveries, err = strconv.Atoi(v); err != nil {
			return s, fmt.Errorf("settings field %s %q: %w", fieldMaxDeliveries, v, err)
		}
	}
	s.Paused = kv[fieldPaused] == "1"
	return s, nil
}

// QueueDeclare runs queue_declare.lua and registers the queue.
func (e *Engine) QueueDeclare(ctx context.Context, queue string, s engine.QueueSettings) (engine.QueueSettings, error) {
	const op = "queue declare"
	if err := e.check(op); err != nil {
		return engine.QueueSettings{}, err
	}
	if err := s.Validate(); err != nil {
		return engine.QueueSettings{}, fmt.Errorf("%s: %w", op, err)
	}
	args := make([]string, 5)
	if s.Has(engine.SetMaxSize) {
		args[0] = strconv.FormatInt(s.MaxSize, 10)
	}
	if s.Has(engine.SetPolicy) {
		args[1] = string(s.Policy)
	}
	if s.Has(engine.SetPressureThreshold) {
		args[2] = strconv.FormatFloat(s.PressureThreshold, 'g', -1, 64)
	}
	if s.Has(engine.SetLease) {
		args[3] = strconv.FormatInt(s.Lease.Milliseconds(), 10)
	}
	if s.Has(engine.SetMaxDeliveries) {
		args[4] = strconv.Itoa(s.MaxDeliveries)
	}
	k := e.keys.Queue(queue)
	kv, err := e.scripts.queueDeclare.Exec(ctx, e.client, []string{k.Settings}, args).AsStrMap()
	if err != nil {
		return engine.QueueSettings{}, interpretError(op, err)
	}
	// The registry is another slot's key: best effort, as for adds.
	e.register(ctx, queue)
	got, err := parseSettings(kv)
	if err != nil {
		return engine.QueueSettings{}, fmt.Errorf("%s: %w", op, err)
	}
	return got, nil
}

// QueueSettings is HGETALL of the settings hash.
func (e *Engine) QueueSettings(ctx context.Context, queue string) (engine.QueueSettings, bool, error) {
	const op = "queue settings"
	if err := e.check(op); err != nil {
		return engine.QueueSettings{}, false, err
	}
	k := e.keys.Queue(queue)
	kv, err := e.client.Do(ctx, e.client.B().Hgetall().Key(k.Settings).Build()).AsStrMap()
	if err != nil {
		return engine.QueueSettings{}, false, interpretError(op, err)
	}
	if len(kv) == 0 {
		return engine.QueueSettings{}, false, nil
	}
	s, err := parseSettings(kv)
	if err != nil {
		return engine.QueueSettings{}, false, fmt.Errorf("%s: %w", op, err)
	}
	return s, true, nil
}

// QueuePause runs queue_pause.lua.
func (e *Engine) QueuePause(ctx context.Context, queue string) error {
	return e.setPaused(ctx, "queue pause", queue, "1")
}

// QueueResume runs queue_pause.lua, which wakes the waiters.
func (e *Engine) QueueResume(ctx context.Context, queue string) error {
	return e.setPaused(ctx, "queue resume", queue, "0")
}

func (e *Engine) setPaused(ctx context.Context, op, queue, flag string) error {
	if err := e.check(op); err != nil {
		return err
	}
	k := e.keys.Queue(queue)
	err := e.scripts.queuePause.Exec(ctx, e.client, []string{k.Settings, k.Wake}, []string{flag}).Error()
	if err != nil {
		return interpretError(op, err)
	}
	if flag == "1" {
		e.register(ctx, queue)
	}
	return nil
}

// QueueDelete runs queue_delete.lua, then drops the queue from the
// registry (another slot's key, so not in the script, and best effort as
// the registry is: should that SREM fail, the listing shows an empty queue
// until the next delete; an add racing the delete may be left out of the
// listing until another process adds to the queue).
func (e *Engine) QueueDelete(ctx context.Context, queue string, force bool) (engine.DeleteResult, error) {
	const op = "queue delete"
	if err := e.check(op); err != nil {
		return engine.DeleteResult{}, err
	}
	k := e.keys.Queue(queue)
	keys := []string{k.List, k.OverflowDLQ, k.FailedDLQ, k.Leases, k.Jobs, k.Handoff, k.Settings, k.Wake, k.Scheduled, k.Stats, k.Batches}
	arg := "0"
	if force {
		arg = "1"
	}
	raw, err := e.scripts.queueDelete.Exec(ctx, e.client, keys, []string{arg}).AsIntSlice()
	if err != nil {
		return engine.DeleteResult{}, interpretError(op, err)
	}
	if len(raw) == 2 && raw[0] < 0 {
		return engine.DeleteResult{}, fmt.Errorf("%s: %w (%d; force deletes them too)", op, engine.ErrQueueInFlight, raw[1])
	}
	if len(raw) != 5 {
		return engine.DeleteResult{}, fmt.Errorf("%s: script returned %d values, want 5", op, len(raw))
	}
	e.fullQueues.Delete(queue)
	e.registered.Delete(queue)
	if err := e.client.Do(ctx, e.client.B().Srem().Key(e.keys.Registry()).Member(queue).Build()).Error(); err != nil {
		return engine.DeleteResult{}, interpretError(op, err)
	}
	return engine.DeleteResult{Items: raw[0], OverflowDLQ: raw[1], FailedDLQ: raw[2], InFlight: raw[3], Settings: raw[4] == 1}, nil
}

// waitResume blocks until the paused queue is resumed (or deleted), for
// at most timeout: BLMOVE from the wake list to itself, so that the one
// element a resume pushes wakes every waiter in turn (see above). It
// returns nil on a wake or timeout; the caller looks again either way.
func (e *Engine) waitResume(ctx context.Context, k keyspace.Queue, timeout time.Duration) error {
	// BLMOVE reads 0 as "forever".
	seconds := max(timeout.Seconds(), 0.001)
	move := e.client.B().Blmove().Source(k.Wake).Destination(k.Wake).Left().Left().Timeout(seconds).Build()
	err := e.client.Do(ctx, move.UnblockOnCancel()).Error()
	if err != nil && !rueidis.IsRedisNil(err) {
		return err
	}
	return nil
}
