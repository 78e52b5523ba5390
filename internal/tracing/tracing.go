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
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
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

// ErrUnsupported is a setting asking for something this build cannot do
// (the gRPC protocol, an exporter other than OTLP).
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
// http/json) while tracing is on is an error naming the variable.
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
	return cfg, nil
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
// batching exporter (and its goroutine) until Shutdown. The exporter reads
// the remaining standard settings (timeout, compression, certificates) and
// the SDK the sampler and batching ones from the process environment.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if !cfg.Enabled {
		return &Provider{}, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
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
