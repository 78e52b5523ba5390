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

	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice/internal/codec"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/engine/traced"
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

// QueueSettings are a queue's settings: every queue of a client gets
// Config.Queue, and Client.QueueWith gives one queue its own. In
// Config.Queue the zero value of each field means its default; in
// QueueWith, the client's setting.
type QueueSettings struct {
	// MaxSize bounds the queue: 0 means DefaultMaxSize, Unbounded means no
	// bound; any other negative value is invalid (ErrInvalidArgument).
	MaxSize int64
	// Policy applies when the queue is full; "" means DefaultPolicy.
	Policy Policy
	// PressureThreshold is the fill ratio at which the queue reports
	// pressure, in (0, 1]; 0 means DefaultPressureThreshold.
	PressureThreshold float64
	// Lease is how long a received item stays invisible to other consumers
	// before it is delivered again; 0 means DefaultLease (30 s).
	Lease time.Duration
	// MaxDeliveries is how many deliveries an item gets before it moves to
	// the failed DLQ; 0 means DefaultMaxDeliveries (5).
	MaxDeliveries int
}

// withDefaults fills in the zero fields. Invalid values are left as they
// are for validate to report.
func (s QueueSettings) withDefaults() QueueSettings {
	return s.or(QueueSettings{
		MaxSize: DefaultMaxSize, Policy: DefaultPolicy, PressureThreshold: DefaultPressureThreshold,
		Lease: DefaultLease, MaxDeliveries: DefaultMaxDeliveries,
	})
}

// or returns s with its zero fields taken from d.
func (s QueueSettings) or(d QueueSettings) QueueSettings {
	if s.MaxSize == 0 {
		s.MaxSize = d.MaxSize
	}
	if s.Policy == "" {
		s.Policy = d.Policy
	}
	if s.PressureThreshold == 0 {
		s.PressureThreshold = d.PressureThreshold
	}
	if s.Lease == 0 {
		s.Lease = d.Lease
	}
	if s.MaxDeliveries == 0 {
		s.MaxDeliveries = d.MaxDeliveries
	}
	return s
}

// validate reports settings no default can mend.
func (s QueueSettings) validate() error {
	if err := validMaxSize("queue MaxSize", s.MaxSize); err != nil {
		return err
	}
	// Written so that NaN fails too.
	if !(s.PressureThreshold >= 0 && s.PressureThreshold <= 1) {
		return fmt.Errorf("%w: queue PressureThreshold %v (want a fill ratio in (0, 1], or 0 for the default)", ErrInvalidArgument, s.PressureThreshold)
	}
	if s.Lease < 0 {
		return fmt.Errorf("%w: negative queue Lease %v", ErrInvalidArgument, s.Lease)
	}
	if s.MaxDeliveries < 0 {
		return fmt.Errorf("%w: negative queue MaxDeliveries %d", ErrInvalidArgument, s.MaxDeliveries)
	}
	return nil
}

// validMaxSize accepts 0 (default), Unbounded and positive sizes.
func validMaxSize(what string, n int64) error {
	if n < 0 && n != Unbounded {
		return fmt.Errorf("%w: %s %d (want a positive size, 0 for the default or Unbounded)", ErrInvalidArgument, what, n)
	}
	return nil
}

// Fsync is the durable embedded engine's fsync policy.
type Fsync string

// The fsync policies. Under both, a call that changes state returns only
// after its record was written to the log file: a crash of the process
// loses nothing that was acknowledged.
const (
	// FsyncEverySec (the default) fsyncs once a second: a crash of the
	// machine can lose about the last second.
	FsyncEverySec Fsync = "everysec"
	// FsyncAlways fsyncs before the call returns (concurrent calls share
	// one fsync).
	FsyncAlways Fsync = "always"
)

// TLSVerify says whether the Redis server's certificate is verified.
type TLSVerify string

