package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// QueueAdd runs queue_add.lua once for the whole batch, so a batch costs one
// round trip and the policy sees every item in order with nothing
// interleaved; the script applies the queue's declared bound and policy
// (settings.go), so an unbounded add runs it too. The queue is then
// recorded in the registry set (see register). With Options.MinReplicasAck
// set, a *ReplicaAckError comes with the results: the items were stored,
// on the primary only. An add with an idempotency key runs
// queue_add_keyed.lua instead (keyed.go).
func (e *Engine) QueueAdd(ctx context.Context, params engine.AddParams) ([]engine.AddResult, error) {
	const op = "queue add"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if len(params.Items) == 0 {
		return nil, nil
	}
	if params.IdempotencyKey != "" {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w (nothing written)", op, err)
		}
		return e.addKeyed(ctx, params)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w (nothing written)", op, err)
	}
	// A merged call must not fail for one caller's cancellation: it is
	// bounded by the client's own timeouts instead.
	wctx := context.WithoutCancel(ctx)
	key := addKey{queue: params.Queue, policy: params.Policy.Normalize(), max: max(params.MaxSize, 0),
		maxExplicit: params.MaxSizeExplicit, policyExplicit: params.PolicyExplicit}
	return e.adds.do(key, params.Items, func(items []string) ([]engine.AddResult, error) {
		p := params
		p.Items = items
		return e.addBounded(wctx, p)
	})
}

// addBounded is one queue_add.lua call for a (possibly merged) batch.
func (e *Engine) addBounded(ctx context.Context, params engine.AddParams) ([]engine.AddResult, error) {
	const op = "queue add"
	k := e.keys.Queue(params.Queue)
	_, fullBefore := e.fullQueues.Load(params.Queue)
	args := make([]string, 0, 4+len(params.Items))
	args = append(args,
		string(params.Policy.Normalize()),
		strconv.FormatInt(params.MaxSize, 10),
		engine.PyJSONString(params.Queue),
		addFlags(params.MaxSizeExplicit, params.PolicyExplicit, fullBefore),
	)
	args = append(args, params.Items...)
	res, err := e.runScript(ctx, op, e.scripts.queueAdd, []string{k.List, k.OverflowDLQ, k.Settings, k.Stats}, args)
	ackErr, applied := ackError(err)
	if err != nil && !applied {
		return nil, interpretError(op, err)
	}
	reply, err := res.ToArray()
	if err != nil {
		return nil, interpretError(op, err)
	}
	if len(reply) != 3 && len(reply) != 4 {
		return nil, fmt.Errorf("%s: script returned %d values", op, len(reply))
	}
	if status, _ := reply[0].AsInt64(); status != 0 {
		dmax, _ := scriptString(reply[1])
		dpol, _ := scriptString(reply[2])
		return nil, conflictError(op, dmax, dpol, params.MaxSize, params.Policy, params.MaxSizeExplicit, params.PolicyExplicit)
	}
	if len(reply) != 4 {
		return nil, fmt.Errorf("%s: script returned %d values, want 4", op, len(reply))
	}
	before, err := reply[1].AsInt64()
	if err != nil {
		return nil, interpretError(op, err)
	}
	maxSize, err := reply[2].AsInt64()
	if err != nil {
		return nil, interpretError(op, err)
	}
	appliedPolicy, err := reply[3].ToString()
	if err != nil {
		return nil, interpretError(op, err)
	}
	policy := engine.Policy(appliedPolicy)
	results := engine.SimulateAdd(before, maxSize, policy, len(params.Items))
	if policy == engine.PolicyReject && maxSize > 0 {
		switch full := !results[len(results)-1].Accepted; {
		case full && !fullBefore:
			e.fullQueues.Store(params.Queue, struct{}{})
		case !full && fullBefore:
			e.fullQueues.Delete(params.Queue)
		}
	}
	e.register(ctx, params.Queue)
	if applied {
		return results, ackErr
	}
	return results, nil
}

// register adds queue to the registry set once per process. The registry
// is a single key, so in cluster mode it lives in another slot than the
// queue and cannot be written by queue_add.lua: it is best effort, and a
// failed SADD is retried on the next add instead of failing this one, whose
// items are already stored.
func (e *Engine) register(ctx context.Context, queue string) {
	if _, ok := e.registered.Load(queue); ok {
		return
	}
	cmd := e.client.B().Sadd().Key(e.keys.Registry()).Member(queue).Build()
	if err := e.client.Do(ctx, cmd).Error(); err == nil {
		e.registered.Store(queue, struct{}{})
	}
}

