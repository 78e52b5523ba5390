package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice"
)

// Config is the service's configuration. Settings that shape the engine
// (DataDir, compression) are carried here so that one Validate names every
// mistake; whoever builds the Config passes them on to sluice.Open too.
// DefaultConfig returns the defaults each field documents. Config knows
// only its fields: the command that fills it from flags and environment
// variables names those (cmd/sluice).
type Config struct {
	// Addr is the listen address, host:port (default 127.0.0.1:8000).
	Addr string
	// DataDir is the durable embedded engine's directory (default "":
	// nothing is persisted).
	DataDir string
	// APIKeys, when non-empty, are required on every route except /health*,
	// /metrics and the dashboard's files (default none).
	APIKeys []string

	// QueueMaxSize bounds every queue served, including detections_queue
	// (default 10000; <= 0 means unbounded).
	QueueMaxSize int64
	// QueueOverflowPolicy applies to full queues (default dlq).
	QueueOverflowPolicy sluice.Policy
	// QueueBackpressureThreshold is the fill ratio reported as pressure
	// (default 0.8; in (0, 1]).
	QueueBackpressureThreshold float64

	// CompressionEnabled and CompressionThreshold configure stored-item
	// compression (default true, and 1024 bytes; the threshold >= 0).
	CompressionEnabled   bool
	CompressionThreshold int

	// IdempotencyWindow is how long an add's Idempotency-Key is remembered
	// (default 24h; 1ms to sluice.MaxIdempotencyWindow).
	IdempotencyWindow time.Duration

	// MaxBodyBytes bounds request bodies; larger ones get 413
	// (default 1 MiB; >= 1).
	MaxBodyBytes int64
	// LogFormat is "text" (default) or "json".
	LogFormat string

	// MaxWait caps the timeout of blocking gets and receives (default 60 s).
	MaxWait time.Duration
	// PollInterval is the longest single engine wait inside a blocking get:
	// between waits the server notices a departed client or a shutdown
	// without ever cancelling an engine call that may be popping an item
	// (default 1 s).
	PollInterval time.Duration
	// WriteTimeout bounds each engine write, which runs detached from the
	// request (default 10 s).
	WriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown of Run (default 30 s).
	ShutdownTimeout time.Duration

	// PingInterval is how often WebSocket clients are pinged (default 30 s);
	// one that does not answer within PingTimeout (default 10 s) is closed.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// IdleTimeout closes a WebSocket or SSE client that has been subscribed
	// to no channel and has sent nothing for this long (default 5 min).
	IdleTimeout time.Duration
	// ClientBuffer is how many message batches may wait for one slow
	// WebSocket or SSE client before it is disconnected with 1008
	// (default 256; a batch holds up to 64 messages).
	ClientBuffer int
	// FanoutLinger is how long the fan-out waits after a message for more
	// to send along in the same batch (default 5 ms; 0 sends each message
	// alone). It bounds the delay it adds, and under load it divides the
	// wake-ups and network writes per client by the batch size.
	FanoutLinger time.Duration
	// ReadHeaderTimeout bounds reading a request's headers (default 10 s);
	// BodyTimeout bounds reading its body (default 30 s): a client that
	// trickles its body is answered 408 and disconnected instead of
	// holding a connection and a goroutine forever. Neither applies to
	// waiting: long-poll receives and the WebSocket and SSE streams, which
	// send no body, are not cut off by them.
	ReadHeaderTimeout time.Duration
	BodyTimeout       time.Duration

	// Limits on what clients may make the server hold; see limits.go.
	Limits Limits

	// UI serves the dashboard at /ui/ and redirects / to it (default
	// true). Its files are public; the API calls it makes need a key as
	// any client's do. sluice serve turns it on by default only when it
	// listens on a loopback address (--ui).
	UI bool

	// WebSocketOrigins are host patterns (path.Match syntax) of pages on
	// other origins allowed to open WebSockets; same-origin requests and
	// clients that send no Origin are always allowed (default none).
	WebSocketOrigins []string
	// CORSOrigins are the origins ("https://app.example.com", scheme, host
	// and port as a browser sends them in Origin) whose pages may call the
	// API from another origin; "*" allows every origin. Preflights are
	// answered for them (default none: no CORS headers at all).
	CORSOrigins []string

	// Tracer, when set, gives every request an OpenTelemetry server span
	// named by its route ("POST /v1/queues/{name}/items"), continuing the
	// trace of an incoming W3C traceparent header (default nil: no
	// tracing). The span records the method, route and status code, never
	// the path's values, the query string, headers or bodies. Pass the
	// same provider to sluice.Config.TracerProvider so that the engine
	// calls become children of the request's span.
	Tracer trace.TracerProvider
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Addr:                       "127.0.0.1:8000",
		QueueMaxSize:               sluice.DefaultMaxSize,
		QueueOverflowPolicy:        sluice.DefaultPolicy,
		QueueBackpressureThreshold: sluice.DefaultPressureThreshold,
		CompressionEnabled:         true,
		CompressionThreshold:       1024,
		IdempotencyWindow:          sluice.DefaultIdempotencyWindow,
		MaxBodyBytes:               1 << 20,
		LogFormat:                  "text",
		MaxWait:                    60 * time.Second,
		PollInterval:               time.Second,
		WriteTimeout:               10 * time.Second,
		ShutdownTimeout:            30 * time.Second,
		PingInterval:               30 * time.Second,
		PingTimeout:                10 * time.Second,
		IdleTimeout:                5 * time.Minute,
		ClientBuffer:               256,
		FanoutLinger:               5 * time.Millisecond,
		ReadHeaderTimeout:          10 * time.Second,
		BodyTimeout:                30 * time.Second,
		Limits:                     DefaultLimits(),
		UI:                         true,
	}
}

