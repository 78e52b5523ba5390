package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redistest"
)

// namedFixture is setup with a client whose connections carry a name of
// their own, so that CLIENT LIST tells which of them are blocked.
func namedFixture(t *testing.T) (fixture, string) {
	t.Helper()
	opt, err := rueidis.ParseURL(redistest.URL())
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "sluice-test-" + hex.EncodeToString(b[:])
	opt.DisableCache = true
	opt.ClientName = name
	c, err := rueidis.NewClient(opt)
	if err != nil {
		redistest.Unavailable(t, err)
	}
	t.Cleanup(c.Close)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, c, prefix)
	e := New(c, Options{Keys: keyspace.Space{Prefix: prefix}})
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return fixture{e: e, raw: c, prefix: prefix, ctx: ctx}, name
}

// blocked counts the connections named name that are blocked in a command.
func blocked(t *testing.T, f fixture, name string) int {
	t.Helper()
	list, err := f.raw.Do(f.ctx, f.raw.B().ClientList().Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range splitLines(list) {
		fields := strings.Fields(line)
		if slices.Contains(fields, "name="+name) && slices.ContainsFunc(fields, func(f string) bool {
			flags, ok := strings.CutPrefix(f, "flags=")
			return ok && strings.Contains(flags, "b")
		}) {
			n++
		}
	}
	return n
}

// awaitBlocked polls CLIENT LIST until want connections named name are
// blocked: the condition the test needs, not a duration.
func awaitBlocked(t *testing.T, f fixture, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for blocked(t, f, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections blocked, want %d", blocked(t, f, name), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// A BLPOP or BLMOVE already blocked on the queue when it is paused takes
// an item added during the pause; the engine must put it back and wait for
// the resume instead of handing it out.
func TestPauseHoldsConsumersBlockedBeforeIt(t *testing.T) {
	f, name := namedFixture(t)
	type popped struct {
		item string
		ok   bool
		err  error
	}
	pops := make(chan popped, 1)
	go func() {
		item, ok, err := f.e.QueuePop(f.ctx, "q", 20*time.Second)
		pops <- popped{item, ok, err}
	}()
	recvs := make(chan []engine.Delivery, 1)
	go func() {
		ds, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: 20 * time.Second, Lease: time.Minute, MaxDeliveries: 3})
		if err != nil {
			t.Error(err)
		}
		recvs <- ds
	}()
	awaitBlocked(t, f, name, 2)
	if err := f.e.QueuePause(f.ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "q", Items: []string{"x", "y"}, Policy: engine.PolicyReject}); err != nil {
		t.Fatal(err)
	}
	// Both take an item, put it back, and block again: on the wake list.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := f.e.QueueLen(f.ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 && blocked(t, f, name) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d items with %d consumers blocked, want 2 and 2", n, blocked(t, f, name))
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case p := <-pops:
		t.Fatalf("pop returned during the pause: %+v", p)
	case ds := <-recvs:
		t.Fatalf("receive returned during the pause: %+v", ds)
	default:
	}
	if n, err := f.e.QueueInFlight(f.ctx, "q"); err != nil || n != 0 {
		t.Errorf("QueueInFlight during the pause = %d, %v; want 0", n, err)
	}
	if err := f.e.QueueResume(f.ctx, "q"); err != nil {
		t.Fatal(err)
	}
	p := <-pops
	ds := <-recvs
	if p.err != nil || !p.ok || len(ds) != 1 {
		t.Fatalf("after resume: pop %+v, receive %+v", p, ds)
	}
	got := []string{p.item, ds[0].Item}
	slices.Sort(got)
	if !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("consumers got %v, want x and y", got)
	}
}

// The settings live under Sluice's own name beside the queue, and a Python
// producer's plain RPUSH to the queue's own key keeps working on a declared
// queue (its own bound is its business; Sluice's adds keep the declared one).
func TestDeclaredQueueKeepsTheCompatLayout(t *testing.T) {
	f := setup(t)
	if _, err := f.e.QueueDeclare(f.ctx, "jobs", engine.QueueSettings{MaxSize: 2, Policy: engine.PolicyReject, Set: engine.SetMaxSize | engine.SetPolicy}); err != nil {
		t.Fatal(err)
	}
	kv, err := f.raw.Do(f.ctx, f.raw.B().Hgetall().Key(f.prefix+"sluice#settings:jobs").Build()).AsStrMap()
	if err != nil || kv["max_size"] != "2" || kv["policy"] != "reject" || len(kv) != 2 {
		t.Fatalf("settings hash = %v, %v; want max_size 2, policy reject", kv, err)
	}
	if err := f.raw.Do(f.ctx, f.raw.B().Rpush().Key(f.prefix+"jobs").Element("py-1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	res, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "jobs", Items: []string{"go-1", "go-2"}, Policy: engine.PolicyReject, MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Accepted || res[1].Accepted {
		t.Errorf("adds after the Python producer's push = %+v; want the first accepted, the second rejected", res)
	}
	items, err := f.raw.Do(f.ctx, f.raw.B().Lrange().Key(f.prefix+"jobs").Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil || !slices.Equal(items, []string{"py-1", "go-1"}) {
		t.Errorf("queue list = %v, %v; want py-1, go-1", items, err)
	}
}