// The TLS verification modes.
const (
	// TLSVerifyRequired (the default) verifies the server's certificate.
	TLSVerifyRequired TLSVerify = "required"
	// TLSVerifyNone skips verification; for tests only.
	TLSVerifyNone TLSVerify = "none"
)

// EngineKind names the engine behind a client.
type EngineKind string

// The engines.
const (
	// EngineRedis is Redis: standalone, Sentinel or Cluster.
	EngineRedis EngineKind = "redis"
	// EngineEmbedded is the in-process engine, in memory (mem://) or
	// durable (file://).
	EngineEmbedded EngineKind = "embedded"
)

// Config is everything Open needs besides the URL. A nil *Config and the
// zero value both mean every default; each field documents its own, and
// WithDefaults shows them filled in.
type Config struct {
	// Queue holds the settings of every queue of this client (QueueWith
	// gives one queue others).
	Queue QueueSettings
	// Compression: items whose serialized form is longer than
	// CompressionThreshold bytes are stored as "Z:" + base64(zstd).
	// On by default (DisableCompression turns it off); a threshold of 0
	// means DefaultCompressionThreshold (1024).
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
	// Fsync is the durable embedded engine's fsync policy; "" means
	// FsyncEverySec. See the constants for what each guarantees.
	Fsync Fsync
	// MinReplicasAck makes each add (and DLQ requeue) wait until that many
	// replicas have the write (Redis WAIT, up to 1 s) before reporting
	// success; fewer confirmations fail the call with an error saying the
	// primary applied the write but it may not survive a failover.
	// 0 (default): no wait. Ignored by the embedded engine.
	MinReplicasAck int
	// Logger receives connection and recovery events, lost locks, failed
	// batches and what the durable engine's replay found. Default (nil):
	// nothing is logged (a library does not write to the process's default
	// logger unasked); pass slog.Default() to log there.
	Logger *slog.Logger
	// TracerProvider, when set, traces the client's engine calls: one
	// OpenTelemetry span per queue add, pop, receive, ack, nack, extend,
	// release and reclaim, DLQ list, requeue and purge, publish, cache
	// get, set and delete, and lock acquire, release and refresh, each a
	// child of the span in the call's context. Spans carry the engine
	// kind, the operation, the queue name and item counts, never items,
	// values, keys or tokens. RunMaintainer's sweeps are not traced.
	// Default (nil): no tracing, at no cost.
	TracerProvider trace.TracerProvider
	// Test holds settings for tests only.
	Test TestConfig
}

// TestConfig holds settings that let tests control the client. Production
// code leaves it zero.
type TestConfig struct {
	// Time, when set, is the embedded engine's clock for lease deadlines,
	// cache TTLs, lock expiry and idempotency windows, so that a test can
	// move time forward instead of waiting (blocking calls still wait in
	// real time). Default: time.Now. The Redis engine ignores it: there
	// those deadlines run on the server's clock.
	Time func() time.Time
}

// DefaultCompressionThreshold is the default Config.CompressionThreshold
// in bytes (docs/compat.md).
const DefaultCompressionThreshold = 1024

// TLSOptions configure TLS to Redis.
type TLSOptions struct {
	CAFile   string // PEM CA bundle to verify the server with
	CertFile string // client certificate for mutual TLS
	KeyFile  string // client key for mutual TLS
	// Verify is TLSVerifyRequired or TLSVerifyNone; "" means
	// TLSVerifyRequired.
	Verify     TLSVerify
	ServerName string // overrides the name checked in the certificate
}

// WithDefaults returns a copy of c with every default filled in; c is not
// changed. A nil c gives the default configuration. Invalid values are
// copied as they are: Open reports them.
func (c *Config) WithDefaults() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	out.Queue = out.Queue.withDefaults()
	if out.CompressionThreshold == 0 {
		out.CompressionThreshold = DefaultCompressionThreshold
	}
	if out.TLS.Verify == "" {
		out.TLS.Verify = TLSVerifyRequired
	}
	if out.Fsync == "" {
		out.Fsync = FsyncEverySec
	}
	if out.Logger == nil {
		out.Logger = discardLogger
	}
	return &out
}

