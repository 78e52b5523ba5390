package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
)

// Config is the service's configuration: every setting of `sluice serve`
// except the engine URL. Settings that shape the engine (DataDir,
// compression) are carried here so that one Validate names every mistake;
// the command passes them on to sluice.Open. DefaultConfig returns the
// defaults each field documents.
type Config struct {
	// Addr is the listen address (SLUICE_ADDR; default 127.0.0.1:8000).
	Addr string
	// DataDir makes the embedded engine durable (SLUICE_DATA_DIR; default
	// "": nothing is persisted).
	DataDir string
	// APIKeys, when non-empty, are required on every route except /health*
	// and /metrics (SLUICE_API_KEYS, comma-separated; default none).
	APIKeys []string

	// QueueMaxSize bounds every queue served, including detections_queue
	// (QUEUE_MAX_SIZE; default 10000; <= 0 means unbounded).
	QueueMaxSize int64
	// QueueOverflowPolicy applies to full queues (QUEUE_OVERFLOW_POLICY;
	// default dlq).
	QueueOverflowPolicy sluice.Policy
	// QueueBackpressureThreshold is the fill ratio reported as pressure
	// (QUEUE_BACKPRESSURE_THRESHOLD; default 0.8; in (0, 1]).
	QueueBackpressureThreshold float64

	// CompressionEnabled and CompressionThreshold configure stored-item
	// compression (REDIS_COMPRESSION_ENABLED, default true;
	// REDIS_COMPRESSION_THRESHOLD, default 1024 bytes).
	CompressionEnabled   bool
	CompressionThreshold int

	// IdempotencyWindow is how long an add's Idempotency-Key is remembered
	// (--idempotency-window; default 24h; 1ms to 365 days).
	IdempotencyWindow time.Duration

	// MaxBodyBytes bounds request bodies; larger ones get 413
	// (--max-body-bytes; default 1 MiB).
	MaxBodyBytes int64
	// LogFormat is "text" (default) or "json" (--log-format).
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

	// WebSocketOrigins are host patterns (path.Match syntax) of pages on
	// other origins allowed to open WebSockets; same-origin requests and
	// clients that send no Origin are always allowed (default none).
	WebSocketOrigins []string
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
	}
}

// Validate reports every invalid setting, each named as the user sets it.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("--addr/SLUICE_ADDR %q: want host:port: %v", c.Addr, err)
	}
	for i, k := range c.APIKeys {
		if strings.TrimSpace(k) == "" {
			bad("--api-keys/SLUICE_API_KEYS: key %d is empty", i+1)
		}
	}
	if _, err := sluice.ParsePolicy(string(c.QueueOverflowPolicy)); err != nil {
		bad("QUEUE_OVERFLOW_POLICY %q: want reject, dlq or drop_oldest", c.QueueOverflowPolicy)
	}
	if !(c.QueueBackpressureThreshold > 0 && c.QueueBackpressureThreshold <= 1) {
		bad("QUEUE_BACKPRESSURE_THRESHOLD %v: want a ratio in (0, 1]", c.QueueBackpressureThreshold)
	}
	if c.CompressionThreshold < 0 {
		bad("REDIS_COMPRESSION_THRESHOLD %d: want >= 0 bytes", c.CompressionThreshold)
	}
	if c.IdempotencyWindow < time.Millisecond || c.IdempotencyWindow > sluice.MaxIdempotencyWindow {
		bad("--idempotency-window %v: want 1ms to %v", c.IdempotencyWindow, sluice.MaxIdempotencyWindow)
	}
	if c.MaxBodyBytes < 1 {
		bad("--max-body-bytes %d: want >= 1", c.MaxBodyBytes)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("--log-format %q: want text or json", c.LogFormat)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxWait", c.MaxWait}, {"PollInterval", c.PollInterval}, {"WriteTimeout", c.WriteTimeout},
		{"ShutdownTimeout (--shutdown-timeout)", c.ShutdownTimeout}, {"PingInterval", c.PingInterval},
		{"PingTimeout", c.PingTimeout}, {"IdleTimeout", c.IdleTimeout},
		{"ReadHeaderTimeout (--read-header-timeout)", c.ReadHeaderTimeout}, {"BodyTimeout (--body-timeout)", c.BodyTimeout},
	} {
		if d.v <= 0 {
			bad("server %s %v: want a positive duration", d.name, d.v)
		}
	}
	if c.FanoutLinger < 0 || c.FanoutLinger > time.Second {
		bad("server FanoutLinger %v: want 0 to 1s", c.FanoutLinger)
	}
	if c.ClientBuffer < 1 {
		bad("server ClientBuffer %d: want >= 1", c.ClientBuffer)
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
		maxSize = sluice.Unbounded // QUEUE_MAX_SIZE's convention
	}
	return sluice.QueueSettings{
		MaxSize:           maxSize,
		Policy:            c.QueueOverflowPolicy,
		PressureThreshold: c.QueueBackpressureThreshold,
	}
}
