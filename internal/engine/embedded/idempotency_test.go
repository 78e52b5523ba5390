package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

func idemParams(key string, window time.Duration, items ...string) engine.AddParams {
	return engine.AddParams{Queue: "q", Items: items, Policy: engine.PolicyDLQ, MaxSize: 100,
		IdempotencyKey: key, IdempotencyWindow: window}
}

func mustIdem(t *testing.T, e *Engine, p engine.AddParams) engine.AddResult {
	t.Helper()
	res, err := e.QueueAdd(context.Background(), p)
	if err != nil || len(res) != len(p.Items) {
		t.Fatalf("QueueAdd(key %q) = %+v, %v", p.IdempotencyKey, res, err)
	}
	return res[0]
}

// TestIdempotencyRecordsExpireAcrossRestarts: records are logged with
// their deadline; a restart inside the window still dedups, and one after
// it finds the record expired, whether it comes from the log or from a
// snapshot.
func TestIdempotencyRecordsExpireAcrossRestarts(t *testing.T) {
	for _, compacted := range []bool{false, true} {
		name := "log"
		if compacted {
			name = "snapshot"
		}
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			e := newEngine(t, Options{Dir: t.TempDir(), Now: clock.Now})
			mustIdem(t, e, idemParams("short", time.Minute, "a"))
			mustIdem(t, e, idemParams("long", time.Hour, "b"))
			if compacted {
				if err := e.store.compact(); err != nil {
					t.Fatalf("compact: %v", err)
				}
			}
			clock.Advance(30 * time.Second)
			e = reopen(t, e)
			if r := mustIdem(t, e, idemParams("short", time.Minute, "a")); !r.Replayed {
				t.Errorf("repeat inside the window after a restart = %+v, want replayed", r)
			}
			clock.Advance(time.Minute)
			if compacted {
				// The snapshot now holds only the record still alive.
				if err := e.store.compact(); err != nil {
					t.Fatalf("compact: %v", err)
				}
			}
			e = reopen(t, e)
			if r := mustIdem(t, e, idemParams("short", time.Minute, "a")); r.Replayed || r.QueueLength != 3 {
				t.Errorf("repeat after the window = %+v, want a fresh add to length 3", r)
			}
			if r := mustIdem(t, e, idemParams("long", time.Hour, "b")); !r.Replayed || r.QueueLength != 2 {
				t.Errorf("repeat of the longer window = %+v, want the first result replayed", r)
			}
			if got := mustRange(t, e, "q"); !equalStrings(got, []string{"a", "b", "a"}) {
				t.Errorf("queue = %q, want [a b a]", got)
			}
		})
	}
}

// TestIdempotencyRecordsAreSweptOut: expired records do not stay in
// memory, and a drained queue whose records have all expired is dropped.
func TestIdempotencyRecordsAreSweptOut(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Now: clock.Now, SweepInterval: time.Hour})
	for i, k := range []string{"k1", "k2", "k3"} {
		mustIdem(t, e, idemParams(k, time.Duration(i+1)*time.Minute, "x"))
	}
	if _, err := e.QueueClear(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	records := func() int {
		o := e.lock1(e.listKey("q"), false)
		if o == nil {
			return -1
		}
		defer o.mu.Unlock()
		if o.q == nil {
			return 0
		}
		return len(o.q.idem)
	}
	if n := records(); n != 3 {
		t.Fatalf("records after clear = %d, want 3 (clearing keeps them)", n)
	}
	clock.Advance(90 * time.Second)
	e.sweep()
	if n := records(); n != 2 {
		t.Errorf("records after the first deadline = %d, want 2", n)
	}
	clock.Advance(2 * time.Minute)
	e.sweep()
	if n := records(); n != -1 {
		t.Errorf("queue object after every record expired: %d records, want the object dropped", n)
	}
}
