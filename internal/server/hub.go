package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/sluicehq/sluice"
)

// hub fans pub/sub messages out to WebSocket and SSE clients. It holds one
// engine subscription per channel, shared by every client of that channel
// in this process, and hands each message to each client's bounded buffer
// without ever waiting: a client whose buffer is full is disconnected
// instead of slowing the others.
type hub struct {
	client *sluice.Client
	m      *metrics
	log    *slog.Logger
	linger time.Duration
	// maxSubs bounds the engine subscriptions (Limits.MaxSubscriptions).
	maxSubs int

	mu     sync.Mutex
	chans  map[string]*channel
	closed bool
	pumps  sync.WaitGroup
}

// channel is one engine subscription and its clients.
type channel struct {
	name string
	// ready is closed once sub or err is set.
	ready chan struct{}
	sub   *sluice.Subscription
	err   error
	// subs is guarded by hub.mu; list is its copy for the pump, replaced
	// (never modified) on every change so the pump reads it without a lock.
	subs map[*subscriber]struct{}
	list atomic.Pointer[[]*subscriber]
}

// frame is one message, encoded once for every client.
type frame struct {
	// envelope is {"channel": ..., "data": ...} (or a gap notice).
	envelope []byte
	// data is the payload alone, as the Python service's /ws/events sends it; nil for
	// notices the Python service's format has no place for.
	data []byte
	// wsEnvelope and wsData are the same as complete WebSocket frames.
	wsEnvelope, wsData []byte
}

// subscriber is one client's end of the hub.
type subscriber struct {
	// out carries batches of messages: what the channel's pump collected
	// within FanoutLinger, shared read-only by every client.
	out  chan []frame
	done chan struct{}
	once sync.Once
	// queued is the bytes of the batches in out, at most maxBytes
	// (Limits.ClientBufferBytes): a client is disconnected for what it
	// leaves unread, not only for how many batches.
	queued   atomic.Int64
	maxBytes int64
	// code and reason say why the hub disconnected the client; abrupt
	// skips the close handshake for a peer known to be unresponsive.
	code   websocket.StatusCode
	reason string
	abrupt bool

	mu       sync.Mutex
	channels map[string]struct{}
}

func newSubscriber(buffer int, maxBytes int64) *subscriber {
	return &subscriber{out: make(chan []frame, buffer), done: make(chan struct{}), channels: make(map[string]struct{}), maxBytes: maxBytes}
}

// kill disconnects the subscriber; the first reason wins, and only the
// first call reports true.
func (sb *subscriber) kill(code websocket.StatusCode, reason string) (first bool) {
	sb.once.Do(func() {
		sb.code, sb.reason = code, reason
		close(sb.done)
		first = true
	})
	return first
}

// offer queues batch for the subscriber unless that would pass its batch
// or byte bound; then it reports false and queues nothing. A client with
// nothing waiting always takes the batch, however large: the bound is on
// what piles up behind a slow client, and a single large message (or a
// burst gathered into one batch) must not disconnect clients that keep up.
func (sb *subscriber) offer(batch []frame, size int64) bool {
	if q := sb.queued.Add(size); q > sb.maxBytes && q != size {
		sb.queued.Add(-size)
		return false
	}
	select {
	case sb.out <- batch:
		return true
	default:
		sb.queued.Add(-size)
		return false
	}
}

// taken accounts for a batch the client's writer took out of out.
func (sb *subscriber) taken(batch []frame) { sb.queued.Add(-batchBytes(batch)) }

// batchBytes is what a batch holds: its largest encoding, the envelope.
func batchBytes(batch []frame) int64 {
	var n int64
	for _, f := range batch {
		n += int64(len(f.wsEnvelope))
	}
	return n
}

// drop disconnects a subscriber whose peer stopped answering, without
// waiting for a close handshake it would never complete.
func (sb *subscriber) drop(reason string) {
	sb.once.Do(func() {
		sb.code, sb.reason, sb.abrupt = websocket.StatusGoingAway, reason, true
		close(sb.done)
	})
}

