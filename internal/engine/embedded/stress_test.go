package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// TestBlockingConsumersLoseNothing races producers against blocking
// consumers that keep giving up (short timeouts, cancelled contexts), for
// both QueuePop and QueueReceive: every item must be consumed exactly once.
func TestBlockingConsumersLoseNothing(t *testing.T) {
	t.Run("memory", func(t *testing.T) { blockingConsumersLoseNothing(t, Options{}) })
	t.Run("durable", func(t *testing.T) { blockingConsumersLoseNothing(t, Options{Dir: t.TempDir()}) })
}

func blockingConsumersLoseNothing(t *testing.T, opts Options) {
	e := newEngine(t, opts)
	const producers, perProducer, consumers = 8, 500, 8
	total := producers * perProducer
	var mu sync.Mutex
	seen := make(map[string]int)
	all := make(chan struct{})
	record := func(item string) {
		mu.Lock()
		seen[item]++
		if len(seen) == total && seen[item] == 1 {
			close(all)
		}
		mu.Unlock()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	done := make(chan struct{})
	var cwg sync.WaitGroup
	for c := 0; c < consumers; c++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				ctx, cancel := context.WithCancel(context.Background())
				if i%3 == 0 {
					// Cancel while (probably) blocked.
					go cancel()
				}
				timeout := time.Duration(1+i%3) * time.Millisecond
				if c%2 == 0 {
					item, ok, err := e.QueuePop(ctx, "q", timeout)
					if err == nil && ok {
						record(item)
					} else if err != nil && !errors.Is(err, context.Canceled) {
						t.Errorf("pop: %v", err)
					}
				} else {
					ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 3, Timeout: timeout, Lease: time.Hour, MaxDeliveries: 1})
					if err != nil && !errors.Is(err, context.Canceled) {
						t.Errorf("receive: %v", err)
					}
					for _, d := range ds {
						if err := engine.Ack(context.Background(), e, "q", d.ID); err != nil {
							t.Errorf("ack: %v", err)
						}
						record(d.Item)
					}
				}
				cancel()
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := 0; p < producers; p++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := 0; i < perProducer; i++ {
				mustAdd(t, e, "q", fmt.Sprintf("%d-%d", p, i))
			}
		}()
	}
	pwg.Wait()
	select {
	case <-all:
	case <-time.After(time.Minute):
		// Reported below with the counts.
	}
	close(done)
	cwg.Wait()
	left := mustLen(t, e, "q")
	inflight, _ := e.QueueInFlight(context.Background(), "q")
	if got := count(); got+int(left) != total || inflight != 0 {
		t.Fatalf("consumed %d distinct items, %d left, %d in flight; want %d in all", got, left, inflight, total)
	}
	for item, n := range seen {
		if n != 1 {
			t.Fatalf("item %s consumed %d times", item, n)
		}
	}
}

func TestListKeyMatchesKeyspace(t *testing.T) {
	for _, prefix := range []string{"", "app:", "{x}"} {
		e := newEngine(t, Options{Keys: keyspace.Space{Prefix: prefix, Cluster: true}})
		for _, name := range []string{"q", "{user}:jobs", "a.b-c"} {
			want := keyspace.Space{Prefix: prefix}.Queue(name).List
			if got := e.listKey(name); got != want {
				t.Errorf("listKey(%q) with prefix %q = %q, want %q", name, prefix, got, want)
			}
		}
	}
}

func TestPubSubBufferDropsAndCounts(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	sub, err := e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"news.a"}, Patterns: []string{"news.*", "news.*"}, Buffer: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 0; i < 3; i++ {
		// Each publish matches the channel and the (deduplicated) pattern.
		if n, err := e.Publish(ctx, "news.a", fmt.Sprint(i)); err != nil || n != 2 {
			t.Fatalf("publish = %d, %v; want 2 receivers", n, err)
		}
	}
	if d := sub.Dropped(); d != 4 {
		t.Fatalf("dropped = %d, want 4 (6 deliveries, buffer of 2)", d)
	}
	m1, m2 := <-sub.Messages(), <-sub.Messages()
	if m1.Pattern != "" || m1.Payload != "0" || m2.Pattern != "news.*" || m2.Payload != "0" {
		t.Fatalf("messages %+v %+v", m1, m2)
	}
	if n, _ := e.Publish(ctx, "other", "x"); n != 0 {
		t.Fatalf("publish to an unsubscribed channel reached %d", n)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.Publish(ctx, "news.a", "x"); n != 0 {
		t.Fatalf("publish after Close reached %d", n)
	}
}
