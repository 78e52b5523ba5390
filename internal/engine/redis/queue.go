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
	if scheduleDelay(params) != "" {
		// Scheduled adds are not merged: they are rare, and a merged call
		// shares one not-before time.
		return e.addBounded(context.WithoutCancel(ctx), params)
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
	args := make([]string, 0, 5+len(params.Items))
	args = append(args,
		string(params.Policy.Normalize()),
		strconv.FormatInt(params.MaxSize, 10),
		engine.PyJSONString(params.Queue),
		addFlags(params.MaxSizeExplicit, params.PolicyExplicit, fullBefore),
		scheduleDelay(params),
	)
	args = append(args, params.Items...)
	res, err := e.runScript(ctx, op, e.scripts.queueAdd, []string{k.List, k.OverflowDLQ, k.Settings, k.Scheduled, k.Seq, k.Stats}, args)
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
		return nil, conflictError(dmax, dpol, params.MaxSize, params.Policy, params.MaxSizeExplicit, params.PolicyExplicit)
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

// scheduleDelay is the scripts' delay argument: "" for an add that is not
// scheduled (or whose time has come), else the milliseconds until
// params.NotBefore, at least 1. The scripts add it to the server's clock,
// so the client's clock only measures the delay.
func scheduleDelay(params engine.AddParams) string {
	if params.NotBefore.IsZero() {
		return ""
	}
	d := time.Until(params.NotBefore)
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
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
//
// The BLPOP goes out pipelined with a read of the paused flag (see
// blockingPop), so the pop learns in the same round trip whether a pause
// began while it was blocked. Only then, which is rare, does it run
// queue_pop_check.lua, which puts the item back at the head unless the
// queue was resumed in between. A pause that lands after the BLPOP and the
// read is ordered after this pop, as it would be after a plain LPOP.
//
// The first queue_pop.lua stays on the blocking path although the BLPOP
// alone would find a queued item: it is one auto-pipelined round trip,
// where the blocking path costs a dedicated connection and CLIENT ID (see
// blockingPop), so a queue with items is served faster by the script; and
// on a paused queue with items, a BLPOP would take the head and put it
// back, which is not safe from reordering: another consumer that ignores
// the pause (a plain LPOP, or a second BLPOP putting back its own item)
// may act between the take and the put-back.
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
		// BLPOP wakes for pushes only: a scheduled item falling due sooner
		// caps the wait, and the next popScript moves it to the queue.
		wait, capped := left, false
		if due, ok := e.nextScheduled(ctx, k); ok && due < left {
			wait, capped = due, true
		}
		r, err := e.blockingPop(ctx, k, max(wait.Seconds(), 0.001))
		if err != nil {
			return "", false, err
		}
		if !r.ok {
			if capped {
				continue
			}
			return "", false, nil
		}
		if !r.paused {
			// BLPOP is no script: its hand-out is counted right after it
			// (stats.go), best effort, as the item is the caller's already.
			e.client.Do(detached(ctx), e.client.B().Hincrby().Key(k.Stats).Field("delivered").Increment(1).Build())
			return r.item, true, nil
		}
		// The BLPOP was blocked since before a pause, or a pause came
		// between it and the read: the check puts the item back unless the
		// queue runs again by now.
		back, err := e.scripts.queuePopCheck.Exec(detached(ctx), e.client, []string{k.List, k.Settings, k.Stats}, []string{r.item}).AsInt64()
		if err != nil {
			// The item is the caller's: it was taken before the check failed.
			return r.item, true, nil //nolint:nilerr // see above
		}
		if back == 0 {
			return r.item, true, nil
		}
	}
}

// nextScheduled is how long until the queue's earliest scheduled item is
// due, by the score the server's clock gave it (a hint for a wait: any
// skew between the clocks only moves the wake-up); ok is false when the
// queue has none or the read fails.
func (e *Engine) nextScheduled(ctx context.Context, k keyspace.Queue) (time.Duration, bool) {
	cmd := e.client.B().Zrange().Key(k.Scheduled).Min("0").Max("0").Withscores().Build()
	first, err := e.client.Do(ctx, cmd).AsZScores()
	if err != nil || len(first) == 0 {
		return 0, false
	}
	return max(time.Until(time.UnixMilli(int64(first[0].Score))), time.Millisecond), true
}

