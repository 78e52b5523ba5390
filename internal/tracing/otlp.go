package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// exporter sends spans to an OTLP/HTTP endpoint as protobuf. It is written
// here rather than taken from otlptracehttp because that exporter's
// message types come with the collector's gRPC service and gateway, which
// more than doubled the size of the binary for an optional feature; the
// handful of messages a trace export needs are encoded by hand below
// (opentelemetry/proto/trace/v1/trace.proto, field numbers as there), and
// the tests decode them with the official types.
//
// A failed export is logged here, at most once per failureLogInterval,
// and not returned: the SDK would hand the error to OpenTelemetry's
// global handler, which prints it unstructured (and nothing retries it).
type exporter struct {
	url     string
	headers map[string]string
	gzip    bool
	client  *http.Client
	log     *slog.Logger

	mu       sync.Mutex
	stopped  bool
	failures int       // failed exports since the last line logged
	lastLog  time.Time // when the last failure was logged
}

// failureLogInterval spaces the log lines of a failing endpoint.
const failureLogInterval = time.Minute

// errStopped is an export after Shutdown.
var errStopped = errors.New("exporter stopped")

func newExporter(cfg Config, log *slog.Logger) *exporter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &exporter{
		url:     cfg.Endpoint,
		headers: cfg.Headers,
		gzip:    cfg.Compression == "gzip",
		client:  &http.Client{Transport: tr, Timeout: cfg.Timeout},
		log:     log,
	}
}

// ExportSpans posts the spans; a failure is logged (see exporter) and
// only errStopped is returned.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.export(ctx, spans)
	if err == nil || errors.Is(err, errStopped) {
		return err
	}
	e.mu.Lock()
	e.failures++
	n := e.failures
	now := time.Now()
	due := e.lastLog.IsZero() || now.Sub(e.lastLog) >= failureLogInterval
	if due {
		e.failures, e.lastLog = 0, now
	}
	e.mu.Unlock()
	if due {
		e.log.Warn("could not export spans; they are dropped", "err", err, "failed_exports", n, "spans", len(spans))
	}
	return nil
}

