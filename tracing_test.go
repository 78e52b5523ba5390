package sluice

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sluicehq/sluice/internal/engine/traced"
)

// TestTracerProviderWrapsTheEngine: a client given a TracerProvider
// traces its engine calls as children of the caller's span; one given
// none has no tracing decorator at all, so tracing off costs nothing.
func TestTracerProviderWrapsTheEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, err := Open(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, ok := plain.eng.(*traced.Engine); ok {
		t.Error("a client without a TracerProvider has a tracing decorator")
	}

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(ctx) }()
	c, err := Open(ctx, "", &Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.eng.(*traced.Engine); !ok {
		t.Fatalf("engine %T, want the tracing decorator", c.eng)
	}
	if c.EngineKind() != EngineEmbedded {
		t.Errorf("EngineKind = %q through the decorator", c.EngineKind())
	}
	pctx, parent := tp.Tracer("test").Start(ctx, "caller")
	if _, err := c.Queue("q").Add(pctx, map[string]int{"n": 1}, nil); err != nil {
		t.Fatal(err)
	}
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "sluice queue.add" || spans[0].Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("spans %v", spans)
	}
}

// TestMaintainerIsNotTraced: the sweeps (every queue, every second) make
// no spans.
func TestMaintainerIsNotTraced(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	c, err := Open(ctx, "", &Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Queue("q").Add(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	exp.Reset()
	swept := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.RunMaintainer(ctx, &MaintainerOptions{Interval: time.Hour, OnSweep: func(SweepResult) {
			select {
			case swept <- struct{}{}:
			default:
			}
		}})
	}()
	<-swept
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("the maintainer made %d spans, first %q", len(spans), spans[0].Name)
	}
}
