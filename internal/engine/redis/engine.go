// Package redis is the Redis engine: every multi-step change is one Lua
// script (scripts/*.lua, embedded), run with EVALSHA and an EVAL fallback, so
// that a queue's capacity, its DLQ moves and its leases change atomically.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// TODO(engine completion): var _ engine.Engine = (*Engine)(nil)

// Options configure the engine.
type Options struct {
	// Keys is the key layout (prefix, cluster hash tags).
	Keys keyspace.Space
	// OwnsClient makes Close close the rueidis client. Set it when the
	// engine was handed a client created only for it.
	OwnsClient bool
}

// Engine implements engine.Engine on a rueidis client.
type Engine struct {
	client rueidis.Client
	keys   keyspace.Space
	owns   bool
}

// New wraps client. The caller keeps ownership of client unless
// opts.OwnsClient is set.
func New(client rueidis.Client, opts Options) *Engine {
	return &Engine{client: client, keys: opts.Keys, owns: opts.OwnsClient}
}

// Kind reports "redis".
func (e *Engine) Kind() string { return "redis" }

// Client returns the underlying rueidis client (for benchmarks and tools).
func (e *Engine) Client() rueidis.Client { return e.client }

// Close closes the client when the engine owns it.
func (e *Engine) Close() error {
	if e.owns {
		e.client.Close()
	}
	return nil
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
	return engine.Health{Status: "healthy", Connected: true, Version: version}
}

// interpretError maps Redis errors to engine sentinels, in one place.
func interpretError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, rueidis.ErrClosing) {
		return fmt.Errorf("%s: %w", op, engine.ErrClosed)
	}
	var rerr *rueidis.RedisError
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE") {
		return fmt.Errorf("%s: %w: %v", op, engine.ErrWrongType, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
