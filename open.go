package sluice

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine/memory"
	redisengine "github.com/sluicehq/sluice/internal/engine/redis"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redisconn"
)

// Open connects to the engine rawURL names (see the package documentation)
// and returns a client that owns it. An empty URL opens the embedded
// in-memory engine. A Redis connection failure is retried with backoff
// (1 s, 2 s, ... plus jitter, 3 attempts); the error names the host but
// never the password.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Fsync != "" && cfg.Fsync != "always" && cfg.Fsync != "everysec" {
		return nil, fmt.Errorf("sluice: %w: fsync policy %q (want always or everysec)", ErrInvalidArgument, cfg.Fsync)
	}
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch {
	case rawURL == "" || rawURL == "mem://" || rawURL == "memory://":
		return openMemory(cfg, "")
	case len(rawURL) >= 5 && strings.EqualFold(rawURL[:5], "file:"):
		dir, err := parseFileURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sluice: open: %w", err)
		}
		return openMemory(cfg, dir)
	case strings.HasPrefix(scheme, "redis"):
		return openRedis(ctx, rawURL, cfg)
	}
	return nil, fmt.Errorf("sluice: open: %w", &URLError{URL: RedactURL(rawURL), Reason: "unsupported scheme (want redis, rediss, redis+cluster, redis+sentinel, file or mem; a directory is file:///abs/dir or file:rel/dir)"})
}

func openMemory(cfg Config, dir string) (*Client, error) {
	log := cfg.Logger
	if log == nil {
		log = discardLogger
	}
	eng, err := memory.New(memory.Options{Dir: dir, Fsync: cfg.Fsync, Keys: keyspace.Space{Prefix: cfg.KeyPrefix}, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("sluice: open embedded engine: %w", err)
	}
	c, err := newClient(eng, cfg, eng.Close)
	if err != nil {
		eng.Close()
		return nil, err
	}
	return c, nil
}

func openRedis(ctx context.Context, rawURL string, cfg Config) (*Client, error) {
	conn, err := redisconn.Connect(ctx, redisconn.Config{
		URL:             rawURL,
		Password:        cfg.Password,
		TLS:             redisconn.TLSOptions(cfg.TLS),
		ClientSideCache: cfg.ClientSideCache,
		Logger:          cfg.Logger,
		MinReplicasAck:  cfg.MinReplicasAck,
	})
	if err != nil {
		return nil, fmt.Errorf("sluice: open: %w", publicError(err))
	}
	eng := redisengine.New(conn.Client, redisengine.Options{
		Keys:           keyspace.Space{Prefix: cfg.KeyPrefix, Cluster: conn.Cluster},
		OwnsClient:     true,
		MinReplicasAck: conn.MinReplicasAck,
	})
	c, err := newClient(eng, cfg, eng.Close)
	if err != nil {
		eng.Close()
		return nil, err
	}
	return c, nil
}

// NewFromRueidis wraps a rueidis client the caller already has. The
// client stays the caller's: Close does not close it. Set cluster when the
// client talks to a Redis Cluster, so keys get hash tags.
func NewFromRueidis(client rueidis.Client, cluster bool, opts ...Option) (*Client, error) {
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	eng := redisengine.New(client, redisengine.Options{Keys: keyspace.Space{Prefix: cfg.KeyPrefix, Cluster: cluster}})
	return newClient(eng, cfg, eng.Close)
}
