package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits bound what clients can make the server hold, so that no client,
// however many connections or names it uses, can grow the server's memory
// or the engine's key space without end.
type Limits struct {
	// MaxStreamClients bounds the WebSocket and SSE clients connected at
	// once; one more is answered 503 with Retry-After (default 1000).
	MaxStreamClients int
	// MaxChannelsPerClient bounds the channels one WebSocket or SSE client
	// subscribes to (default 100).
	MaxChannelsPerClient int
	// MaxSubscriptions bounds the engine subscriptions of the process: one
	// per channel that any client listens to, shared by all its clients. A
	// client asking for a channel nobody listens to yet past it is refused
	// (503 on connect, an error message on a WebSocket subscribe)
	// (default 1000).
	MaxSubscriptions int
	// ClientBufferBytes bounds the message bytes waiting for one slow
	// WebSocket or SSE client; past it the client is disconnected (1008,
	// or an SSE "close" event) and counted once in
	// sluice_pubsub_slow_clients_closed_total (default 1 MiB). Config.ClientBuffer still bounds the batches.
	ClientBufferBytes int64
	// MaxQueues bounds the queues the service creates: an add that would
	// create a queue past it is answered 507, while queues that exist keep
	// working (default 10000; 0 means no limit). Queues are
	// counted as GET /v1/queues lists them.
	MaxQueues int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxStreamClients:     1000,
		MaxChannelsPerClient: 100,
		MaxSubscriptions:     1000,
		ClientBufferBytes:    1 << 20,
		MaxQueues:            10000,
	}
}

func (l Limits) validate() []error {
	var errs []error
	for _, v := range []struct {
		field string
		n     int64
	}{
		{"MaxStreamClients", int64(l.MaxStreamClients)},
		{"MaxChannelsPerClient", int64(l.MaxChannelsPerClient)},
		{"MaxSubscriptions", int64(l.MaxSubscriptions)},
		{"ClientBufferBytes", l.ClientBufferBytes},
	} {
		if v.n < 1 {
			errs = append(errs, &ConfigError{Field: "Limits." + v.field, Value: strconv.FormatInt(v.n, 10), Want: ">= 1"})
		}
	}
	if l.MaxQueues < 0 {
		errs = append(errs, &ConfigError{Field: "Limits.MaxQueues", Value: strconv.Itoa(l.MaxQueues), Want: ">= 0 (0: no limit)"})
	}
	return errs
}

var (
	// errQueueLimit refuses an add that would create a queue past
	// Limits.MaxQueues (507).
	errQueueLimit = errors.New("queue limit reached")
	// errStreamLimit refuses a stream client or a subscription past
	// Limits.MaxStreamClients or Limits.MaxSubscriptions (503).
	errStreamLimit = errors.New("stream limit reached")
	// errBodyTimeout is a body not received within Config.BodyTimeout (408).
	errBodyTimeout = errors.New("request body not received in time")
)

// limitRetryAfter is the Retry-After sent with a stream limit's 503.
const limitRetryAfter = "5"

// admitStream counts a WebSocket or SSE client against MaxStreamClients.
// When it returns false it has answered the client; otherwise the caller
// calls release when the client leaves.
func (s *Server) admitStream(w http.ResponseWriter) (release func(), ok bool) {
	if n := s.streamClients.Add(1); n > int64(s.cfg.Limits.MaxStreamClients) {
		s.streamClients.Add(-1)
		s.metrics.limitRefused.WithLabelValues("stream_clients").Inc()
		w.Header().Set("Retry-After", limitRetryAfter)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%v: at most %d WebSocket and SSE clients at once", errStreamLimit, s.cfg.Limits.MaxStreamClients))
		return nil, false
	}
	return func() { s.streamClients.Add(-1) }, true
}

