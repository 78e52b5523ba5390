package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
)

// DefaultSubscribeBuffer is the number of messages a subscription holds for
// a slow reader when SubscribeParams.Buffer is <= 0.
const DefaultSubscribeBuffer = 1024

// Re-subscription after a lost connection waits resubscribeBase, doubling
// per failed attempt up to resubscribeMax, with jitter so that many
// subscribers cut off together do not reconnect in lockstep.
const (
	resubscribeBase    = 50 * time.Millisecond
	resubscribeMax     = 5 * time.Second
	resubscribeTimeout = 10 * time.Second
)

// Pub/sub is classic (PUBLISH, SUBSCRIBE, PSUBSCRIBE), not sharded: the
// engine offers patterns, which sharded pub/sub lacks, and a Python service
// publishing with plain PUBLISH must reach Sluice's subscribers. On a
// cluster a classic message reaches the subscribers of every node, but
// PUBLISH counts only those of the node it ran on; so every publish and
// every subscription of an engine goes to the primary serving the slot of
// one anchor name, and the count covers every subscriber, patterns too.
// Elsewhere the anchor changes nothing.
func (e *Engine) pubsubAnchor() string { return e.keys.Channel("sluice#pubsub") }

// Publish sends payload to channel and returns the number of subscribers
// that received it, as counted by the server (on a cluster, see
// pubsubAnchor).
func (e *Engine) Publish(ctx context.Context, channel, payload string) (int64, error) {
	if err := e.check("publish"); err != nil {
		return 0, err
	}
	cmd := e.client.B().Publish().Channel(e.keys.Channel(channel)).Message(payload).Build().SetSlot(e.pubsubAnchor())
	n, err := e.client.Do(ctx, cmd).AsInt64()
	if err != nil {
		return 0, interpretError("publish", err)
	}
	return n, nil
}

// Subscribe opens a subscription on a connection of its own (a rueidis
// dedicated connection), so that a slow or interrupted subscription never
// holds up the engine's other commands. It returns once the server has
// confirmed every channel and pattern: a message published after Subscribe
// returns is delivered.
//
// The connection's reader goroutine hands each message to the
// subscription's buffer without ever waiting; when the buffer is full the
// message is dropped and counted in Dropped. When the connection is lost
// the subscription reconnects with capped, jittered exponential backoff,
// subscribes again and then delivers one engine.MessageGap notice, before
// any message received on the new connection. The gap notice is never
// dropped: the buffer keeps one slot for it beyond params.Buffer, and a
// gap that finds that slot taken is already announced by the notice
// waiting there, after every message buffered before it.
//
// Patterns are matched against prefixed channel names; the key prefix is
// escaped, so that glob characters in it match only themselves.
func (e *Engine) Subscribe(ctx context.Context, params engine.SubscribeParams) (engine.Subscription, error) {
	if err := e.check("subscribe"); err != nil {
		return nil, err
	}
	if len(params.Channels) == 0 && len(params.Patterns) == 0 {
		return nil, errors.New("no channels and no patterns; give at least one")
	}
	buffer := params.Buffer
	if buffer <= 0 {
		buffer = DefaultSubscribeBuffer
	}
	s := &subscription{
		client:   e.client,
		anchor:   e.pubsubAnchor(),
		prefix:   e.keys.Channel(""),
		channels: dedupeWire(params.Channels, e.keys.Channel),
		patterns: dedupeWire(params.Patterns, e.channelPattern),
		userPat:  make(map[string]string, len(params.Patterns)),
		buffer:   buffer,
		msgs:     make(chan engine.Message, buffer+1),
		done:     make(chan struct{}),
	}
	for _, p := range params.Patterns {
		s.userPat[e.channelPattern(p)] = p
	}
	// Deriving from e.closing ends the subscription when the engine closes,
	// even when the engine does not own the client: a dedicated connection
	// is not closed by closing its client.
	s.ctx, s.cancel = context.WithCancel(e.closing)

	conn, err := s.connect(ctx, false)
	if err != nil {
		s.cancel()
		return nil, interpretError("subscribe", err)
	}
	go s.run(conn)
	return s, nil
}

