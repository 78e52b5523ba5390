package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
)

// Idempotent adds (engine.AddParams.IdempotencyKey) run queue_add_keyed.lua,
// which checks each add's record, adds and stores the record in one step.
// Concurrent ones on one queue (same policy and bound) are merged like
// plain adds, but apart from them: the script takes the merged adds in
// order, each with its own key, so of two adds with one key in one call
// the first writes and the second finds its record.
//
// The combiner deals in flat lists of elements with one result each, so a
// caller's share is keyedHeader elements describing its add, then its
// items; the result of its first element carries the add's own error (a
// key reused for other items), which must not reach the other callers.
const keyedHeader = 4 // record key, window in ms, record tail, idempotency key

// keyedSlot is the result of one element of a merged keyed add.
type keyedSlot struct {
	res engine.AddResult
	err error
}

// keyedAddCombiner merges idempotent adds with the same queue, policy and
// bound.
type keyedAddCombiner = combiner[addKey, keyedSlot]

// keyedShare is an add's elements in a merged call: its header, then its
// items.
func (e *Engine) keyedShare(params engine.AddParams) []string {
	share := make([]string, 0, keyedHeader+len(params.Items))
	share = append(share,
		e.keys.Idempotency(params.Queue, params.IdempotencyKey),
		strconv.FormatInt(max(params.IdempotencyWindow.Milliseconds(), 1), 10),
		engine.NewIdempotencyRecord(params).Tail(),
		params.IdempotencyKey,
	)
	return append(share, params.Items...)
}

func (e *Engine) addKeyed(ctx context.Context, params engine.AddParams) ([]engine.AddResult, error) {
	share := e.keyedShare(params)
	// As for plain adds, a merged call must not fail for one caller's
	// cancellation.
	wctx := context.WithoutCancel(ctx)
	policy := params.Policy.Normalize()
	key := addKey{queue: params.Queue, policy: policy, max: max(params.MaxSize, 0),
		maxExplicit: params.MaxSizeExplicit, policyExplicit: params.PolicyExplicit}
	var slots []keyedSlot
	var err error
	if scheduleDelay(params) != "" {
		// Scheduled adds are not merged (see QueueAdd).
		slots, err = e.addKeyedMerged(wctx, params, share)
	} else {
		slots, err = e.keyedAdds.do(key, share, func(merged []string) ([]keyedSlot, error) {
			return e.addKeyedMerged(wctx, params, merged)
		})
	}
	if len(slots) != len(share) {
		if err == nil {
			err = errors.New("queue add: no result for the add")
		}
		return nil, err
	}
	if slots[0].err != nil {
		return nil, slots[0].err
	}
	results := make([]engine.AddResult, len(params.Items))
	for i := range results {
		results[i] = slots[keyedHeader+i].res
	}
	return results, err // err: a *ReplicaAckError, or nil
}

// keyedAdd is one add of a merged call, parsed back from its elements.
type keyedAdd struct {
	start int // index of its first element
	key   string
	asked engine.IdempotencyRecord
}

// addKeyedMerged is one queue_add_keyed.lua call for merged keyed adds;
// p is one of them (they share queue, bound, policy and flags).
func (e *Engine) addKeyedMerged(ctx context.Context, p engine.AddParams, merged []string) ([]keyedSlot, error) {
	const op = "queue add"
	queue := p.Queue
	k := e.keys.Queue(queue)
	keys := []string{k.List, k.OverflowDLQ, k.Settings, k.Scheduled, k.Seq}
	args := []string{string(p.Policy.Normalize()), strconv.FormatInt(p.MaxSize, 10), engine.PyJSONString(queue), "",
		addFlags(p.MaxSizeExplicit, p.PolicyExplicit, false), scheduleDelay(p)}
	var adds []keyedAdd
	for i := 0; i < len(merged); {
		asked, err := engine.DecodeIdempotencyRecord("0:" + merged[i+2])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		n := int(asked.Count)
		adds = append(adds, keyedAdd{start: i, key: merged[i+3], asked: asked})
		keys = append(keys, merged[i])
		args = append(args, merged[i+1], strconv.Itoa(n), asked.Fingerprint)
		args = append(args, merged[i+keyedHeader:i+keyedHeader+n]...)
		i += keyedHeader + n
	}
	args[3] = strconv.Itoa(len(adds))
	keys = append(keys, k.Stats) // last: see scripts/stats.lua
	res, err := e.runScript(ctx, op, e.scripts.addKeyed, keys, args)
	ackErr, applied := ackError(err)
	if err != nil && !applied {
		return nil, interpretError(op, err)
	}
	replies, err := res.ToArray()
	if err != nil {
		return nil, interpretError(op, err)
	}
	if len(replies) != 3+len(adds) {
		return nil, fmt.Errorf("%s %q: the script answered %d values for %d adds", op, queue, len(replies), len(adds))
	}
	// The bound and policy the adds ran under, or (on a conflict) the
	// declared ones.
	conflict, _ := replies[0].AsInt64()
	maxSize, _ := replies[1].AsInt64()
	policyText, _ := scriptString(replies[2])
	policy := engine.Policy(policyText)
	var conflictErr error
	if conflict != 0 {
		dmax, _ := scriptString(replies[1])
		conflictErr = conflictError(dmax, policyText, p.MaxSize, p.Policy, p.MaxSizeExplicit, p.PolicyExplicit)
	}
	replies = replies[3:]
	if len(replies) != len(adds) {
		return nil, fmt.Errorf("%s: the script answered %d adds of %d", op, len(replies), len(adds))
	}
	slots := make([]keyedSlot, len(merged))
	for j, a := range adds {
		var results []engine.AddResult
		var err error
		if replies[j].IsString() {
			results, err = replay(replies[j], a.key, a.asked)
		} else {
			var before int64
			if before, err = replies[j].AsInt64(); err == nil {
				if before < 0 && conflictErr != nil {
					slots[a.start].err = conflictErr
					continue
				}
				results = engine.SimulateAdd(before, maxSize, policy, int(a.asked.Count))
			}
		}
		if err != nil {
			if !errors.Is(err, engine.ErrIdempotencyConflict) {
				// A conflict is a sentinel outcome, for the caller to name.
				err = fmt.Errorf("%s: %w", op, err)
			}
			slots[a.start].err = err
			continue
		}
		for i, r := range results {
			slots[a.start+keyedHeader+i].res = r
		}
	}
	e.register(ctx, queue)
	if applied {
		return slots, ackErr
	}
	return slots, nil
}

// replay answers an idempotent add from the record the script found.
func replay(msg rueidis.RedisMessage, key string, asked engine.IdempotencyRecord) ([]engine.AddResult, error) {
	stored, err := msg.ToString()
	if err != nil {
		return nil, err
	}
	rec, err := engine.DecodeIdempotencyRecord(stored)
	if err != nil {
		return nil, err
	}
	return rec.Replay(key, asked)
}