func (sb *subscriber) count() int {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return len(sb.channels)
}

func newHub(c *sluice.Client, m *metrics, log *slog.Logger, linger time.Duration) *hub {
	return &hub{client: c, m: m, log: log, linger: linger, chans: make(map[string]*channel)}
}

// subscribe adds sb to channels, opening engine subscriptions for
// channels nobody in this process listens to yet. It returns once every
// subscription is active.
func (h *hub) subscribe(ctx context.Context, sb *subscriber, names []string) error {
	for _, name := range names {
		sb.mu.Lock()
		_, dup := sb.channels[name]
		sb.channels[name] = struct{}{}
		sb.mu.Unlock()
		if dup {
			continue
		}
		if err := h.join(ctx, sb, name); err != nil {
			sb.mu.Lock()
			delete(sb.channels, name)
			sb.mu.Unlock()
			return err
		}
	}
	return nil
}

func (h *hub) join(ctx context.Context, sb *subscriber, name string) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("subscribe %q: %w", name, sluice.ErrClosed)
	}
	ch, exists := h.chans[name]
	if !exists && h.maxSubs > 0 && len(h.chans) >= h.maxSubs {
		h.mu.Unlock()
		h.m.limitRefused.WithLabelValues("subscriptions").Inc()
		return fmt.Errorf("subscribe %q: %w: at most %d channels with listeners at once", name, errStreamLimit, h.maxSubs)
	}
	if !exists {
		ch = &channel{name: name, ready: make(chan struct{}), subs: make(map[*subscriber]struct{})}
		h.chans[name] = ch
	}
	ch.subs[sb] = struct{}{}
	ch.publishList()
	h.mu.Unlock()

	if !exists {
		sub, err := h.client.Subscribe(ctx, name)
		h.mu.Lock()
		ch.sub, ch.err = sub, err
		if err != nil && h.chans[name] == ch {
			delete(h.chans, name)
		}
		orphaned := err == nil && h.chans[name] != ch
		if err == nil && !orphaned {
			h.pumps.Add(1)
			h.m.engineSubs.Inc()
		}
		close(ch.ready)
		h.mu.Unlock()
		switch {
		case orphaned:
			// Every client left (or the hub closed) while subscribing.
			_ = sub.Close()
		case err == nil:
			go h.pump(ch)
		}
	} else {
		select {
		case <-ch.ready:
		case <-ctx.Done():
			h.leave(sb, name)
			return fmt.Errorf("subscribe %q: %w", name, ctx.Err())
		}
	}
	if ch.err != nil {
		h.leave(sb, name)
		return fmt.Errorf("subscribe %q: %w", name, ch.err)
	}
	return nil
}

// unsubscribe removes sb from channels it listens to.
func (h *hub) unsubscribe(sb *subscriber, names []string) {
	for _, name := range names {
		sb.mu.Lock()
		_, ok := sb.channels[name]
		delete(sb.channels, name)
		sb.mu.Unlock()
		if ok {
			h.leave(sb, name)
		}
	}
}

// unsubscribeAll removes sb from the hub.
func (h *hub) unsubscribeAll(sb *subscriber) {
	sb.mu.Lock()
	names := make([]string, 0, len(sb.channels))
	for n := range sb.channels {
		names = append(names, n)
	}
	sb.mu.Unlock()
	h.unsubscribe(sb, names)
}

// leave removes sb from one channel and closes the engine subscription
// when sb was its last client.
func (h *hub) leave(sb *subscriber, name string) {
	h.mu.Lock()
	ch := h.chans[name]
	if ch == nil {
		h.mu.Unlock()
		return
	}
	delete(ch.subs, sb)
	ch.publishList()
	var last *sluice.Subscription
	if len(ch.subs) == 0 {
		delete(h.chans, name)
		select {
		case <-ch.ready:
			last = ch.sub
		default:
			// join sees the channel gone and closes the subscription.
		}
	}
	h.mu.Unlock()
	if last != nil {
		_ = last.Close()
	}
}

