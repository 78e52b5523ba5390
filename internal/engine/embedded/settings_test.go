package embedded

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// Consumers already blocked on a queue when it is paused must not be
// served what is added during the pause, and the resume serves them.
func TestPauseHoldsConsumersBlockedBeforeIt(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	type popped struct {
		item string
		ok   bool
		err  error
	}
	pops := make(chan popped, 1)
	go func() {
		item, ok, err := e.QueuePop(ctx, "q", time.Minute)
		pops <- popped{item, ok, err}
	}()
	recvs := make(chan []engine.Delivery, 1)
	go func() {
		ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: time.Minute, Lease: time.Minute, MaxDeliveries: 3})
		if err != nil {
			t.Error(err)
		}
		recvs <- ds
	}()
	awaitWaiting(t, e, "q", 2)
	if err := e.QueuePause(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, e, "q", "x", "y")
	if n := mustLen(t, e, "q"); n != 2 {
		t.Fatalf("paused queue holds %d items after the add, want 2: a blocked consumer was served", n)
	}
	if n := e.waiting("q"); n != 2 {
		t.Fatalf("%d consumers still blocked, want 2", n)
	}
	if err := e.QueueResume(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	p := <-pops
	ds := <-recvs
	if p.err != nil || !p.ok || len(ds) != 1 {
		t.Fatalf("after resume: pop %+v, receive %+v", p, ds)
	}
	got := []string{p.item, ds[0].Item}
	slices.Sort(got)
	if !equalStrings(got, []string{"x", "y"}) {
		t.Errorf("consumers got %v, want x and y", got)
	}
}

// Settings and deletions are in the snapshot a compaction writes, and the
// records written after it replay on top.
func TestSettingsSurviveCompaction(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{Dir: dir})
	ctx := context.Background()
	declared := engine.QueueSettings{MaxSize: 2, Policy: engine.PolicyDropOldest, Lease: 3 * time.Second,
		Set: engine.SetMaxSize | engine.SetPolicy | engine.SetLease}
	for _, q := range []string{"kept", "deleted"} {
		if _, err := e.QueueDeclare(ctx, q, declared); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.QueuePause(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if err := e.QueuePause(ctx, "paused-only"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.QueueDelete(ctx, "deleted", false); err != nil {
		t.Fatal(err)
	}
	if err := e.store.compact(); err != nil {
		t.Fatal(err)
	}
	// After the snapshot: one more change to replay on top of it.
	if _, err := e.QueueDeclare(ctx, "later", declared); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = newEngine(t, Options{Dir: dir})
	want := map[string]engine.QueueSettings{
		"kept":        {MaxSize: 2, Policy: engine.PolicyDropOldest, Lease: 3 * time.Second, Set: declared.Set, Paused: true},
		"paused-only": {Paused: true},
		"later":       declared,
	}
	for q, w := range want {
		s, ok, err := e.QueueSettings(ctx, q)
		if err != nil || !ok || s != w {
			t.Errorf("settings of %q after compaction and reopen = %+v, %v, %v; want %+v", q, s, ok, err, w)
		}
	}
	if s, ok, _ := e.QueueSettings(ctx, "deleted"); ok {
		t.Errorf("deleted queue has settings after compaction and reopen: %+v", s)
	}
	names, err := e.QueueNames(ctx)
	if err != nil || !equalStrings(names, []string{"kept", "later", "paused-only"}) {
		t.Errorf("QueueNames = %v, %v; want kept, later, paused-only", names, err)
	}
	// Resuming the queue that only had the flag leaves nothing stored.
	if err := e.QueueResume(ctx, "paused-only"); err != nil {
		t.Fatal(err)
	}
	if s, ok, _ := e.QueueSettings(ctx, "paused-only"); ok {
		t.Errorf("settings after resuming a queue that was only paused: %+v", s)
	}
}