// validate reports settings no default can mend, each with
// ErrInvalidArgument. It is the one place they are checked; Open and
// NewFromRueidis call it on the configuration with its defaults filled in.
func (c *Config) validate() error {
	if err := c.Queue.validate(); err != nil {
		return err
	}
	if c.CompressionThreshold < 0 {
		return fmt.Errorf("%w: negative CompressionThreshold %d", ErrInvalidArgument, c.CompressionThreshold)
	}
	switch c.Fsync {
	case FsyncEverySec, FsyncAlways:
	default:
		return fmt.Errorf("%w: fsync policy %q (want always or everysec)", ErrInvalidArgument, c.Fsync)
	}
	switch c.TLS.Verify {
	case TLSVerifyRequired, TLSVerifyNone:
	default:
		return fmt.Errorf("%w: TLS verify %q (want required or none)", ErrInvalidArgument, c.TLS.Verify)
	}
	if c.MinReplicasAck < 0 {
		return fmt.Errorf("%w: negative MinReplicasAck %d", ErrInvalidArgument, c.MinReplicasAck)
	}
	return nil
}

// Client is a connection to one engine. It is safe for concurrent use;
// Close releases everything it owns.
type Client struct {
	eng    engine.Engine
	codec  *codec.Codec
	cfg    Config
	log    *slog.Logger
	closer func() error
	cache  *Cache
	// settings remembers declared settings read for receives' defaults.
	settings settingsCache
	// topology is Topology's answer, set by the constructor.
	topology Topology
}

// now is the clock of the client's deadlines: Config.Test.Time when set
// and the engine is the embedded one (Redis ignores it), else time.Now.
func (c *Client) now() time.Time {
	if c.cfg.Test.Time != nil && c.eng.Kind() == string(EngineEmbedded) {
		return c.cfg.Test.Time()
	}
	return time.Now()
}

// discardLogger is the logger of a client given none.
var discardLogger = slog.New(slog.DiscardHandler)

// newClient makes a client of eng; cfg has its defaults filled in and is
// valid.
func newClient(eng engine.Engine, cfg Config, closer func() error) (*Client, error) {
	cd, err := codec.New(codec.Options{Compress: !cfg.DisableCompression, Threshold: cfg.CompressionThreshold})
	if err != nil {
		return nil, err
	}
	if cfg.TracerProvider != nil {
		eng = traced.Wrap(eng, cfg.TracerProvider)
	}
	c := &Client{eng: eng, codec: cd, cfg: cfg, log: cfg.Logger, closer: closer, topology: TopologyEmbedded}
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

// EngineKind is EngineRedis or EngineEmbedded.
func (c *Client) EngineKind() EngineKind { return EngineKind(c.eng.Kind()) }

// Topology is how the engine is deployed.
type Topology string

const (
	// TopologyEmbedded is the in-process engine.
	TopologyEmbedded Topology = "embedded"
	// TopologyStandalone is one Redis server (which may have replicas).
	TopologyStandalone Topology = "standalone"
	// TopologyCluster is a Redis Cluster.
	TopologyCluster Topology = "cluster"
	// TopologySentinel is a Redis primary found through Sentinel.
	TopologySentinel Topology = "sentinel"
)

// Topology reports how the engine is deployed, as the client connected
// to it: the URL's scheme, or the mode of the rueidis client it wraps.
func (c *Client) Topology() Topology { return c.topology }

// Config returns the effective configuration (defaults filled in, as
// WithDefaults gives them), with the password masked.
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
	// Warnings name engine settings under which acknowledged items can be
	// lost, each with its fix; the engine is healthy all the same. Absent
	// when there is nothing to say.
	Warnings []string `json:"warnings,omitempty"`
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
	return Health{Status: h.Status, Connected: h.Connected, RedisVersion: h.Version, Error: h.Error, Warnings: h.Warnings}
}
