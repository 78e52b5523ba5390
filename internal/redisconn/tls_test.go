package redisconn

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/redistest"

	"github.com/sluicehq/sluice/internal/testcerts"
)

// pki is a throwaway certificate authority with a server and a client
// certificate, written as PEM files.
type pki struct {
	dir                         string
	caFile                      string
	serverCert, serverKey       string
	clientCert, clientKey       string
	otherCAFile                 string // an authority that signed nothing here
	garbageFile, unreadableFile string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	p := pki{dir: dir}
	ca := testcerts.NewCA(t, dir, "sluice test CA")
	p.caFile = ca.File
	p.otherCAFile = testcerts.NewCA(t, dir, "unrelated CA").File
	dns, ips := testcerts.Localhost()
	p.serverCert, p.serverKey = ca.Leaf(t, dir, "server", x509.ExtKeyUsageServerAuth, dns, ips)
	p.clientCert, p.clientKey = ca.Leaf(t, dir, "client", x509.ExtKeyUsageClientAuth, nil, nil)

	p.garbageFile = filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(p.garbageFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.unreadableFile = filepath.Join(dir, "does-not-exist.pem")
	return p
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	tests := []struct {
		name string
		tls  TLSOptions
		want []string
	}{
		{"missing CA file", TLSOptions{CAFile: p.unreadableFile}, []string{"TLS.CAFile", p.unreadableFile}},
		{"CA file without PEM", TLSOptions{CAFile: p.garbageFile}, []string{"TLS.CAFile", p.garbageFile, "no PEM"}},
		{"missing cert file", TLSOptions{CertFile: p.unreadableFile, KeyFile: p.clientKey}, []string{"TLS.CertFile", p.unreadableFile}},
		{"missing key file", TLSOptions{CertFile: p.clientCert, KeyFile: p.unreadableFile}, []string{"TLS.KeyFile", p.unreadableFile}},
		{"mismatched pair", TLSOptions{CertFile: p.clientCert, KeyFile: p.serverKey}, []string{"TLS.CertFile", "TLS.KeyFile"}},
		{"cert without key", TLSOptions{CertFile: p.clientCert}, []string{"TLS.CertFile is set without TLS.KeyFile"}},
		{"key without cert", TLSOptions{KeyFile: p.clientKey}, []string{"TLS.KeyFile is set without TLS.CertFile"}},
	}
	for _, tt := range tests {
		_, _, err := Parse(Config{URL: "rediss://localhost:6380/0", TLS: tt.tls})
		if err == nil {
			t.Errorf("%s: Parse succeeded", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
	}
	if _, err := Connect(context.Background(), Config{URL: "rediss://localhost:6380/0", TLS: TLSOptions{CAFile: p.unreadableFile}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Connect with a missing CA file: %v; want an error wrapping os.ErrNotExist", err)
	}

	opt, _, err := Parse(Config{URL: "rediss+sentinel://s/m", TLS: TLSOptions{
		CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "redis.internal",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if opt.TLSConfig.RootCAs == nil || len(opt.TLSConfig.Certificates) != 1 || opt.TLSConfig.ServerName != "redis.internal" ||
		opt.TLSConfig.InsecureSkipVerify {
		t.Errorf("primary TLS config not built from the options: %+v", opt.TLSConfig)
	}
	if s := opt.Sentinel.TLSConfig; s == nil || s == opt.TLSConfig || s.RootCAs == nil || len(s.Certificates) != 1 {
		t.Errorf("sentinel TLS config should be a separate copy with the same certificates: %+v", s)
	}
}

// startTLSRedis runs a redis-server that only speaks TLS and requires
// client certificates, on a free loopback port. It skips the test when the
// installed redis-server lacks TLS support.
func startTLSRedis(t *testing.T, p pki) string {
	t.Helper()
	addr, err := redistest.StartServer(t, func(port int) []string {
		return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", p.serverCert, "--tls-key-file", p.serverKey,
			"--tls-ca-cert-file", p.caFile, "--tls-auth-clients", "yes"}
	})
	if err != nil {
		if l := err.Error(); strings.Contains(l, "Bad directive") || strings.Contains(l, "not supported") {
			t.Skipf("redis-server was built without TLS; TLS tested only as configuration:\n%s", l)
		}
		t.Fatalf("TLS %v", err)
	}
	return addr
}

func TestTLSConnect(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	addr := startTLSRedis(t, p)
	ctx := context.Background()
	mtls := TLSOptions{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}

	t.Run("verified mutual TLS", func(t *testing.T) {
		conn, err := Connect(ctx, Config{URL: "rediss://" + addr + "/0", TLS: mtls})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		defer conn.Close()
		c := conn.Client
		if err := c.Do(ctx, c.B().Set().Key("k").Value("over tls").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Do(ctx, c.B().Get().Key("k").Build()).ToString(); err != nil || got != "over tls" {
			t.Fatalf("GET = %q, %v", got, err)
		}
	})
	t.Run("server name by DNS", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(addr)
		conn, err := Connect(ctx, Config{URL: "rediss://localhost:" + port + "/0", TLS: mtls})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		conn.Close()
	})
	t.Run("verify none", func(t *testing.T) {
		o := mtls
		o.CAFile, o.Verify = "", "none"
		conn, err := Connect(ctx, Config{URL: "rediss://" + addr, TLS: o})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		conn.Close()
	})

	notRetried := func(t *testing.T, cfg Config) error {
		t.Helper()
		rec := &recordSleep{}
		cfg.Retry.Sleep = rec.sleep
		conn, err := Connect(ctx, cfg)
		if err == nil {
			conn.Close()
			t.Fatal("Connect succeeded")
		}
		if n := len(rec.calls()); n != 0 {
			t.Errorf("retried %d times; a TLS refusal cannot heal: %v", n, err)
		}
		if !strings.Contains(err.Error(), addr) && !strings.Contains(err.Error(), "localhost") {
			t.Errorf("error %q does not name the host", err)
		}
		return err
	}
	t.Run("unknown authority", func(t *testing.T) {
		o := mtls
		o.CAFile = p.otherCAFile
		err := notRetried(t, Config{URL: "rediss://" + addr, TLS: o})
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %q does not say it is about the certificate", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		o := mtls
		o.ServerName = "not-this-server.example"
		err := notRetried(t, Config{URL: "rediss://" + addr, TLS: o})
		if !strings.Contains(err.Error(), "not-this-server.example") {
			t.Errorf("error %q does not name the expected server name", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		// Under TLS 1.3 the server checks the client certificate after the
		// client considers the handshake done, and its refusal usually
		// arrives as a connection reset, which looks like any network fault
		// and so may be retried. What matters is that it fails, naming the host.
		rec := &recordSleep{}
		conn, err := Connect(ctx, Config{URL: "rediss://" + addr, TLS: TLSOptions{CAFile: p.caFile},
			Retry: RetryPolicy{Sleep: rec.sleep}})
		if err == nil {
			conn.Close()
			t.Fatal("Connect without a client certificate succeeded against a server requiring one")
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name the host", err)
		}
	})
}
