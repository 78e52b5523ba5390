package redis

import (
	"context"
	_ "embed"

	"github.com/redis/rueidis"
)

//go:embed scripts/lease_ack_batch.lua
var leaseAckBatchLua string

// QueueAckBatch runs lease_ack_batch.lua: one round trip for the batch.
func (e *Engine) QueueAckBatch(ctx context.Context, queue string, ids []string) ([]bool, error) {
	const op = "queue ack batch"
	if err := e.check(op); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	k := e.keys.Queue(queue)
	res, err := e.ackBatch.Exec(ctx, e.client, []string{k.Leases, k.Jobs}, ids).ToArray()
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

func newAckBatchScript() *rueidis.Lua { return rueidis.NewLuaScript(leaseAckBatchLua) }
