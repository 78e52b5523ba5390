package enginetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

const (
	// caseTimeout bounds every case, so that an engine whose blocking call
	// ignores its context fails the case instead of hanging the run.
	caseTimeout = 30 * time.Second
	// waitTimeout bounds how long a case waits for something that is
	// expected to happen (a wake-up, a redelivery, an expiry).
	waitTimeout = 10 * time.Second
	// shortLease is short enough for a case to wait for its expiry.
	shortLease = 30 * time.Millisecond
	// longLease never expires within a case.
	longLease = time.Minute
)

// runCases groups the cases by capability, so that a failing engine reports
// which part of the seam it gets wrong.
func runCases(t *testing.T, h Harness) {
	t.Run("Engine", func(t *testing.T) { engineCases(t, h) })
	t.Run("Close", func(t *testing.T) { closeCases(t, h) })
	t.Run("Queue", func(t *testing.T) { queueCases(t, h) })
	t.Run("QueueConcurrency", func(t *testing.T) { concurrencyCases(t, h) })
	t.Run("Idempotency", func(t *testing.T) { idempotencyCases(t, h) })
	t.Run("DLQ", func(t *testing.T) { dlqCases(t, h) })
	t.Run("Lease", func(t *testing.T) { leaseCases(t, h) })
	t.Run("Release", func(t *testing.T) { releaseCases(t, h) })
	t.Run("Group", func(t *testing.T) { groupCases(t, h) })
	t.Run("AckBatch", func(t *testing.T) { ackBatchCases(t, h) })
	t.Run("StaleID", func(t *testing.T) { staleIDCases(t, h) })
	t.Run("GuessID", func(t *testing.T) { guessIDCases(t, h) })
	t.Run("PubSub", func(t *testing.T) { pubsubCases(t, h) })
	t.Run("Cache", func(t *testing.T) { cacheCases(t, h) })
	t.Run("Lock", func(t *testing.T) { lockCases(t, h) })
	t.Run("Kinds", func(t *testing.T) { kindsCases(t, h) })
	t.Run("Durable", func(t *testing.T) { durableCases(t, h) })
	t.Run("Settings", func(t *testing.T) { settingsCases(t, h) })
	t.Run("Schedule", func(t *testing.T) { scheduleCases(t, h) })
	t.Run("Stats", func(t *testing.T) { statsCases(t, h) })
}

func engineCases(t *testing.T, h Harness) {
	t.Run("KindAndHealth", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		if k := e.Kind(); k != h.Caps.Kind {
			t.Errorf("Kind() = %q, want %q", k, h.Caps.Kind)
		}
		got := e.Health(ctx)
		if got.Status != "healthy" || !got.Connected || got.Error != "" {
			t.Errorf("Health() = %+v, want status healthy, connected, no error", got)
		}
	})
}

func closeCases(t *testing.T, h Harness) {
	t.Run("CallsAfterClose", func(t *testing.T) {
		t.Parallel()
		e := h.New(t)
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		if err := e.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{"x"}, Policy: engine.PolicyDLQ, MaxSize: 10})
		wantErrIs(t, "QueueAdd after Close", err, engine.ErrClosed)
		_, err = e.QueueLen(ctx, "q")
		wantErrIs(t, "QueueLen after Close", err, engine.ErrClosed)
		_, _, err = e.QueuePop(ctx, "q", time.Second)
		wantErrIs(t, "blocking QueuePop after Close", err, engine.ErrClosed)
		_, err = e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: time.Second, Lease: longLease, MaxDeliveries: 1})
		wantErrIs(t, "blocking QueueReceive after Close", err, engine.ErrClosed)
		_, _, err = e.CacheGet(ctx, "k")
		wantErrIs(t, "CacheGet after Close", err, engine.ErrClosed)
		_, _, err = e.LockAcquire(ctx, "L", "tok", time.Minute)
		wantErrIs(t, "LockAcquire after Close", err, engine.ErrClosed)
		_, err = e.Publish(ctx, "ch", "x")
		wantErrIs(t, "Publish after Close", err, engine.ErrClosed)
		_, err = e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"ch"}})
		wantErrIs(t, "Subscribe after Close", err, engine.ErrClosed)
	})

	t.Run("CloseWakesBlockedCalls", func(t *testing.T) {
		t.Parallel()
		e := h.New(t)
		closed := false
		t.Cleanup(func() {
			if !closed {
				e.Close()
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		defer cancel()
		sub, err := e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"ch"}})
		if err != nil {
			t.Fatal(err)
		}
		pop := startPop(ctx, e, "q", caseTimeout)
		recv := startReceive(ctx, e, engine.ReceiveParams{Queue: "r", Count: 1, Timeout: caseTimeout, Lease: longLease, MaxDeliveries: 1})
		closed = true
		if err := e.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		p := waitFor(t, "blocked QueuePop after Close", pop)
		if p.ok || !errors.Is(p.err, engine.ErrClosed) {
			t.Errorf("blocked QueuePop after Close = %q, %v, %v; want ok false and ErrClosed", p.item, p.ok, p.err)
		}
		r := waitFor(t, "blocked QueueReceive after Close", recv)
		if len(r.ds) != 0 || !errors.Is(r.err, engine.ErrClosed) {
			t.Errorf("blocked QueueReceive after Close = %+v, %v; want nothing and ErrClosed", r.ds, r.err)
		}
		deadline := time.After(waitTimeout)
		for {
			select {
			case _, ok := <-sub.Messages():
				if ok {
					continue
				}
			case <-deadline:
				t.Fatal("Messages() not closed after the engine closed")
			}
			break
		}
		sub.Close()
	})
}