// export posts one ExportTraceServiceRequest. Its errors never carry the
// endpoint's URL, which may hold a credential.
func (e *exporter) export(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	if stopped {
		return errStopped
	}
	if len(spans) == 0 {
		return nil
	}
	body := encodeRequest(spans)
	if e.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body) // a bytes.Buffer does not fail
		_ = zw.Close()
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("OTLP export: bad endpoint")
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if e.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("OTLP export: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("OTLP export: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Shutdown refuses later exports and closes idle connections.
func (e *exporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.client.CloseIdleConnections()
	return nil
}

// encodeRequest is an ExportTraceServiceRequest of spans: one
// ResourceSpans per resource, one ScopeSpans per instrumentation scope, in
// the order the spans come.
func encodeRequest(spans []sdktrace.ReadOnlySpan) []byte {
	var out []byte
	for i := 0; i < len(spans); {
		res := spans[i].Resource()
		j := i
		for j < len(spans) && spans[j].Resource() == res {
			j++
		}
		var rs []byte
		var r []byte
		if res != nil {
			for _, kv := range res.Attributes() {
				r = appendMessage(r, 1, appendKeyValue(nil, kv))
			}
		}
		rs = appendMessage(rs, 1, r)
		for k := i; k < j; {
			scope := spans[k].InstrumentationScope()
			l := k
			for l < j && spans[l].InstrumentationScope() == scope {
				l++
			}
			ss := appendMessage(nil, 1, appendScope(nil, scope))
			for _, s := range spans[k:l] {
				ss = appendMessage(ss, 2, appendSpan(nil, s))
			}
			if scope.SchemaURL != "" {
				ss = protowire.AppendTag(ss, 3, protowire.BytesType)
				ss = protowire.AppendString(ss, scope.SchemaURL)
			}
			rs = appendMessage(rs, 2, ss)
			k = l
		}
		if res != nil && res.SchemaURL() != "" {
			rs = protowire.AppendTag(rs, 3, protowire.BytesType)
			rs = protowire.AppendString(rs, res.SchemaURL())
		}
		out = appendMessage(out, 1, rs)
		i = j
	}
	return out
}

func appendScope(b []byte, s instrumentation.Scope) []byte {
	b = appendString(b, 1, s.Name)
	b = appendString(b, 2, s.Version)
	return b
}

// appendSpan encodes a Span.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, 1, tid[:])
	b = appendBytes(b, 2, sid[:])
	b = appendString(b, 3, sc.TraceState().String())
	if p := s.Parent(); p.HasSpanID() {
		psid := p.SpanID()
		b = appendBytes(b, 4, psid[:])
	}
	b = appendString(b, 5, s.Name())
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(s.SpanKind()))
	b = appendTime(b, 7, s.StartTime())
	b = appendTime(b, 8, s.EndTime())
	for _, kv := range s.Attributes() {
		b = appendMessage(b, 9, appendKeyValue(nil, kv))
	}
	b = appendCount(b, 10, s.DroppedAttributes())
	for _, ev := range s.Events() {
		var e []byte
		e = appendTime(e, 1, ev.Time)
		e = appendString(e, 2, ev.Name)
		for _, kv := range ev.Attributes {
			e = appendMessage(e, 3, appendKeyValue(nil, kv))
		}
		e = appendCount(e, 4, ev.DroppedAttributeCount)
		b = appendMessage(b, 11, e)
	}
	b = appendCount(b, 12, s.DroppedEvents())
	for _, ln := range s.Links() {
		ltid, lsid := ln.SpanContext.TraceID(), ln.SpanContext.SpanID()
		var l []byte
		l = appendBytes(l, 1, ltid[:])
		l = appendBytes(l, 2, lsid[:])
		l = appendString(l, 3, ln.SpanContext.TraceState().String())
		for _, kv := range ln.Attributes {
			l = appendMessage(l, 4, appendKeyValue(nil, kv))
		}
		l = appendCount(l, 5, ln.DroppedAttributeCount)
		b = appendMessage(b, 13, l)
	}
	b = appendCount(b, 14, s.DroppedLinks())
	var st []byte
	status := s.Status()
	st = appendString(st, 2, status.Description)
	if code := statusCode(status.Code); code != 0 {
		st = protowire.AppendTag(st, 3, protowire.VarintType)
		st = protowire.AppendVarint(st, code)
	}
	b = appendMessage(b, 15, st)
	b = protowire.AppendTag(b, 16, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, uint32(sc.TraceFlags()))
	return b
}

// statusCode is OTLP's Status.StatusCode (UNSET 0, OK 1, ERROR 2), which
// numbers them otherwise than the API's codes.
func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}

// appendKeyValue encodes a KeyValue with its AnyValue.
func appendKeyValue(b []byte, kv attribute.KeyValue) []byte {
	b = appendString(b, 1, string(kv.Key))
	return appendMessage(b, 2, appendAnyValue(nil, kv.Value))
}

func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.BOOLSLICE:
		var arr []byte
		for _, x := range v.AsBoolSlice() {
			arr = appendMessage(arr, 1, appendAnyValue(nil, attribute.BoolValue(x)))
		}
		b = appendMessage(b, 5, arr)
	case attribute.INT64SLICE:
		var arr []byte
		for _, x := range v.AsInt64Slice() {
			arr = appendMessage(arr, 1, appendAnyValue(nil, attribute.Int64Value(x)))
		}
		b = appendMessage(b, 5, arr)
	case attribute.FLOAT64SLICE:
		var arr []byte
		for _, x := range v.AsFloat64Slice() {
			arr = appendMessage(arr, 1, appendAnyValue(nil, attribute.Float64Value(x)))
		}
		b = appendMessage(b, 5, arr)
	case attribute.STRINGSLICE:
		var arr []byte
		for _, x := range v.AsStringSlice() {
			arr = appendMessage(arr, 1, appendAnyValue(nil, attribute.StringValue(x)))
		}
		b = appendMessage(b, 5, arr)
	default:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, v.String())
	}
	return b
}

// appendMessage appends field num holding the encoded message m (also
// when m is empty: a present, empty message is not an absent one).
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// appendString appends a string field, omitted when empty as proto3 does.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(t.UnixNano()))
}

func appendCount(b []byte, num protowire.Number, n int) []byte {
	if n <= 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(n))
}
