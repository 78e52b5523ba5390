// Package sluice gives Go backends bounded work queues with atomic overflow
// policies, blocking and acknowledged consumption, dead-letter queues,
// pub/sub, a TTL cache, distributed locks and batch consumers, on Redis
// (standalone, Sentinel, Cluster) or on an embedded in-process engine with
// the same semantics.
//
// Open a client with a URL:
//
//	""  or "mem://"                  embedded engine, in memory
//	"file:///var/lib/sluice"         embedded engine, durable (append-only log);
//	"file:data" or "file://./data"   the same, relative to the working directory
//	"redis://[user:pass@]host:6379/0" Redis; "rediss://" for TLS
//	"redis+cluster://h1:7000,h2:7001/" Redis Cluster
//	"redis+sentinel://h1:26379,h2:26379/mymaster/0" Sentinel-managed primary
//
// Everything Sluice writes to Redis is what the original Python service
// writes (see the README's compatibility section): a Python producer and a
// Go consumer can share a queue.
package sluice

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/internal/codec"
	"github.com/sluicehq/sluice/internal/engine"
)

// Version is the release of this module, printed by `sluice version`.
const Version = "0.1.0"

// Default queue settings (docs/compat.md).
const (
	DefaultMaxSize           = 10000
	DefaultPolicy            = PolicyDLQ
	DefaultPressureThreshold = 0.8
)

// Unbounded as a MaxSize means the queue has no capacity limit.
const Unbounded int64 = -1

// Policy is what an add does when the queue is full.
type Policy string

// The overflow policies. Unknown names behave as PolicyReject.
const (
	// PolicyReject writes nothing and returns ErrQueueFull (safest).
	PolicyReject Policy = "reject"
	// PolicyDLQ moves the oldest items to the overflow DLQ, then pushes.
	PolicyDLQ Policy = "dlq"
	// PolicyDropOldest pushes, then trims the oldest items (telemetry).
	PolicyDropOldest Policy = "drop_oldest"
)

// ParsePolicy parses a policy name strictly (for user input). Use it where
// a typo should be an error rather than silently meaning reject.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyReject, PolicyDLQ, PolicyDropOldest:
		return p, nil
	}
	return "", fmt.Errorf("sluice: %w: unknown overflow policy %q (want reject, dlq or drop_oldest)", ErrInvalidArgument, s)
}

// QueueDefaults are the settings a queue gets unless its QueueOptions or an
// add's options say otherwise.
type QueueDefaults struct {
	// MaxSize bounds each queue; 0 means DefaultMaxSize; Unbounded (or any
	// negative value) means no bound.
	MaxSize int64
	// Policy applies when a queue is full; "" means DefaultPolicy.
	Policy Policy
	// PressureThreshold is the fill ratio at which a queue reports pressure;
	// 0 means DefaultPressureThreshold.
	PressureThreshold float64
	// Lease is how long a received item stays invisible to other consumers
	// before it is delivered again; 0 means DefaultLease (30 s).
	Lease time.Duration
	// MaxDeliveries is how many deliveries an item gets before it moves to
	// the failed DLQ; 0 means DefaultMaxDeliveries (5).
	MaxDeliveries int
}

func (d QueueDefaults) withDefaults() QueueDefaults {
	if d.MaxSize == 0 {
		d.MaxSize = DefaultMaxSize
	}
	if d.MaxSize < 0 {
		d.MaxSize = Unbounded
	}
	if d.Policy == "" {
		d.Policy = DefaultPolicy
	}
	if d.PressureThreshold == 0 {
		d.PressureThreshold = DefaultPressureThreshold
	}
	if d.Lease <= 0 {
		d.Lease = DefaultLease
	}
	if d.MaxDeliveries <= 0 {
		d.MaxDeliveries = DefaultMaxDeliveries
	}
	return d
}

// Config is everything Open needs besides the URL. Options modify it; the
// zero value is usable and every field documents its default.
type Config struct {
	// Queue holds the defaults for every queue of this client.
	Queue QueueDefaults
	// Compression: items whose serialized form is longer than
	// CompressionThreshold bytes are stored as "Z:" + base64(zstd).
	// On by default (DisableCompression turns it off); threshold 1024.
	DisableCompression   bool
	CompressionThreshold int
	// Password is used when the URL carries none (REDIS_PASSWORD).
	Password string
	// TLS configures rediss:// connections.
	TLS TLSOptions
	// KeyPrefix is prepended to every Redis key and channel (off by default,
	// as in the original service).
	KeyPrefix string
	// ClientSideCache enables Redis server-assisted client-side caching for
	// Cache.GetCached (off by default).
	ClientSideCache bool
	// Fsync is the durable embedded engine's fsync policy: "everysec"
	// (default) or "always". Under both, a call that changes state returns
	// only after its record was written to the log file: a crash of the
	// process loses nothing that was acknowledged. "everysec" fsyncs once
	// a second, so a crash of the machine can lose about the last second;
	// "always" fsyncs before the call returns (concurrent calls share one
	// fsync).
	Fsync string
	// MinReplicasAck makes each add (and DLQ requeue) wait until that many
	// replicas have the write (Redis WAIT, up to 1 s) before reporting
	// success; fewer confirmations fail the call with an error saying the
	// primary applied the write but it may not survive a failover.
	// 0 (default): no wait. Ignored by the embedded engine.
	MinReplicasAck int
	// Logger receives connection and recovery events, lost locks, failed
	// batches and what the durable engine's replay found. Default: nothing
	// is logged (a library does not write to the process's default logger
	// unasked); pass slog.Default() to log there.
	Logger *slog.Logger
}