// channelPattern is the wire form of a user's pattern: the prefix, with
// its glob characters escaped, followed by the pattern.
func (e *Engine) channelPattern(pattern string) string {
	full := e.keys.Channel(pattern)
	prefix := strings.TrimSuffix(full, pattern)
	var b strings.Builder
	for i := 0; i < len(prefix); i++ {
		if strings.IndexByte(`*?[]\`, prefix[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(prefix[i])
	}
	return b.String() + pattern
}

func dedupeWire(names []string, wire func(string) string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		w := wire(n)
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// subscription is an engine.Subscription on a dedicated connection.
type subscription struct {
	client   rueidis.Client
	anchor   string            // pins the connection's node (pubsubAnchor)
	prefix   string            // stripped from received channel names
	channels []string          // wire channel names
	patterns []string          // wire patterns
	userPat  map[string]string // wire pattern -> pattern as subscribed
	buffer   int               // data messages held at most

	// msgs has room for buffer data messages plus one gap notice. Sends
	// happen under mu, so that closing msgs cannot race with a send from a
	// connection's reader goroutine.
	msgs    chan engine.Message
	mu      sync.Mutex
	closed  bool
	dropped atomic.Uint64

	// connID is the server's CLIENT ID of the current connection, and
	// reconnects counts completed re-subscriptions (each announced by a gap
	// notice before it counts).
	connID     atomic.Int64
	reconnects atomic.Uint64

	ctx    context.Context // cancelled by Close and by the engine's Close
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
}

// subConn is one subscribed connection.
type subConn struct {
	dc      rueidis.DedicatedClient
	release func()
	// lost receives the error that ended the connection (and is closed),
	// after which its hooks are never called again.
	lost <-chan error
}

func (s *subscription) Messages() <-chan engine.Message { return s.msgs }

func (s *subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription, unsubscribes, returns its connection to the
// client's pool and closes Messages. It waits for the subscription's
// goroutine to finish; calling it again is harmless.
func (s *subscription) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// connect subscribes a new dedicated connection and waits until the server
// has confirmed every channel and pattern. With gap set, the confirmation
// of the last one delivers a gap notice; it runs on the connection's reader
// goroutine, so the notice precedes every message of the new connection
// that arrives after the subscription is complete.
func (s *subscription) connect(ctx context.Context, gap bool) (*subConn, error) {
	dc, release := s.client.Dedicate()
	want := len(s.channels) + len(s.patterns)
	ready := make(chan struct{})
	confirmed := 0 // hooks run one at a time on the reader goroutine
	lost := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: s.onMessage,
		OnSubscription: func(ps rueidis.PubSubSubscription) {
			if ps.Kind != "subscribe" && ps.Kind != "psubscribe" {
				return
			}
			if confirmed++; confirmed == want {
				if gap {
					s.deliver(engine.Message{Kind: engine.MessageGap})
				}
				close(ready)
			}
		},
	})

	select {
	case err := <-lost:
		// The client was closed (or its connection failed) before the
		// hooks were set: nothing was sent.
		dc.Close()
		return nil, err
	default:
	}

	// The first command binds a dedicated cluster connection to the node
	// of its slot; the anchor's slot puts it where publishes go.
	id, err := dc.Do(ctx, dc.B().ClientId().Build().SetSlot(s.anchor)).AsInt64()
	if err != nil {
		dc.Close()
		return nil, err
	}
	s.connID.Store(id)
	var cmds rueidis.Commands
	if len(s.channels) > 0 {
		cmds = append(cmds, dc.B().Subscribe().Channel(s.channels...).Build())
	}
	if len(s.patterns) > 0 {
		cmds = append(cmds, dc.B().Psubscribe().Pattern(s.patterns...).Build())
	}
	for _, r := range dc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			dc.Close()
			return nil, err
		}
	}

	select {
	case <-ready:
		return &subConn{dc: dc, release: release, lost: lost}, nil
	case err := <-lost:
		dc.Close()
		if err == nil {
			err = errors.New("connection closed before the subscription was confirmed")
		}
		return nil, err
	case <-ctx.Done():
		dc.Close()
		return nil, ctx.Err()
	}
}

// run keeps the subscription connected until Close, or until the client is
// closed, and then closes Messages.
func (s *subscription) run(c *subConn) {
	defer close(s.done)
	defer s.closeMessages()
	for c != nil {
		select {
		case <-s.ctx.Done():
			// Release unsubscribes and pools the connection for reuse.
			c.release()
			return
		case <-c.lost:
		}
		// Closing a broken connection releases it: the pool drops it.
		c.dc.Close()
		c = s.reconnect()
	}
}

// reconnect subscribes a new connection, retrying with backoff. It returns
// nil when the subscription is closed or the client has been closed.
func (s *subscription) reconnect() *subConn {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(resubscribeDelay(attempt))
			select {
			case <-s.ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, resubscribeTimeout)
		c, err := s.connect(ctx, true)
		cancel()
		if err == nil {
			s.reconnects.Add(1)
			return c
		}
		if s.ctx.Err() != nil || errors.Is(err, rueidis.ErrClosing) {
			return nil
		}
	}
}

// resubscribeDelay is the wait before reconnect attempt n (n >= 1): the
// capped exponential delay, scaled by a random factor in [0.5, 1).
func resubscribeDelay(n int) time.Duration {
	d := resubscribeMax
	if n < 16 {
		d = min(resubscribeBase<<(n-1), resubscribeMax)
	}
	return d/2 + rand.N(d/2)
}

func (s *subscription) onMessage(m rueidis.PubSubMessage) {
	msg := engine.Message{
		Kind:    engine.MessageData,
		Channel: strings.TrimPrefix(m.Channel, s.prefix),
		Payload: m.Message,
	}
	if m.Pattern != "" {
		msg.Pattern = m.Pattern
		if p, ok := s.userPat[m.Pattern]; ok {
			msg.Pattern = p
		}
	}
	s.deliver(msg)
}

// deliver hands m to the reader without blocking. A data message that finds
// buffer messages waiting is dropped and counted. A gap notice uses the
// extra slot; if that slot is taken, the channel's newest entry is a gap
// notice not yet read (only a gap can fill the last slot), which already
// tells the reader what this one would.
func (s *subscription) deliver(m engine.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if m.Kind == engine.MessageData && len(s.msgs) >= s.buffer {
		s.dropped.Add(1)
		return
	}
	select {
	case s.msgs <- m:
	default:
		if m.Kind == engine.MessageData {
			s.dropped.Add(1)
		}
	}
}

func (s *subscription) closeMessages() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.msgs)
	}
}

// String describes the subscription for logs.
func (s *subscription) String() string {
	return fmt.Sprintf("redis subscription (%d channels, %d patterns, conn %d, %d reconnects)",
		len(s.channels), len(s.patterns), s.connID.Load(), s.reconnects.Load())
}
