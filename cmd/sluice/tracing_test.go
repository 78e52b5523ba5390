package main

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it is sent.
type otlpReceiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	spans   []*tracepb.Span
	service []string // service.name of each resource
	auth    []string // Authorization header of each export
	errs    []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.handle))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *otlpReceiver) handle(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		rc.errs = append(rc.errs, r.Method+" "+r.URL.Path)
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			rc.errs = append(rc.errs, err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(data, &req)
	}
	if err != nil {
		rc.errs = append(rc.errs, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				rc.service = append(rc.service, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			rc.spans = append(rc.spans, ss.GetSpans()...)
		}
	}
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// TestServeExportsTraces runs `sluice serve` with an OTLP endpoint, adds
// a detection, stops the service (which flushes the spans) and finds the
// request's span with the engine call's span as its child.
func TestServeExportsTraces(t *testing.T) {
	t.Parallel()
	rc := newOTLPReceiver(t)
	const token = "Bearer otlp-s3cret"
	s := startService(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rc.srv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":  "Authorization=" + strings.ReplaceAll(token, " ", "%20"),
	}, "--data-dir", t.TempDir())
	if code, body := s.do(t, http.MethodPost, "/detections", `{"camera": "front"}`, map[string]string{
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}); code != http.StatusOK {
		t.Fatalf("POST /detections: %d %s", code, body)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("exit %d\n%s", code, s.log.String())
	}
	log := s.log.String()
	host := strings.TrimPrefix(rc.srv.URL, "http://")
	if !strings.Contains(log, "tracing on") || !strings.Contains(log, "endpoint_host="+host) {
		t.Errorf("the log does not say tracing is on to %s:\n%s", host, log)
	}
	if strings.Contains(log, "s3cret") {
		t.Errorf("the log shows the OTLP headers:\n%s", log)
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.errs) > 0 {
		t.Fatalf("receiver: %v", rc.errs)
	}
	var req, add *tracepb.Span
	for _, sp := range rc.spans {
		switch sp.GetName() {
		case "POST /detections":
			req = sp
		case "sluice queue.add":
			add = sp
		}
	}
	if req == nil || add == nil {
		var names []string
		for _, sp := range rc.spans {
			names = append(names, sp.GetName())
		}
		t.Fatalf("no request span with an engine span; got %v", names)
	}
	if req.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span kind %v", req.GetKind())
	}
	if string(add.GetParentSpanId()) != string(req.GetSpanId()) || string(add.GetTraceId()) != string(req.GetTraceId()) {
		t.Error("the engine span is not the request span's child")
	}
	if got := string(req.GetParentSpanId()); got != "\xb7\xad\x6b\x71\x69\x20\x33\x31" {
		t.Errorf("the request span does not continue the incoming traceparent (parent %x)", got)
	}
	for _, name := range rc.service {
		if name != "sluice" {
			t.Errorf("service.name %q", name)
		}
	}
	for _, a := range rc.auth {
		if a != token {
			t.Errorf("export sent Authorization %q, want the one OTEL_EXPORTER_OTLP_HEADERS gives", a)
		}
	}
}

// TestServeTracingOffByDefault: with no OTEL_* variable the service says
// tracing is off.
func TestServeTracingOffByDefault(t *testing.T) {
	t.Parallel()
	s := startService(t, nil)
	if code, body := s.do(t, http.MethodPost, "/detections", `{"camera": "front"}`, nil); code != http.StatusOK {
		t.Fatalf("POST /detections: %d %s", code, body)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if log := s.log.String(); !strings.Contains(log, "tracing off") || strings.Contains(log, "tracing on") {
		t.Errorf("the log does not say tracing is off:\n%s", log)
	}
}

func TestServeRefusesGRPC(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		r := cli(t, map[string]string{"OTEL_TRACES_EXPORTER": "otlp", name: "grpc"}, "", "serve", "--addr", "127.0.0.1:0").want(t, exitUsage)
		if !strings.Contains(r.stderr, name) || !strings.Contains(r.stderr, "http/protobuf is supported") {
			t.Errorf("%s=grpc: stderr does not name the variable and the supported protocol:\n%s", name, r.stderr)
		}
	}
}
