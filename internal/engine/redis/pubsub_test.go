package redis

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

var (
	_ engine.PubSubEngine = (*Engine)(nil)
	_ engine.CacheEngine  = (*Engine)(nil)
	_ engine.LockEngine   = (*Engine)(nil)
	_ engine.Subscription = (*subscription)(nil)
)

// capWaitLimit bounds every wait for something asynchronous (a message, an
// invalidation, a reconnect, an expiry); reaching it fails the test.
const capWaitLimit = 10 * time.Second

// capClient connects to the test Redis with client-side caching on or off.
// The caller closes it (the test's cleanup does too; closing twice is
// harmless).
func capClient(t testing.TB, clientCache bool) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(redistest.URL())
	if err != nil {
		t.Fatalf("test Redis URL: %v", err)
	}
	opt.DisableCache = !clientCache
	c, err := rueidis.NewClient(opt)
	if err != nil {
		redistest.Unavailable(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		redistest.Unavailable(t, err)
	}
	t.Cleanup(c.Close)
	return c
}

// capEngine is an engine over client with a fresh key prefix, whose keys
// are deleted when the test ends.
func capEngine(t testing.TB, client rueidis.Client) (*Engine, string) {
	t.Helper()
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, client, prefix)
	e := New(client, Options{Keys: keyspace.Space{Prefix: prefix}})
	t.Cleanup(func() { e.Close() })
	return e, prefix
}

func capSubscribe(t testing.TB, e *Engine, params engine.SubscribeParams) *subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), capWaitLimit)
	defer cancel()
	sub, err := e.Subscribe(ctx, params)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", params, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub.(*subscription)
}

func capNextMessage(t testing.TB, sub engine.Subscription) engine.Message {
	t.Helper()
	timer := time.NewTimer(capWaitLimit)
	defer timer.Stop()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatal("Messages closed while a message was expected")
		}
		return m
	case <-timer.C:
		t.Fatalf("no message within %v", capWaitLimit)
	}
	return engine.Message{}
}

func capPublish(t testing.TB, e *Engine, channel, payload string) int64 {
	t.Helper()
	n, err := e.Publish(context.Background(), channel, payload)
	if err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
	return n
}

// eventually polls cond until it holds, failing the test after capWaitLimit.
func capEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(capWaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v", what, capWaitLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPubSubChannelsAndPatterns(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	sub := capSubscribe(t, e, engine.SubscribeParams{
		Channels: []string{"alerts", "status", "alerts"},
		Patterns: []string{"camera.*"},
	})

	if n := capPublish(t, e, "alerts", `{"type":"motion"}`); n != 1 {
		t.Errorf("Publish to a subscribed channel reached %d subscribers, want 1", n)
	}
	want := engine.Message{Kind: engine.MessageData, Channel: "alerts", Payload: `{"type":"motion"}`}
	if got := capNextMessage(t, sub); got != want {
		t.Errorf("channel message = %+v, want %+v", got, want)
	}

	capPublish(t, e, "camera.7", "frame")
	want = engine.Message{Kind: engine.MessageData, Channel: "camera.7", Pattern: "camera.*", Payload: "frame"}
	if got := capNextMessage(t, sub); got != want {
		t.Errorf("pattern message = %+v, want %+v", got, want)
	}

	if n := capPublish(t, e, "elsewhere", "x"); n != 0 {
		t.Errorf("Publish to an unsubscribed channel reached %d subscribers, want 0", n)
	}
	capPublish(t, e, "status", "last")
	want = engine.Message{Kind: engine.MessageData, Channel: "status", Payload: "last"}
	if got := capNextMessage(t, sub); got != want {
		t.Errorf("after an unsubscribed publish, got %+v, want %+v", got, want)
	}
	if d := sub.Dropped(); d != 0 {
		t.Errorf("Dropped = %d, want 0", d)
	}
}

// A publish right after Subscribe returns must be delivered: Subscribe
// waits for the server's confirmation of every channel and pattern.
func TestPubSubActiveWhenSubscribeReturns(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	for i := range 30 {
		ch := fmt.Sprintf("ch%d", i)
		sub := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{ch}, Patterns: []string{ch + ".p.*"}})
		if n := capPublish(t, e, ch+".p.x", "p"); n != 1 {
			t.Fatalf("round %d: pattern publish right after Subscribe reached %d subscribers, want 1", i, n)
		}
		if n := capPublish(t, e, ch, "c"); n != 1 {
			t.Fatalf("round %d: channel publish right after Subscribe reached %d subscribers, want 1", i, n)
		}
		if m := capNextMessage(t, sub); m.Payload != "p" {
			t.Fatalf("round %d: first message %+v, want payload p", i, m)
		}
		if m := capNextMessage(t, sub); m.Payload != "c" {
			t.Fatalf("round %d: second message %+v, want payload c", i, m)
		}
		sub.Close()
	}
}

