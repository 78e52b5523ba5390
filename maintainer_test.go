package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redistest"
)

// maintainer runs c.RunMaintainer on a goroutine the test owns; stop ends
// it and returns what it returned.
type maintainer struct {
	cancel context.CancelFunc
	done   chan error
}

func startMaintainer(t *testing.T, c *sluice.Client, opts *sluice.MaintainerOptions) *maintainer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &maintainer{cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- c.RunMaintainer(ctx, opts) }()
	t.Cleanup(func() { _ = m.stop(t) }) // the test checks stop itself where it matters
	return m
}

func (m *maintainer) stop(t *testing.T) error {
	t.Helper()
	m.cancel()
	select {
	case err, ok := <-m.done:
		if ok {
			close(m.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the maintainer did not stop within 10s of its ctx ending")
		return nil
	}
}

// waitUntil polls cond (a condition, not a duration) for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pressure(t *testing.T, q *sluice.Queue) sluice.Pressure {
	t.Helper()
	p, err := q.Pressure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMaintainerExpiredLeasesLeaveInFlight is the service's old bug:
// in_flight stayed 3 long after three 30 s leases ran out, because nothing
// swept without a receive. With the embedded engine's test clock no real
// wait is needed; one sweep settles every lease.
func TestMaintainerExpiredLeasesLeaveInFlight(t *testing.T) {
	ctx := context.Background()
	clock := &movableClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := open(t, "mem://", &sluice.Config{Queue: sluice.QueueSettings{MaxDeliveries: 1}, Test: sluice.TestConfig{Time: clock.Now}})
	q := c.Queue("work")
	for i := range 3 {
		if _, err := q.Add(ctx, i, nil); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := q.ReceiveBatch(ctx, 3, 0, &sluice.ReceiveOptions{Lease: 30 * time.Second})
	if err != nil || len(ds) != 3 {
		t.Fatalf("ReceiveBatch = %d, %v; want 3 deliveries", len(ds), err)
	}
	if p := pressure(t, q); p.InFlight != 3 {
		t.Fatalf("in flight %d under live leases, want 3", p.InFlight)
	}
	clock.advance(31 * time.Second)

	var mu sync.Mutex
	var dead int64
	startMaintainer(t, c, &sluice.MaintainerOptions{Interval: 5 * time.Millisecond, LockTTL: 24 * time.Hour,
		OnSweep: func(r sluice.SweepResult) {
			mu.Lock()
			dead += r.DeadLettered
			mu.Unlock()
		}})
	waitUntil(t, "a sweep dead-lettering the three spent leases", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return dead == 3
	})
	p := pressure(t, q)
	if p.InFlight != 0 || p.CurrentLength != 0 {
		t.Errorf("after the sweep: in flight %d, length %d; want 0, 0", p.InFlight, p.CurrentLength)
	}
	if n, err := q.DLQ(sluice.DLQFailed).Len(ctx); err != nil || n != 3 {
		t.Errorf("failed DLQ length = %d, %v; want 3", n, err)
	}
}

// TestMaintainerOnEveryEngine: short real leases and a due scheduled item,
// no receive: the maintainer dead-letters the spent leases, and the
// scheduled item appears for a blocked Get.
func TestMaintainerOnEveryEngine(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("work")
		for i := range 3 {
			if _, err := q.Add(ctx, i, nil); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := q.ReceiveBatch(ctx, 3, 0, &sluice.ReceiveOptions{Lease: 50 * time.Millisecond, MaxDeliveries: 1})
		if err != nil || len(ds) != 3 {
			t.Fatalf("ReceiveBatch = %d, %v; want 3 deliveries", len(ds), err)
		}
		later := c.Queue("later")
		if _, err := later.Add(ctx, "hello", &sluice.AddOptions{Delay: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if p := pressure(t, later); p.CurrentLength != 0 || p.Scheduled != 1 {
			t.Fatalf("scheduled queue: length %d, scheduled %d; want 0, 1", p.CurrentLength, p.Scheduled)
		}
		startMaintainer(t, c, &sluice.MaintainerOptions{Interval: 10 * time.Millisecond})
		it, ok, err := later.Get(ctx, 10*time.Second)
		if err != nil || !ok {
			t.Fatalf("Get of the scheduled item = %v, %v", ok, err)
		}
		if s, _ := sluice.As[string](it); s != "hello" {
			t.Errorf("Get = %q, want hello", s)
		}
		// The spent leases are no longer in flight; nothing is lost: the
		// next receive hands them out again.
		waitUntil(t, "the leases to run out", func() bool {
			p, err := q.Pressure(ctx)
			return err == nil && p.InFlight == 0
		})
		again, err := q.ReceiveBatch(ctx, 5, 0, nil)
		if err != nil || len(again) != 3 {
			t.Fatalf("receive after the leases ran out = %d, %v; want 3", len(again), err)
		}
		for _, d := range again {
			if d.Attempt != 2 {
				t.Errorf("redelivery attempt %d, want 2", d.Attempt)
			}
		}
	})
}

// TestMaintainersRace: two maintainers on one store; only the lock's
// holder sweeps, and every scheduled item is released exactly once.
func TestMaintainersRace(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		const queues, perQueue = 5, 4
		for i := range queues {
			q := c.Queue(fmt.Sprintf("q%d", i))
			for j := range perQueue {
				if _, err := q.Add(ctx, j, &sluice.AddOptions{Delay: 50 * time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			}
		}
		var mu sync.Mutex
		sweeps := map[string]int{}
		onSweep := func(who string) func(sluice.SweepResult) {
			return func(sluice.SweepResult) {
				mu.Lock()
				sweeps[who]++
				mu.Unlock()
			}
		}
		opts := func(who string) *sluice.MaintainerOptions {
			return &sluice.MaintainerOptions{Interval: 5 * time.Millisecond, LockTTL: time.Minute, OnSweep: onSweep(who)}
		}
		startMaintainer(t, c, opts("a"))
		startMaintainer(t, c, opts("b"))
		for i := range queues {
			q := c.Queue(fmt.Sprintf("q%d", i))
			waitUntil(t, "release of the scheduled items", func() bool {
				p, err := q.Pressure(ctx)
				return err == nil && p.CurrentLength == perQueue && p.Scheduled == 0
			})
		}
		waitUntil(t, "several sweeps", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return sweeps["a"]+sweeps["b"] >= 4*queues
		})
		mu.Lock()
		if sweeps["a"] > 0 && sweeps["b"] > 0 {
			t.Errorf("both maintainers swept (%v); only the lock's holder may", sweeps)
		}
		mu.Unlock()
		for i := range queues {
			wantItems(t, c.Queue(fmt.Sprintf("q%d", i)), []int{0, 1, 2, 3})
		}
	})
}

// wantItems drains q and checks it held exactly want, in order.
func wantItems(t *testing.T, q *sluice.Queue, want []int) {
	t.Helper()
	var got []int
	for {
		it, ok, err := q.TryGet(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		v, err := sluice.As[int](it)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if !slices.Equal(got, want) {
		t.Errorf("queue %s holds %v, want %v", q.Name(), got, want)
	}
}

// TestMaintainerKilledMidSweep: a maintainer stopped between two queues
// (its ctx cancelled, or its client closed) leaves every item where it
// was or wholly moved; a new maintainer, after a restart of the durable
// engine too, finishes the job with nothing lost or duplicated.
func TestMaintainerKilledMidSweep(t *testing.T) {
	const queues, perQueue = 4, 3
	// fill schedules the items and lets their time come: pass moves the
	// engine's clock past it (embedded), or is nil and the test waits for
	// the wall clock (Redis: the server's clock, on this host).
	fill := func(t *testing.T, c *sluice.Client, pass func(time.Duration)) {
		const delay = 30 * time.Millisecond
		for i := range queues {
			q := c.Queue(fmt.Sprintf("q%d", i))
			for j := range perQueue {
				if _, err := q.Add(context.Background(), j, &sluice.AddOptions{Delay: delay}); err != nil {
					t.Fatal(err)
				}
			}
		}
		due := time.Now().Add(delay) // the last add's time, and later than any
		if pass != nil {
			pass(delay)
			return
		}
		waitUntil(t, "the items' not-before time", func() bool { return time.Now().After(due.Add(5 * time.Millisecond)) })
	}
	// killAfterFirst stops the maintainer once it has swept one queue. Its
	// lock is short: a killed maintainer cannot release it, and the next
	// one takes over once it expires.
	killAfterFirst := func(kill func()) *sluice.MaintainerOptions {
		var once sync.Once
		return &sluice.MaintainerOptions{Interval: time.Hour, LockTTL: 300 * time.Millisecond, OnSweep: func(sluice.SweepResult) { once.Do(kill) }}
	}
	check := func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		swept := 0
		for i := range queues {
			p := pressure(t, c.Queue(fmt.Sprintf("q%d", i)))
			if p.CurrentLength+p.Scheduled != perQueue {
				t.Errorf("q%d after the kill: %d visible + %d scheduled, want %d in all", i, p.CurrentLength, p.Scheduled, perQueue)
			}
			if p.CurrentLength == perQueue {
				swept++
			}
		}
		if swept == 0 || swept == queues {
			t.Errorf("%d of %d queues swept before the kill; want the kill between queues", swept, queues)
		}
		// A new maintainer finishes the job.
		m := startMaintainer(t, c, &sluice.MaintainerOptions{Interval: 5 * time.Millisecond})
		for i := range queues {
			q := c.Queue(fmt.Sprintf("q%d", i))
			waitUntil(t, "the rest of the sweep", func() bool {
				p, err := q.Pressure(ctx)
				return err == nil && p.Scheduled == 0 && p.CurrentLength == perQueue
			})
		}
		if err := m.stop(t); err != nil {
			t.Errorf("RunMaintainer = %v, want nil after its ctx ended", err)
		}
		for i := range queues {
			wantItems(t, c.Queue(fmt.Sprintf("q%d", i)), []int{0, 1, 2})
		}
	}

	t.Run("file-cancel-and-reopen", func(t *testing.T) {
		dir := "file://" + t.TempDir()
		clock := &movableClock{now: time.Now()}
		cfg := &sluice.Config{Test: sluice.TestConfig{Time: clock.Now}}
		c, err := sluice.Open(context.Background(), dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, c, clock.advance)
		ctx, cancel := context.WithCancel(context.Background())
		if err := c.RunMaintainer(ctx, killAfterFirst(cancel)); err != nil {
			t.Fatalf("RunMaintainer = %v, want nil once its ctx ended", err)
		}
		cancel()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		check(t, open(t, dir, cfg))
	})

	t.Run("redis-client-closed", func(t *testing.T) {
		redistest.Client(t)
		prefix := redistest.Prefix(t)
		redistest.Cleanup(t, redistest.Client(t), prefix)
		cfg := &sluice.Config{KeyPrefix: prefix}
		c, err := sluice.Open(context.Background(), redistest.URL(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, c, nil)
		err = c.RunMaintainer(context.Background(), killAfterFirst(func() { c.Close() }))
		if !errors.Is(err, sluice.ErrClosed) {
			t.Fatalf("RunMaintainer on a closed client = %v, want ErrClosed", err)
		}
		check(t, open(t, redistest.URL(), cfg))
	})
}

// TestMaintainersRaceAcrossReplicas: two clients of one Redis, as two
// service replicas, each running a maintainer; the first is stopped midway
// and the second takes over. Every spent lease is dead-lettered exactly
// once, every scheduled item released exactly once, and at no time do both
// sweep.
func TestMaintainersRaceAcrossReplicas(t *testing.T) {
	redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, redistest.Client(t), prefix)
	cfg := &sluice.Config{KeyPrefix: prefix, Queue: sluice.QueueSettings{MaxDeliveries: 1}}
	a, b := open(t, redistest.URL(), cfg), open(t, redistest.URL(), cfg)
	ctx := context.Background()
	const queues = 4
	for i := range queues {
		q := a.Queue(fmt.Sprintf("q%d", i))
		if _, err := q.AddBatch(ctx, []any{0, 1, 2}, nil); err != nil {
			t.Fatal(err)
		}
		if ds, err := q.ReceiveBatch(ctx, 3, 0, &sluice.ReceiveOptions{Lease: 30 * time.Millisecond}); err != nil || len(ds) != 3 {
			t.Fatalf("receive: %d, %v", len(ds), err)
		}
		if _, err := q.Add(ctx, 3, &sluice.AddOptions{Delay: 30 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var dead int64
	active := map[string]bool{}
	overlap := false
	onSweep := func(who string) func(sluice.SweepResult) {
		return func(r sluice.SweepResult) {
			mu.Lock()
			defer mu.Unlock()
			dead += r.DeadLettered
			active[who] = true
			if active["a"] && active["b"] && who == "a" {
				overlap = true // a swept after b had started: both held the lock
			}
		}
	}
	ma := startMaintainer(t, a, &sluice.MaintainerOptions{Interval: 5 * time.Millisecond, LockTTL: time.Minute, OnSweep: onSweep("a")})
	waitUntil(t, "the first maintainer's sweeps", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return active["a"]
	})
	startMaintainer(t, b, &sluice.MaintainerOptions{Interval: 5 * time.Millisecond, LockTTL: time.Minute, OnSweep: onSweep("b")})
	if err := ma.stop(t); err != nil {
		t.Fatalf("RunMaintainer = %v, want nil", err)
	}
	waitUntil(t, "every spent lease dead-lettered and the second maintainer sweeping", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return dead == 3*queues && active["b"]
	})
	mu.Lock()
	if overlap {
		t.Error("the first maintainer swept after the second had started")
	}
	mu.Unlock()
	for i := range queues {
		q := b.Queue(fmt.Sprintf("q%d", i))
		waitUntil(t, "release of the scheduled item", func() bool {
			p, err := q.Pressure(ctx)
			return err == nil && p.Scheduled == 0 && p.CurrentLength == 1 && p.InFlight == 0
		})
		if n, err := q.DLQ(sluice.DLQFailed).Len(ctx); err != nil || n != 3 {
			t.Errorf("q%d failed DLQ = %d, %v; want 3", i, n, err)
		}
		wantItems(t, q, []int{3})
	}
}

// TestMaintainerMeasuresHeadAge: with nobody consuming, the maintainer's
// sweeps show the head item's wait growing (the alert "oldest item too
// old" reads it), and a consumed head starts the count again.
func TestMaintainerMeasuresHeadAge(t *testing.T) {
	ctx := context.Background()
	clock := &movableClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := open(t, "mem://", &sluice.Config{Test: sluice.TestConfig{Time: clock.Now}})
	q := c.Queue("stuck")
	for i := range 2 {
		if _, err := q.Add(ctx, i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := q.Stats(ctx); err != nil || s.OldestAgeSeconds != 0 || !s.HeadSampledAt.IsZero() {
		t.Fatalf("before any sweep: %+v, %v; want no sample", s, err)
	}
	var mu sync.Mutex
	sweeps := 0
	startMaintainer(t, c, &sluice.MaintainerOptions{Interval: 5 * time.Millisecond, LockTTL: 24 * time.Hour,
		OnSweep: func(r sluice.SweepResult) {
			mu.Lock()
			sweeps++
			mu.Unlock()
		}})
	swept := func() int {
		mu.Lock()
		defer mu.Unlock()
		return sweeps
	}
	waitUntil(t, "a first sweep", func() bool { return swept() > 0 })
	clock.advance(90 * time.Second)
	n := swept()
	waitUntil(t, "a sweep after 90s", func() bool { return swept() > n })
	s, err := q.Stats(ctx)
	if err != nil || s.OldestAgeSeconds < 90 || s.HeadSampledAt.Before(clock.Now().Add(-time.Second)) {
		t.Fatalf("stuck head after 90s: age %vs sampled %v (%v); want at least 90s, sampled now", s.OldestAgeSeconds, s.HeadSampledAt, err)
	}
	if _, ok, err := q.TryGet(ctx); !ok || err != nil {
		t.Fatalf("TryGet = %v, %v", ok, err)
	}
	n = swept()
	waitUntil(t, "a sweep after the get", func() bool { return swept() > n })
	if s, err := q.Stats(ctx); err != nil || s.OldestAgeSeconds >= 90 {
		t.Fatalf("new head: age %vs (%v); want it counted from its own start", s.OldestAgeSeconds, err)
	}
}
