package enginetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// fullSettings declares every field.
var fullSettings = engine.QueueSettings{
	MaxSize:           3,
	Policy:            engine.PolicyReject,
	PressureThreshold: 0.75,
	Lease:             1500 * time.Millisecond,
	MaxDeliveries:     4,
	Set:               engine.SetMaxSize | engine.SetPolicy | engine.SetPressureThreshold | engine.SetLease | engine.SetMaxDeliveries,
}

// bound declares a max size and a policy only.
func bound(maxSize int64, policy engine.Policy) engine.QueueSettings {
	return engine.QueueSettings{MaxSize: maxSize, Policy: policy, Set: engine.SetMaxSize | engine.SetPolicy}
}

// settingsCases cover declared queues: stored settings, their precedence
// over per-call values, pause and resume, and deleting a queue.
func settingsCases(t *testing.T, h Harness) {
	t.Run("DeclareReadUpdate", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		if s, ok, err := e.QueueSettings(ctx, "q"); err != nil || ok {
			t.Fatalf("QueueSettings of an undeclared queue = %+v, %v, %v; want nothing", s, ok, err)
		}
		got := declare(t, ctx, e, "q", fullSettings)
		if got != fullSettings {
			t.Errorf("QueueDeclare returned %+v, want %+v", got, fullSettings)
		}
		wantSettings(t, ctx, e, "q", fullSettings)
		// Idempotent: the same declaration again changes nothing.
		declare(t, ctx, e, "q", fullSettings)
		wantSettings(t, ctx, e, "q", fullSettings)
		// An update replaces the declaration: fields it leaves out are no
		// longer declared.
		update := engine.QueueSettings{MaxSize: engine.Unbounded, MaxDeliveries: 2, Set: engine.SetMaxSize | engine.SetMaxDeliveries}
		if got := declare(t, ctx, e, "q", update); got != update {
			t.Errorf("update returned %+v, want %+v", got, update)
		}
		wantSettings(t, ctx, e, "q", update)
		// Declaring nothing leaves nothing stored.
		declare(t, ctx, e, "none", engine.QueueSettings{MaxSize: 7})
		if s, ok, err := e.QueueSettings(ctx, "none"); err != nil || ok {
			t.Errorf("QueueSettings after declaring no field = %+v, %v, %v; want nothing", s, ok, err)
		}
		names, err := e.QueueNames(ctx)
		if err != nil || !slices.Contains(names, "q") {
			t.Errorf("QueueNames = %v, %v; want it to list the declared queue", names, err)
		}
		for _, bad := range []engine.QueueSettings{
			{MaxSize: 0, Set: engine.SetMaxSize},
			{MaxSize: -2, Set: engine.SetMaxSize},
			{Policy: "bogus", Set: engine.SetPolicy},
			{PressureThreshold: 1.5, Set: engine.SetPressureThreshold},
			{Lease: 0, Set: engine.SetLease},
			{MaxDeliveries: 0, Set: engine.SetMaxDeliveries},
		} {
			if _, err := e.QueueDeclare(ctx, "q", bad); err == nil {
				t.Errorf("QueueDeclare(%+v) accepted invalid settings", bad)
			}
		}
		wantSettings(t, ctx, e, "q", update)
	})

	t.Run("DeclaredBoundWins", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		declare(t, ctx, e, "q", bound(3, engine.PolicyReject))
		// Per-call values not given explicitly (defaults) yield.
		res := add(t, ctx, e, "q", engine.PolicyDLQ, 100, "a", "b", "c", "d")
		wantResults(t, "add under the declared bound", res, []engine.AddResult{
			{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2},
			{Accepted: true, QueueLength: 3}, {Accepted: false, QueueLength: 3},
		})
		// An unbounded add is bounded too.
		res = add(t, ctx, e, "q", engine.PolicyReject, 0, "e")
		wantResults(t, "unbounded add to a declared queue", res, []engine.AddResult{{Accepted: false, QueueLength: 3}})
		wantQueue(t, ctx, e, "q", "a", "b", "c")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
	})

	t.Run("StricterBoundApplies", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		declare(t, ctx, e, "q", bound(3, engine.PolicyDropOldest))
		res := mustAddP(t, ctx, e, engine.AddParams{Queue: "q", Items: []string{"a", "b", "c"}, Policy: engine.PolicyDropOldest, MaxSize: 2, MaxSizeExplicit: true, PolicyExplicit: true})
		wantResults(t, "stricter explicit bound", res, []engine.AddResult{
			{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 2, Dropped: 1},
		})
		// Equal to the declared bound is not looser.
		res = mustAddP(t, ctx, e, engine.AddParams{Queue: "q", Items: []string{"d", "e"}, Policy: engine.PolicyDropOldest, MaxSize: 3, MaxSizeExplicit: true})
		wantResults(t, "explicit bound equal to the declared one", res, []engine.AddResult{
			{Accepted: true, QueueLength: 3}, {Accepted: true, QueueLength: 3, Dropped: 1},
		})
		wantQueue(t, ctx, e, "q", "c", "d", "e")
		// Under a declared "no bound", any explicit bound is stricter.
		declare(t, ctx, e, "u", engine.QueueSettings{MaxSize: engine.Unbounded, Set: engine.SetMaxSize})
		add(t, ctx, e, "u", engine.PolicyReject, 2, "1", "2", "3")
		wantQueue(t, ctx, e, "u", "1", "2", "3")
		res = mustAddP(t, ctx, e, engine.AddParams{Queue: "u", Items: []string{"4"}, Policy: engine.PolicyReject, MaxSize: 3, MaxSizeExplicit: true})
		wantResults(t, "explicit bound under a declared no-bound", res, []engine.AddResult{{Accepted: false, QueueLength: 3}})
	})

	t.Run("LooserOrOtherPolicyRefused", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		declare(t, ctx, e, "q", bound(2, engine.PolicyReject))
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b")
		for _, p := range []engine.AddParams{
			{Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: 3, MaxSizeExplicit: true},
			{Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: 0, MaxSizeExplicit: true},
			{Items: []string{"x"}, Policy: engine.PolicyDropOldest, MaxSize: 2, PolicyExplicit: true},
			{Items: []string{"x"}, Policy: engine.PolicyDLQ, MaxSize: 1, MaxSizeExplicit: true, PolicyExplicit: true},
			{Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: 5, MaxSizeExplicit: true, IdempotencyKey: "k1", IdempotencyWindow: time.Minute},
		} {
			p.Queue = "q"
			res, err := e.QueueAdd(ctx, p)
			if !errors.Is(err, engine.ErrSettingsConflict) || res != nil {
				t.Errorf("QueueAdd(max %d explicit %v, %s explicit %v, key %q) = %+v, %v; want ErrSettingsConflict",
					p.MaxSize, p.MaxSizeExplicit, p.Policy, p.PolicyExplicit, p.IdempotencyKey, res, err)
			}
		}
		wantQueue(t, ctx, e, "q", "a", "b")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
		// The refused keyed add wrote no record: the key is still free.
		res := mustAddP(t, ctx, e, engine.AddParams{Queue: "q", Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: 5,
			IdempotencyKey: "k1", IdempotencyWindow: time.Minute})
		wantResults(t, "keyed add after the refused one", res, []engine.AddResult{{Accepted: false, QueueLength: 2}})
		// Its record holds the declared bound it ran under.
		again := mustAddP(t, ctx, e, engine.AddParams{Queue: "q", Items: []string{"x"}, Policy: engine.PolicyReject, MaxSize: 5,
			IdempotencyKey: "k1", IdempotencyWindow: time.Minute})
		wantResults(t, "replay of the keyed add", again, replayed(res))
	})

	t.Run("UndeclaredUnchanged", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		for _, explicit := range []bool{false, true} {
			q := fmt.Sprintf("q-%v", explicit)
			res := mustAddP(t, ctx, e, engine.AddParams{Queue: q, Items: []string{"a", "b", "c"}, Policy: engine.PolicyDLQ, MaxSize: 2,
				MaxSizeExplicit: explicit, PolicyExplicit: explicit})
			wantResults(t, "add to an undeclared queue", res, []engine.AddResult{
				{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 2}, {Accepted: true, QueueLength: 2, MovedToDLQ: 1},
			})
			wantQueue(t, ctx, e, q, "b", "c")
			wantDLQ(t, ctx, e, q, engine.DLQOverflow, engine.OverflowEnvelope(q, "a"))
		}
		// Declaring only a policy leaves the bound to the call.
		declare(t, ctx, e, "p", engine.QueueSettings{Policy: engine.PolicyDropOldest, Set: engine.SetPolicy})
		res := add(t, ctx, e, "p", engine.PolicyReject, 1, "a", "b")
		wantResults(t, "add under a declared policy", res, []engine.AddResult{
			{Accepted: true, QueueLength: 1}, {Accepted: true, QueueLength: 1, Dropped: 1},
		})
	})

	t.Run("DeclaredBoundUnderConcurrentAdders", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		const limit, adders, each = 10, 16, 5
		declare(t, ctx, e, "q", bound(limit, engine.PolicyReject))
		var mu sync.Mutex
		accepted := 0
		var wg sync.WaitGroup
		errs := make(chan error, adders)
		for i := range adders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := engine.AddParams{Queue: "q", Items: seq(fmt.Sprintf("a%d-", i), each), Policy: engine.PolicyDLQ, MaxSize: 1000}
				if i%2 == 1 {
					p.MaxSize = 0 // unbounded per call
				}
				if i%4 == 3 {
					p.IdempotencyKey, p.IdempotencyWindow = fmt.Sprintf("key-%d", i), time.Minute
				}
				res, err := e.QueueAdd(ctx, p)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range res {
					if r.QueueLength > limit {
						errs <- fmt.Errorf("an add saw length %d over the declared bound %d", r.QueueLength, limit)
					}
					if r.Accepted {
						accepted++
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if accepted != limit {
			t.Errorf("%d items accepted, want exactly %d", accepted, limit)
		}
		if n, err := e.QueueLen(ctx, "q"); err != nil || n != limit {
			t.Errorf("QueueLen = %d, %v; want %d", n, err, limit)
		}
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
	})

	t.Run("RequeueRespectsDeclaredBound", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		deadLetter(t, ctx, e, "q", "boom", "f1", "f2", "f3")
		declare(t, ctx, e, "q", bound(2, engine.PolicyReject))
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a")
		_, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyReject, MaxSize: 10, MaxSizeExplicit: true})
		wantErrIs(t, "requeue with a looser explicit bound", err, engine.ErrSettingsConflict)
		// Unbounded and dlq per call: the declared bound and reject win.
		r := requeue(t, ctx, e, engine.RequeueParams{Queue: "q", Kind: engine.DLQFailed, Policy: engine.PolicyDLQ})
		wantRequeue(t, r, engine.RequeueResult{Requeued: 1, Remaining: 2})
		wantQueue(t, ctx, e, "q", "a", "f1")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
	})

	t.Run("PauseHandsNothingOut", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		declare(t, ctx, e, "q", bound(3, engine.PolicyReject))
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b")
		pause(t, ctx, e, "q")
		pause(t, ctx, e, "q") // idempotent
		s, ok, err := e.QueueSettings(ctx, "q")
		if err != nil || !ok || !s.Paused || s.Declared() != withPaused(bound(3, engine.PolicyReject)) {
			t.Errorf("QueueSettings of the paused queue = %+v, %v, %v", s, ok, err)
		}
		if item, ok, err := e.QueuePop(ctx, "q", 0); ok || err != nil {
			t.Errorf("QueuePop of a paused queue = %q, %v, %v; want nothing", item, ok, err)
		}
		if ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 3}); len(ds) != 0 {
			t.Errorf("QueueReceive of a paused queue = %+v; want nothing", ds)
		}
		// Blocking calls wait as on an empty queue, and time out empty.
		if item, ok, err := e.QueuePop(ctx, "q", 50*time.Millisecond); ok || err != nil {
			t.Errorf("blocking QueuePop of a paused queue = %q, %v, %v; want nothing", item, ok, err)
		}
		if ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: 50 * time.Millisecond, Lease: longLease, MaxDeliveries: 3}); len(ds) != 0 {
			t.Errorf("blocking QueueReceive of a paused queue = %+v; want nothing", ds)
		}
		// Adds go on, under the declared policy.
		res := add(t, ctx, e, "q", engine.PolicyReject, 0, "c", "d")
		wantResults(t, "add to a paused queue", res, []engine.AddResult{{Accepted: true, QueueLength: 3}, {Accepted: false, QueueLength: 3}})
		wantQueue(t, ctx, e, "q", "a", "b", "c")
		wantInFlight(t, ctx, e, "q", 0)
		resume(t, ctx, e, "q")
		resume(t, ctx, e, "q") // idempotent
		if s, _, _ := e.QueueSettings(ctx, "q"); s.Paused {
			t.Errorf("QueueSettings after resume still paused: %+v", s)
		}
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, ds, []string{"a", "b"}, 1)
		if item, ok, err := e.QueuePop(ctx, "q", 0); !ok || err != nil || item != "c" {
			t.Errorf("QueuePop after resume = %q, %v, %v; want \"c\"", item, ok, err)
		}
	})

	t.Run("ResumeWakesBlockedConsumers", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		// A receiver and a pop blocked on the empty queue before the pause
		// must not take what is added while it is paused.
		recv := startReceive(ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 3})
		pop := startPop(ctx, e, "q", waitTimeout)
		pause(t, ctx, e, "q")
		add(t, ctx, e, "q", engine.PolicyReject, 0, "x", "y")
		eventually(t, ctx, "both items waiting in the paused queue", func() (bool, error) {
			n, err := e.QueueLen(ctx, "q")
			return n == 2, err
		})
		select {
		case r := <-recv:
			t.Fatalf("receiver returned while the queue was paused: %+v", r)
		case r := <-pop:
			t.Fatalf("pop returned while the queue was paused: %+v", r)
		default:
		}
		// Consumers that start while paused wait too.
		recv2 := startReceive(ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 3})
		resume(t, ctx, e, "q")
		add(t, ctx, e, "q", engine.PolicyReject, 0, "z")
		var got []string
		for _, ch := range []<-chan receiveResult{recv, recv2} {
			r := waitFor(t, "receiver blocked on a paused queue", ch)
			if r.err != nil || len(r.ds) != 1 {
				t.Fatalf("receiver after resume = %+v, %v; want one delivery", r.ds, r.err)
			}
			got = append(got, r.ds[0].Item)
		}
		p := waitFor(t, "pop blocked on a paused queue", pop)
		if p.err != nil || !p.ok {
			t.Fatalf("pop after resume = %q, %v, %v; want an item", p.item, p.ok, p.err)
		}
		got = append(got, p.item)
		slices.Sort(got)
		wantItems(t, "items taken after resume", got, []string{"x", "y", "z"})
		wantQueue(t, ctx, e, "q")
		wantInFlight(t, ctx, e, "q", 2)
	})

	t.Run("PausedRedeliversNothing", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 3})
		wantDeliveries(t, ds, []string{"a"}, 1)
		pause(t, ctx, e, "q")
		waitPast(t, ctx, h, e, shortLease)
		if ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3}); len(ds) != 0 {
			t.Errorf("receive of a paused queue with an expired lease = %+v; want nothing", ds)
		}
		got := startReceive(ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: waitTimeout, Lease: longLease, MaxDeliveries: 3})
		resume(t, ctx, e, "q")
		r := waitFor(t, "receiver of the expired lease", got)
		if r.err != nil {
			t.Fatal(r.err)
		}
		wantDeliveries(t, r.ds, []string{"a"}, 2)
	})

	t.Run("ReclaimWhilePaused", func(t *testing.T) {
		// A pause stops handing out, not the dead-lettering of expired
		// leases that used their deliveries (the maintainer's sweep).
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b")
		ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: shortLease, MaxDeliveries: 1})
		wantDeliveries(t, ds, []string{"a"}, 1)
		pause(t, ctx, e, "q")
		waitPast(t, ctx, h, e, shortLease)
		waitReclaimed(t, ctx, e, "q", 1, 1)
		wantInFlight(t, ctx, e, "q", 0)
		wantQueue(t, ctx, e, "q", "b")
		if n, err := e.DLQLen(ctx, "q", engine.DLQFailed); err != nil || n != 1 {
			t.Errorf("failed DLQ holds %d, %v; want 1", n, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		deadLetter(t, ctx, e, "q", "boom", "f1")
		declare(t, ctx, e, "q", bound(2, engine.PolicyDLQ))
		add(t, ctx, e, "q", engine.PolicyReject, 0, "a", "b", "c", "d")
		held := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3})
		wantDeliveries(t, held, []string{"c"}, 1)
		pause(t, ctx, e, "q")

		res, err := e.QueueDelete(ctx, "q", false)
		wantErrIs(t, "QueueDelete with an item in flight", err, engine.ErrQueueInFlight)
		if res != (engine.DeleteResult{}) {
			t.Errorf("refused QueueDelete reported %+v", res)
		}
		wantQueue(t, ctx, e, "q", "d")
		wantInFlight(t, ctx, e, "q", 1)
		if _, ok, _ := e.QueueSettings(ctx, "q"); !ok {
			t.Error("refused QueueDelete removed the settings")
		}

		res, err = e.QueueDelete(ctx, "q", true)
		if err != nil {
			t.Fatalf("forced QueueDelete: %v", err)
		}
		want := engine.DeleteResult{Items: 1, OverflowDLQ: 2, FailedDLQ: 1, InFlight: 1, Settings: true}
		if res != want {
			t.Errorf("forced QueueDelete = %+v, want %+v", res, want)
		}
		wantQueue(t, ctx, e, "q")
		wantDLQ(t, ctx, e, "q", engine.DLQOverflow)
		wantDLQ(t, ctx, e, "q", engine.DLQFailed)
		wantInFlight(t, ctx, e, "q", 0)
		if s, ok, err := e.QueueSettings(ctx, "q"); ok || err != nil {
			t.Errorf("QueueSettings after delete = %+v, %v, %v; want none", s, ok, err)
		}
		if names, err := e.QueueNames(ctx); err != nil || slices.Contains(names, "q") {
			t.Errorf("QueueNames after delete = %v, %v; want no \"q\"", names, err)
		}
		if acked, err := e.QueueAckBatch(ctx, "q", []string{held[0].ID}); err != nil || len(acked) != 1 || acked[0] {
			t.Errorf("ack of a delivery of the deleted queue = %v, %v; want not acked", acked, err)
		}
		// The name is free again: an undeclared queue with per-call values.
		res2 := add(t, ctx, e, "q", engine.PolicyReject, 1, "n1", "n2")
		wantResults(t, "add after delete", res2, []engine.AddResult{{Accepted: true, QueueLength: 1}, {Accepted: false, QueueLength: 1}})
		if ds := receive(t, ctx, e, engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 3}); len(ds) != 1 || ds[0].Item != "n1" {
			t.Errorf("receive after delete = %+v; want n1 (the queue is no longer paused)", ds)
		}

		// Deleting a queue without anything in flight needs no force, and
		// deleting what does not exist removes nothing.
		add(t, ctx, e, "r", engine.PolicyReject, 0, "x")
		if res, err := e.QueueDelete(ctx, "r", false); err != nil || res != (engine.DeleteResult{Items: 1}) {
			t.Errorf("QueueDelete(r) = %+v, %v; want one item", res, err)
		}
		if res, err := e.QueueDelete(ctx, "none", false); err != nil || res != (engine.DeleteResult{}) {
			t.Errorf("QueueDelete(none) = %+v, %v; want nothing removed", res, err)
		}
	})

	t.Run("SettingsSurviveReopen", func(t *testing.T) {
		if h.Caps.Reopen == nil {
			t.Skipf("%s: the harness has no Reopen", h.Name)
		}
		t.Parallel()
		ctx, d := setupDurable(t, h)
		declare(t, ctx, d.e, "q", fullSettings)
		declare(t, ctx, d.e, "gone", bound(1, engine.PolicyReject))
		add(t, ctx, d.e, "q", engine.PolicyDLQ, 100, "a", "b", "c", "d")
		pause(t, ctx, d.e, "q")
		if _, err := d.e.QueueDelete(ctx, "gone", false); err != nil {
			t.Fatal(err)
		}
		d.reopen(t)
		wantSettings(t, ctx, d.e, "q", withPaused(fullSettings))
		if s, ok, err := d.e.QueueSettings(ctx, "gone"); ok || err != nil {
			t.Errorf("settings of a deleted queue after reopen = %+v, %v, %v", s, ok, err)
		}
		if names, err := d.e.QueueNames(ctx); err != nil || slices.Contains(names, "gone") || !slices.Contains(names, "q") {
			t.Errorf("QueueNames after reopen = %v, %v; want q and not gone", names, err)
		}
		if item, ok, err := d.e.QueuePop(ctx, "q", 0); ok || err != nil {
			t.Errorf("QueuePop of a queue paused before reopen = %q, %v, %v; want nothing", item, ok, err)
		}
		res := add(t, ctx, d.e, "q", engine.PolicyDLQ, 100, "e")
		wantResults(t, "add after reopen", res, []engine.AddResult{{Accepted: false, QueueLength: 3}})
		resume(t, ctx, d.e, "q")
		d.reopen(t)
		wantSettings(t, ctx, d.e, "q", fullSettings)
		if item, ok, err := d.e.QueuePop(ctx, "q", 0); !ok || err != nil || item != "a" {
			t.Errorf("QueuePop after resume and reopen = %q, %v, %v; want \"a\"", item, ok, err)
		}
	})
}

