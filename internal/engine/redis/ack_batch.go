package redis

import (
	"context"
	"fmt"
)

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
	res, err := e.scripts.leaseAck.Exec(ctx, e.client, []string{k.Leases, k.Jobs}, ids).ToArray()
	if err != nil {
		return nil, interpretError(op, err)
	}
	acked := make([]bool, len(res))
	for i, r := range res {
		n, err := r.AsInt64()
		if err != nil {
			return nil, interpretError(op, err)
		}
		acked[i] = n == 1
	}
	return acked, nil
}
