package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/server"
)

// serveFlags are serve's own flags besides the engine's. Like connFlags,
// their environment fallbacks are applied after parsing.
type serveFlags struct {
	addr         string
	apiKeys      string
	maxBodyBytes int64
	logFormat    string
	logLevel     string
	minReplicas  int
	fsync        string

	readHeaderTimeout, bodyTimeout, shutdownTimeout time.Duration
	limits                                          server.Limits
	idemWindow                                      time.Duration
	sweepInterval                                   time.Duration
}

// serve runs the HTTP service until SIGINT/SIGTERM (ctx), then shuts down
// gracefully and exits 0.
func (e *env) serve(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "serve [--addr host:port] [--redis URL | --data-dir DIR] [--api-keys k1,k2] [--max-body-bytes N] [--log-format text|json] [--log-level debug|info|warn|error] [--min-replicas-ack N] [--fsync everysec|always] [--idempotency-window D] [--sweep-interval D] [--ui=false] [timeouts and limits: see -h]", e.stderr)
	conn := addConnFlags(fs)
	var f serveFlags
	fs.StringVar(&f.addr, "addr", "", "listen address (env SLUICE_ADDR; default 127.0.0.1:8000)")
	fs.StringVar(&f.apiKeys, "api-keys", "", "comma-separated API keys required on every route but /health* and /metrics (env SLUICE_API_KEYS)")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", 1<<20, "largest request body accepted")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "least severe log records written: debug, info, warn or error")
	fs.IntVar(&f.minReplicas, "min-replicas-ack", 0, "Redis: every add waits until this many replicas have it (WAIT); 0 = the primary alone")
	fs.StringVar(&f.fsync, "fsync", "everysec", "durable embedded engine (--data-dir): fsync policy, everysec or always")
	def := server.DefaultConfig()
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", def.ReadHeaderTimeout, "longest wait for a request's headers")
	fs.DurationVar(&f.bodyTimeout, "body-timeout", def.BodyTimeout, "longest wait for a request's body (408 after it)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", def.ShutdownTimeout, "on SIGTERM, how long requests in progress may finish before their connections are closed")
	fs.IntVar(&f.limits.MaxStreamClients, "max-stream-clients", def.Limits.MaxStreamClients, "most WebSocket and SSE clients at once (503 past it)")
	fs.IntVar(&f.limits.MaxChannelsPerClient, "max-channels-per-client", def.Limits.MaxChannelsPerClient, "most channels one WebSocket or SSE client subscribes to")
	fs.IntVar(&f.limits.MaxSubscriptions, "max-subscriptions", def.Limits.MaxSubscriptions, "most engine subscriptions (distinct channels with listeners) at once")
	fs.Int64Var(&f.limits.ClientBufferBytes, "client-buffer-bytes", def.Limits.ClientBufferBytes, "message bytes waiting for one WebSocket or SSE client before it is disconnected as too slow")
	fs.IntVar(&f.limits.MaxQueues, "max-queues", def.Limits.MaxQueues, "most queues the service creates; an add creating one more is answered 507 (0: no limit)")
	fs.DurationVar(&f.idemWindow, "idempotency-window", sluice.DefaultIdempotencyWindow, "how long an add's Idempotency-Key is remembered (1ms to 8760h)")
	ui := addUIFlag(fs)
	fs.DurationVar(&f.sweepInterval, "sweep-interval", sluice.DefaultSweepInterval, "how often the maintainer returns expired leases, dead-letters spent ones and releases scheduled items (one replica sweeps at a time; 0: no maintainer)")
	origins := addOriginFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	s, err := loadSettings(e.getenv)
	if err != nil {
		return err
	}
	t, err := conn.resolve(e.getenv)
	if err != nil {
		return err
	}
	cfg := e.serverConfig(fs, f, s, t)
	cfg.UI = ui.enabled(cfg.Addr)
	origins.apply(fs, e.getenv, &cfg)
	if err := cfg.Validate(); err != nil {
		return &exitError{code: exitUsage, err: configError(err)}
	}
	if f.sweepInterval < 0 {
		return usagef("--sweep-interval %v: want 0 (no maintainer) or more", f.sweepInterval)
	}
	if f.minReplicas < 0 {
		return usagef("--min-replicas-ack %d: want 0 or more", f.minReplicas)
	}
	level, err := parseLogLevel(f.logLevel)
	if err != nil {
		return err
	}
	fsync, err := parseFsync(f.fsync)
	if err != nil {
		return err
	}
	tlsOpts, err := conn.tls(e.getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogFormat, level, e)
	tp, err := e.startTracing(log)
	if err != nil {
		return err
	}
	defer stopTracing(tp, log)
	ccfg := s.config(conn.prefix(e.getenv), log)
	ccfg.MinReplicasAck, ccfg.Fsync, ccfg.TLS = f.minReplicas, fsync, tlsOpts
	ccfg.TracerProvider, cfg.Tracer = tp.TracerProvider, tp.TracerProvider
	client, err := sluice.Open(ctx, t.url, ccfg)
	if err != nil {
		return t.openError(err)
	}
	err = e.runServer(ctx, client, cfg, log, t, f.sweepInterval)
	// Closing flushes the durable engine's log: its failure is the run's.
	if cerr := client.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close engine: %w", cerr)
	}
	return err
}

