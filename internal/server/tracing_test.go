package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice"
)

// tracedBundle is a server on the embedded engine whose requests and
// engine calls are traced into an in-memory exporter.
func tracedBundle(t *testing.T, mutate func(*Config)) (*bundle, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("tracer provider shutdown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sluice.Open(ctx, "", &sluice.Config{Logger: quietLogger(), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := start(t, c, func(cfg *Config) {
		cfg.Tracer = tp
		if mutate != nil {
			mutate(cfg)
		}
	})
	return b, exp
}

// spanNamed returns the one span named name, failing unless there is
// exactly one.
func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans: %v", len(found), name, spanNames(spans))
	}
	return found[0]
}

func spanNames(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attrOf(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestTracingRequestSpans(t *testing.T) {
	t.Parallel()
	b, exp := tracedBundle(t, nil)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b.expect(200, "POST", "/v1/queues/jobs/items", `{"item": {"n": 1}}`, "traceparent", traceparent)

	spans := exp.GetSpans()
	req := spanNamed(t, spans, "POST /v1/queues/{name}/items")
	if req.SpanKind != trace.SpanKindServer {
		t.Errorf("request span kind %v, want server", req.SpanKind)
	}
	if got := req.SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s: the incoming traceparent was not continued", got)
	}
	if got := req.Parent.SpanID().String(); got != "00f067aa0ba902b7" || !req.Parent.IsRemote() {
		t.Errorf("parent %s (remote %v), want the traceparent's span", got, req.Parent.IsRemote())
	}
	for key, want := range map[attribute.Key]attribute.Value{
		"http.request.method":       attribute.StringValue("POST"),
		"http.route":                attribute.StringValue("/v1/queues/{name}/items"),
		"http.response.status_code": attribute.IntValue(200),
	} {
		if got, ok := attrOf(req, key); !ok || got != want {
			t.Errorf("%s = %v, want %v", key, got.String(), want.String())
		}
	}
	add := spanNamed(t, spans, "sluice queue.add")
	if add.Parent.SpanID() != req.SpanContext.SpanID() || add.SpanContext.TraceID() != req.SpanContext.TraceID() {
		t.Errorf("engine span's parent %s, want the request's span %s", add.Parent.SpanID(), req.SpanContext.SpanID())
	}
	if q, _ := attrOf(add, "sluice.queue"); q.AsString() != "jobs" {
		t.Errorf("sluice.queue = %q", q.String())
	}
	if n, _ := attrOf(add, "sluice.items"); n.AsInt64() != 1 {
		t.Errorf("sluice.items = %v", n.String())
	}
}

func TestTracingServerErrorsAndUnmatched(t *testing.T) {
	t.Parallel()
	b, exp := tracedBundle(t, nil)
	b.expectError(404, "GET", "/nowhere", nil)
	b.expectError(400, "POST", "/v1/queues/jobs/items", `{"item":`)
	spans := exp.GetSpans()
	un := spanNamed(t, spans, "GET")
	if _, ok := attrOf(un, "http.route"); ok {
		t.Error("an unmatched request has an http.route")
	}
	bad := spanNamed(t, spans, "POST /v1/queues/{name}/items")
	if code, _ := attrOf(bad, "http.response.status_code"); code.AsInt64() != 400 {
		t.Errorf("status code %v, want 400", code.String())
	}
	if bad.Status.Code == codes.Error {
		t.Error("a 4xx marks the server span failed; only 5xx should")
	}
}

// TestTracingRecordsNoSecrets sends an API key (both headers), a lock
// token in the query string and a delivery id in the path, and finds none
// of them in any span's name, attributes or events.
func TestTracingRecordsNoSecrets(t *testing.T) {
	t.Parallel()
	const apiKey = "k3y-SECRET-do-not-trace"
	b, exp := tracedBundle(t, func(cfg *Config) { cfg.APIKeys = []string{apiKey} })
	auth := []string{"X-API-Key", apiKey}
	m := b.expect(200, "POST", "/v1/locks/door", `{"ttl_ms": 30000}`, auth...)
	token := m["token"].(string)
	b.expect(204, "DELETE", "/v1/locks/door?token="+token, nil, "Authorization", "Bearer "+apiKey)
	b.expect(200, "POST", "/v1/queues/jobs/items", `{"item": "payload-SECRET"}`, auth...)
	got := b.expect(200, "POST", "/v1/queues/jobs/receive?lease=30s", nil, auth...)
	id := got["deliveries"].([]any)[0].(map[string]any)["id"].(string)
	b.expect(204, "POST", "/v1/queues/jobs/ack/"+id, nil, auth...)
	b.expect(204, "PUT", "/v1/cache/cache-key-SECRET", `"cache-value-SECRET"`, auth...)

	spans := exp.GetSpans()
	if len(spans) < 10 {
		t.Fatalf("only %d spans: %v", len(spans), spanNames(spans))
	}
	secrets := []string{apiKey, token, id, "payload-SECRET", "cache-key-SECRET", "cache-value-SECRET"}
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key)+"="+a.Value.String())
		}
		for _, e := range s.Events {
			for _, a := range e.Attributes {
				texts = append(texts, a.Value.String())
			}
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("span %q records a secret: %s", s.Name, text)
				}
			}
		}
	}
	ack := spanNamed(t, spans, "POST /v1/queues/{name}/ack/{id}")
	if r, _ := attrOf(ack, "http.route"); r.AsString() != "/v1/queues/{name}/ack/{id}" {
		t.Errorf("http.route = %v", r.String())
	}
}

// TestTracingOffByDefault: without a Tracer the handler starts no span,
// even with a traceparent, and nothing reaches a provider.
func TestTracingOffByDefault(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	if b.srv.tracer != nil {
		t.Fatal("a server without Config.Tracer has a request tracer")
	}
	b.expect(200, "POST", "/v1/queues/jobs/items", `{"item": 1}`, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
}
