package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
)

// HTTPOptions configure the HTTP service benchmark.
type HTTPOptions struct {
	// URL of a running service to measure. When empty, a service is started
	// in this process on a loopback port, on Options.Engine, and stopped at
	// the end (on Redis, under a key prefix of its own that is deleted).
	URL string
	// APIKey is sent with every request when set.
	APIKey string
	// Clients is the number of concurrent keep-alive clients (default 64).
	Clients int
	// FanoutClients WebSocket clients receive FanoutRate messages per
	// second (defaults 1000 and 1000); < 0 skips the fan-out test.
	FanoutClients int
	FanoutRate    int
}

// HTTP measures the service: POST /detections and GET /detections/next,
// WebSocket fan-out, and on Redis the bare net/http + rueidis handler that
// bounds what any service can do here. Options.Duration bounds each phase.
func HTTP(ctx context.Context, o Options, h HTTPOptions) (HTTPReport, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return HTTPReport{}, err
	}
	cfg := httpLoadConfig{
		URL: h.URL, APIKey: h.APIKey, Clients: h.Clients, Duration: o.Duration,
		FanoutClients: h.FanoutClients, FanoutRate: h.FanoutRate, FanoutDuration: o.Duration,
	}
	if h.URL != "" {
		return runHTTPLoad(ctx, cfg)
	}
	var (
		client *sluice.Client
		done   func() error
		err    error
	)
	if o.Engine == "redis" {
		var s *redisSuite
		if s, err = openRedisSuite(ctx, o, "http", nil); err != nil {
			return HTTPReport{}, err
		}
		client, done = s.client, s.close
		cfg.RedisURL, cfg.KeyPrefix = o.RedisURL, s.prefix
	} else {
		var t *target
		if t, err = openTarget(ctx, o, "http", nil); err != nil {
			return HTTPReport{}, err
		}
		client, done = t.client, t.close
	}
	rep, err := serveAndMeasure(ctx, client, cfg)
	return rep, errors.Join(err, done())
}

// serveAndMeasure runs the service on a loopback port for each round of
// the measurement (measureInRounds), and stops it while its baselines run.
func serveAndMeasure(ctx context.Context, client *sluice.Client, cfg httpLoadConfig) (HTTPReport, error) {
	scfg := server.DefaultConfig()
	scfg.Addr = "127.0.0.1:0"
	// Like the baseline's script, whose bound is never reached: a queue
	// that overflows would measure the dlq policy's extra work instead.
	scfg.QueueMaxSize = notFull
	if cfg.APIKey != "" {
		scfg.APIKeys = []string{cfg.APIKey}
	}
	start := func(ctx context.Context) (string, func() error, error) {
		srv, err := server.New(client, scfg, quietLogger())
		if err != nil {
			return "", nil, fmt.Errorf("bench: start service: %w", err)
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", scfg.Addr)
		if err != nil {
			return "", nil, fmt.Errorf("bench: listen: %w", err)
		}
		sctx, cancel := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- srv.Run(sctx, ln) }()
		stop := func() error {
			cancel()
			select {
			case err := <-served:
				return err
			case <-time.After(time.Minute):
				return errors.New("bench: the service did not stop within a minute")
			}
		}
		return "http://" + ln.Addr().String(), stop, nil
	}
	return measureInRounds(ctx, cfg, string(client.EngineKind()), start)
}
