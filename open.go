package sluice

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine/embedded"
	redisengine "github.com/sluicehq/sluice/internal/engine/redis"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/redisconn"
	"github.com/sluicehq/sluice/internal/wal"
)

// Open connects to the engine rawURL names (see the package documentation)
// and returns a client that owns it. An empty URL opens the embedded
// in-memory engine. A Redis connection failure is retried with backoff
// (1 s, 2 s, ... plus jitter, 3 attempts); the error names the host but
// never the password.
//
// cfg may be nil: every setting then takes its default. Open does not keep
// cfg; an invalid setting fails with ErrInvalidArgument before anything
// is opened.
func Open(ctx context.Context, rawURL string, cfg *Config) (*Client, error) {
	full := cfg.WithDefaults()
	if err := full.validate(); err != nil {
		return nil, fmt.Errorf("sluice: open: %w", err)
	}
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch {
	case rawURL == "" || rawURL == "mem://" || rawURL == "memory://":
		return openMemory(*full, "")
	case len(rawURL) >= 5 && strings.EqualFold(rawURL[:5], "file:"):
		dir, err := parseFileURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sluice: open: %w", err)
		}
		return openMemory(*full, dir)
	case strings.HasPrefix(scheme, "redis"):
		return openRedis(ctx, rawURL, *full)
	}
	return nil, fmt.Errorf("sluice: open: %w", &URLError{URL: RedactURL(rawURL), Reason: "unsupported scheme (want redis, rediss, redis+cluster, redis+sentinel, file or mem; a directory is file:///abs/dir or file:rel/dir)"})
}

func openMemory(cfg Config, dir string) (*Client, error) {
	eng, err := embedded.New(embedded.Options{Dir: dir, Fsync: walFsync(cfg.Fsync), Keys: keyspace.Space{Prefix: cfg.KeyPrefix}, Logger: cfg.Logger, Now: cfg.Test.Time})
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
		TLS:             redisTLS(cfg.TLS),
		ClientSideCache: cfg.ClientSideCache,
		Logger:          cfg.Logger,
		MinReplicasAck:  cfg.MinReplicasAck,
	})
	if err != nil {
		if errors.Is(err, redisconn.ErrWrongMode) {
			// The server is fine; the URL's scheme is not the one for it.
			// The reason starts at the sentinel's text: what comes before
			// it (the connection attempts) says nothing about the URL.
			msg := err.Error()
			if i := strings.Index(msg, redisconn.ErrWrongMode.Error()); i >= 0 {
				msg = msg[i:]
			}
			err = &URLError{URL: RedactURL(rawURL), Reason: msg}
		}
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
	switch {
	case conn.Cluster:
		c.topology = TopologyCluster
	case conn.Sentinel:
		c.topology = TopologySentinel
	default:
		c.topology = TopologyStandalone
	}
	return c, nil
}

// walFsync is a valid fsync policy in the log's terms.
func walFsync(f Fsync) wal.FsyncPolicy {
	if f == FsyncAlways {
		return wal.FsyncAlways
	}
	return wal.FsyncEverySec
}

// redisTLS is t in the connection package's terms.
func redisTLS(t TLSOptions) redisconn.TLSOptions {
	return redisconn.TLSOptions{
		CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		Verify: string(t.Verify), ServerName: t.ServerName,
	}
}

// NewFromRueidis wraps a rueidis client the caller already has. The
// client stays the caller's: Close does not close it. A cluster client
// (client.Mode() is rueidis.ClientModeCluster) is recognised, so keys get
// the hash tags a cluster needs. cfg may be nil (every default); its
// connection settings (Password, TLS, ClientSideCache) have no effect
// here, as the client is already connected.
func NewFromRueidis(client rueidis.Client, cfg *Config) (*Client, error) {
	full := cfg.WithDefaults()
	if err := full.validate(); err != nil {
		return nil, fmt.Errorf("sluice: open: %w", err)
	}
	cluster := client.Mode() == rueidis.ClientModeCluster
	eng := redisengine.New(client, redisengine.Options{
		Keys:           keyspace.Space{Prefix: full.KeyPrefix, Cluster: cluster},
		MinReplicasAck: full.MinReplicasAck,
	})
	c, err := newClient(eng, *full, eng.Close)
	if err != nil {
		return nil, err
	}
	switch client.Mode() {
	case rueidis.ClientModeCluster:
		c.topology = TopologyCluster
	case rueidis.ClientModeSentinel:
		c.topology = TopologySentinel
	default:
		c.topology = TopologyStandalone
	}
	return c, nil
}
