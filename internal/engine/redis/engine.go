// Package redis is the Redis engine: every multi-step change is one Lua
// script (scripts/*.lua, embedded), run with EVALSHA and an EVAL fallback, so
// that a queue's capacity, its DLQ moves and its leases change atomically.
// Each script touches the keys of one queue only, which share a hash slot
// in the cluster layout (see package keyspace).
//
// It needs Redis 6.2 or later (LPOP with a count, BLMOVE). A blocking pop
// that is cancelled is woken with CLIENT UNBLOCK, so the connection's user
// should be allowed that command; without it the call still returns at
// once and a background hand-back keeps any item the pop takes.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

var _ engine.Engine = (*Engine)(nil)

// Options configure the engine.
type Options struct {
	// Keys is the key layout (prefix, cluster hash tags).
	Keys keyspace.Space
	// OwnsClient makes Close close the rueidis client. Set it when the
	// engine was handed a client created only for it.
	OwnsClient bool
	// MinReplicasAck, when positive, makes every write that accepts items
	// (add, batch add, DLQ requeue) wait with WAIT until that many replicas
	// have it. Fewer confirmations within ReplicasAckTimeout fail the call
	// with a *ReplicaAckError, although the primary applied the write.
	MinReplicasAck int
	// ReplicasAckTimeout bounds that wait; DefaultReplicasAckTimeout when
	// zero or negative.
	ReplicasAckTimeout time.Duration

	// There is no time source to set, unlike the embedded engine's
	// Options.Now: lease deadlines, cache TTLs, lock expiry and idempotency
	// windows run on the server's clock (TIME and PX/PEXPIRE inside the
	// scripts), where every client agrees on it. Faking it would take a
	// clock shared by all clients; tests wait instead.
}

// Engine implements engine.Engine on a rueidis client.
type Engine struct {
	// client sends every command; it is raw behind sharedConnClient, which
	// keeps one caller's cancellation from failing another's command.
	client rueidis.Client
	raw    rueidis.Client
	keys   keyspace.Space
	owns   bool

	scripts *engineScripts
	// adds and acks merge concurrent calls on one queue into one script
	// call each.
	adds     addCombiner
	acks     ackCombiner
	receives receiveCombiner
	// keyedAdds merges idempotent adds (keyed.go).
	keyedAdds keyedAddCombiner
	// minReplicas and ackTimeout are Options.MinReplicasAck and
	// Options.ReplicasAckTimeout (see writeDurable).
	minReplicas int
	ackTimeout  time.Duration
	// registered caches the queue names this process has put in the
	// registry set, so that an add costs one SADD per queue per process.
	registered sync.Map
	// fullQueues holds the names of reject-policy queues whose last add
	// here found them full: queue_add.lua then checks the length before
	// pushing (see the script). It is a cost hint only; a stale entry
	// changes no result.
	fullQueues sync.Map

	closed atomic.Bool
	// closing is cancelled by Close so that blocked calls return even when
	// the engine does not own (and so does not close) the client.
	closing     context.Context
	stopClosing context.CancelFunc
	// background counts goroutines that finish handing back an item after
	// their caller left; Close waits for them. backgroundMu orders starting
	// one against Close's wait.
	backgroundMu     sync.Mutex
	backgroundClosed bool
	background       sync.WaitGroup
}

// New wraps client. The caller keeps ownership of client unless
// opts.OwnsClient is set.
func New(client rueidis.Client, opts Options) *Engine {
	closing, stop := context.WithCancel(context.Background())
	ackTimeout := opts.ReplicasAckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultReplicasAckTimeout
	}
	return &Engine{
		client:      sharedConnClient{client},
		raw:         client,
		keys:        opts.Keys,
		owns:        opts.OwnsClient,
		scripts:     newEngineScripts(),
		minReplicas: max(opts.MinReplicasAck, 0),
		ackTimeout:  ackTimeout,
		closing:     closing,
		stopClosing: stop,
	}
}

// Kind reports "redis".
func (e *Engine) Kind() string { return "redis" }

// Client returns the underlying rueidis client (for benchmarks and tools).
func (e *Engine) Client() rueidis.Client { return e.raw }

// Close makes every later call fail with engine.ErrClosed, wakes blocked
// calls, and closes the client when the engine owns it. It is idempotent.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	e.stopClosing()
	e.backgroundMu.Lock()
	e.backgroundClosed = true
	e.backgroundMu.Unlock()
	e.background.Wait()
	if e.owns {
		e.raw.Close()
	}
	return nil
}

// goBackground runs fn on a goroutine Close waits for, or runs it right
// away when Close has begun (so the work is never skipped).
func (e *Engine) goBackground(fn func()) {
	e.backgroundMu.Lock()
	if e.backgroundClosed {
		e.backgroundMu.Unlock()
		fn()
		return
	}
	e.background.Add(1)
	e.backgroundMu.Unlock()
	go func() {
		defer e.background.Done()
		fn()
	}()
}

// check fails calls made after Close, with the bare sentinel: the caller
// names the operation (op documents the call site).
func (e *Engine) check(op string) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	return nil
}

// blockingContext returns a context that is also cancelled by Close; a
// blocking call uses it so that Close ends the wait at once.
func (e *Engine) blockingContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.closing, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// waitError reports why a blocking call ended early: engine.ErrClosed when
// Close woke it, else the caller's ctx error.
func (e *Engine) waitError(ctx context.Context, op string) error {
	if e.closed.Load() {
		return engine.ErrClosed
	}
	return fmt.Errorf("%s: %w", op, context.Cause(ctx))
}

// Health pings the server and reads its version. It never fails.
func (e *Engine) Health(ctx context.Context) engine.Health {
	info, err := e.client.Do(ctx, e.client.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return engine.Health{Status: "unhealthy", Connected: false, Error: err.Error()}
	}
	version := ""
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			version = v
			break
		}
	}
	return engine.Health{Status: "healthy", Connected: true, Version: version, Warnings: e.durabilityWarnings(ctx)}
}

// interpretError maps Redis errors to engine sentinels, in one place. A
// sentinel needs no op: the caller names the operation; a plain Redis
// error keeps it, since it tells which step failed.
func interpretError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, rueidis.ErrClosing) {
		// rueidis says this both when closing and when it cannot reach
		// the server: the call failed for want of a connection either way.
		return fmt.Errorf("%w: %w", engine.ErrClosed, withUnavailable(err))
	}
	var rerr *rueidis.RedisError
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE") {
		// The reply says what the sentinel says.
		return engine.ErrWrongType
	}
	if unavailable(err) {
		return withUnavailable(err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
