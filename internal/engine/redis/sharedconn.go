package redis

import (
	"context"
	"errors"

	"github.com/redis/rueidis"
)

// sharedConnRetries bounds how often one command is sent again after a
// connection attempt that another caller's context ended.
const sharedConnRetries = 3

// sharedConnClient shields callers from each other's cancellations while
// a shared connection is (re)established.
//
// rueidis dials a pipelined connection, and sends its HELLO, with the
// context of the first command that needs it; every command that arrives
// meanwhile waits for that attempt and gets its result. So when that first
// caller gives up, the others fail too, with "context canceled" or "dial
// ...: operation was canceled", although their own contexts never ended:
// an Add sent with context.WithoutCancel would report a failure for
// another caller's cancellation.
//
// Such an error reaches a command only before it was written (a command
// on an established connection ends early only by its own context), so
// sending it again cannot apply it twice: when a command fails with a
// context error while its own context is still live, it is retried, at
// most sharedConnRetries times. Dedicated connections (blocking pops) are
// each dialled by their only user and need no such care.
type sharedConnClient struct {
	rueidis.Client
}

// foreignCancel reports whether err is a context error that ctx did not
// cause.
func foreignCancel(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	// net's dial error "operation was canceled" matches context.Canceled.
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Do implements rueidis.Client.
func (c sharedConnClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	res := c.Client.Do(ctx, cmd)
	// rueidis recycles a command only after a reply without a transport
	// error, so cmd is still intact here.
	for i := 0; i < sharedConnRetries && foreignCancel(ctx, res.NonRedisError()); i++ {
		res = c.Client.Do(ctx, cmd)
	}
	return res
}

// DoMulti implements rueidis.Client. The commands of one DoMulti share one
// connection, so a foreign cancellation fails all of them, before any was
// written.
func (c sharedConnClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	res := c.Client.DoMulti(ctx, multi...)
	for i := 0; i < sharedConnRetries && len(res) > 0 && allForeign(ctx, res); i++ {
		res = c.Client.DoMulti(ctx, multi...)
	}
	return res
}

func allForeign(ctx context.Context, res []rueidis.RedisResult) bool {
	for _, r := range res {
		if !foreignCancel(ctx, r.NonRedisError()) {
			return false
		}
	}
	return true
}
