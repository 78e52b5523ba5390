package server

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerScope is the instrumentation scope of the request spans.
const tracerScope = "github.com/sluicehq/sluice/internal/server"

// requestTracer starts a server span per request. It is written here
// rather than taken from otelhttp because of what it must not record:
// otelhttp puts the path in url.path, and paths carry delivery ids
// (/ack/{id}), which settle deliveries; the route pattern is all a span
// needs. Query strings (lock tokens travel in ?token=, WebSocket API keys
// in ?api_key=), headers and bodies are never looked at.
type requestTracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// newRequestTracer is nil when tp is: requests then pay one nil check.
func newRequestTracer(tp trace.TracerProvider) *requestTracer {
	if tp == nil {
		return nil
	}
	return &requestTracer{tracer: tp.Tracer(tracerScope), prop: propagation.TraceContext{}}
}

// start begins r's span, the child of the trace its traceparent header
// names, and returns r with the span in its context. pattern is the
// route ("" when no route matched: the span is then named by the method).
func (t *requestTracer) start(r *http.Request, pattern string) (*http.Request, trace.Span) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	name := r.Method
	attrs := []attribute.KeyValue{attribute.String("http.request.method", r.Method)}
	if pattern != "" {
		name = pattern
		if !strings.Contains(pattern, " ") {
			name = r.Method + " " + pattern
		}
		attrs = append(attrs, attribute.String("http.route", pattern[strings.IndexByte(pattern, ' ')+1:]))
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return r.WithContext(ctx), span
}

// end records the reply's status and ends the span; a 5xx marks it
// failed (a 4xx is the client's mistake, not the server's).
func (t *requestTracer) end(span trace.Span, status int, hijacked bool) {
	if hijacked {
		span.SetAttributes(attribute.Int("http.response.status_code", http.StatusSwitchingProtocols))
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
}