// Patterns see only channels under the engine's own prefix, even when the
// prefix holds glob characters.
func TestPubSubPatternStaysInsidePrefix(t *testing.T) {
	t.Parallel()
	client := redistest.Client(t)
	base := redistest.Prefix(t)
	globby := New(client, Options{Keys: keyspace.Space{Prefix: base + "a*:"}})
	other := New(client, Options{Keys: keyspace.Space{Prefix: base + "ab:"}})
	sub := capSubscribe(t, globby, engine.SubscribeParams{Patterns: []string{"*"}})

	if n := capPublish(t, other, "x", "foreign"); n != 0 {
		t.Errorf("publish under another prefix reached %d subscribers, want 0", n)
	}
	if n := capPublish(t, globby, "x", "own"); n != 1 {
		t.Errorf("publish under the engine's prefix reached %d subscribers, want 1", n)
	}
	want := engine.Message{Kind: engine.MessageData, Channel: "x", Pattern: "*", Payload: "own"}
	if got := capNextMessage(t, sub); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestPubSubFullBufferDropsAndCounts(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	sub := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{"c"}, Buffer: 4})

	for i := range 10 {
		capPublish(t, e, "c", fmt.Sprint(i))
	}
	capEventually(t, "6 of 10 messages dropped", func() bool { return sub.Dropped() == 6 })
	for i := range 4 {
		if m := capNextMessage(t, sub); m.Payload != fmt.Sprint(i) {
			t.Fatalf("message %d = %+v, want the oldest ones kept in order", i, m)
		}
	}
	capPublish(t, e, "c", "after")
	if m := capNextMessage(t, sub); m.Payload != "after" {
		t.Errorf("after draining, got %+v, want payload after", m)
	}
	if d := sub.Dropped(); d != 6 {
		t.Errorf("Dropped = %d after draining, want 6", d)
	}
}

func capKillConn(t testing.TB, admin rueidis.Client, id int64) {
	t.Helper()
	cmd := admin.B().ClientKill().Id(id).Build()
	if err := admin.Do(context.Background(), cmd).Error(); err != nil {
		t.Fatalf("CLIENT KILL ID %d: %v", id, err)
	}
}

func TestPubSubReconnectsAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	client := redistest.Client(t)
	e, _ := capEngine(t, client)
	sub := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{"c"}, Patterns: []string{"p.*"}})

	for round := range 3 {
		id := sub.connID.Load()
		capKillConn(t, client, id)
		if m := capNextMessage(t, sub); m.Kind != engine.MessageGap {
			t.Fatalf("round %d: after the connection was killed got %+v, want a gap notice", round, m)
		}
		if sub.connID.Load() == id {
			t.Fatalf("round %d: still on killed connection %d", round, id)
		}
		if n := capPublish(t, e, "c", "back"); n != 1 {
			t.Fatalf("round %d: publish after the gap reached %d subscribers, want 1", round, n)
		}
		if n := capPublish(t, e, "p.1", "pattern back"); n != 1 {
			t.Fatalf("round %d: pattern publish after the gap reached %d subscribers, want 1", round, n)
		}
		if m := capNextMessage(t, sub); m.Kind != engine.MessageData || m.Payload != "back" {
			t.Fatalf("round %d: got %+v, want the channel message", round, m)
		}
		if m := capNextMessage(t, sub); m.Pattern != "p.*" || m.Payload != "pattern back" {
			t.Fatalf("round %d: got %+v, want the pattern message", round, m)
		}
	}
}

