package embedded

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// TestPopWaitersServedInArrivalOrder blocks three consumers one after the
// other; items pushed later reach them in the order they started waiting.
func TestPopWaitersServedInArrivalOrder(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	const n = 3
	got := make([]chan string, n)
	for i := range got {
		got[i] = make(chan string, 1)
		go func() {
			item, ok, err := e.QueuePop(ctx, "q", time.Minute)
			if err != nil || !ok {
				got[i] <- fmt.Sprintf("error: ok=%v err=%v", ok, err)
				return
			}
			got[i] <- item
		}()
		awaitWaiting(t, e, "q", i+1)
	}
	mustAdd(t, e, "q", "a", "b", "c")
	for i, want := range []string{"a", "b", "c"} {
		if g := <-got[i]; g != want {
			t.Errorf("consumer %d got %q, want %q", i, g, want)
		}
	}
	if n := mustLen(t, e, "q"); n != 0 {
		t.Errorf("queue length %d after serving, want 0", n)
	}
}

// TestPopServedWhileGivingUpPutsItemBack replays the race of a consumer
// whose timeout fires just as a producer hands it an item: the item must go
// back to the head of the queue, ahead of later items.
func TestPopServedWhileGivingUpPutsItemBack(t *testing.T) {
	e := newEngine(t, Options{})
	key := e.keys.Queue("q").List
	o := e.lock1(key, true)
	w := &waiter{kind: waitPop, ch: make(chan struct{})}
	o.queue().enqueue(w, false)
	o.mu.Unlock()

	mustAdd(t, e, "q", "first", "second")
	select {
	case <-w.ch:
	default:
		t.Fatal("the waiter was not served by the add")
	}
	if !w.served || w.item != "first" {
		t.Fatalf("waiter served=%v item=%q, want the head item", w.served, w.item)
	}
	// The consumer's timer won the select: it gives up.
	e.abandon(key, w)
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"first", "second"}) {
		t.Fatalf("queue = %q after the abandoned handoff, want [first second]", got)
	}
}

// TestAbandonedHandoffPassesToNextWaiter: an item given back by a consumer
// that gave up goes straight to the next consumer in line.
func TestAbandonedHandoffPassesToNextWaiter(t *testing.T) {
	e := newEngine(t, Options{})
	key := e.keys.Queue("q").List
	o := e.lock1(key, true)
	w1 := &waiter{kind: waitPop, ch: make(chan struct{})}
	w2 := &waiter{kind: waitPop, ch: make(chan struct{})}
	o.queue().enqueue(w1, false)
	o.queue().enqueue(w2, false)
	o.mu.Unlock()

	mustAdd(t, e, "q", "only")
	e.abandon(key, w1)
	<-w2.ch
	if !w2.served || w2.item != "only" {
		t.Fatalf("second waiter served=%v item=%q, want the item the first gave back", w2.served, w2.item)
	}
	if n := mustLen(t, e, "q"); n != 0 {
		t.Fatalf("queue length %d, want 0", n)
	}
}

// TestReceiveServedWhileGivingUpReleasesLease: the same race for a leased
// receive: the lease made for the consumer is dropped and the items return
// to the head in order.
func TestReceiveServedWhileGivingUpReleasesLease(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	key := e.keys.Queue("q").List
	o := e.lock1(key, true)
	w := &waiter{kind: waitReceive, ch: make(chan struct{}), params: engine.ReceiveParams{
		Queue: "q", Count: 2, Lease: time.Minute, MaxDeliveries: 3,
	}}
	o.queue().enqueue(w, false)
	o.mu.Unlock()

	mustAdd(t, e, "q", "a", "b", "c")
	<-w.ch
	if len(w.deliveries) != 2 {
		t.Fatalf("waiter got %d deliveries, want 2", len(w.deliveries))
	}
	if n, _ := e.QueueInFlight(ctx, "q"); n != 2 {
		t.Fatalf("in flight = %d, want 2", n)
	}
	e.abandon(key, w)
	if n, _ := e.QueueInFlight(ctx, "q"); n != 0 {
		t.Errorf("in flight = %d after giving up, want 0", n)
	}
	if got := mustRange(t, e, "q"); !equalStrings(got, []string{"a", "b", "c"}) {
		t.Errorf("queue = %q, want [a b c]", got)
	}
	if err := engine.Ack(ctx, e, "q", w.deliveries[0].ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Errorf("ack of a released delivery: %v, want ErrLeaseNotFound", err)
	}
}

