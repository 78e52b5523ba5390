package sluice_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// After a rejected add on a queue declared at 2, Pressure reports the
// declared bound and a full queue (it reported the client's 10000).
func TestDeclaredBoundDrivesPressure(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		if err := c.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxSize: 2, Policy: sluice.PolicyReject}); err != nil {
			t.Fatal(err)
		}
		q := c.Queue("q")
		for range 2 {
			if _, err := q.Add(ctx, "x", nil); err != nil {
				t.Fatal(err)
			}
		}
		r, err := q.Add(ctx, "x", nil)
		if !errors.Is(err, sluice.ErrQueueFull) || r.Success {
			t.Fatalf("third add: %+v, %v; want ErrQueueFull", r, err)
		}
		if !strings.Contains(err.Error(), "(2/2)") || !strings.Contains(r.Error, "(2/2)") {
			t.Errorf("rejection names the declared bound: %v / %q", err, r.Error)
		}
		p, err := q.Pressure(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.MaxSize != 2 || !p.IsFull || p.FillRatio != 1 || p.OverflowPolicy != sluice.PolicyReject {
			t.Fatalf("pressure %+v; want max 2, full, ratio 1, reject", p)
		}
	})
}

// An add that names no bound is held to the declared one: the queue stops
// at its declared size whatever the client's default.
func TestDeclaredBoundAppliesToAddsWithoutOne(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		if err := c.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxSize: 3, Policy: sluice.PolicyReject}); err != nil {
			t.Fatal(err)
		}
		other := c.QueueWithDefaults("q", sluice.QueueSettings{MaxSize: 100, Policy: sluice.PolicyDLQ})
		res, err := other.AddBatch(ctx, []any{1, 2, 3, 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res[2].Success || res[3].Success {
			t.Fatalf("results %+v; want 3 accepted, the 4th rejected", res)
		}
		if n, _ := other.Len(ctx); n != 3 {
			t.Fatalf("len %d, want 3", n)
		}
	})
}

// Explicit values may only be stricter than declared ones.
func TestDeclaredPrecedence(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		if err := c.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxSize: 5, Policy: sluice.PolicyReject}); err != nil {
			t.Fatal(err)
		}
		q := c.Queue("q")
		for _, o := range []*sluice.AddOptions{
			{MaxSize: 6}, {MaxSize: sluice.Unbounded}, {Policy: sluice.PolicyDropOldest},
		} {
			_, err := q.Add(ctx, "x", o)
			if !errors.Is(err, sluice.ErrSettingsConflict) {
				t.Fatalf("add with %+v: %v; want ErrSettingsConflict", *o, err)
			}
			if !strings.HasPrefix(err.Error(), `sluice: add to queue "q": `) || strings.Count(err.Error(), "sluice:") != 1 {
				t.Errorf("error text %q", err)
			}
		}
		if _, err := c.QueueWith("q", sluice.QueueSettings{MaxSize: 50}).Add(ctx, "x", nil); !errors.Is(err, sluice.ErrSettingsConflict) {
			t.Fatalf("QueueWith a looser bound: %v; want ErrSettingsConflict", err)
		}
		if n, _ := q.Len(ctx); n != 0 {
			t.Fatalf("len %d after refused adds, want 0", n)
		}
		strict := c.QueueWith("q", sluice.QueueSettings{MaxSize: 1})
		if _, err := strict.Add(ctx, "a", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := strict.Add(ctx, "b", nil); !errors.Is(err, sluice.ErrQueueFull) {
			t.Fatalf("stricter bound: %v; want ErrQueueFull", err)
		}
		es, err := strict.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if es.Settings.MaxSize != 1 || es.Sources.MaxSize != sluice.SourceHandle || es.Sources.Policy != sluice.SourceDeclared {
			t.Fatalf("settings of the stricter handle: %+v", es)
		}
	})
}

func TestQueueSettingsSources(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("q")
		es, err := q.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if es.IsDeclared() || es.Paused || es.Settings != q.HandleSettings() || es.Sources.MaxSize != sluice.SourceDefault {
			t.Fatalf("undeclared: %+v", es)
		}
		decl := sluice.QueueSettings{MaxSize: sluice.Unbounded, Lease: 2 * time.Second, MaxDeliveries: 3}
		if err := c.DeclareQueue(ctx, "q", decl); err != nil {
			t.Fatal(err)
		}
		// Declaring again is idempotent.
		if err := c.DeclareQueue(ctx, "q", decl); err != nil {
			t.Fatal(err)
		}
		es, err = q.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := sluice.SettingSources{
			MaxSize: sluice.SourceDeclared, Policy: sluice.SourceDefault, PressureThreshold: sluice.SourceDefault,
			Lease: sluice.SourceDeclared, MaxDeliveries: sluice.SourceDeclared,
		}
		if es.Declared != decl || es.Sources != want || es.Settings.MaxSize != sluice.Unbounded || es.Settings.Policy != sluice.DefaultPolicy {
			t.Fatalf("declared: %+v", es)
		}
		// A receive without a lease gets the declared one.
		if _, err := q.Add(ctx, "x", nil); err != nil {
			t.Fatal(err)
		}
		d, ok, err := q.Receive(ctx, 0, nil)
		if err != nil || !ok {
			t.Fatalf("receive: %v, %v", ok, err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}

		for _, bad := range []sluice.QueueSettings{
			{MaxSize: -2}, {Policy: "sometimes"}, {PressureThreshold: 1.5}, {Lease: 1500 * time.Microsecond}, {MaxDeliveries: -1},
		} {
			if err := c.DeclareQueue(ctx, "q", bad); !errors.Is(err, sluice.ErrInvalidArgument) {
				t.Errorf("declare %+v: %v; want ErrInvalidArgument", bad, err)
			}
		}
		if err := c.DeclareQueue(ctx, "bad name", decl); !errors.Is(err, sluice.ErrInvalidName) {
			t.Errorf("declare a bad name: %v", err)
		}
	})
}

