package redis

import (
	"context"
	"crypto/sha1" //nolint:gosec // Redis names a script by its SHA-1 (EVALSHA)
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// DefaultReplicasAckTimeout bounds the WAIT after a write when
// Options.ReplicasAckTimeout is not set.
const DefaultReplicasAckTimeout = time.Second

// maxRedirects bounds how often one durable write follows MOVED or ASK
// before giving up; a slot moves once per resharding step.
const maxRedirects = 5

// ReplicaAckError reports a write that the primary applied but fewer
// replicas than asked confirmed within the timeout. The write is in place
// (its results are returned with this error); it may still be lost should
// the primary fail before its replicas catch up.
type ReplicaAckError struct {
	Op      string
	Acked   int64
	Wanted  int
	Timeout time.Duration
	// Cause is set when WAIT itself failed (for example the connection
	// broke after the write was sent), so nothing was confirmed.
	Cause error
}

func (e *ReplicaAckError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: applied on the primary but not confirmed by any of %d replica(s): WAIT failed: %v; it may be lost if the primary fails now",
			e.Op, e.Wanted, e.Cause)
	}
	return fmt.Sprintf("%s: applied on the primary but confirmed by only %d of %d replica(s) within %s; it may be lost if the primary fails now",
		e.Op, e.Acked, e.Wanted, e.Timeout)
}

func (e *ReplicaAckError) Unwrap() error { return e.Cause }

// script is a Lua script that can also be sent as a plain EVALSHA/EVAL
// command, so that it can share one connection with a WAIT.
type script struct {
	*rueidis.Lua
	body string
	sha  string
}

func newScript(body string) *script {
	sum := sha1.Sum([]byte(body)) //nolint:gosec // the name Redis gives the script
	return &script{Lua: rueidis.NewLuaScript(body), body: body, sha: hex.EncodeToString(sum[:])}
}

// command builds the EVALSHA of s, or its EVAL once the server has said
// NOSCRIPT.
func (s *script) command(b rueidis.Builder, eval bool, keys, args []string) rueidis.Completed {
	if eval {
		return b.Eval().Script(s.body).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
	return b.Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// durable reports whether writes of accepted items wait for replicas.
func (e *Engine) durable() bool { return e.minReplicas > 0 }

// runScript runs s, followed by WAIT when the engine asks for replica
// acknowledgement (see writeDurable).
func (e *Engine) runScript(ctx context.Context, op string, s *script, keys, args []string) (rueidis.RedisResult, error) {
	if !e.durable() {
		res := s.Exec(ctx, e.client, keys, args)
		return res, res.Error()
	}
	return e.writeDurable(ctx, op, func(b rueidis.Builder, eval bool) rueidis.Completed {
		return s.command(b, eval, keys, args)
	})
}

// writeDurable sends a write and then WAIT on the same connection: WAIT
// counts the replicas that have every earlier write of its connection, so
// sent anywhere else it would confirm nothing. rueidis sends the commands of
// one DoMulti on one connection; a dedicated client keeps a MOVED or ASK
// reply from being followed for the write alone (which would leave the WAIT
// on the old node), so redirects are followed here, with the WAIT, on the
// named node.
//
// A ReplicaAckError comes with the write's result: the write was applied.
func (e *Engine) writeDurable(ctx context.Context, op string, write func(b rueidis.Builder, eval bool) rueidis.Completed) (rueidis.RedisResult, error) {
	wait := func(b rueidis.Builder) rueidis.Completed {
		return b.Wait().Numreplicas(int64(e.minReplicas)).Timeout(e.ackTimeout.Milliseconds()).Build()
	}
	eval := false
	node, asking := "", false
	for redirects := 0; ; {
		var res []rueidis.RedisResult
		if node != "" {
			c, ok := e.client.Nodes()[node]
			if !ok {
				return rueidis.RedisResult{}, fmt.Errorf("%s: redirected to %s, a node the client does not know", op, node)
			}
			if asking {
				res = c.DoMulti(ctx, c.B().Asking().Build(), write(c.B(), eval), wait(c.B()))[1:]
			} else {
				res = c.DoMulti(ctx, write(c.B(), eval), wait(c.B()))
			}
		} else {
			dc, release := e.client.Dedicate()
			res = dc.DoMulti(ctx, write(dc.B(), eval), wait(dc.B()))
			release()
		}
		err := res[0].Error()
		if rerr, ok := rueidis.IsRedisErr(err); ok {
			if rerr.IsNoScript() && !eval {
				eval = true
				continue
			}
			if redirects < maxRedirects {
				if addr, ok := rerr.IsMoved(); ok {
					redirects++
					node, asking = addr, false
					continue
				}
				if addr, ok := rerr.IsAsk(); ok {
					redirects++
					node, asking = addr, true
					continue
				}
			}
		}
		if err != nil {
			return res[0], err
		}
		acked, werr := res[1].AsInt64()
		if werr != nil {
			return res[0], &ReplicaAckError{Op: op, Wanted: e.minReplicas, Timeout: e.ackTimeout, Cause: werr}
		}
		if acked < int64(e.minReplicas) {
			return res[0], &ReplicaAckError{Op: op, Acked: acked, Wanted: e.minReplicas, Timeout: e.ackTimeout}
		}
		return res[0], nil
	}
}

// ackError picks out a ReplicaAckError, which leaves the write in place.
func ackError(err error) (*ReplicaAckError, bool) {
	var ae *ReplicaAckError
	ok := errors.As(err, &ae)
	return ae, ok
}
