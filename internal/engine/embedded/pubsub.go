package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/internal/engine"
)

// DefaultBuffer is a subscription's buffer when SubscribeParams.Buffer <= 0.
const DefaultBuffer = 1024

// hub routes published messages. Publishers hold mu in read mode while
// they deliver (never blocking: a full buffer drops the message), so a
// subscription removed under the write lock can close its channel without
// racing a send.
type hub struct {
	mu       sync.RWMutex
	channels map[string]map[*subscription]struct{}
	patterns map[*subscription][]string
	closed   bool
}

func (h *hub) init() {
	h.channels = make(map[string]map[*subscription]struct{})
	h.patterns = make(map[*subscription][]string)
}

type subscription struct {
	h        *hub
	ch       chan engine.Message
	channels []string
	dropped  atomic.Uint64
	once     sync.Once
}

func (s *subscription) Messages() <-chan engine.Message { return s.ch }
func (s *subscription) Dropped() uint64                 { return s.dropped.Load() }

// Close ends the subscription and closes its channel; safe to repeat.
func (s *subscription) Close() error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *subscription) closeLocked() {
	s.once.Do(func() {
		for _, c := range s.channels {
			if set := s.h.channels[c]; set != nil {
				delete(set, s)
				if len(set) == 0 {
					delete(s.h.channels, c)
				}
			}
		}
		delete(s.h.patterns, s)
		close(s.ch)
	})
}

func (s *subscription) offer(m engine.Message) {
	select {
	case s.ch <- m:
	default:
		s.dropped.Add(1)
	}
}

// Publish delivers payload to every subscription of channel and to every
// matching pattern (a subscription with both gets it twice, as on Redis)
// and returns how many deliveries matched, counting messages a full buffer
// dropped, as Redis counts receivers regardless of their reading speed.
func (e *Engine) Publish(ctx context.Context, channel, payload string) (int64, error) {
	if err := e.checkOpen("publish"); err != nil {
		return 0, err
	}
	h := &e.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	var n int64
	for s := range h.channels[channel] {
		s.offer(engine.Message{Kind: engine.MessageData, Channel: channel, Payload: payload})
		n++
	}
	for s, pats := range h.patterns {
		for _, p := range pats {
			if match(p, channel) {
				s.offer(engine.Message{Kind: engine.MessageData, Channel: channel, Pattern: p, Payload: payload})
				n++
			}
		}
	}
	return n, nil
}

// Subscribe starts a subscription; it is active when Subscribe returns.
// Channel and pattern names are matched within this engine, so the key
// prefix does not apply to them.
func (e *Engine) Subscribe(ctx context.Context, p engine.SubscribeParams) (engine.Subscription, error) {
	if err := e.checkOpen("subscribe"); err != nil {
		return nil, err
	}
	if len(p.Channels) == 0 && len(p.Patterns) == 0 {
		return nil, fmt.Errorf("subscribe: no channels or patterns given")
	}
	buf := p.Buffer
	if buf <= 0 {
		buf = DefaultBuffer
	}
	s := &subscription{h: &e.hub, ch: make(chan engine.Message, buf)}
	s.channels = dedupe(p.Channels)
	pats := dedupe(p.Patterns)
	h := &e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("subscribe: %w", engine.ErrClosed)
	}
	for _, c := range s.channels {
		set := h.channels[c]
		if set == nil {
			set = make(map[*subscription]struct{})
			h.channels[c] = set
		}
		set[s] = struct{}{}
	}
	if len(pats) > 0 {
		h.patterns[s] = pats
	}
	return s, nil
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, x := range in {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// closeAll ends every subscription (engine Close).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	subs := make(map[*subscription]struct{})
	for _, set := range h.channels {
		for s := range set {
			subs[s] = struct{}{}
		}
	}
	for s := range h.patterns {
		subs[s] = struct{}{}
	}
	for s := range subs {
		s.closeLocked()
	}
}
