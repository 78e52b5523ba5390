package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// privateRedis runs a redis-server of this test's own on a free loopback
// port and returns a client for it, so that INFO commandstats counts the
// commands of this test alone. It skips the test when redis-server is not
// installed.
func privateRedis(t *testing.T) rueidis.Client {
	t.Helper()
	addr, err := redistest.StartServer(t, func(port int) []string { return []string{"--port", strconv.Itoa(port)} })
	if err != nil {
		t.Fatal(err)
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  []string{addr},
		DisableCache: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// commandCalls reads the calls of every command from INFO commandstats.
func commandCalls(ctx context.Context, t *testing.T, c rueidis.Client) map[string]int {
	t.Helper()
	info, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, line := range splitLines(info) {
		name, stats, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.SplitN(stats, ",", 2)[0])
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		calls[name] = n
	}
	return calls
}

// blockedClient returns the CLIENT LIST line of the one blocked client,
// once there is one.
func blockedClient(ctx context.Context, t *testing.T, c rueidis.Client) string {
	t.Helper()
	for {
		list, err := c.Do(ctx, c.B().ClientList().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range splitLines(list) {
			if strings.Contains(" "+line, " flags=b ") {
				return line
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no client blocked")
		case <-time.After(time.Millisecond):
		}
	}
}

func clientField(line, field string) string {
	for _, kv := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(kv, field+"="); ok {
			return v
		}
	}
	return ""
}

// TestQueuePopBlockingRoundTrips: a blocking pop of an unpaused queue that
// is empty and then filled sends one queue_pop.lua, CLIENT ID, and BLPOP
// pipelined with the HGET of the paused flag (the HGET waits in the
// blocked connection's query buffer), and no check script afterwards.
func TestQueuePopBlockingRoundTrips(t *testing.T) {
	t.Parallel()
	c := privateRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := New(c, Options{Keys: keyspace.Space{Prefix: "rt:"}})
	defer e.Close()
	// Load queue_pop.lua, so that the pop below is one EVALSHA and not
	// EVALSHA, NOSCRIPT and EVAL.
	if _, ok, err := e.QueuePop(ctx, "q", 0); err != nil || ok {
		t.Fatalf("pop of an empty queue: ok %v, err %v", ok, err)
	}
	before := commandCalls(ctx, t, c)
	type popped struct {
		item string
		ok   bool
		err  error
	}
	done := make(chan popped, 1)
	go func() {
		item, ok, err := e.QueuePop(ctx, "q", 20*time.Second)
		done <- popped{item, ok, err}
	}()
	line := blockedClient(ctx, t, c)
	if cmd := clientField(line, "cmd"); cmd != "blpop" {
		t.Fatalf("blocked in %q, want blpop: %s", cmd, line)
	}
	// The HGET went out with the BLPOP: the server holds it unread until
	// the BLPOP returns.
	if qbuf, _ := strconv.Atoi(clientField(line, "qbuf")); qbuf == 0 {
		t.Fatalf("nothing pipelined behind the BLPOP: %s", line)
	}
	if err := c.Do(ctx, c.B().Rpush().Key(e.keys.Queue("q").List).Element("a").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || !got.ok || got.item != "a" {
		t.Fatalf("pop: %q, ok %v, err %v; want a", got.item, got.ok, got.err)
	}
	after := commandCalls(ctx, t, c)
	// commandstats counts the commands a script runs as well: the HGET
	// and LPOP of queue_pop.lua are among these. queue_pop_check.lua would
	// add an EVALSHA and an HGET.
	want := map[string]int{
		"evalsha":   1, // queue_pop.lua, before blocking
		"eval":      0,
		"client|id": 1,
		"blpop":     1,
		"hget":      2, // queue_pop.lua's, and the one pipelined with the BLPOP
		"lpop":      1, // queue_pop.lua's, which found nothing
		"lpush":     0,
	}
	for name, n := range want {
		if d := after[name] - before[name]; d != n {
			t.Errorf("%s: %d calls, want %d", name, d, n)
		}
	}
}