// queueGuard enforces Limits.MaxQueues. It knows the queues the engine
// lists, loaded on first use, plus those this process has let adds create
// since; when a new name meets a full set it reloads (at most once a
// second), so queues that went away elsewhere free their places.
type queueGuard struct {
	max int

	mu       sync.RWMutex
	known    map[string]struct{}
	loadedAt time.Time
	failedAt time.Time // of the last failed first listing
}

// reloadEvery bounds how often a refused name reloads the engine's list:
// a client hammering the limit costs one listing a second, not one per
// request.
const reloadEvery = time.Second

// admit lets an add to queue name proceed, or returns errQueueLimit when
// it would create a queue past the limit. A name it counts for the first
// time is counted before the add runs (fresh); forget takes it back when
// that add fails, so refused requests leave no phantom queues holding
// places.
func (g *queueGuard) admit(ctx context.Context, s *Server, name string) (fresh bool, err error) {
	if g.max == 0 {
		return false, nil
	}
	// Adds to known queues, nearly all of them, share the lock.
	g.mu.RLock()
	_, ok := g.known[name]
	g.mu.RUnlock()
	if ok {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.known[name]; ok {
		return false, nil
	}
	if g.known == nil || (len(g.known) >= g.max && time.Since(g.loadedAt) >= reloadEvery) {
		if g.known == nil && time.Since(g.failedAt) < reloadEvery {
			// The last listing failed a moment ago: let the add decide
			// (it fails too while the engine is away) instead of making
			// every add wait for a listing that will not come.
			return false, nil
		}
		// The Redis client retries a read until its deadline: bound it,
		// so an engine outage costs one WriteTimeout a second at most.
		lctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
		names, err := s.client.Queues(lctx)
		cancel()
		if err != nil {
			if g.known == nil {
				g.failedAt = time.Now()
				s.logs.log(ctx, s.log, slog.LevelWarn, "queue limit listing", "queue limit: listing the engine's queues failed; adds proceed unchecked for a second",
					slog.Any("err", err))
				return false, nil
			}
			// A full set that cannot be reloaded stays full.
			g.loadedAt = time.Now()
		} else {
			g.known = make(map[string]struct{}, len(names))
			for _, n := range names {
				g.known[n] = struct{}{}
			}
			g.loadedAt = time.Now()
			if _, ok := g.known[name]; ok {
				return false, nil
			}
		}
	}
	if len(g.known) >= g.max {
		s.metrics.limitRefused.WithLabelValues("queues").Inc()
		return false, fmt.Errorf("%w: the service holds %d queues, its limit; queue %q was not created, existing queues keep working",
			errQueueLimit, g.max, name)
	}
	g.known[name] = struct{}{}
	return true, nil
}

// forget drops a fresh name after the add to it failed. A queue that exists all
// the same (the add failed after creating it, or another client added to
// it) is found again by the next reload.
func (g *queueGuard) forget(name string) {
	if g.max == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.known, name)
}

// limitStatus maps the limits' errors to their HTTP status, 0 for others.
func limitStatus(err error) int {
	switch {
	case errors.Is(err, errQueueLimit):
		return http.StatusInsufficientStorage
	case errors.Is(err, errStreamLimit):
		return http.StatusServiceUnavailable
	case errors.Is(err, errBodyTimeout):
		return http.StatusRequestTimeout
	}
	return 0
}

// streamRegistry holds the hijacked WebSocket connections, which
// http.Server neither waits for nor closes: a shutdown that runs out of
// time closes them itself.
type streamRegistry struct {
	mu    sync.Mutex
	conns map[closer]struct{}
}

type closer interface{ CloseNow() error }

func (r *streamRegistry) add(c closer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		r.conns = make(map[closer]struct{})
	}
	r.conns[c] = struct{}{}
}

func (r *streamRegistry) remove(c closer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

// closeAll closes every registered connection and returns how many.
func (r *streamRegistry) closeAll() int {
	r.mu.Lock()
	conns := make([]closer, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseNow()
	}
	return len(conns)
}
