package tracing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestEncodeRequestDecodesWithTheOfficialTypes: what the hand-written
// encoder writes is read back by the OTLP protobuf types, field by field.
func TestEncodeRequestDecodesWithTheOfficialTypes(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	res := resource.NewSchemaless(attribute.String("service.name", "svc"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tp.Tracer("scope-a", trace.WithInstrumentationVersion("v9"))
	ctx, parent := tr.Start(context.Background(), "parent", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tr.Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("s", "x"), attribute.Int("i", -7), attribute.Bool("b", false),
		attribute.Float64("f", 1.5), attribute.StringSlice("ss", []string{"a", "b"}),
	))
	child.AddEvent("ev", trace.WithAttributes(attribute.Int("n", 3)))
	child.SetStatus(codes.Error, "broke")
	child.End()
	parent.End()
	spans := rec.Ended()

	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(encodeRequest(spans), &req); err != nil {
		t.Fatal(err)
	}
	if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 1 {
		t.Fatalf("request shape: %v", &req)
	}
	rs := req.ResourceSpans[0]
	if a := rs.Resource.Attributes; len(a) != 1 || a[0].Key != "service.name" || a[0].Value.GetStringValue() != "svc" {
		t.Errorf("resource %v", rs.Resource)
	}
	ss := rs.ScopeSpans[0]
	if ss.Scope.Name != "scope-a" || ss.Scope.Version != "v9" || len(ss.Spans) != 2 {
		t.Fatalf("scope spans %v", ss)
	}
	c, p := ss.Spans[0], ss.Spans[1]
	psc := parent.SpanContext()
	psid := psc.SpanID()
	if c.Name != "child" || p.Name != "parent" || string(c.ParentSpanId) != string(psid[:]) {
		t.Errorf("names or parent: %q %q parent %x", c.Name, p.Name, c.ParentSpanId)
	}
	if tid := psc.TraceID(); string(c.TraceId) != string(tid[:]) || len(p.ParentSpanId) != 0 {
		t.Errorf("trace id %x or parent of the root %x", c.TraceId, p.ParentSpanId)
	}
	if c.Kind != tracepb.Span_SPAN_KIND_CLIENT || p.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("kinds %v %v", c.Kind, p.Kind)
	}
	if c.StartTimeUnixNano == 0 || c.EndTimeUnixNano < c.StartTimeUnixNano {
		t.Errorf("times %d %d", c.StartTimeUnixNano, c.EndTimeUnixNano)
	}
	want := map[string]*commonpb.AnyValue{
		"s": {Value: &commonpb.AnyValue_StringValue{StringValue: "x"}},
		"i": {Value: &commonpb.AnyValue_IntValue{IntValue: -7}},
		"b": {Value: &commonpb.AnyValue_BoolValue{BoolValue: false}},
		"f": {Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}},
		"ss": {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_StringValue{StringValue: "a"}}, {Value: &commonpb.AnyValue_StringValue{StringValue: "b"}},
		}}}},
	}
	if len(c.Attributes) != len(want) {
		t.Errorf("%d attributes, want %d", len(c.Attributes), len(want))
	}
	for _, kv := range c.Attributes {
		if !proto.Equal(kv.Value, want[kv.Key]) {
			t.Errorf("attribute %s = %v, want %v", kv.Key, kv.Value, want[kv.Key])
		}
	}
	if len(c.Events) != 1 || c.Events[0].Name != "ev" || c.Events[0].Attributes[0].Value.GetIntValue() != 3 {
		t.Errorf("events %v", c.Events)
	}
	if c.Status.Code != tracepb.Status_STATUS_CODE_ERROR || c.Status.Message != "broke" || p.Status.Code != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("status %v / %v", c.Status, p.Status)
	}
	if c.Flags != uint32(psc.TraceFlags()) {
		t.Errorf("flags %x", c.Flags)
	}
}

// TestExporterPosts: headers and gzip reach the endpoint; a refusal is an
// error that does not repeat the endpoint's URL.
func TestExporterPosts(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 2)
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		code := status // read before the test may change it for the next export
		got <- r
		w.WriteHeader(code)
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, span := tp.Tracer("t").Start(context.Background(), "s")
	span.End()
	_ = tp.Shutdown(context.Background())

	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	e := newExporter(Config{Endpoint: srv.URL + "/p/s3cret", Headers: map[string]string{"Authorization": "Bearer t"}, Compression: "gzip", Timeout: DefaultTimeout}, log)
	defer func() { _ = e.Shutdown(context.Background()) }()
	if err := e.ExportSpans(context.Background(), rec.Ended()); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.URL.Path != "/p/s3cret" || r.Header.Get("Authorization") != "Bearer t" || r.Header.Get("Content-Encoding") != "gzip" ||
		r.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Errorf("request %s %v", r.URL.Path, r.Header)
	}
	if logBuf.Len() != 0 {
		t.Errorf("a successful export logged: %s", logBuf.String())
	}
	status = http.StatusServiceUnavailable
	if err := e.ExportSpans(context.Background(), rec.Ended()); err != nil {
		t.Errorf("a refused export is returned (%v): the SDK would print it through the global handler", err)
	}
	<-got
	if line := logBuf.String(); !strings.Contains(line, "OTLP export: HTTP 503") || strings.Contains(line, "s3cret") {
		t.Errorf("refusal logged as %q: want the status, never the URL", line)
	}
	_ = e.Shutdown(context.Background())
	if err := e.ExportSpans(context.Background(), rec.Ended()); !errors.Is(err, errStopped) {
		t.Errorf("export after shutdown: %v", err)
	}
}