// runServer serves until ctx is done, with the maintainer (every
// sweepInterval; 0: none) running beside the server on a goroutine it
// owns: the maintainer stops, and is waited for, before runServer returns.
func (e *env) runServer(ctx context.Context, client *sluice.Client, cfg server.Config, log *slog.Logger, t target, sweepInterval time.Duration) error {
	srv, err := server.New(client, cfg, log)
	if err != nil {
		return &exitError{code: exitUsage, err: configError(err)}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("sluice starting", "version", sluice.Version, "engine", client.EngineKind(), "url", t.display, "addr", ln.Addr().String())
	if cfg.UI {
		log.Info("dashboard", "url", "http://"+ln.Addr().String()+"/ui/")
	}
	// Settings under which the engine can lose what it acknowledges are
	// said once at start (and on every /health); a Redis that does not
	// answer yet is the health endpoint's business, not a reason to wait.
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	for _, w := range client.Health(hctx).Warnings {
		log.Warn("engine can lose queued items", "warning", w)
	}
	cancel()
	if sweepInterval > 0 {
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := client.RunMaintainer(mctx, &sluice.MaintainerOptions{Interval: sweepInterval}); err != nil {
				log.Error("maintainer stopped", "err", err)
			}
		}()
		defer func() {
			stop()
			<-done
		}()
	}
	if err := srv.Run(ctx, ln); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serverConfig builds the service's configuration: defaults, then the
// environment, then flags. Values that do not parse were named by
// loadSettings; Validate names the ones that parse but are out of range.
func (e *env) serverConfig(fs *flag.FlagSet, f serveFlags, s settings, t target) server.Config {
	cfg := server.DefaultConfig()
	cfg.Addr = pick(fs, "addr", f.addr, e.getenv("SLUICE_ADDR"), cfg.Addr)
	if keys := pick(fs, "api-keys", f.apiKeys, e.getenv("SLUICE_API_KEYS"), ""); keys != "" {
		for _, k := range strings.Split(keys, ",") {
			cfg.APIKeys = append(cfg.APIKeys, strings.TrimSpace(k))
		}
	}
	cfg.DataDir = t.dir
	if cfg.DataDir == "" && strings.HasPrefix(t.url, "file:") {
		cfg.DataDir = t.url // given as a URL (--redis file:...): durable all the same
	}
	cfg.QueueMaxSize = s.queue.MaxSize
	cfg.QueueOverflowPolicy = s.queue.Policy
	cfg.QueueBackpressureThreshold = s.queue.PressureThreshold
	cfg.CompressionEnabled = s.compression
	if s.compressionThreshold > 0 {
		cfg.CompressionThreshold = s.compressionThreshold
	}
	cfg.MaxBodyBytes = f.maxBodyBytes
	cfg.IdempotencyWindow = f.idemWindow
	cfg.LogFormat = f.logFormat
	cfg.ReadHeaderTimeout, cfg.BodyTimeout, cfg.ShutdownTimeout = f.readHeaderTimeout, f.bodyTimeout, f.shutdownTimeout
	cfg.Limits = f.limits
	return cfg
}

// pick returns the flag's value when it was given, else the environment's
// when set, else def.
func pick(fs *flag.FlagSet, name, flagValue, envValue, def string) string {
	switch {
	case isSet(fs, name):
		return flagValue
	case envValue != "":
		return envValue
	}
	return def
}

// durationString writes durations as Go duration strings ("1.5s"), as the
// text format does, instead of the JSON handler's integer nanoseconds,
// which a reader of the log cannot tell from a count.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// parseLogLevel reads --log-level. Only the four names are accepted (not
// slog's "info+2" forms), so that the help text lists every valid value.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, usagef("--log-level %q: want debug, info, warn or error", s)
}

// parseFsync reads --fsync. Its value is one of the library's constants,
// named here so that a wrong one is the flag's mistake (Open would blame
// the engine URL, which is not at fault).
func parseFsync(s string) (sluice.Fsync, error) {
	switch v := sluice.Fsync(s); v {
	case sluice.FsyncEverySec, sluice.FsyncAlways:
		return v, nil
	}
	return "", usagef("--fsync %q: want %s or %s", s, sluice.FsyncEverySec, sluice.FsyncAlways)
}

func newLogger(format string, level slog.Level, e *env) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationString}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}