func TestPopCancelled(t *testing.T) {
	e := newEngine(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := e.QueuePop(ctx, "q", time.Minute)
		done <- err
	}()
	awaitWaiting(t, e, "q", 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("QueuePop after cancel: %v, want context.Canceled", err)
	}
	if n := e.waiting("q"); n != 0 {
		t.Fatalf("%d waiters left after cancel", n)
	}
	// Nothing was taken: a later item stays for the next consumer.
	mustAdd(t, e, "q", "x")
	if n := mustLen(t, e, "q"); n != 1 {
		t.Fatalf("queue length %d, want 1", n)
	}
}

func TestCloseWakesBlockedCalls(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() {
		_, _, err := e.QueuePop(ctx, "q", time.Minute)
		errs <- err
	}()
	go func() {
		_, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: time.Minute, Lease: time.Second, MaxDeliveries: 1})
		errs <- err
	}()
	awaitWaiting(t, e, "q", 2)
	sub, err := e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"c"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, engine.ErrClosed) {
			t.Errorf("blocked call after Close: %v, want ErrClosed", err)
		}
	}
	if _, ok := <-sub.Messages(); ok {
		t.Error("subscription channel still open after Close")
	}
	if _, err := e.QueueLen(ctx, "q"); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("QueueLen after Close: %v, want ErrClosed", err)
	}
}

// TestBlockedReceiveWakesOnLeaseExpiry: a receiver blocked on an empty
// queue gets the item whose lease runs out, by the lease timer.
func TestBlockedReceiveWakesOnLeaseExpiry(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	mustAdd(t, e, "q", "job")
	p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: 20 * time.Millisecond, MaxDeliveries: 5}
	first, err := e.QueueReceive(ctx, p)
	if err != nil || len(first) != 1 {
		t.Fatalf("first receive: %v %v", first, err)
	}
	p.Timeout = time.Minute
	p.Lease = time.Minute
	got, err := e.QueueReceive(ctx, p)
	if err != nil || len(got) != 1 {
		t.Fatalf("blocked receive: %v %v", got, err)
	}
	if got[0].Item != "job" || got[0].Attempt != 2 || got[0].ID == first[0].ID {
		t.Fatalf("redelivery = %+v, want job at attempt 2 with a new id (first was %+v)", got[0], first[0])
	}
}

// TestBlockedReceiveWakesOnNackDelay: the same for a nacked item whose
// delay ends.
func TestBlockedReceiveWakesOnNackDelay(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	mustAdd(t, e, "q", "job")
	p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: time.Minute, MaxDeliveries: 5}
	first, err := e.QueueReceive(ctx, p)
	if err != nil || len(first) != 1 {
		t.Fatalf("first receive: %v %v", first, err)
	}
	got := make(chan []engine.Delivery, 1)
	go func() {
		p.Timeout = time.Minute
		ds, _ := e.QueueReceive(ctx, p)
		got <- ds
	}()
	awaitWaiting(t, e, "q", 1)
	if _, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: first[0].ID, Delay: 20 * time.Millisecond, Error: "boom", MaxDeliveries: 5}); err != nil {
		t.Fatal(err)
	}
	ds := <-got
	if len(ds) != 1 || ds[0].Attempt != 2 {
		t.Fatalf("receive after nack delay = %+v, want the item at attempt 2", ds)
	}
}

// TestWaitingReceiverWakesForLeaseMadeWhileWaiting: two receivers block;
// the first is handed the item and lets its lease run out; the second,
// still blocked, must wake for it without any other event.
func TestWaitingReceiverWakesForLeaseMadeWhileWaiting(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()
	p := engine.ReceiveParams{Queue: "q", Count: 1, Timeout: time.Minute, Lease: 20 * time.Millisecond, MaxDeliveries: 5}
	first := make(chan []engine.Delivery, 1)
	go func() {
		ds, _ := e.QueueReceive(ctx, p)
		first <- ds
	}()
	awaitWaiting(t, e, "q", 1)
	second := make(chan []engine.Delivery, 1)
	go func() {
		q := p
		q.Lease = time.Minute
		ds, _ := e.QueueReceive(ctx, q)
		second <- ds
	}()
	awaitWaiting(t, e, "q", 2)
	mustAdd(t, e, "q", "job")
	if ds := <-first; len(ds) != 1 || ds[0].Attempt != 1 {
		t.Fatalf("first receiver got %+v", ds)
	}
	ds := <-second
	if len(ds) != 1 || ds[0].Item != "job" || ds[0].Attempt != 2 {
		t.Fatalf("second receiver got %+v, want the expired item at attempt 2", ds)
	}
}
