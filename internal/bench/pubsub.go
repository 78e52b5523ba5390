package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// subscriberCounts are the fan-outs the pub/sub cases measure.
var subscriberCounts = []int{1, 10}

// Publishers of the full-rate cases, and the rate of the paced ones.
const (
	fullRatePublishers = 4
	pacedRate          = 1000
)

// maxSamples bounds the latencies one subscriber keeps.
const maxSamples = 1 << 20

// PubSub measures publish->receive: the delivery rate to 1 and 10
// subscribers with publishers going flat out, and delivery latency at a
// paced 1,000 messages/s, each beside raw PUBLISH and SUBSCRIBE on Redis.
// In these rows "goroutines" is the number of subscribers, ops/s counts
// publishes and items/s deliveries (one publish reaches every subscriber).
func PubSub(ctx context.Context, o Options) (rep *Report, err error) {
	t, err := openTarget(ctx, o, "pubsub", nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	f := &fanout{t: t, base: time.Now(), pad: strings.Repeat("x", max(t.o.ItemSize-40, 0))}
	for _, n := range subscriberCounts {
		for _, paced := range []bool{false, true} {
			label := "publish->receive"
			if paced {
				label += " @1000/s"
			}
			if t.redis != nil {
				if err := f.run(ctx, "raw PUBLISH->SUBSCRIBE"+label[len("publish->receive"):], n, paced, true); err != nil {
					return nil, err
				}
			}
			if err := f.run(ctx, label, n, paced, false); err != nil {
				return nil, err
			}
			if !paced {
				t.rep.compare(label, n, "raw PUBLISH->SUBSCRIBE", n)
			}
		}
	}
	return t.rep, nil
}

// fanout runs publish->receive cases. Each message carries its send time
// (nanoseconds since base, so the monotonic clock is used); 0 marks a
// warm-up message and -1 the end of a case.
type fanout struct {
	t    *target
	base time.Time
	pad  string
	seq  int
}

func (f *fanout) message(t int64) string {
	return `{"t": ` + strconv.FormatInt(t, 10) + `, "pad": "` + f.pad + `"}`
}

// sentAt reads the send time back out of a message.
func sentAt(payload string) (int64, bool) {
	rest, ok := strings.CutPrefix(payload, `{"t": `)
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	t, err := strconv.ParseInt(rest[:end], 10, 64)
	return t, err == nil
}

// listener is one subscriber's tally.
type listener struct {
	mu       sync.Mutex
	received int64
	samples  []time.Duration
	last     time.Time
	done     chan struct{}
	once     sync.Once
}

func (f *fanout) on(l *listener, payload string) {
	t, ok := sentAt(payload)
	if !ok || t == 0 {
		return
	}
	now := time.Now()
	if t < 0 {
		l.once.Do(func() { close(l.done) })
		return
	}
	l.mu.Lock()
	l.received++
	l.last = now
	if len(l.samples) < maxSamples {
		l.samples = append(l.samples, now.Sub(f.base)-time.Duration(t))
	}
	l.mu.Unlock()
}

type publishFunc func(ctx context.Context, payload string) (receivers int64, err error)

func (f *fanout) run(ctx context.Context, label string, n int, paced, raw bool) error {
	f.t.o.Progress("%s, %d subscribers", label, n)
	f.seq++
	channel := "bench-channel-" + strconv.Itoa(f.seq)
	listeners := make([]*listener, n)
	for i := range listeners {
		listeners[i] = &listener{done: make(chan struct{})}
	}
	var (
		publish publishFunc
		stop    func() (dropped uint64)
		err     error
	)
	if raw {
		publish, stop, err = f.rawSubscribers(ctx, channel, listeners)
	} else {
		publish, stop, err = f.sluiceSubscribers(ctx, channel, listeners)
	}
	if err != nil {
		return fmt.Errorf("bench: %s: %w", label, err)
	}
	res, err := f.publish(ctx, publish, n, paced, listeners)
	dropped := stop()
	if err != nil {
		return fmt.Errorf("bench: %s (%d subscribers): %w", label, n, err)
	}
	note := "goroutines = subscribers; ops/s = publishes, items/s = deliveries"
	if paced {
		note = "goroutines = subscribers; one publisher paced at 1,000 messages/s"
	} else if !raw {
		note += fmt.Sprintf("; %d messages dropped by full subscriber buffers", dropped)
	}
	f.t.rep.add(label, n, res, note)
	return nil
}

// publish waits until all n subscribers hear a warm-up message, publishes
// for the case's duration, then sends the end marker and waits (at most
// 5 s) for every subscriber to see it.
func (f *fanout) publish(ctx context.Context, publish publishFunc, n int, paced bool, listeners []*listener) (tally, error) {
	warm, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		got, err := publish(warm, f.message(0))
		if err != nil {
			return tally{}, fmt.Errorf("waiting for %d subscribers: %w", n, err)
		}
		if got >= int64(n) {
			break
		}
		select {
		case <-warm.Done():
			return tally{}, fmt.Errorf("only %d of %d subscribers active after 5 s", got, n)
		case <-time.After(5 * time.Millisecond):
		}
	}

	var published atomic.Int64
	start := time.Now()
	deadline := start.Add(f.t.o.Duration)
	pctx, pcancel := context.WithDeadline(ctx, deadline)
	defer pcancel()
	var wg sync.WaitGroup
	errs := make([]error, fullRatePublishers)
	if paced {
		wg.Go(func() {
			// Publish on a schedule rather than a ticker: a late publish is
			// followed by the ones it delayed, so the rate holds on average.
			interval := time.Second / pacedRate
			for i := 0; ; i++ {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-pctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
				if pctx.Err() != nil {
					return
				}
				if _, err := publish(pctx, f.message(int64(time.Since(f.base)))); err != nil {
					if pctx.Err() == nil {
						errs[0] = err
					}
					return
				}
				published.Add(1)
			}
		})
	} else {
		for p := range fullRatePublishers {
			wg.Go(func() {
				for pctx.Err() == nil {
					if _, err := publish(pctx, f.message(int64(time.Since(f.base)))); err != nil {
						if pctx.Err() == nil {
							errs[p] = err
						}
						return
					}
					published.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return tally{}, err
	}
	if err := ctx.Err(); err != nil {
		return tally{}, fmt.Errorf("interrupted: %w", err)
	}
	if _, err := publish(ctx, f.message(-1)); err != nil {
		return tally{}, fmt.Errorf("end marker: %w", err)
	}
	// A subscriber whose buffer was full when the marker came never sees
	// it: wait for the others, 5 s at most in all.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	for _, l := range listeners {
		select {
		case <-l.done:
		case <-wctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		return tally{}, fmt.Errorf("interrupted: %w", err)
	}

	res := tally{ops: published.Load()}
	last := deadline
	for _, l := range listeners {
		l.mu.Lock()
		res.items += l.received
		res.samples = append(res.samples, l.samples...)
		if l.last.After(last) {
			last = l.last
		}
		l.mu.Unlock()
	}
	res.elapsed = last.Sub(start)
	slices.Sort(res.samples)
	return res, nil
}

// sluiceSubscribers subscribes each listener through the Sluice client.
func (f *fanout) sluiceSubscribers(ctx context.Context, channel string, listeners []*listener) (publishFunc, func() uint64, error) {
	c := f.t.client
	// The readers end on rctx as well as on Close, so that stopping never
	// depends on how an engine ends a closed subscription.
	rctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []func() uint64
	stop := func() uint64 {
		var dropped uint64
		for _, c := range closers {
			dropped += c()
		}
		cancel()
		wg.Wait()
		return dropped
	}
	for _, l := range listeners {
		sub, err := c.Subscribe(ctx, channel)
		if err != nil {
			stop()
			return nil, nil, err
		}
		closers = append(closers, func() uint64 {
			d := sub.Dropped()
			sub.Close()
			return d
		})
		wg.Go(func() {
			for {
				m, err := sub.Next(rctx)
				if err != nil {
					return
				}
				if !m.Gap {
					f.on(l, m.Data.String())
				}
			}
		})
	}
	publish := func(ctx context.Context, payload string) (int64, error) {
		return c.Publish(ctx, channel, json.RawMessage(payload))
	}
	return publish, stop, nil
}

// rawSubscribers gives each listener a rueidis client of its own (Redis
// counts subscriptions per connection) subscribed with SUBSCRIBE.
func (f *fanout) rawSubscribers(ctx context.Context, channel string, listeners []*listener) (publishFunc, func() uint64, error) {
	key := f.t.key(channel)
	rctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []rueidis.Client
	stop := func() uint64 {
		cancel()
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
		return 0
	}
	for _, l := range listeners {
		c, err := rawRedis(ctx, f.t.o)
		if err != nil {
			stop()
			return nil, nil, err
		}
		clients = append(clients, c)
		wg.Go(func() {
			_ = c.Receive(rctx, c.B().Subscribe().Channel(key).Build(), func(m rueidis.PubSubMessage) {
				f.on(l, m.Message)
			})
		})
	}
	raw := f.t.redis.raw
	publish := func(ctx context.Context, payload string) (int64, error) {
		return raw.Do(ctx, raw.B().Publish().Channel(key).Message(payload).Build()).AsInt64()
	}
	return publish, stop, nil
}