// TLSOptions configure TLS to Redis.
type TLSOptions struct {
	CAFile   string // PEM CA bundle to verify the server with
	CertFile string // client certificate for mutual TLS
	KeyFile  string // client key for mutual TLS
	// Verify is "required" (default) or "none" (no server verification).
	Verify     string
	ServerName string // overrides the name checked in the certificate
}

// Option changes a Config.
type Option func(*Config)

// WithConfig replaces the whole configuration, including what options
// before it set: give it first.
func WithConfig(c Config) Option { return func(dst *Config) { *dst = c } }

// WithQueueDefaults sets the defaults of every queue.
func WithQueueDefaults(d QueueDefaults) Option { return func(c *Config) { c.Queue = d } }

// WithCompression turns compression on or off and sets its threshold
// (0 keeps the default of 1024 bytes).
func WithCompression(enabled bool, threshold int) Option {
	return func(c *Config) {
		c.DisableCompression = !enabled
		c.CompressionThreshold = threshold
	}
}

// WithPassword sets the Redis password used when the URL has none.
func WithPassword(p string) Option { return func(c *Config) { c.Password = p } }

// WithTLS configures TLS.
func WithTLS(t TLSOptions) Option { return func(c *Config) { c.TLS = t } }

// WithKeyPrefix prefixes every key and channel.
func WithKeyPrefix(p string) Option { return func(c *Config) { c.KeyPrefix = p } }

// WithLogger sets the logger the client reports to (see Config.Logger);
// without it nothing is logged.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// WithFsync sets the durable embedded engine's fsync policy: "everysec"
// (default) or "always"; see Config.Fsync for what each guarantees.
func WithFsync(policy string) Option { return func(c *Config) { c.Fsync = policy } }

// WithClientSideCache turns on Redis server-assisted client-side caching
// for Cache.GetCached.
func WithClientSideCache(on bool) Option { return func(c *Config) { c.ClientSideCache = on } }

// WithMinReplicasAck makes every add wait until n replicas have it (Redis
// WAIT) before it reports success.
func WithMinReplicasAck(n int) Option { return func(c *Config) { c.MinReplicasAck = n } }

// Client is a connection to one engine. It is safe for concurrent use;
// Close releases everything it owns.
type Client struct {
	eng    engine.Engine
	codec  *codec.Codec
	cfg    Config
	log    *slog.Logger
	closer func() error
	cache  *Cache
}

// discardLogger is the logger of a client given none.
var discardLogger = slog.New(slog.DiscardHandler)

func newClient(eng engine.Engine, cfg Config, closer func() error) (*Client, error) {
	cfg.Queue = cfg.Queue.withDefaults()
	cd, err := codec.New(codec.Options{Compress: !cfg.DisableCompression, Threshold: cfg.CompressionThreshold})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = discardLogger
	}
	c := &Client{eng: eng, codec: cd, cfg: cfg, log: log, closer: closer}
	c.cache = &Cache{c: c}
	return c, nil
}

// Close releases the client's engine and connections. Blocked calls
// return ErrClosed.
func (c *Client) Close() error {
	var err error
	if c.closer != nil {
		err = c.closer()
	}
	c.codec.Close()
	return err
}

// EngineKind is "redis" or "embedded".
func (c *Client) EngineKind() string { return c.eng.Kind() }

// Config returns the effective configuration (defaults filled in), with
// the password masked.
func (c *Client) Config() Config {
	cfg := c.cfg
	if cfg.Password != "" {
		cfg.Password = "xxxxx"
	}
	return cfg
}

// Health is docs/compat.md's health shape.
type Health struct {
	Status       string `json:"status"` // "healthy" or "unhealthy"
	Connected    bool   `json:"connected"`
	RedisVersion string `json:"redis_version,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Health checks the engine. It never fails: problems are described in the
// result. A ctx without deadline gets one of 5 s.
func (c *Client) Health(ctx context.Context) Health {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	h := c.eng.Health(ctx)
	return Health{Status: h.Status, Connected: h.Connected, RedisVersion: h.Version, Error: h.Error}
}