// detached returns ctx without its cancellation, for a command that takes
// items out of Redis and hands them only to its caller. Were such a command
// cancelled while on the wire, rueidis would return ctx's error and drop
// the reply, and with it the items the server already removed. Callers
// check ctx before sending; once sent, the command is bounded by the
// client's own read and write timeouts instead.
func detached(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// QueuePop runs queue_pop.lua (LPOP unless the queue is paused) and only
// blocks when it finds nothing and timeout > 0: BLPOP on the queue, or,
// while the queue is paused, a wait for its resume (settings.go), then it
// looks again. Timeouts under a millisecond block for one millisecond:
// BLPOP reads 0 as "forever".
func (e *Engine) QueuePop(ctx context.Context, queue string, timeout time.Duration) (string, bool, error) {
	const op = "queue pop"
	if err := e.check(op); err != nil {
		return "", false, err
	}
	k := e.keys.Queue(queue)
	deadline := time.Now().Add(timeout)
	for {
		if err := ctx.Err(); err != nil {
			return "", false, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		items, stopped, err := e.popScript(ctx, k, 1)
		switch {
		case err != nil:
			return "", false, interpretError(op, err)
		case len(items) > 0:
			return items[0], true, nil
		case timeout <= 0:
			return "", false, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", false, nil
		}
		if stopped {
			wait, stop := e.blockingContext(ctx)
			err := e.waitResume(wait, k, left)
			stop()
			if err != nil {
				if wait.Err() != nil {
					return "", false, e.waitError(wait, op)
				}
				return "", false, interpretError(op, err)
			}
			continue
		}
		item, ok, err := e.blockingPop(ctx, k.List, max(left.Seconds(), 0.001))
		if err != nil || !ok {
			return item, ok, err
		}
		// The BLPOP may have been blocked since before a pause.
		back, err := e.scripts.queuePopCheck.Exec(detached(ctx), e.client, []string{k.List, k.Settings, k.Stats}, []string{item}).AsInt64()
		if err != nil {
			// The item is the caller's: it was taken before the check failed.
			return item, true, nil //nolint:nilerr // see above
		}
		if back == 0 {
			return item, true, nil
		}
	}
}

// popScript runs queue_pop.lua for up to n items; stopped reports a paused
// queue. Like LPOP it is sent detached (see detached).
func (e *Engine) popScript(ctx context.Context, k keyspace.Queue, n int) (items []string, stopped bool, err error) {
	raw, err := e.scripts.queuePop.Exec(detached(ctx), e.client, []string{k.List, k.Settings, k.Stats}, []string{strconv.Itoa(n)}).ToArray()
	if err != nil {
		return nil, false, err
	}
	if len(raw) == 0 {
		return nil, false, fmt.Errorf("queue_pop.lua returned nothing")
	}
	if flag, _ := raw[0].AsInt64(); flag == 1 {
		return nil, true, nil
	}
	items = make([]string, 0, len(raw)-1)
	for _, m := range raw[1:] {
		s, err := m.ToString()
		if err != nil {
			return nil, false, err
		}
		items = append(items, s)
	}
	return items, false, nil
}

type popReply struct {
	item string
	ok   bool
	err  error
}

func toPopReply(res rueidis.RedisResult) popReply {
	kv, err := res.AsStrSlice()
	switch {
	case rueidis.IsRedisNil(err):
		return popReply{}
	case err != nil:
		return popReply{err: err}
	case len(kv) != 2:
		return popReply{err: fmt.Errorf("BLPOP replied with %d elements", len(kv))}
	}
	return popReply{item: kv[1], ok: true}
}

// blockingPop runs BLPOP on a dedicated connection whose client id it
// knows. When ctx ends first, CLIENT UNBLOCK wakes the BLPOP as if it timed
// out and its reply is still read: an item the server already popped is
// returned, never dropped with a closed connection. Should CLIENT UNBLOCK
// be refused (ACLs), the call returns at once anyway and a goroutine
// pushes any item that arrives back to the head of the queue.
//
// On a cluster, CLIENT ID and CLIENT UNBLOCK carry the key's slot, so that
// both reach the primary serving the key: the first binds the dedicated
// connection to that node, the second finds the blocked client there.
// Should the slot move in between, the server itself ends the BLPOP with a
// redirect, and its reply is read as usual.
func (e *Engine) blockingPop(ctx context.Context, key string, seconds float64) (string, bool, error) {
	const op = "queue pop"
	dc, release := e.client.Dedicate()
	id, err := dc.Do(ctx, dc.B().ClientId().Build().SetSlot(key)).AsInt64()
	if err != nil {
		release()
		return "", false, interpretError(op, err)
	}
	wait, stop := e.blockingContext(ctx)
	defer stop()
	replies := make(chan popReply, 1)
	go func() { //nolint:gosec // G118: see below
		// The BLPOP gets no ctx of its own: its end is driven by the server
		// timeout or by CLIENT UNBLOCK, so that its reply is never lost.
		replies <- toPopReply(dc.Do(context.Background(), dc.B().Blpop().Key(key).Timeout(seconds).Build()))
	}()
	select {
	case r := <-replies:
		release()
		if r.err != nil {
			return "", false, interpretError(op, r.err)
		}
		return r.item, r.ok, nil
	case <-wait.Done():
	}
	// CLIENT UNBLOCK answers 0 when the BLPOP is not blocked (yet, or any
	// more): its reply is then on the way, or the command has not reached
	// the server, so wait a little for the reply and try again.
	for {
		unblock := e.client.B().ClientUnblock().ClientId(id).Timeout().Build().SetSlot(key)
		n, err := e.client.Do(context.WithoutCancel(ctx), unblock).AsInt64()
		if err != nil {
			// The BLPOP ends at its own timeout; until then, this waits for
			// it so that an item it takes goes back to the head. Close
			// waits for that too.
			e.goBackground(func() {
				defer release()
				if r := <-replies; r.ok {
					e.client.Do(context.Background(), e.client.B().Lpush().Key(key).Element(r.item).Build())
				}
			})
			return "", false, e.waitError(wait, op)
		}
		if n == 0 {
			select {
			case r := <-replies:
				return e.afterUnblock(wait, op, r, release)
			case <-time.After(5 * time.Millisecond):
				continue
			}
		}
		return e.afterUnblock(wait, op, <-replies, release)
	}
}

func (e *Engine) afterUnblock(wait context.Context, op string, r popReply, release func()) (string, bool, error) {
	release()
	if r.ok {
		return r.item, true, nil
	}
	return "", false, e.waitError(wait, op)
}

// QueuePushFront is one LPUSH of the items in reverse, so items[0] ends at
// the head and the whole hand-back is atomic.
func (e *Engine) QueuePushFront(ctx context.Context, queue string, items []string) error {
	const op = "queue push front"
	if err := e.check(op); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	reversed := slices.Clone(items)
	slices.Reverse(reversed)
	key := e.keys.Queue(queue).List
	return interpretError(op, e.client.Do(ctx, e.client.B().Lpush().Key(key).Element(reversed...).Build()).Error())
}

// QueueLen is LLEN of the queue list; items in the handoff list are
// counted as in flight, not waiting.
func (e *Engine) QueueLen(ctx context.Context, queue string) (int64, error) {
	const op = "queue len"
	if err := e.check(op); err != nil {
		return 0, err
	}
	n, err := e.client.Do(ctx, e.client.B().Llen().Key(e.keys.Queue(queue).List).Build()).AsInt64()
	return n, interpretError(op, err)
}

// QueueRange is LRANGE.
func (e *Engine) QueueRange(ctx context.Context, queue string, start, end int64) ([]string, error) {
	const op = "queue range"
	if err := e.check(op); err != nil {
		return nil, err
	}
	return e.lrange(ctx, op, e.keys.Queue(queue).List, start, end)
}

func (e *Engine) lrange(ctx context.Context, op, key string, start, end int64) ([]string, error) {
	items, err := e.client.Do(ctx, e.client.B().Lrange().Key(key).Start(start).Stop(end).Build()).AsStrSlice()
	if err != nil {
		return nil, interpretError(op, err)
	}
	return items, nil
}

// QueueClear deletes the queue list only.
func (e *Engine) QueueClear(ctx context.Context, queue string) (bool, error) {
	const op = "queue clear"
	if err := e.check(op); err != nil {
		return false, err
	}
	n, err := e.client.Do(ctx, e.client.B().Del().Key(e.keys.Queue(queue).List).Build()).AsInt64()
	if err != nil {
		return false, interpretError(op, err)
	}
	return n > 0, nil
}

// QueueNames lists the registry set, sorted. It knows the queues any
// process has added to under this key prefix, including queues that are
// empty now.
func (e *Engine) QueueNames(ctx context.Context) ([]string, error) {
	const op = "queue names"
	if err := e.check(op); err != nil {
		return nil, err
	}
	names, err := e.client.Do(ctx, e.client.B().Smembers().Key(e.keys.Registry()).Build()).AsStrSlice()
	if err != nil {
		return nil, interpretError(op, err)
	}
	slices.Sort(names)
	return names, nil
}
