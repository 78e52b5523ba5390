package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/rueidis"
)

// ErrWrongMode means the server's topology differs from what the URL's
// scheme says: a cluster behind redis://, or a lone server behind
// redis+cluster://. Retrying cannot help; the URL must change.
var ErrWrongMode = errors.New("server topology does not match the URL scheme")

// Conn is a connected, pinged client. Whoever calls Connect owns it and
// must Close it.
type Conn struct {
	// Client is the rueidis client.
	Client rueidis.Client
	// Cluster is true for redis+cluster:// URLs; keys must then carry hash
	// tags so multi-key scripts stay in one slot.
	Cluster bool
	// Sentinel is true for redis+sentinel:// URLs; the client follows the
	// primary across failovers.
	Sentinel bool
	// Redacted is the URL with its password masked, fit for logs.
	Redacted string
	// Addrs are the addresses the URL named (sentinels for Sentinel).
	Addrs []string
	// MinReplicasAck is Config.MinReplicasAck, validated.
	MinReplicasAck int
}

// Close closes the client.
func (c *Conn) Close() { c.Client.Close() }

// Connect parses cfg, connects and PINGs. Connection failures and timeouts
// are retried according to cfg.Retry; anything else (a bad URL, a refused
// password, a certificate problem, an error reply) fails at once. ctx bounds
// the whole call, including the waits between attempts; each single attempt
// is bounded by cfg.DialTimeout. The error names the hosts and wraps the last
// cause; it never holds the password.
func Connect(ctx context.Context, cfg Config) (*Conn, error) {
	opt, mode, err := Parse(cfg)
	if err != nil {
		return nil, err
	}
	policy := cfg.Retry.WithDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	redacted := Redact(cfg.URL)
	where := mode.String() + " " + strings.Join(opt.InitAddress, ",")
	if mode == Sentinel {
		where += " (master " + strconv.Quote(opt.Sentinel.MasterSet) + ")"
	}

	var last error
	attempt := 1
	for ; ; attempt++ {
		client, err := connectOnce(ctx, opt, mode)
		if err == nil {
			conn := &Conn{
				Client:         client,
				Cluster:        mode == Cluster,
				Sentinel:       mode == Sentinel,
				Redacted:       redacted,
				Addrs:          opt.InitAddress,
				MinReplicasAck: cfg.MinReplicasAck,
			}
			if attempt > 1 {
				log.Info("redis connected after retrying", "url", redacted, "attempts", attempt)
			}
			warnFewReplicas(ctx, log, conn)
			return conn, nil
		}
		last = err
		if ctx.Err() != nil || !Retryable(err) || attempt >= policy.Attempts {
			break
		}
		delay := policy.Backoff(attempt, policy.Jitter())
		log.Warn("redis connection failed, retrying", "url", redacted, "attempt", attempt,
			"of", policy.Attempts, "delay", delay, "error", err)
		if err := policy.Sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("connecting to %s: gave up after %d attempt(s): %w (last failure: %w)",
				where, attempt, err, last)
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("connecting to %s: gave up after %d attempt(s): %w (last failure: %w)",
			where, attempt, ctx.Err(), last)
	}
	return nil, fmt.Errorf("connecting to %s failed after %d attempt(s): %w", where, attempt, last)
}

// connectOnce builds a client, PINGs it and checks the topology. It closes
// whatever it built when it fails.
func connectOnce(ctx context.Context, opt rueidis.ClientOption, mode Mode) (rueidis.Client, error) {
	// rueidis keeps opt's slices; each attempt gets its own copy.
	opt.InitAddress = append([]string(nil), opt.InitAddress...)
	gate := &dialGate{ctx: ctx}
	defer gate.open()
	opt.DialCtxFn = gate.dial
	client, err := rueidis.NewClient(opt)
	if err != nil {
		if client != nil {
			client.Close()
		}
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, opt.Dialer.Timeout)
	defer cancel()
	if err := client.Do(pctx, client.B().Ping().Build()).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("PING: %w", err)
	}
	if err := checkMode(pctx, client, mode); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// dialGate lets the caller's ctx cancel the dials made while connecting.
// rueidis dials with a context of its own, bounded only by the dial timeout,
// so without it a Connect whose ctx is cancelled could still hang for the
// whole timeout on an unresponsive host. Once connecting is over the gate
// opens and later reconnects dial as rueidis would, unaffected by ctx.
// (rueidis' handshake after the dial remains bounded by the dial timeout
// alone.)
type dialGate struct {
	mu  sync.Mutex
	ctx context.Context // nil once open
}

func (g *dialGate) open() {
	g.mu.Lock()
	g.ctx = nil
	g.mu.Unlock()
}

func (g *dialGate) dial(ctx context.Context, dst string, dialer *net.Dialer, tlsConfig *tls.Config) (net.Conn, error) {
	g.mu.Lock()
	outer := g.ctx
	g.mu.Unlock()
	if outer != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		stop := context.AfterFunc(outer, func() { cancel(context.Cause(outer)) })
		defer func() {
			stop()
			cancel(nil)
		}()
	}
	var (
		conn net.Conn
		err  error
	)
	if tlsConfig != nil {
		d := tls.Dialer{NetDialer: dialer, Config: tlsConfig}
		conn, err = d.DialContext(ctx, "tcp", dst)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", dst)
	}
	if err != nil && context.Cause(ctx) != nil && errors.Is(err, context.Canceled) {
		// Report the caller's reason, not the inner context's.
		return nil, fmt.Errorf("dial %s: %w", dst, context.Cause(ctx))
	}
	return conn, err
}

// checkMode catches a URL scheme that does not match the server, which would
// otherwise surface later as MOVED replies or lost cross-slot atomicity.
func checkMode(ctx context.Context, client rueidis.Client, mode Mode) error {
	switch mode {
	case Cluster:
		// rueidis falls back to a single-node client when a lone init
		// address turns out not to be a cluster.
		if client.Mode() != rueidis.ClientModeCluster {
			return fmt.Errorf("%w: redis+cluster:// was given but the server is not in cluster mode; use redis://", ErrWrongMode)
		}
	case Standalone:
		info, err := client.Do(ctx, client.B().Info().Section("cluster").Build()).ToString()
		if err != nil {
			// INFO may be denied by an ACL; the check is a courtesy, not
			// a requirement.
			return nil //nolint:nilerr // see above
		}
		if infoField(info, "cluster_enabled") == "1" {
			return fmt.Errorf("%w: the server is a cluster node; use redis+cluster://", ErrWrongMode)
		}
	case Sentinel:
	}
	return nil
}

// warnFewReplicas logs when writes asking for MinReplicasAck acknowledgements
// cannot currently get them. Replicas may attach later, so it only warns.
func warnFewReplicas(ctx context.Context, log *slog.Logger, c *Conn) {
	if c.MinReplicasAck == 0 || c.Cluster {
		return
	}
	info, err := c.Client.Do(ctx, c.Client.B().Info().Section("replication").Build()).ToString()
	if err != nil {
		return
	}
	n, err := strconv.Atoi(infoField(info, "connected_slaves"))
	if err == nil && n < c.MinReplicasAck {
		log.Warn("fewer replicas attached than writes wait for", "url", c.Redacted,
			"connected_replicas", n, "min_replicas_ack", c.MinReplicasAck)
	}
}

// infoField returns the value of name in an INFO reply, or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), name+":"); ok {
			return v
		}
	}
	return ""
}