func withPaused(s engine.QueueSettings) engine.QueueSettings {
	s.Paused = true
	return s
}

func declare(t *testing.T, ctx context.Context, e engine.Engine, queue string, s engine.QueueSettings) engine.QueueSettings {
	t.Helper()
	got, err := e.QueueDeclare(ctx, queue, s)
	if err != nil {
		t.Fatalf("QueueDeclare(%q, %+v): %v", queue, s, err)
	}
	return got
}

func wantSettings(t *testing.T, ctx context.Context, e engine.Engine, queue string, want engine.QueueSettings) {
	t.Helper()
	got, ok, err := e.QueueSettings(ctx, queue)
	if err != nil || !ok || got != want {
		t.Errorf("QueueSettings(%q) = %+v, %v, %v; want %+v", queue, got, ok, err, want)
	}
}

func pause(t *testing.T, ctx context.Context, e engine.Engine, queue string) {
	t.Helper()
	if err := e.QueuePause(ctx, queue); err != nil {
		t.Fatalf("QueuePause(%q): %v", queue, err)
	}
}

func resume(t *testing.T, ctx context.Context, e engine.Engine, queue string) {
	t.Helper()
	if err := e.QueueResume(ctx, queue); err != nil {
		t.Fatalf("QueueResume(%q): %v", queue, err)
	}
}

func mustAddP(t *testing.T, ctx context.Context, e engine.Engine, p engine.AddParams) []engine.AddResult {
	t.Helper()
	res, err := e.QueueAdd(ctx, p)
	if err != nil {
		t.Fatalf("QueueAdd(%+v): %v", p, err)
	}
	if len(res) != len(p.Items) {
		t.Fatalf("QueueAdd(%q) returned %d results for %d items", p.Queue, len(res), len(p.Items))
	}
	return res
}