// setup returns a fresh engine, closed when the case ends, and a context
// that bounds the case.
func setup(t *testing.T, h Harness) (context.Context, engine.Engine) {
	t.Helper()
	e := h.New(t)
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	t.Cleanup(cancel)
	return ctx, e
}

// add runs one QueueAdd that must succeed with one result per item.
func add(t *testing.T, ctx context.Context, e engine.Engine, queue string, policy engine.Policy, maxSize int64, items ...string) []engine.AddResult {
	t.Helper()
	res, err := e.QueueAdd(ctx, engine.AddParams{Queue: queue, Items: items, Policy: policy, MaxSize: maxSize})
	if err != nil {
		t.Fatalf("QueueAdd(%q, %s, max %d, %d items): %v", queue, policy, maxSize, len(items), err)
	}
	if len(res) != len(items) {
		t.Fatalf("QueueAdd(%q) returned %d results for %d items", queue, len(res), len(items))
	}
	return res
}

func wantResults(t *testing.T, what string, got, want []engine.AddResult) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: results\n got %+v\nwant %+v", what, got, want)
	}
}

// wantQueue checks both the contents and the length of queue.
func wantQueue(t *testing.T, ctx context.Context, e engine.Engine, queue string, want ...string) {
	t.Helper()
	got, err := e.QueueRange(ctx, queue, 0, -1)
	if err != nil {
		t.Fatalf("QueueRange(%q, 0, -1): %v", queue, err)
	}
	wantItems(t, fmt.Sprintf("queue %q", queue), got, want)
	n, err := e.QueueLen(ctx, queue)
	if err != nil {
		t.Fatalf("QueueLen(%q): %v", queue, err)
	}
	if n != int64(len(want)) {
		t.Errorf("QueueLen(%q) = %d, want %d", queue, n, len(want))
	}
}

// wantDLQ checks both the entries and the length of one of queue's DLQs.
func wantDLQ(t *testing.T, ctx context.Context, e engine.Engine, queue string, kind engine.DLQKind, want ...string) {
	t.Helper()
	got, err := e.DLQRange(ctx, queue, kind, 0, -1)
	if err != nil {
		t.Fatalf("DLQRange(%q, %s): %v", queue, kind, err)
	}
	wantItems(t, fmt.Sprintf("%s DLQ of %q", kind, queue), got, want)
	n, err := e.DLQLen(ctx, queue, kind)
	if err != nil {
		t.Fatalf("DLQLen(%q, %s): %v", queue, kind, err)
	}
	if n != int64(len(want)) {
		t.Errorf("DLQLen(%q, %s) = %d, want %d", queue, kind, n, len(want))
	}
}

// wantItems compares item lists byte for byte; nil and empty are equal.
func wantItems(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d items %s, want %d items %s", what, len(got), short(got), len(want), short(want))
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: item %d = %s, want %s", what, i, clip(got[i]), clip(want[i]))
		}
	}
}

// short renders a list for a failure message without flooding it.
func short(items []string) string {
	const most = 12
	out := make([]string, 0, most+1)
	for i, s := range items {
		if i == most {
			out = append(out, fmt.Sprintf("...(%d more)", len(items)-most))
			break
		}
		out = append(out, clip(s))
	}
	return fmt.Sprint(out)
}

func clip(s string) string {
	const most = 120
	if len(s) > most {
		return fmt.Sprintf("%q...(%d bytes)", s[:most], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// eventually polls cond until it holds or waitTimeout passes. It is for
// effects that have no event to wait on, such as a TTL running out.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	pause := time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, waitTimeout)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// waitFor receives one value from ch, failing the case when it takes longer
// than waitTimeout (a blocked call that never returns).
func waitFor[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not return within %v", what, waitTimeout)
		panic("unreachable")
	}
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// waitPast returns once d has passed on the engine's own clock, which is
// the clock its TTLs and leases use: a cache key set now with TTL d is gone.
// An engine whose harness can advance that clock gets it moved instead.
func waitPast(t *testing.T, ctx context.Context, h Harness, e engine.Engine, d time.Duration) {
	t.Helper()
	if h.Caps.Advance != nil {
		h.Caps.Advance(t, e, d)
		return
	}
	const key = "sluice-witness"
	if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: key, Value: "w", TTL: d}); err != nil {
		t.Fatalf("CacheSet(witness): %v", err)
	}
	eventually(t, ctx, "expiry of the witness key", func() (bool, error) {
		_, ok, err := e.CacheGet(ctx, key)
		return !ok, err
	})
}