// popScript runs queue_pop.lua for up to n items; stopped reports a paused
// queue. Like LPOP it is sent detached (see detached).
func (e *Engine) popScript(ctx context.Context, k keyspace.Queue, n int) (items []string, stopped bool, err error) {
	raw, err := e.scripts.queuePop.Exec(detached(ctx), e.client, []string{k.List, k.Settings, k.Scheduled, k.Stats}, []string{strconv.Itoa(n)}).ToArray()
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

// popReply is what the BLPOP pipeline of blockingPop answered: the item
// (ok false when the BLPOP timed out or was unblocked) and whether the
// queue was paused right after the BLPOP returned.
type popReply struct {
	item   string
	ok     bool
	paused bool
	err    error
}

// toPopReply reads the replies of BLPOP and of the HGET of the paused flag
// that followed it on the same connection.
func toPopReply(res []rueidis.RedisResult) popReply {
	if len(res) != 2 {
		return popReply{err: fmt.Errorf("BLPOP pipeline answered %d replies", len(res))}
	}
	kv, err := res[0].AsStrSlice()
	switch {
	case rueidis.IsRedisNil(err):
		return popReply{}
	case err != nil:
		return popReply{err: err}
	case len(kv) != 2:
		return popReply{err: fmt.Errorf("BLPOP replied with %d elements", len(kv))}
	}
	r := popReply{item: kv[1], ok: true}
	flag, err := res[1].ToString()
	switch {
	case rueidis.IsRedisNil(err):
	case err != nil:
		// The item is taken: it is not lost for a failed read, which
		// counts as paused so that the check script decides.
		r.paused = true
	default:
		r.paused = flag == "1"
	}
	return r
}

// blockingPop runs BLPOP on a dedicated connection whose client id it
// knows, pipelined with an HGET of the queue's paused flag: the server runs
// the HGET on the same connection right after the BLPOP returns, so the
// caller learns whether the queue was paused then at no extra round trip.
// When ctx ends first, CLIENT UNBLOCK wakes the BLPOP as if it timed out
// and its reply is still read: an item the server already popped is
// returned, never dropped with a closed connection. Should CLIENT UNBLOCK
// be refused (ACLs), the call returns at once anyway and a goroutine
// pushes any item that arrives back to the head of the queue.
//
// On a cluster, CLIENT ID and CLIENT UNBLOCK carry the key's slot, so that
// both reach the primary serving the key: the first binds the dedicated
// connection to that node, the second finds the blocked client there. The
// settings hash is in the list's slot (keyspace.Queue), so the pipeline
// stays on that node. Should the slot move in between, the server itself
// ends the BLPOP with a redirect, and its reply is read as usual.
func (e *Engine) blockingPop(ctx context.Context, k keyspace.Queue, seconds float64) (popReply, error) {
	const op = "queue pop"
	key := k.List
	dc, release := e.client.Dedicate()
	id, err := dc.Do(ctx, dc.B().ClientId().Build().SetSlot(key)).AsInt64()
	if err != nil {
		release()
		return popReply{}, interpretError(op, err)
	}
	wait, stop := e.blockingContext(ctx)
	defer stop()
	replies := make(chan popReply, 1)
	blpop := dc.B().Blpop().Key(key).Timeout(seconds).Build()
	paused := dc.B().Hget().Key(k.Settings).Field(fieldPaused).Build()
	go func() { //nolint:gosec // G118: see below
		// The BLPOP gets no ctx of its own: its end is driven by the server
		// timeout or by CLIENT UNBLOCK, so that its reply is never lost.
		replies <- toPopReply(dc.DoMulti(context.Background(), blpop, paused))
	}()
	select {
	case r := <-replies:
		release()
		if r.err != nil {
			return popReply{}, interpretError(op, r.err)
		}
		return r, nil
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
			return popReply{}, e.waitError(wait, op)
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

func (e *Engine) afterUnblock(wait context.Context, op string, r popReply, release func()) (popReply, error) {
	release()
	if r.ok {
		return r, nil
	}
	return popReply{}, e.waitError(wait, op)
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
