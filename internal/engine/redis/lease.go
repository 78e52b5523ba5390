package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// Leases live beside the queue (keyspace.Queue): a zset of delivery id ->
// deadline in ms of the server's clock, a hash of per-item delivery state,
// a sequence counter for ids, and a handoff list. Every change is one
// script over one queue's keys; see scripts/lease_*.lua.

// isoNow renders t as Python's datetime.isoformat() does for an aware UTC
// time: microseconds only when non-zero, offset "+00:00".
func isoNow(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

type receiveReply struct {
	deadLettered int64
	// nextDue is how long until the earliest lease or retry falls due;
	// negative when there is none.
	nextDue    time.Duration
	deliveries []engine.Delivery
	// paused: the queue is paused and handed nothing out (settings.go).
	paused bool
}

// receiveShared runs one receive attempt, merged with the attempts other
// goroutines make on the same queue meanwhile: deliveries fill the merged
// call's slots in the order the callers joined. A caller left with none
// while others got some is told to look again at once (nextDue 0) rather
// than block: what was due may not be exhausted.
func (e *Engine) receiveShared(ctx context.Context, k keyspace.Queue, p engine.ReceiveParams, scan int, blocking bool) (receiveReply, error) {
	if err := ctx.Err(); err != nil {
		return receiveReply{}, err
	}
	// The merged call is not cancelled with any one caller: the leases it
	// hands out reach their callers, who always wait for it.
	wctx := context.WithoutCancel(ctx)
	key := receiveKey{queue: p.Queue, lease: p.Lease, maxDeliveries: p.MaxDeliveries, blocking: blocking}
	slots, err := e.receives.do(key, make([]string, p.Count), func(all []string) ([]receiveSlot, error) {
		r, err := e.receiveOnce(wctx, k, len(all), p.MaxDeliveries, p.Lease, scan-p.Count+len(all), blocking)
		if err != nil {
			return nil, err
		}
		out := make([]receiveSlot, len(all))
		for i := range out {
			out[i].paused = r.paused
			out[i].nextDue = r.nextDue
			if len(r.deliveries) > 0 {
				out[i].nextDue = 0
			}
		}
		for i, d := range r.deliveries {
			out[i] = receiveSlot{d: d, ok: true}
		}
		return out, nil
	})
	if err != nil {
		return receiveReply{}, err
	}
	r := receiveReply{nextDue: -1}
	for _, s := range slots {
		if s.ok {
			r.deliveries = append(r.deliveries, s.d)
		} else {
			r.nextDue, r.paused = s.nextDue, s.paused
		}
	}
	return r, nil
}

// receiveOnce runs lease_receive.lua. scan bounds how many due leases one
// run examines (-1: all of them); with blocking set, an empty reply carries
// the time to the earliest deadline.
func (e *Engine) receiveOnce(ctx context.Context, k keyspace.Queue, count, maxDeliveries int, lease time.Duration, scan int, blocking bool) (receiveReply, error) {
	tokens := deliveryTokens(count)
	keys := []string{k.List, k.Handoff, k.Leases, k.Jobs, k.Seq, k.FailedDLQ, k.Settings, k.Scheduled, k.Batches, k.Stats}
	args := []string{
		strconv.Itoa(count),
		ms(lease),
		strconv.Itoa(maxDeliveries),
		isoNow(time.Now()),
		engine.PyJSONString(k.Name),
		strconv.Itoa(scan),
		"0",
		tokens,
	}
	if blocking {
		args[6] = "1"
	}
	// The caller's ctx may cancel this script while it is on the wire: its
	// reply, and the leases it handed out, are then lost to the caller, but
	// not the items, which are redelivered when those leases expire.
	raw, err := e.scripts.leaseReceive.Exec(ctx, e.client, keys, args).ToArray()
	if err != nil {
		return receiveReply{}, err
	}
	r, err := parseReceive(raw, tokens)
	if err != nil {
		// The script ran: what it leased comes back when the leases run out.
		return receiveReply{}, fmt.Errorf("lease_receive.lua reply: %w (items it leased are delivered again when their leases run out)", err)
	}
	return r, nil
}

// parseReceive reads a lease_receive.lua reply: dead-lettered (-1 when
// paused), ms to the next due deadline, then the deliveries (parseLeased).
func parseReceive(raw []rueidis.RedisMessage, tokens string) (receiveReply, error) {
	var r receiveReply
	if len(raw) < 2 {
		return r, fmt.Errorf("%d values", len(raw))
	}
	var err error
	if r.deadLettered, err = raw[0].AsInt64(); err != nil {
		return r, err
	}
	if r.deadLettered < 0 {
		r.deadLettered, r.paused = 0, true
	}
	due, err := raw[1].AsInt64()
	if err != nil {
		return r, err
	}
	r.nextDue = time.Duration(due) * time.Millisecond
	if !r.paused {
		r.deliveries, err = parseLeased(raw[2:], tokens)
	}
	return r, err
}

// parseLeased reads the deliveries of a lease_receive.lua reply: k, then k
// single deliveries as (id, item, attempt), then batches as (bseq, index
// of the first item's token in tokens, n, n items), whose ids are made
// here as the script documents.
func parseLeased(raw []rueidis.RedisMessage, tokens string) ([]engine.Delivery, error) {
	if len(raw) < 1 {
		return nil, errors.New("no count of single deliveries")
	}
	k, err := raw[0].AsInt64()
	if err != nil {
		return nil, err
	}
	raw = raw[1:]
	if k < 0 || int64(len(raw)) < 3*k {
		return nil, fmt.Errorf("%d single deliveries in %d values", k, len(raw))
	}
	out := make([]engine.Delivery, 0, len(raw)/3)
	for i := 0; i < int(3*k); i += 3 {
		var d engine.Delivery
		if d.ID, err = raw[i].ToString(); err != nil {
			return nil, err
		}
		if d.Item, err = raw[i+1].ToString(); err != nil {
			return nil, err
		}
		attempt, err := raw[i+2].AsInt64()
		if err != nil {
			return nil, err
		}
		d.Attempt = int(attempt)
		out = append(out, d)
	}
	for raw = raw[3*k:]; len(raw) > 0; {
		if len(raw) < 3 {
			return nil, fmt.Errorf("a batch cut short at %d values", len(raw))
		}
		bseq, err := raw[0].AsInt64()
		if err != nil {
			return nil, err
		}
		first, err := raw[1].AsInt64()
		if err != nil {
			return nil, err
		}
		n, err := raw[2].AsInt64()
		if err != nil {
			return nil, err
		}
		if n < 1 || int64(len(raw)-3) < n || first < 0 || (first+n)*tokenHex > int64(len(tokens)) {
			return nil, fmt.Errorf("a batch of %d items from token %d in %d values", n, first, len(raw)-3)
		}
		prefix := "b" + strconv.FormatInt(bseq, 10) + "."
		for j := range int(n) {
			item, err := raw[3+j].ToString()
			if err != nil {
				return nil, err
			}
			t := (int(first) + j) * tokenHex
			id := prefix + strconv.Itoa(j+1) + "." + tokens[t:t+tokenHex]
			out = append(out, engine.Delivery{ID: id, Item: item, Attempt: 1})
		}
		raw = raw[3+n:]
	}
	return out, nil
}

// QueueReceive leases up to params.Count items. A paused queue hands
// nothing out; a receive that may block then waits for the resume
// (settings.go) and looks again. Nothing can block inside a script, so when there is nothing to hand out and a timeout remains, it
// waits with BLMOVE from the queue to the handoff list and runs the script
// again; the script leases handoff items before the queue's head, so an
// item moved by a receiver that then died or was cancelled goes to the
// next receive. The wait is capped at the earliest lease deadline, so that
// an expiring lease is redelivered while receivers block.
func (e *Engine) QueueReceive(ctx context.Context, params engine.ReceiveParams) ([]engine.Delivery, error) {
	const op = "queue receive"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if params.Count < 1 || params.Lease <= 0 || params.MaxDeliveries < 1 {
		return nil, fmt.Errorf("%s: count %d, lease %s, max deliveries %d: each must be positive",
			op, params.Count, params.Lease, params.MaxDeliveries)
	}
	k := e.keys.Queue(params.Queue)
	scan := params.Count + 100
	var deadline time.Time
	if params.Timeout > 0 {
		deadline = time.Now().Add(params.Timeout)
	}
	wait, stop := e.blockingContext(ctx)
	defer stop()
	for {
		r, err := e.receiveShared(wait, k, params, scan, params.Timeout > 0)
		if err != nil {
			if wait.Err() != nil {
				return nil, e.waitError(wait, op)
			}
			return nil, interpretError(op, err)
		}
		if len(r.deliveries) > 0 || params.Timeout <= 0 {
			return r.deliveries, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		if r.paused {
			// Nothing is handed out until the resume, which wakes this.
			if err := e.waitResume(wait, k, left); err != nil {
				if wait.Err() != nil {
					return nil, e.waitError(wait, op)
				}
				return nil, interpretError(op, err)
			}
			continue
		}
		if r.nextDue >= 0 && r.nextDue < left {
			left = r.nextDue
		}
		// BLMOVE reads 0 as "forever"; a due lease is handled by the next
		// script run, so block at least a millisecond.
		seconds := max(left.Seconds(), 0.001)
		move := e.client.B().Blmove().Source(k.List).Destination(k.Handoff).Left().Right().Timeout(seconds).Build()
		err = e.client.Do(wait, move.UnblockOnCancel()).Error()
		if err != nil && !rueidis.IsRedisNil(err) {
			if wait.Err() != nil {
				return nil, e.waitError(wait, op)
			}
			return nil, interpretError(op, err)
		}
	}
}

// QueueNack runs lease_nack.lua. A release (params.Release) waits like any
// nack but neither counts the delivery nor records an error.
func (e *Engine) QueueNack(ctx context.Context, params engine.NackParams) (engine.NackResult, error) {
	const op = "queue nack"
	if err := e.check(op); err != nil {
		return engine.NackResult{}, err
	}
	if params.MaxDeliveries < 1 && !params.Release {
		return engine.NackResult{}, fmt.Errorf("%s: max deliveries %d must be positive", op, params.MaxDeliveries)
	}
	k := e.keys.Queue(params.Queue)
	args := []string{
		params.ID,
		ms(max(params.Delay, 0)),
		strconv.Itoa(params.MaxDeliveries),
		params.Error,
		isoNow(time.Now()),
		engine.PyJSONString(params.Queue),
		"0",
	}
	if params.Release {
		args[6] = "1"
	}
	n, err := e.scripts.leaseNack.Exec(ctx, e.client, []string{k.Leases, k.Jobs, k.FailedDLQ, k.Seq, k.Batches, k.Stats}, args).AsInt64()
	if err != nil {
		return engine.NackResult{}, interpretError(op, err)
	}
	if n < 0 {
		return engine.NackResult{}, engine.ErrLeaseNotFound
	}
	return engine.NackResult{DeadLettered: n == 1}, nil
}

// QueueExtend runs lease_extend.lua.
func (e *Engine) QueueExtend(ctx context.Context, queue, id string, lease time.Duration) error {
	const op = "queue extend"
	if err := e.check(op); err != nil {
		return err
	}
	if lease <= 0 {
		return fmt.Errorf("%s: lease %s must be positive", op, lease)
	}
	k := e.keys.Queue(queue)
	n, err := e.scripts.leaseExtend.Exec(ctx, e.client, []string{k.Leases, k.Jobs, k.Batches}, []string{id, ms(lease)}).AsInt64()
	if err != nil {
		return interpretError(op, err)
	}
	if n == 0 {
		return engine.ErrLeaseNotFound
	}
	return nil
}

// QueueInFlight runs lease_inflight.lua: live leases and nacked items
// still within their delay, by the server's clock, plus the handoff list
// (items taken from the queue by a blocking receive, not yet leased).
func (e *Engine) QueueInFlight(ctx context.Context, queue string) (int64, error) {
	const op = "queue in flight"
	if err := e.check(op); err != nil {
		return 0, err
	}
	k := e.keys.Queue(queue)
	n, err := e.scripts.leaseInFlight.Exec(ctx, e.client, []string{k.Leases, k.Handoff, k.Jobs, k.Batches}, nil).AsInt64()
	return n, interpretError(op, err)
}

// QueueScheduled is ZCARD of the queue's scheduled items.
func (e *Engine) QueueScheduled(ctx context.Context, queue string) (int64, error) {
	const op = "queue scheduled"
	if err := e.check(op); err != nil {
		return 0, err
	}
	n, err := e.client.Do(ctx, e.client.B().Zcard().Key(e.keys.Queue(queue).Scheduled).Build()).AsInt64()
	return n, interpretError(op, err)
}

// QueueReclaim runs lease_receive.lua with a count of 0 over every due
// lease: it moves due scheduled items to the queue and dead-letters due
// leases that used their deliveries, in one script, so a sweep of a queue
// is one atomic step. Due leases that still have deliveries left stay due
// (not in flight), and the next receive redelivers them first.
func (e *Engine) QueueReclaim(ctx context.Context, queue string, maxDeliveries int) (int64, error) {
	const op = "queue reclaim"
	if err := e.check(op); err != nil {
		return 0, err
	}
	if maxDeliveries < 1 {
		return 0, fmt.Errorf("%s: max deliveries %d must be positive", op, maxDeliveries)
	}
	r, err := e.receiveOnce(ctx, e.keys.Queue(queue), 0, maxDeliveries, time.Second, -1, false)
	if err != nil {
		return 0, interpretError(op, err)
	}
	return r.deadLettered, nil
}

// tokenHex is the length of a delivery id's random part.
const tokenHex = 16

// deliveryTokens draws the random parts of up to count delivery ids, 16
// hex digits each, for lease_receive.lua: Lua's math.random is seeded the
// same on every Redis and could be predicted, crypto/rand cannot.
func deliveryTokens(count int) string {
	b := make([]byte, tokenHex/2*count)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// QueueAckBatch runs lease_ack_batch.lua: one round trip for the batch,
// shared with the acks other goroutines make on the queue meanwhile.
func (e *Engine) QueueAckBatch(ctx context.Context, queue string, ids []string) ([]bool, error) {
	const op = "queue ack"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w (nothing acknowledged)", op, err)
	}
	wctx := context.WithoutCancel(ctx)
	return e.acks.do(queue, ids, func(ids []string) ([]bool, error) { return e.ackOnce(wctx, queue, ids) })
}

func (e *Engine) ackOnce(ctx context.Context, queue string, ids []string) ([]bool, error) {
	const op = "queue ack"
	k := e.keys.Queue(queue)
	a := newAckArgs(ids)
	acked := make([]bool, len(ids))
	if len(a.args) == 1 {
		return acked, nil // no id of either form: none can hold a lease
	}
	res, err := e.scripts.leaseAck.Exec(ctx, e.client, []string{k.Leases, k.Jobs, k.Batches, k.Stats}, a.args).ToArray()
	if err != nil {
		return nil, interpretError(op, err)
	}
	if len(res) != len(a.singles)+len(a.groups) {
		return nil, fmt.Errorf("%s: lease_ack_batch.lua returned %d values for %d", op, len(res), len(a.singles)+len(a.groups))
	}
	for i, at := range a.singles {
		n, err := res[i].AsInt64()
		if err != nil {
			return nil, interpretError(op, err)
		}
		acked[at] = n == 1
	}
	for g, grp := range a.groups {
		settled, err := res[len(a.singles)+g].ToString()
		if err != nil {
			return nil, interpretError(op, err)
		}
		if len(settled) != len(grp.at) {
			return nil, fmt.Errorf("%s: lease_ack_batch.lua: a batch result of %d bytes for %d", op, len(settled), len(grp.at))
		}
		for j, at := range grp.at {
			if at >= 0 {
				acked[at] = settled[j] == '1'
			}
		}
	}
	return acked, nil
}
