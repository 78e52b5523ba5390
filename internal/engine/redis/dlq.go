package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// dlqKey picks the list of a queue's DLQ of the given kind.
func dlqKey(k keyspace.Queue, kind engine.DLQKind) (string, error) {
	switch kind {
	case engine.DLQOverflow:
		return k.OverflowDLQ, nil
	case engine.DLQFailed:
		return k.FailedDLQ, nil
	}
	return "", fmt.Errorf("unknown DLQ kind %q; use %q or %q", kind, engine.DLQOverflow, engine.DLQFailed)
}

// DLQLen is LLEN of the chosen DLQ.
func (e *Engine) DLQLen(ctx context.Context, queue string, kind engine.DLQKind) (int64, error) {
	const op = "dlq len"
	if err := e.check(op); err != nil {
		return 0, err
	}
	key, err := dlqKey(e.keys.Queue(queue), kind)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	n, err := e.client.Do(ctx, e.client.B().Llen().Key(key).Build()).AsInt64()
	return n, interpretError(op, err)
}

// DLQRange is LRANGE of the chosen DLQ; entries are returned as stored.
func (e *Engine) DLQRange(ctx context.Context, queue string, kind engine.DLQKind, start, end int64) ([]string, error) {
	const op = "dlq range"
	if err := e.check(op); err != nil {
		return nil, err
	}
	key, err := dlqKey(e.keys.Queue(queue), kind)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return e.lrange(ctx, op, key, start, end)
}

// DLQRemove deletes the entry at index only when it is entry (see
// scripts/dlq_remove.lua).
func (e *Engine) DLQRemove(ctx context.Context, queue string, kind engine.DLQKind, index int64, entry string) (bool, error) {
	const op = "dlq remove"
	if err := e.check(op); err != nil {
		return false, err
	}
	key, err := dlqKey(e.keys.Queue(queue), kind)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if index < 0 {
		return false, nil // LINDEX would count from the tail
	}
	// The marker that takes the entry's place for LREM: random, so that
	// no entry can hold it.
	marker := "sluice#removed:" + deliveryTokens(2)
	res, err := e.runScript(ctx, op, e.scripts.dlqRemove, []string{key}, []string{strconv.FormatInt(index, 10), entry, marker})
	if err != nil {
		return false, interpretError(op, err)
	}
	n, err := res.AsInt64()
	return n == 1, interpretError(op, err)
}

// DLQPurge deletes the chosen DLQ and returns how many entries it held.
// LLEN and DEL go in one MULTI so the count is the count deleted.
func (e *Engine) DLQPurge(ctx context.Context, queue string, kind engine.DLQKind) (int64, error) {
	const op = "dlq purge"
	if err := e.check(op); err != nil {
		return 0, err
	}
	key, err := dlqKey(e.keys.Queue(queue), kind)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	res := e.client.DoMulti(ctx,
		e.client.B().Multi().Build(),
		e.client.B().Llen().Key(key).Build(),
		e.client.B().Del().Key(key).Build(),
		e.client.B().Exec().Build(),
	)
	replies, err := res[3].ToArray()
	if err != nil {
		return 0, interpretError(op, err)
	}
	n, err := replies[0].AsInt64()
	return n, interpretError(op, err)
}

// DLQRequeue runs dlq_requeue.lua once for the whole request; see the
// script's header for how entries are unwrapped and what happens to
// entries that cannot be.
func (e *Engine) DLQRequeue(ctx context.Context, params engine.RequeueParams) (engine.RequeueResult, error) {
	const op = "dlq requeue"
	if err := e.check(op); err != nil {
		return engine.RequeueResult{}, err
	}
	k := e.keys.Queue(params.Queue)
	source, err := dlqKey(k, params.Kind)
	if err != nil {
		return engine.RequeueResult{}, fmt.Errorf("%s: %w", op, err)
	}
	args := []string{
		strconv.FormatInt(params.Count, 10),
		string(params.Policy.Normalize()),
		strconv.FormatInt(params.MaxSize, 10),
		engine.PyJSONString(params.Queue),
		addFlags(params.MaxSizeExplicit, params.PolicyExplicit, false),
	}
	// A cancelled ctx can lose only this reply: the script moves entries
	// between lists of the queue atomically, so each is in one of them.
	res, err := e.runScript(ctx, op, e.scripts.dlqRequeue, []string{k.List, source, k.OverflowDLQ, k.Settings, k.Scheduled, k.Stats}, args)
	ackErr, applied := ackError(err)
	if err != nil && !applied {
		return engine.RequeueResult{}, interpretError(op, err)
	}
	msgs, err := res.ToArray()
	if err != nil {
		return engine.RequeueResult{}, interpretError(op, err)
	}
	if len(msgs) == 3 && !msgs[1].IsInt64() {
		// {-1, declared max_size, declared policy}: a conflict.
		dmax, _ := scriptString(msgs[1])
		dpol, _ := scriptString(msgs[2])
		return engine.RequeueResult{}, conflictError(dmax, dpol, params.MaxSize, params.Policy, params.MaxSizeExplicit, params.PolicyExplicit)
	}
	raw, err := res.AsIntSlice()
	if err != nil {
		return engine.RequeueResult{}, interpretError(op, err)
	}
	if len(raw) != 3 {
		return engine.RequeueResult{}, fmt.Errorf("%s: script returned %d values, want 3", op, len(raw))
	}
	e.register(ctx, params.Queue)
	result := engine.RequeueResult{Requeued: raw[0], Remaining: raw[1], Displaced: raw[2]}
	if applied {
		return result, ackErr
	}
	return result, nil
}