func TestPauseResumeAndDelete(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("q")
		if _, err := q.AddBatch(ctx, []any{1, 2, 3}, nil); err != nil {
			t.Fatal(err)
		}
		if err := q.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := q.TryGet(ctx); err != nil || ok {
			t.Fatalf("get from a paused queue: %v, %v; want nothing", ok, err)
		}
		if es, err := q.Settings(ctx); err != nil || !es.Paused {
			t.Fatalf("settings of a paused queue: %+v, %v", es, err)
		}
		if err := q.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		d, ok, err := q.Receive(ctx, 0, nil)
		if err != nil || !ok {
			t.Fatalf("receive after resume: %v, %v", ok, err)
		}

		_, err = c.DeleteQueue(ctx, "q", nil)
		if !errors.Is(err, sluice.ErrQueueInFlight) {
			t.Fatalf("delete with an item in flight: %v; want ErrQueueInFlight", err)
		}
		if n, _ := q.Len(ctx); n != 2 {
			t.Fatalf("a refused delete removed items: len %d", n)
		}
		r, err := c.DeleteQueue(ctx, "q", &sluice.DeleteQueueOptions{Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Items != 2 || r.InFlight != 1 || r.Settings { // resumed and never declared: no settings left
			t.Fatalf("forced delete: %+v", r)
		}
		if err := d.Ack(ctx); !errors.Is(err, sluice.ErrLeaseNotFound) {
			t.Fatalf("ack after the queue was deleted: %v", err)
		}
		names, err := c.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n == "q" {
				t.Fatalf("deleted queue still listed: %v", names)
			}
		}
	})
}

// A requeue without a bound of its own fills the queue up to the declared
// bound only.
func TestRequeueRespectsDeclaredBound(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("q", sluice.QueueSettings{MaxSize: 5, Policy: sluice.PolicyDLQ})
		if _, err := q.AddBatch(ctx, []any{1, 2, 3, 4, 5, 6, 7}, nil); err != nil {
			t.Fatal(err)
		}
		if n, _ := q.DLQ(sluice.DLQOverflow).Len(ctx); n != 2 {
			t.Fatalf("overflow DLQ %d, want 2", n)
		}
		if err := c.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxSize: 5, Policy: sluice.PolicyReject}); err != nil {
			t.Fatal(err)
		}
		r, err := c.Queue("q").DLQ(sluice.DLQOverflow).Requeue(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := q.Len(ctx); n != 5 || r.Requeued != 0 || r.Remaining != 2 {
			t.Fatalf("requeue into a full declared queue: %+v, len %d; want nothing moved, len 5", r, n)
		}
	})
}

// Settings names the client's configuration, QueueWith and
// QueueWithDefaults as the sources of undeclared values, and declared
// values replace QueueWithDefaults' without conflict.
func TestSettingsSourcesOfHandles(t *testing.T) {
	ctx := context.Background()
	c := open(t, "", &sluice.Config{Queue: sluice.QueueSettings{MaxDeliveries: 2}})
	es, err := c.QueueWith("q", sluice.QueueSettings{Lease: time.Minute}).Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if es.Sources.MaxDeliveries != sluice.SourceConfig || es.Sources.Lease != sluice.SourceHandle || es.Sources.Policy != sluice.SourceDefault {
		t.Fatalf("sources %+v", es.Sources)
	}
	if err := c.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxSize: 7}); err != nil {
		t.Fatal(err)
	}
	q := c.QueueWithDefaults("q", sluice.QueueSettings{MaxSize: 100, PressureThreshold: 0.5})
	if es, err = q.Settings(ctx); err != nil {
		t.Fatal(err)
	}
	if es.Settings.MaxSize != 7 || es.Sources.MaxSize != sluice.SourceDeclared || es.Sources.PressureThreshold != sluice.SourceConfig {
		t.Fatalf("settings of a QueueWithDefaults handle: %+v", es)
	}
	if q.HandleSettings().MaxSize != 100 {
		t.Fatalf("HandleSettings %+v", q.HandleSettings())
	}
}

// A client that received from a queue before declaring it applies its own
// declaration to the next receive at once (its cache of declared settings
// is dropped by the declare).
func TestDeclareAppliesToNextReceiveAtOnce(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("q")
		if _, err := q.AddBatch(ctx, []any{1, 2}, nil); err != nil {
			t.Fatal(err)
		}
		d, ok, err := q.Receive(ctx, 0, nil)
		if err != nil || !ok {
			t.Fatalf("receive: %v, %v", ok, err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.DeclareQueue(ctx, "q", sluice.QueueSettings{MaxDeliveries: 1}); err != nil {
			t.Fatal(err)
		}
		if d, ok, err = q.Receive(ctx, 0, nil); err != nil || !ok {
			t.Fatalf("receive: %v, %v", ok, err)
		}
		if dead, err := d.Nack(ctx, nil); err != nil || !dead {
			t.Fatalf("nack under declared max deliveries 1: dead-lettered %v, %v", dead, err)
		}
	})
}
