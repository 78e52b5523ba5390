package embedded

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// TestLeaseExpiryToFailedDLQ follows one item through two expired leases
// into the failed DLQ, with a hand-moved clock, and checks the envelope
// byte for byte.
func TestLeaseExpiryToFailedDLQ(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Now: clock.Now})
	ctx := context.Background()
	mustAdd(t, e, "jobs", `{"n": 1}`)
	p := engine.ReceiveParams{Queue: "jobs", Count: 1, Lease: 30 * time.Second, MaxDeliveries: 2}

	d1, err := e.QueueReceive(ctx, p)
	if err != nil || len(d1) != 1 || d1[0].Attempt != 1 {
		t.Fatalf("first receive = %+v, %v", d1, err)
	}
	clock.Advance(31 * time.Second) // first failure at 22:10:31.123456
	d2, err := e.QueueReceive(ctx, p)
	if err != nil || len(d2) != 1 || d2[0].Attempt != 2 || d2[0].ID == d1[0].ID {
		t.Fatalf("redelivery = %+v, %v", d2, err)
	}
	if err := engine.Ack(ctx, e, "jobs", d1[0].ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("stale ack: %v, want ErrLeaseNotFound", err)
	}
	if err := e.QueueExtend(ctx, "jobs", d1[0].ID, time.Minute); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("stale extend: %v, want ErrLeaseNotFound", err)
	}
	clock.Advance(31 * time.Second) // second failure, at 22:11:02.123456
	n, err := e.QueueReclaim(ctx, "jobs", 2)
	if err != nil || n != 1 {
		t.Fatalf("reclaim = %d, %v; want 1 dead-lettered", n, err)
	}
	if n, _ := e.QueueInFlight(ctx, "jobs"); n != 0 {
		t.Fatalf("in flight = %d, want 0", n)
	}
	got, err := e.DLQRange(ctx, "jobs", engine.DLQFailed, 0, -1)
	if err != nil || len(got) != 1 {
		t.Fatalf("failed DLQ = %q, %v", got, err)
	}
	want := `{"original_job": {"n": 1}, "error": "lease expired", "attempt_count": 2, ` +
		`"first_failed_at": "2026-11-25T22:10:31.123456+00:00", "last_failed_at": "2026-11-25T22:11:02.123456+00:00", ` +
		`"queue_name": "jobs", "data": "{\"n\": 1}"}`
	if got[0] != want {
		t.Fatalf("envelope\n got %s\nwant %s", got[0], want)
	}
	// The failed DLQ is a list under its Redis name, readable as a queue.
	if n := mustLen(t, e, "dlq:jobs"); n != 1 {
		t.Fatalf("QueueLen(dlq:jobs) = %d, want 1", n)
	}
	res, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: "jobs", Kind: engine.DLQFailed, Policy: engine.PolicyReject})
	if err != nil || res.Requeued != 1 || res.Remaining != 0 {
		t.Fatalf("requeue = %+v, %v", res, err)
	}
	if got := mustRange(t, e, "jobs"); !equalStrings(got, []string{`{"n": 1}`}) {
		t.Fatalf("queue after requeue = %q", got)
	}
}

func TestNackDelayAndExtend(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Now: clock.Now})
	ctx := context.Background()
	mustAdd(t, e, "q", "a")
	p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: 10 * time.Second, MaxDeliveries: 3}
	d, _ := e.QueueReceive(ctx, p)
	clock.Advance(9 * time.Second)
	if err := e.QueueExtend(ctx, "q", d[0].ID, 10*time.Second); err != nil {
		t.Fatalf("extend: %v", err)
	}
	clock.Advance(9 * time.Second)
	if ds, _ := e.QueueReceive(ctx, p); len(ds) != 0 {
		t.Fatalf("receive while the extended lease holds: %+v", ds)
	}
	res, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: d[0].ID, Delay: 5 * time.Second, Error: "e1", MaxDeliveries: 3})
	if err != nil || res.DeadLettered {
		t.Fatalf("nack = %+v, %v", res, err)
	}
	if err := engine.Ack(ctx, e, "q", d[0].ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("ack after nack: %v, want ErrLeaseNotFound", err)
	}
	if n, _ := e.QueueInFlight(ctx, "q"); n != 1 {
		t.Fatalf("in flight during the delay = %d, want 1", n)
	}
	if ds, _ := e.QueueReceive(ctx, p); len(ds) != 0 {
		t.Fatalf("receive during the nack delay: %+v", ds)
	}
	clock.Advance(5 * time.Second)
	ds, _ := e.QueueReceive(ctx, p)
	if len(ds) != 1 || ds[0].Attempt != 2 {
		t.Fatalf("receive after the delay = %+v", ds)
	}
	if err := engine.Ack(ctx, e, "q", ds[0].ID); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if n, _ := e.QueueInFlight(ctx, "q"); n != 0 {
		t.Fatalf("in flight after ack = %d", n)
	}
}

