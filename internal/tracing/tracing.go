// Package tracing sets up OpenTelemetry traces from the standard OTEL_*
// environment variables: off unless they ask for it, exported over OTLP
// HTTP/protobuf. It installs nothing globally: the caller passes the
// provider it gets to whatever should trace (server.Config.Tracer,
// sluice.Config.TracerProvider).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is the service.name of the spans when
// OTEL_SERVICE_NAME is not set.
const DefaultServiceName = "sluice"

// defaultEndpoint is where the OTLP HTTP exporter sends when no endpoint
// variable is set (the specification's default).
const defaultEndpoint = "http://localhost:4318/v1/traces"

// DefaultTimeout bounds one export when no OTEL_EXPORTER_OTLP_TIMEOUT is
// set (the specification's default).
const DefaultTimeout = 10 * time.Second

// ErrUnsupported is a setting asking for something this build cannot do
// (the gRPC protocol, an exporter other than OTLP, compression other than
// gzip, custom certificates).
var ErrUnsupported = errors.New("unsupported")

// Config is what the environment asks of tracing. ConfigFromEnv reads it;
// tests build it directly.
type Config struct {
	// Enabled turns tracing on; when false New returns a provider that
	// does nothing and costs nothing.
	Enabled bool
	// Endpoint is the full URL spans are POSTed to
	// (default http://localhost:4318/v1/traces).
	Endpoint string
	// Headers are sent with every export (they may hold credentials: they
	// are never logged).
	Headers map[string]string
	// Compression is "gzip" or "" (none).
	Compression string
	// Timeout bounds one export (default DefaultTimeout).
	Timeout time.Duration
	// ServiceName is the resource's service.name (default "sluice").
	ServiceName string
	// ServiceVersion is the resource's service.version.
	ServiceVersion string
}

// ConfigFromEnv reads the standard variables through getenv. Tracing is on
// when OTEL_TRACES_EXPORTER is "otlp", or when an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and
// OTEL_TRACES_EXPORTER is not "none"; OTEL_SDK_DISABLED=true turns it off.
// Only the http/protobuf protocol is supported: asking for grpc (or
// http/json) while tracing is on is an error naming the variable. Of the
// exporter's other settings, headers, compression (gzip) and timeout are
// read; certificates are refused (the system's roots verify https).
func ConfigFromEnv(getenv func(string) string, version string) (Config, error) {
	cfg := Config{ServiceName: DefaultServiceName, ServiceVersion: version}
	if v := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); v != "" {
		cfg.ServiceName = v
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return cfg, nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	traces := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	switch exporter {
	case "none":
		return cfg, nil
	case "otlp":
		cfg.Enabled = true
	case "":
		cfg.Enabled = base != "" || traces != ""
	default:
		return cfg, fmt.Errorf("OTEL_TRACES_EXPORTER %q: %w (want otlp or none)", exporter, ErrUnsupported)
	}
	if !cfg.Enabled {
		return cfg, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		p := strings.TrimSpace(getenv(name))
		if p == "" {
			continue
		}
		if p != "http/protobuf" {
			return cfg, fmt.Errorf("%s %q: %w (http/protobuf is supported)", name, p, ErrUnsupported)
		}
		break // the signal's own variable wins over the generic one
	}
	switch {
	case traces != "":
		cfg.Endpoint = traces // used as it is
	case base != "":
		cfg.Endpoint = strings.TrimRight(base, "/") + "/v1/traces"
	default:
		cfg.Endpoint = defaultEndpoint
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		name := "OTEL_EXPORTER_OTLP_ENDPOINT"
		if traces != "" {
			name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
		}
		// The URL may carry credentials: the error names the variable only.
		return cfg, fmt.Errorf("%s: want an http:// or https:// URL with a host", name)
	}
	h := getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
	name := "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	if strings.TrimSpace(h) == "" {
		h, name = getenv("OTEL_EXPORTER_OTLP_HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS"
	}
	if cfg.Headers, err = parseHeaders(h); err != nil {
		return cfg, fmt.Errorf("%s: %w", name, err)
	}
	name, v := signalVar(getenv, "COMPRESSION")
	switch v {
	case "", "none":
	case "gzip":
		cfg.Compression = "gzip"
	default:
		return cfg, fmt.Errorf("%s %q: %w (want gzip or none)", name, v, ErrUnsupported)
	}
	cfg.Timeout = DefaultTimeout
	if name, v := signalVar(getenv, "TIMEOUT"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 || ms > int64(time.Hour/time.Millisecond) {
			return cfg, fmt.Errorf("%s %q: want milliseconds, 1 to 3600000", name, v)
		}
		cfg.Timeout = time.Duration(ms) * time.Millisecond
	}
	for _, what := range []string{"CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
		if name, v := signalVar(getenv, what); v != "" {
			return cfg, fmt.Errorf("%s: %w (the system's roots verify https endpoints)", name, ErrUnsupported)
		}
	}
	return cfg, nil
}

// signalVar reads OTEL_EXPORTER_OTLP_TRACES_<what>, else the generic
// OTEL_EXPORTER_OTLP_<what>, and says which one it read.
func signalVar(getenv func(string) string, what string) (name, value string) {
	name = "OTEL_EXPORTER_OTLP_TRACES_" + what
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return name, v
	}
	name = "OTEL_EXPORTER_OTLP_" + what
	return name, strings.TrimSpace(getenv(name))
}

// parseHeaders reads the specification's "k1=v1,k2=v2" with URL-encoded
// values. Its errors never repeat a value, which may be a token.
func parseHeaders(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := make(map[string]string)
	for i, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d: want key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s): value is not URL-encoded", i+1, k)
		}
		out[k] = dv
	}
	return out, nil
}

// EndpointHost is the host (and port) of the endpoint, the one part of the
// configuration fit for a log: the path, query and headers may carry
// credentials. "" when tracing is off.
func (c Config) EndpointHost() string {
	if !c.Enabled {
		return ""
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return ""
	}
	return u.Host
}

// Provider is tracing as configured: a TracerProvider (nil when off) and
// the way to flush and stop it.
type Provider struct {
	// TracerProvider makes the tracers; nil when tracing is off, so that
	// callers skip tracing entirely.
	TracerProvider trace.TracerProvider
	shutdown       func(context.Context) error
}

// New builds the provider cfg describes. When tracing is on it owns a
// batching span processor (and its goroutine) until Shutdown. The SDK reads
// the sampler (OTEL_TRACES_SAMPLER) and batching (OTEL_BSP_*) settings
// from the process environment. Failed exports are logged to log (nil:
// discarded), at most once a minute.
func New(cfg Config, log *slog.Logger) (*Provider, error) {
	if !cfg.Enabled {
		return &Provider{}, nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if _, err := url.Parse(cfg.Endpoint); err != nil {
		return nil, errors.New("tracing: endpoint is not a URL")
	}
	exp := newExporter(cfg, log)
	name := cfg.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", name),
		attribute.String("service.version", cfg.ServiceVersion),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{TracerProvider: tp, shutdown: tp.Shutdown}, nil
}

// Shutdown exports the spans still buffered and stops the exporter, or
// gives up when ctx ends. It does nothing when tracing is off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.shutdown == nil {
		return nil
	}
	if err := p.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
