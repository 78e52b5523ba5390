package tracing

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		env      map[string]string
		enabled  bool
		endpoint string
	}{
		{"nothing set", nil, false, ""},
		{"exporter otlp alone", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, "http://localhost:4318/v1/traces"},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, true, "http://collector:4318/v1/traces"},
		{"traces endpoint as it is", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://other:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector/custom/path",
		}, true, "https://collector/custom/path"},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false, ""},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, ""},
		{"http/protobuf accepted", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, "http://localhost:4318/v1/traces"},
		{"grpc ignored when off", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, ""},
		{"traces protocol wins over the generic one", map[string]string{
			"OTEL_TRACES_EXPORTER":               "otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
		}, true, "http://localhost:4318/v1/traces"},
	}
	for _, c := range cases {
		cfg, err := ConfigFromEnv(envOf(c.env), "1.2.3")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if cfg.Enabled != c.enabled || (c.enabled && cfg.Endpoint != c.endpoint) {
			t.Errorf("%s: enabled %v endpoint %q, want %v %q", c.name, cfg.Enabled, cfg.Endpoint, c.enabled, c.endpoint)
		}
		if cfg.ServiceName != DefaultServiceName || cfg.ServiceVersion != "1.2.3" {
			t.Errorf("%s: service %q %q", c.name, cfg.ServiceName, cfg.ServiceVersion)
		}
	}
}

func TestConfigFromEnvRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  map[string]string
		want string // the variable the error names
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
	}
	for _, c := range cases {
		_, err := ConfigFromEnv(envOf(c.env), "v")
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want ErrUnsupported naming %s", c.env, err, c.want)
		}
		if err != nil && c.want != "OTEL_TRACES_EXPORTER" && !strings.Contains(err.Error(), "http/protobuf is supported") {
			t.Errorf("%v: %v does not say what is supported", c.env, err)
		}
	}
}

// TestConfigErrorsHideSecrets: a bad endpoint or header list is named by
// its variable, never repeated (either may carry a credential).
func TestConfigErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://user:s3cret@host"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "s3cret"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "Authorization"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Authorization=Bearer%zzs3cret"},
	} {
		_, err := ConfigFromEnv(envOf(env), "v")
		if err == nil {
			t.Errorf("%v: accepted", env)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v: error repeats the secret: %v", env, err)
		}
		named := false
		for k := range env {
			if strings.HasPrefix(err.Error(), k) && k != "OTEL_TRACES_EXPORTER" {
				named = true
			}
		}
		if !named {
			t.Errorf("%v: error %q does not start with the variable", env, err)
		}
	}
}

func TestHeadersAndServiceName(t *testing.T) {
	t.Parallel()
	cfg, err := ConfigFromEnv(envOf(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:pw@collector.example:4318/base?x=1",
		"OTEL_EXPORTER_OTLP_HEADERS":  "Authorization=Bearer%20abc, x-tenant = t1",
		"OTEL_SERVICE_NAME":           "queue-svc",
	}), "v")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Headers["Authorization"] != "Bearer abc" || cfg.Headers["x-tenant"] != "t1" || len(cfg.Headers) != 2 {
		t.Errorf("headers %v", cfg.Headers)
	}
	if cfg.ServiceName != "queue-svc" {
		t.Errorf("service name %q", cfg.ServiceName)
	}
	if h := cfg.EndpointHost(); h != "collector.example:4318" {
		t.Errorf("EndpointHost = %q, want the host and port alone", h)
	}
}

func TestNewOffInstallsNothing(t *testing.T) {
	t.Parallel()
	p, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.TracerProvider != nil {
		t.Error("a provider when tracing is off")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestNewOnShutsDown(t *testing.T) {
	t.Parallel()
	p, err := New(Config{Enabled: true, Endpoint: "http://127.0.0.1:1/v1/traces", ServiceVersion: "v"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.TracerProvider == nil {
		t.Fatal("no provider when tracing is on")
	}
	// Nothing was traced: the shutdown has nothing to send and stops the
	// batcher's goroutine (goleak checks).
	if err := p.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}
