// Package redisconn turns a Redis URL and a few options into a connected
// rueidis client: one server, a Redis Cluster, or a primary found through
// Sentinel, in plain TCP or TLS (with optional client certificates).
//
// Accepted URLs:
//
//	redis://[user:password@]host:port/db
//	rediss://[user:password@]host:port/db                      TLS
//	redis+cluster://[user:password@]host1:port,host2:port/     cluster (db 0 only)
//	redis+sentinel://[user:password@]host1:26379,host2:26379/mastername/db
//
// rediss+cluster:// and rediss+sentinel:// are the TLS variants. The
// password in a URL must be percent-encoded when it holds '/', '?', '#' or
// '%'. Parse is pure apart from reading the certificate files it is given;
// Connect dials, pings and retries connection failures with the backoff of
// the original service.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// PasswordEnv is the environment variable the original service reads the
// Redis password from. This package never reads the environment itself:
// callers pass its value in Config.Password.
const PasswordEnv = "REDIS_PASSWORD"

// DefaultDialTimeout bounds one connection attempt when Config.DialTimeout
// is zero.
const DefaultDialTimeout = 5 * time.Second

// Config says where Redis is and how to reach it. The zero value of every
// field but URL is usable.
type Config struct {
	// URL is the Redis URL; see the package documentation. Required.
	URL string
	// Password is used when the URL carries none or an empty one (typically the value of
	// REDIS_PASSWORD). A password in the URL wins. For Sentinel it is the
	// primary's password; see SentinelPassword for the sentinels' own.
	Password string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves, when they require it. Default: none.
	SentinelUsername string
	SentinelPassword string
	// TLS configures certificates for rediss:// URLs. Setting any file,
	// ServerName or Verify "none" with a plain-text URL is an error rather
	// than a silently ignored option.
	TLS TLSOptions
	// ClientSideCache turns on rueidis' server-assisted client-side cache
	// (RESP3, Redis 6 or later). Default: off.
	ClientSideCache bool
	// Retry governs how connection failures are retried. Default: 3
	// attempts, 1 s doubling to at most 30 s, plus up to 25 % jitter.
	Retry RetryPolicy
	// DialTimeout bounds each TCP (and TLS) dial and the PING that follows.
	// Default: DefaultDialTimeout.
	DialTimeout time.Duration
	// ClientName is sent with CLIENT SETNAME on every connection, to find
	// them in CLIENT LIST. Default: none.
	ClientName string
	// Logger receives connection retries and warnings. Default: discarded.
	Logger *slog.Logger
	// MinReplicasAck is how many replicas a write must reach (WAIT) before
	// it counts as done; 0 (the default) means the primary alone. It is
	// validated here and handed to the caller on Conn; Connect warns when
	// fewer replicas are attached at connect time.
	MinReplicasAck int
}

// TLSOptions configures TLS for rediss:// URLs.
type TLSOptions struct {
	// CAFile is a PEM bundle of the authorities to trust instead of the
	// system pool. Default: the system pool.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for
	// mutual TLS. Both or neither.
	CertFile string
	KeyFile  string
	// Verify is "required" (the default, also when empty) or "none", which
	// skips certificate verification and should only be used in tests.
	Verify string
	// ServerName overrides the name checked against the server's
	// certificate. Default: the host being dialled, per node.
	ServerName string
}

func (o TLSOptions) isSet() bool {
	return o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" || o.ServerName != "" || o.Verify == "none"
}

// Parse checks cfg and builds the rueidis options it describes, without
// connecting. Errors never contain the password: URL problems come as
// *URLError quoting the redacted URL.
func Parse(cfg Config) (rueidis.ClientOption, Mode, error) {
	var opt rueidis.ClientOption
	t, err := parseURL(cfg.URL)
	if err != nil {
		return opt, 0, err
	}
	if cfg.MinReplicasAck < 0 {
		return opt, 0, fmt.Errorf("MinReplicasAck is %d; want 0 or more", cfg.MinReplicasAck)
	}
	if cfg.DialTimeout < 0 {
		return opt, 0, fmt.Errorf("DialTimeout is %v; want 0 (default) or more", cfg.DialTimeout)
	}
	if err := cfg.Retry.validate(); err != nil {
		return opt, 0, err
	}

	opt.InitAddress = t.addrs
	opt.Username = t.username
	opt.Password = t.password
	if opt.Password == "" {
		opt.Password = cfg.Password
	}
	opt.SelectDB = t.db
	opt.ClientName = cfg.ClientName
	opt.DisableCache = !cfg.ClientSideCache
	opt.Dialer.Timeout = cfg.DialTimeout
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = DefaultDialTimeout
	}

	if t.tls {
		if opt.TLSConfig, err = buildTLS(cfg.TLS); err != nil {
			return rueidis.ClientOption{}, 0, err
		}
	} else if cfg.TLS.isSet() {
		return opt, 0, errors.New("TLS options are set but the URL is plain text; use rediss:// (or rediss+cluster://, rediss+sentinel://)")
	}

	switch t.mode {
	case Standalone:
		// Without this rueidis first probes for a cluster; a standalone URL
		// means one server, and a cluster behind it is reported by Connect.
		opt.ForceSingleClient = true
	case Sentinel:
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet:  t.masterSet,
			Username:   cfg.SentinelUsername,
			Password:   cfg.SentinelPassword,
			ClientName: cfg.ClientName,
			Dialer:     opt.Dialer,
		}
		if opt.TLSConfig != nil {
			opt.Sentinel.TLSConfig = opt.TLSConfig.Clone()
		}
	case Cluster:
	}
	return opt, t.mode, nil
}

// buildTLS loads the certificate files named in o.
func buildTLS(o TLSOptions) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	switch strings.ToLower(o.Verify) {
	case "", "required":
	case "none":
		c.InsecureSkipVerify = true
	default:
		return nil, fmt.Errorf("TLS.Verify is %q; want \"required\" or \"none\"", o.Verify)
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS.CAFile %q holds no PEM certificate", o.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		certPEM, err := os.ReadFile(o.CertFile)
		if err != nil {
			return nil, fmt.Errorf("TLS.CertFile: %w", err)
		}
		keyPEM, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS.KeyFile: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("TLS.CertFile %q with TLS.KeyFile %q: %w", o.CertFile, o.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	case o.CertFile != "":
		return nil, errors.New("TLS.CertFile is set without TLS.KeyFile; mutual TLS needs both")
	case o.KeyFile != "":
		return nil, errors.New("TLS.KeyFile is set without TLS.CertFile; mutual TLS needs both")
	}
	return c, nil
}