// ConfigError is one invalid setting, named by its field ("Addr",
// "Limits.MaxQueues"). Validate joins one per mistake, so that a caller
// that filled the Config from flags or the environment can name those
// instead (errors.As, or walking the joined errors).
type ConfigError struct {
	// Field is the field's name; a limit's is "Limits." and its name.
	Field string
	// Value is the value as the error shows it (quoted when a string).
	Value string
	// Want says what a valid value is.
	Want string
}

func (e *ConfigError) Error() string { return e.Field + " " + e.Value + ": want " + e.Want }

// Validate reports every invalid setting, each a *ConfigError, joined and
// wrapped: "invalid configuration: ...".
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, want string, args ...any) {
		v := fmt.Sprint(value)
		if s, ok := value.(string); ok {
			v = strconv.Quote(s)
		}
		errs = append(errs, &ConfigError{Field: field, Value: v, Want: fmt.Sprintf(want, args...)})
	}

	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("Addr", c.Addr, "host:port (%v)", err)
	}
	for i, k := range c.APIKeys {
		if strings.TrimSpace(k) == "" {
			bad("APIKeys", fmt.Sprintf("key %d", i+1), "a key that is not empty")
		}
	}
	if _, err := sluice.ParsePolicy(string(c.QueueOverflowPolicy)); err != nil {
		bad("QueueOverflowPolicy", string(c.QueueOverflowPolicy), "reject, dlq or drop_oldest")
	}
	if !(c.QueueBackpressureThreshold > 0 && c.QueueBackpressureThreshold <= 1) {
		bad("QueueBackpressureThreshold", c.QueueBackpressureThreshold, "a ratio in (0, 1]")
	}
	if c.CompressionThreshold < 0 {
		bad("CompressionThreshold", c.CompressionThreshold, ">= 0 bytes")
	}
	if c.IdempotencyWindow < time.Millisecond || c.IdempotencyWindow > sluice.MaxIdempotencyWindow {
		bad("IdempotencyWindow", c.IdempotencyWindow, "1ms to %v", sluice.MaxIdempotencyWindow)
	}
	if c.MaxBodyBytes < 1 {
		bad("MaxBodyBytes", c.MaxBodyBytes, ">= 1")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("LogFormat", c.LogFormat, "text or json")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxWait", c.MaxWait}, {"PollInterval", c.PollInterval}, {"WriteTimeout", c.WriteTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout}, {"PingInterval", c.PingInterval},
		{"PingTimeout", c.PingTimeout}, {"IdleTimeout", c.IdleTimeout},
		{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"BodyTimeout", c.BodyTimeout},
	} {
		if d.v <= 0 {
			bad(d.name, d.v, "a positive duration")
		}
	}
	if c.FanoutLinger < 0 || c.FanoutLinger > time.Second {
		bad("FanoutLinger", c.FanoutLinger, "0 to 1s")
	}
	if c.ClientBuffer < 1 {
		bad("ClientBuffer", c.ClientBuffer, ">= 1")
	}
	for _, p := range c.WebSocketOrigins {
		if _, err := path.Match(p, ""); err != nil || strings.TrimSpace(p) == "" {
			bad("WebSocketOrigins", p, "a host pattern (path.Match syntax, such as *.example.com)")
		}
	}
	for _, o := range c.CORSOrigins {
		if !validOrigin(o) {
			bad("CORSOrigins", o, `"*" or an origin: scheme://host[:port], no path`)
		}
	}
	errs = append(errs, c.Limits.validate()...)
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// NewLogger returns a logger writing to w in the configured LogFormat.
func (c Config) NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// queueSettings are the settings every queue handle of the server gets.
func (c Config) queueSettings() sluice.QueueSettings {
	maxSize := c.QueueMaxSize
	if maxSize <= 0 {
		maxSize = sluice.Unbounded // as the field documents
	}
	return sluice.QueueSettings{
		MaxSize:           maxSize,
		Policy:            c.QueueOverflowPolicy,
		PressureThreshold: c.QueueBackpressureThreshold,
	}
}

// validOrigin reports whether o is "*" or an origin as browsers send it:
// http or https, a host, an optional port, nothing else.
func validOrigin(o string) bool {
	if o == "*" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil && !strings.HasSuffix(o, "/")
}