// publishList snapshots subs for the pump; hub.mu must be held.
func (ch *channel) publishList() {
	l := make([]*subscriber, 0, len(ch.subs))
	for sb := range ch.subs {
		l = append(l, sb)
	}
	ch.list.Store(&l)
}

// maxBatch bounds the messages of one batch.
const maxBatch = 64

// pump reads one engine subscription and fans the messages out in
// batches: after a message, it waits up to the hub's linger for more, so
// that under load each client costs one wake-up and one network write per
// batch rather than per message. A client whose buffer is full is
// disconnected on the spot; the others never wait for it.
func (h *hub) pump(ch *channel) {
	defer h.pumps.Done()
	defer h.m.engineSubs.Dec()
	for {
		batch, ok := h.collect(ch)
		if len(batch) > 0 {
			var sent int
			size := batchBytes(batch)
			for _, sb := range *ch.list.Load() {
				select {
				case <-sb.done:
					continue // disconnected; its handler is leaving
				default:
				}
				if sb.offer(batch, size) {
					sent++
					continue
				}
				// Counted once per client: a client already disconnected
				// stays listed until its handler leaves, and may listen
				// to several channels.
				if sb.kill(websocket.StatusPolicyViolation, "slow consumer: message buffer full") {
					h.m.slowClosed.Inc()
				}
			}
			h.m.fannedOut.Add(float64(sent * len(batch)))
		}
		if !ok {
			break
		}
	}
	// The subscription ended. If the hub did not end it on purpose (the
	// engine closed), its clients would wait forever: disconnect them.
	h.mu.Lock()
	var orphans []*subscriber
	if h.chans[ch.name] == ch {
		delete(h.chans, ch.name)
		for sb := range ch.subs {
			orphans = append(orphans, sb)
		}
	}
	h.mu.Unlock()
	for _, sb := range orphans {
		sb.kill(websocket.StatusInternalError, "subscription ended")
	}
}

// collect waits for a message, then gathers those arriving within the
// linger. ok is false once the subscription has ended.
func (h *hub) collect(ch *channel) (batch []frame, ok bool) {
	msg, err := ch.sub.Next(context.Background())
	if err != nil {
		return nil, false
	}
	batch = h.appendFrame(batch, ch.name, msg)
	if h.linger <= 0 {
		return batch, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.linger)
	defer cancel()
	for len(batch) < maxBatch {
		msg, err := ch.sub.Next(ctx)
		if err != nil {
			return batch, ctx.Err() != nil
		}
		batch = h.appendFrame(batch, ch.name, msg)
	}
	return batch, true
}

func (h *hub) appendFrame(batch []frame, channel string, msg sluice.Message) []frame {
	f, err := encodeFrame(channel, msg)
	if err != nil {
		h.log.Warn("pub/sub message not encodable; skipped", "channel", channel, "err", err)
		return batch
	}
	if msg.Gap {
		h.m.missedGaps.Inc()
	}
	return append(batch, f)
}

func encodeFrame(channel string, msg sluice.Message) (frame, error) {
	if msg.Gap {
		b, err := json.Marshal(map[string]string{"type": "gap", "channel": channel})
		return frame{envelope: b, wsEnvelope: wsTextFrame(b)}, err
	}
	data := msg.Data.JSON()
	b, err := json.Marshal(struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}{channel, data})
	if err != nil {
		return frame{}, err
	}
	return frame{envelope: b, data: data, wsEnvelope: wsTextFrame(b), wsData: wsTextFrame(data)}, nil
}

// close ends every engine subscription and waits for the pumps.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	var subs []*sluice.Subscription
	for name, ch := range h.chans {
		delete(h.chans, name)
		select {
		case <-ch.ready:
			if ch.sub != nil {
				subs = append(subs, ch.sub)
			}
		default:
		}
		for sb := range ch.subs {
			sb.kill(websocket.StatusGoingAway, "server shutting down")
		}
	}
	h.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Close()
	}
	h.pumps.Wait()
}
