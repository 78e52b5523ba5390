package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "embed"

	"github.com/sluicehq/sluice/internal/engine"
)

// A queue's counters are a hash beside its keys (keyspace.Queue.Stats,
// "sluice#stats:Q", in the queue's hash slot), with the fields of
// engine.StatNames. The scripts that do the counted work increment it in
// the same atomic step (scripts/stats.lua), so the counters agree with
// what happened whichever client did it; the Python service never reads or
// writes the hash, and what its producers and consumers do to the list
// directly is not counted. The one hand-out outside a script is a blocking
// pop's BLPOP, which is no script: an HINCRBY right after it counts it.

//go:embed scripts/queue_deliveries.lua
var queueDeliveriesLua string

// QueueStats reads the stats hash.
func (e *Engine) QueueStats(ctx context.Context, queue string) (engine.QueueStats, error) {
	const op = "queue stats"
	var s engine.QueueStats
	if err := e.check(op); err != nil {
		return s, err
	}
	kv, err := e.client.Do(ctx, e.client.B().Hgetall().Key(e.keys.Queue(queue).Stats).Build()).AsStrMap()
	if err != nil {
		return s, interpretError(op, err)
	}
	for i, name := range engine.StatNames {
		v, ok := kv[name]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s: field %s %q: %w", op, name, v, err)
		}
		*s.Counter(engine.Stat(i)) = n
	}
	since, err1 := strconv.ParseInt(kv["head_since"], 10, 64)
	seen, err2 := strconv.ParseInt(kv["head_seen"], 10, 64)
	if err1 == nil && err2 == nil {
		s.HeadSince, s.HeadSeen = time.UnixMilli(since).UTC(), time.UnixMilli(seen).UTC()
	}
	return s, nil
}

// QueueDeliveries runs queue_deliveries.lua, which reads one page of the
// leases zset and the state of its deliveries. The cursor is
// "<deadline ms>:<member>" of the page's last delivery.
func (e *Engine) QueueDeliveries(ctx context.Context, queue, cursor string, limit int) (engine.DeliveriesPage, error) {
	const op = "queue deliveries"
	var page engine.DeliveriesPage
	if err := e.check(op); err != nil {
		return page, err
	}
	if limit < 1 || limit > engine.MaxDeliveriesPage {
		return page, fmt.Errorf("%s: limit %d: want 1 to %d", op, limit, engine.MaxDeliveriesPage)
	}
	score, member := "", ""
	if cursor != "" {
		s, m, ok := strings.Cut(cursor, ":")
		if _, err := strconv.ParseInt(s, 10, 64); !ok || err != nil || m == "" {
			return page, fmt.Errorf("%s: cursor %q: %w", op, cursor, engine.ErrBadCursor)
		}
		score, member = s, m
	}
	k := e.keys.Queue(queue)
	raw, err := e.scripts.deliveries.Exec(ctx, e.client, []string{k.Leases, k.Jobs, k.Batches},
		[]string{strconv.Itoa(limit), score, member}).ToArray()
	if err != nil {
		return page, interpretError(op, err)
	}
	if len(raw) < 3 || (len(raw)-3)%5 != 0 {
		return page, fmt.Errorf("%s: script returned %d values", op, len(raw))
	}
	more, _ := raw[0].AsInt64()
	lastMember, _ := raw[1].ToString()
	lastScore, _ := raw[2].AsInt64()
	for i := 3; i < len(raw); i += 5 {
		m, err1 := raw[i].ToString()
		deadline, err2 := raw[i+1].AsInt64()
		item, err3 := raw[i+2].ToString()
		attempt, err4 := raw[i+3].AsInt64()
		at, err5 := raw[i+4].AsInt64()
		for _, err := range []error{err1, err2, err3, err4, err5} {
			if err != nil {
				return page, fmt.Errorf("%s: %w", op, err)
			}
		}
		d := engine.DeliveryInfo{Item: item, Attempt: int(attempt), Deadline: time.UnixMilli(deadline)}
		if strings.HasSuffix(m, ":r") {
			d.Waiting = true
		} else {
			d.ID = m
		}
		if at >= 0 {
			d.DeliveredAt = time.UnixMilli(at)
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	if more == 1 && lastMember != "" {
		page.Next = strconv.FormatInt(lastScore, 10) + ":" + lastMember
	}
	return page, nil
}
