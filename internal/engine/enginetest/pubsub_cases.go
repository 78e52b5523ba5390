package enginetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

func pubsubCases(t *testing.T, h Harness) {
	t.Run("SubscribePublish", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		sub := subscribe(t, ctx, e, engine.SubscribeParams{Channels: []string{"news"}})
		payloads := []string{"one", `{"n": 2, "s": "é"}`, "", "three ✓ 😀"}
		for _, p := range payloads {
			publish(t, ctx, e, "news", p, 1)
		}
		for _, p := range payloads {
			wantMessage(t, sub, engine.Message{Kind: engine.MessageData, Channel: "news", Payload: p})
		}
		publish(t, ctx, e, "other", "x", 0)
		if sub.Dropped() != 0 {
			t.Errorf("Dropped() = %d, want 0", sub.Dropped())
		}
	})

	t.Run("SeveralChannels", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		sub := subscribe(t, ctx, e, engine.SubscribeParams{Channels: []string{"a", "b"}})
		publish(t, ctx, e, "a", "1", 1)
		publish(t, ctx, e, "c", "2", 0)
		publish(t, ctx, e, "b", "3", 1)
		wantMessage(t, sub, engine.Message{Channel: "a", Payload: "1"})
		wantMessage(t, sub, engine.Message{Channel: "b", Payload: "3"})
	})

	t.Run("SeveralSubscribers", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		s1 := subscribe(t, ctx, e, engine.SubscribeParams{Channels: []string{"news"}})
		s2 := subscribe(t, ctx, e, engine.SubscribeParams{Channels: []string{"news"}})
		publish(t, ctx, e, "news", "hello", 2)
		wantMessage(t, s1, engine.Message{Channel: "news", Payload: "hello"})
		wantMessage(t, s2, engine.Message{Channel: "news", Payload: "hello"})
	})

	t.Run("Patterns", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		sub := subscribe(t, ctx, e, engine.SubscribeParams{Patterns: []string{"news.*", "h?llo", "x[ae]y"}})
		cases := []struct {
			channel, pattern string
		}{
			{"news.sport", "news.*"},
			{"weather", ""},
			{"news.", "news.*"},
			{"hello", "h?llo"},
			{"heello", ""},
			{"hallo", "h?llo"},
			{"xay", "x[ae]y"},
			{"xiy", ""},
			{"xey", "x[ae]y"},
			{"news", ""},
		}
		for i, c := range cases {
			want := int64(0)
			if c.pattern != "" {
				want = 1
			}
			publish(t, ctx, e, c.channel, fmt.Sprint(i), want)
		}
		for i, c := range cases {
			if c.pattern != "" {
				wantMessage(t, sub, engine.Message{Channel: c.channel, Pattern: c.pattern, Payload: fmt.Sprint(i)})
			}
		}
	})

	for name, params := range map[string]engine.SubscribeParams{
		"CloseUnsubscribesChannel": {Channels: []string{"news"}},
		"CloseUnsubscribesPattern": {Patterns: []string{"ne*"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, e := setup(t, h)
			sub, err := e.Subscribe(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			publish(t, ctx, e, "news", "before", 1)
			if err := sub.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Messages is closed after Close; what was buffered may still come.
			deadline := time.After(waitTimeout)
			for closed := false; !closed; {
				select {
				case _, ok := <-sub.Messages():
					closed = !ok
				case <-deadline:
					t.Fatal("Messages() not closed after Close")
				}
			}
			eventually(t, ctx, "publish reaching 0 receivers after Close", func() (bool, error) {
				n, err := e.Publish(ctx, "news", "after")
				return n == 0, err
			})
		})
	}

	t.Run("BufferOverflow", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const buffer, total = 4, 40
		sub := subscribe(t, ctx, e, engine.SubscribeParams{Channels: []string{"flood"}, Buffer: buffer})
		for i := range total {
			publish(t, ctx, e, "flood", fmt.Sprint(i), 1)
		}
		eventually(t, ctx, "a full buffer dropping messages", func() (bool, error) {
			return sub.Dropped() > 0, nil
		})
		// Every message is either delivered or counted as dropped; those
		// delivered keep publish order and start with the first ones.
		var got []int
		deadline := time.After(waitTimeout)
		for len(got)+int(sub.Dropped()) < total {
			select {
			case m, ok := <-sub.Messages():
				if !ok {
					t.Fatal("Messages() closed early")
				}
				var n int
				if _, err := fmt.Sscan(m.Payload, &n); err != nil || m.Channel != "flood" {
					t.Fatalf("unexpected message %+v", m)
				}
				got = append(got, n)
			case <-time.After(10 * time.Millisecond):
			case <-deadline:
				t.Fatalf("delivered %d + dropped %d never reached %d", len(got), sub.Dropped(), total)
			}
		}
		if len(got)+int(sub.Dropped()) != total {
			t.Errorf("delivered %d + dropped %d != published %d", len(got), sub.Dropped(), total)
		}
		if len(got) < buffer {
			t.Fatalf("delivered %d messages, want at least the buffer's %d", len(got), buffer)
		}
		for i := range buffer {
			if got[i] != i {
				t.Errorf("delivered %v, want it to start with 0..%d", got, buffer-1)
				break
			}
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Errorf("delivered %v out of publish order", got)
				break
			}
		}
	})
}

func subscribe(t *testing.T, ctx context.Context, e engine.Engine, p engine.SubscribeParams) engine.Subscription {
	t.Helper()
	sub, err := e.Subscribe(ctx, p)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", p, err)
	}
	t.Cleanup(func() {
		if err := sub.Close(); err != nil {
			t.Errorf("Subscription.Close: %v", err)
		}
	})
	return sub
}

func publish(t *testing.T, ctx context.Context, e engine.Engine, channel, payload string, receivers int64) {
	t.Helper()
	n, err := e.Publish(ctx, channel, payload)
	if err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
	if n != receivers {
		t.Errorf("Publish(%q, %q) reached %d receivers, want %d", channel, payload, n, receivers)
	}
}

// wantMessage receives the next data message and compares it with want
// (whose Kind is always MessageData).
func wantMessage(t *testing.T, sub engine.Subscription, want engine.Message) {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatalf("Messages() closed, want %+v", want)
		}
		if m != want {
			t.Errorf("message %+v, want %+v", m, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no message within %v, want %+v", waitTimeout, want)
	}
}
