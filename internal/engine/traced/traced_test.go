package traced_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/embedded"
	"github.com/sluicehq/sluice/internal/engine/traced"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// setup is an embedded engine traced into an in-memory exporter, and a
// parent span the test's calls run under.
func setup(t *testing.T) (*traced.Engine, *tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	eng, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() {
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return traced.Wrap(eng, tp), exp, tp
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, a := range s.Attributes {
		m[a.Key] = a.Value
	}
	return m
}

func TestSpansPerOperation(t *testing.T) {
	t.Parallel()
	e, exp, tp := setup(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	const q = "jobs"
	if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: q, Items: []string{"a", "b"}, Policy: engine.PolicyReject}); err != nil {
		t.Fatal(err)
	}
	ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: q, Count: 5, Lease: time.Minute, MaxDeliveries: 3})
	if err != nil || len(ds) != 2 {
		t.Fatalf("receive = %v, %v", ds, err)
	}
	if err := e.QueueExtend(ctx, q, ds[0].ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.QueueAckBatch(ctx, q, []string{ds[0].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.QueueNack(ctx, engine.NackParams{Queue: q, ID: ds[1].ID, MaxDeliveries: 3, Release: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.QueuePop(ctx, q, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.QueueReclaim(ctx, q, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DLQRange(ctx, q, engine.DLQFailed, 0, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DLQRequeue(ctx, engine.RequeueParams{Queue: q, Kind: engine.DLQFailed, Policy: engine.PolicyReject}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DLQPurge(ctx, q, engine.DLQFailed); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Publish(ctx, "chan", "msg"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CacheSet(ctx, engine.CacheSetParams{Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CacheGet(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CacheDelete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.LockAcquire(ctx, "l", "tok", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.LockRefresh(ctx, "l", "tok", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.LockRelease(ctx, "l", "tok"); err != nil {
		t.Fatal(err)
	}
	// Not traced: passes through.
	if n, err := e.QueueLen(ctx, q); err != nil || n != 0 {
		t.Fatalf("QueueLen = %d, %v", n, err)
	}
	parent.End()

	want := []string{
		"sluice queue.add", "sluice queue.receive", "sluice queue.extend", "sluice queue.ack",
		"sluice queue.release", "sluice queue.pop", "sluice queue.reclaim", "sluice dlq.list",
		"sluice dlq.requeue", "sluice dlq.purge", "sluice publish", "sluice cache.set",
		"sluice cache.get", "sluice cache.delete", "sluice lock.acquire", "sluice lock.refresh",
		"sluice lock.release", "parent",
	}
	spans := exp.GetSpans()
	var got []string
	for _, s := range spans {
		got = append(got, s.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("spans\n got %v\nwant %v", got, want)
	}
	pid := spans[len(spans)-1].SpanContext.SpanID()
	for _, s := range spans[:len(spans)-1] {
		if s.Parent.SpanID() != pid {
			t.Errorf("%s: parent %s, want the caller's span %s", s.Name, s.Parent.SpanID(), pid)
		}
		a := attrs(s)
		if a["sluice.engine"].AsString() != "embedded" {
			t.Errorf("%s: sluice.engine = %q", s.Name, a["sluice.engine"].String())
		}
		if op := a["sluice.operation"].AsString(); "sluice "+op != s.Name {
			t.Errorf("%s: sluice.operation = %q", s.Name, op)
		}
		if s.Status.Code == codes.Error {
			t.Errorf("%s: failed: %s", s.Name, s.Status.Description)
		}
		for _, kv := range s.Attributes {
			for _, secret := range []string{"tok", ds[0].ID, ds[1].ID, "msg"} {
				if strings.Contains(kv.Value.String(), secret) {
					t.Errorf("%s: %s = %q holds a secret", s.Name, kv.Key, kv.Value.String())
				}
			}
		}
	}
	add := attrs(spans[0])
	if add["sluice.queue"].AsString() != q || add["sluice.items"].AsInt64() != 2 || add["sluice.results"].AsInt64() != 2 {
		t.Errorf("queue.add attributes %v", spans[0].Attributes)
	}
	if r := attrs(spans[1]); r["sluice.items"].AsInt64() != 5 || r["sluice.results"].AsInt64() != 2 {
		t.Errorf("queue.receive attributes %v", spans[1].Attributes)
	}
}

func TestErrorsAreRecordedByName(t *testing.T) {
	t.Parallel()
	e, exp, _ := setup(t)
	ctx := context.Background()
	err := e.LockRelease(ctx, "l", "nobody")
	if !errors.Is(err, engine.ErrLockNotHeld) {
		t.Fatalf("release = %v", err)
	}
	err = e.QueueExtend(ctx, "q", "no-such-delivery", time.Minute)
	if !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("extend = %v", err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for i, want := range []error{engine.ErrLockNotHeld, engine.ErrLeaseNotFound} {
		s := spans[i]
		if s.Status.Code != codes.Error || s.Status.Description != want.Error() {
			t.Errorf("%s: status %v %q, want error %q", s.Name, s.Status.Code, s.Status.Description, want)
		}
		if got := attrs(s)["error.type"].AsString(); got != want.Error() {
			t.Errorf("%s: error.type %q", s.Name, got)
		}
		if s.Parent.IsValid() {
			t.Errorf("%s: a parent without one in the context", s.Name)
		}
	}
}

func TestUnsampledCallsPassThrough(t *testing.T) {
	t.Parallel()
	eng, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	e := traced.Wrap(eng, tp)
	res, err := e.QueueAdd(context.Background(), engine.AddParams{Queue: "q", Items: []string{"x"}, Policy: engine.PolicyReject})
	if err != nil || len(res) != 1 || !res[0].Accepted {
		t.Fatalf("add = %v, %v", res, err)
	}
	if e.Kind() != "embedded" {
		t.Errorf("Kind = %q", e.Kind())
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported with a sampler that samples nothing", n)
	}
}

// TestSuppress: calls under a suppressed context make no span and leave
// the caller's span alone.
func TestSuppress(t *testing.T) {
	t.Parallel()
	e, exp, tp := setup(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if _, err := e.QueueReclaim(traced.Suppress(ctx), "q", 3); err != nil {
		t.Fatal(err)
	}
	if !parent.IsRecording() {
		t.Fatal("a suppressed call ended the caller's span")
	}
	parent.End()
	if spans := exp.GetSpans(); len(spans) != 1 || spans[0].Name != "parent" {
		t.Errorf("spans %v, want the parent alone", spans)
	}
}