func TestCacheExpiryAndSweep(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Now: clock.Now})
	ctx := context.Background()
	if ok, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "k", Value: "v", TTL: time.Second}); !ok || err != nil {
		t.Fatalf("set: %v %v", ok, err)
	}
	if ttl, ok, _ := e.CacheTTL(ctx, "k"); !ok || ttl != time.Second {
		t.Fatalf("ttl = %v %v", ttl, ok)
	}
	clock.Advance(time.Second)
	if _, ok, _ := e.CacheGet(ctx, "k"); ok {
		t.Fatal("expired key still readable")
	}
	if ok, _ := e.CacheSet(ctx, engine.CacheSetParams{Key: "k", Value: "w", OnlyIfAbsent: true}); !ok {
		t.Fatal("SET NX refused over an expired key")
	}
	if ok, _ := e.CacheExpire(ctx, "k", time.Second); !ok {
		t.Fatal("expire of a live key failed")
	}
	clock.Advance(2 * time.Second)
	e.sweep()
	if o := e.lookup("k", false); o != nil {
		t.Fatal("sweep kept the object of an expired key")
	}
}

func TestWrongType(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "s", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "s", Items: []string{"x"}, Policy: engine.PolicyReject}); !errors.Is(err, engine.ErrWrongType) {
		t.Errorf("add to a string: %v", err)
	}
	if _, err := e.QueueLen(ctx, "s"); !errors.Is(err, engine.ErrWrongType) {
		t.Errorf("len of a string: %v", err)
	}
	mustAdd(t, e, "l", "x")
	if _, _, err := e.CacheGet(ctx, "l"); !errors.Is(err, engine.ErrWrongType) {
		t.Errorf("get of a list: %v", err)
	}
	// A cache write refuses a list (SET would replace it); DEL deletes
	// whatever is there.
	if ok, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "l", Value: "now a string"}); ok || !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("cache set over a list = %v, %v; want ErrWrongType", ok, err)
	}
	if n := mustLen(t, e, "other"); n != 0 {
		t.Fatal(n)
	}
	if n, _ := e.CacheDelete(ctx, "l", "s", "missing"); n != 2 {
		t.Errorf("delete counted %d, want 2", n)
	}
}

func TestRequeueKeepsMalformedEntriesInPlace(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	// Write the overflow DLQ directly, as another tool might.
	mustAdd(t, e, "dlq:overflow:q",
		`{"data": "one"}`, `not json`, `{"original_job": {"k": 2}}`, `{"other": 1}`, `{"original_job": "four"}`)
	res, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: "q", Kind: engine.DLQOverflow, Policy: engine.PolicyReject})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requeued != 3 || res.Remaining != 2 {
		t.Fatalf("requeue = %+v, want 3 requeued and 2 left", res)
	}
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"one", `{"k": 2}`, "four"}) {
		t.Fatalf("queue = %q", got)
	}
	left, _ := e.DLQRange(ctx, "q", engine.DLQOverflow, 0, -1)
	if !equalStrings(left, []string{`not json`, `{"other": 1}`}) {
		t.Fatalf("DLQ after requeue = %q", left)
	}
}

func TestLockFencing(t *testing.T) {
	clock := newFakeClock()
	e := newEngine(t, Options{Now: clock.Now})
	ctx := context.Background()
	f1, ok, err := e.LockAcquire(ctx, "L", "a", time.Second)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, ok, _ := e.LockAcquire(ctx, "L", "b", time.Second); ok {
		t.Fatal("acquired a held lock")
	}
	if err := e.LockRelease(ctx, "L", "b"); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Fatalf("release by another token: %v", err)
	}
	clock.Advance(time.Second)
	if err := e.LockRefresh(ctx, "L", "a", time.Second); !errors.Is(err, engine.ErrLockNotHeld) {
		t.Fatalf("refresh of an expired lock: %v", err)
	}
	f2, ok, _ := e.LockAcquire(ctx, "L", "b", time.Second)
	if !ok || f2 <= f1 {
		t.Fatalf("second fence %d (ok %v) not above %d", f2, ok, f1)
	}
	if err := e.LockRelease(ctx, "L", "b"); err != nil {
		t.Fatal(err)
	}
}

func TestSweepDropsDrainedQueuesButKeepsDeliveryCounters(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	mustAdd(t, e, "plain", "x")
	mustAdd(t, e, "leased", "y")
	if _, _, err := e.QueuePop(ctx, "plain", 0); err != nil {
		t.Fatal(err)
	}
	ds, _ := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "leased", Count: 1, Lease: time.Minute, MaxDeliveries: 1})
	if err := engine.Ack(ctx, e, "leased", ds[0].ID); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	if e.lookup("plain", false) != nil {
		t.Error("a drained queue's object survived the sweep")
	}
	if e.lookup("leased", false) == nil {
		t.Error("the sweep dropped a queue's delivery counter; ids could repeat")
	}
	if names, _ := e.QueueNames(ctx); len(names) != 2 {
		t.Errorf("names after the sweep: %q", names)
	}
}