// The gap notice is delivered even when the buffer is full of data.
func TestPubSubGapNoticeSurvivesFullBuffer(t *testing.T) {
	t.Parallel()
	client := redistest.Client(t)
	e, _ := capEngine(t, client)
	sub := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{"c"}, Buffer: 2})

	for _, p := range []string{"m0", "m1", "m2"} {
		capPublish(t, e, "c", p)
	}
	capEventually(t, "third message dropped", func() bool { return sub.Dropped() == 1 })

	// Two losses before the reader looks: the second gap coalesces into the
	// first, which still follows every buffered message.
	for n := range uint64(2) {
		capKillConn(t, client, sub.connID.Load())
		capEventually(t, "resubscribed", func() bool { return sub.reconnects.Load() == n+1 })
		if l := len(sub.Messages()); l != 3 {
			t.Fatalf("after reconnect %d the buffer holds %d entries, want 3", n+1, l)
		}
	}
	want := []engine.Message{
		{Kind: engine.MessageData, Channel: "c", Payload: "m0"},
		{Kind: engine.MessageData, Channel: "c", Payload: "m1"},
		{Kind: engine.MessageGap},
	}
	for i, w := range want {
		if got := capNextMessage(t, sub); got != w {
			t.Fatalf("message %d = %+v, want %+v", i, got, w)
		}
	}
	capPublish(t, e, "c", "m3")
	if got := capNextMessage(t, sub); got.Payload != "m3" {
		t.Errorf("after the gap got %+v, want m3", got)
	}
	if d := sub.Dropped(); d != 1 {
		t.Errorf("Dropped = %d, want 1 (gap notices are never counted)", d)
	}
}

func capDrainClosed(t testing.TB, sub engine.Subscription) {
	t.Helper()
	timer := time.NewTimer(capWaitLimit)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-sub.Messages():
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("Messages not closed within %v", capWaitLimit)
		}
	}
}

// Not parallel: goleak compares all goroutines of the process.
func TestPubSubCloseLeavesNothingRunning(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	client := capClient(t, false)
	admin := redistest.Client(t)
	e, _ := capEngine(t, client)

	idle := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{"idle"}})
	capPublish(t, e, "idle", "unread")
	capEventually(t, "message buffered", func() bool { return len(idle.Messages()) == 1 })
	if err := idle.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	capDrainClosed(t, idle)

	// Closed while reconnecting (after its connection was killed).
	cut := capSubscribe(t, e, engine.SubscribeParams{Patterns: []string{"*"}})
	capKillConn(t, admin, cut.connID.Load())
	cut.Close()
	capDrainClosed(t, cut)

	// Ended by the engine's Close.
	byEngine := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{"e"}})
	if err := e.Close(); err != nil {
		t.Fatalf("engine Close: %v", err)
	}
	capDrainClosed(t, byEngine)
	if _, err := e.Subscribe(context.Background(), engine.SubscribeParams{Channels: []string{"e"}}); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Subscribe after engine Close: %v, want ErrClosed", err)
	}
	if _, err := e.Publish(context.Background(), "e", "x"); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Publish after engine Close: %v, want ErrClosed", err)
	}

	client.Close()
	admin.Close()
	goleak.VerifyNone(t, ignore)
}

// When the client itself is closed, a subscription that loses its
// connection cannot reconnect and ends.
func TestPubSubEndsWhenClientClosed(t *testing.T) {
	t.Parallel()
	client := capClient(t, false)
	admin := redistest.Client(t)
	e, _ := capEngine(t, client)
	sub := capSubscribe(t, e, engine.SubscribeParams{Channels: []string{"c"}})

	client.Close()
	capKillConn(t, admin, sub.connID.Load())
	capDrainClosed(t, sub)
}

func TestSubscribeRefusesBadRequests(t *testing.T) {
	t.Parallel()
	e, _ := capEngine(t, redistest.Client(t))
	if _, err := e.Subscribe(context.Background(), engine.SubscribeParams{}); err == nil {
		t.Error("Subscribe with nothing to subscribe to succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"c"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe with a cancelled ctx: %v, want context.Canceled", err)
	}
}

func TestResubscribeDelayIsCappedAndJittered(t *testing.T) {
	t.Parallel()
	for n := 1; n < 100; n++ {
		d := resubscribeDelay(n)
		ceiling := resubscribeMax
		if n < 16 {
			ceiling = min(resubscribeBase<<(n-1), resubscribeMax)
		}
		if d < ceiling/2 || d >= ceiling {
			t.Fatalf("attempt %d: delay %v outside [%v, %v)", n, d, ceiling/2, ceiling)
		}
	}
}

func BenchmarkPublishReceive(b *testing.B) {
	e, _ := capEngine(b, capClient(b, false))
	sub := capSubscribe(b, e, engine.SubscribeParams{Channels: []string{"bench"}})
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.Publish(ctx, "bench", "payload"); err != nil {
			b.Fatal(err)
		}
		<-sub.Messages()
	}
}
