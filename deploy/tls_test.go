package deploy

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"

	"github.com/sluicehq/sluice/internal/testcerts"
)

// TestLibraryOverTLS runs the library's queue path against a real
// redis-server that speaks only TLS, with certificates made here: mutual
// TLS with the server verified, as the README's ACL user; verification off
// against a server that asks for no client certificate; and a server
// whose authority the client does not trust, refused with an error that
// says so.
func TestLibraryOverTLS(t *testing.T) {
	t.Parallel()
	redisBin := tool(t, "redis-server", "redis-server")
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "sluice deploy test CA")
	caFile := ca.File
	otherCA := testcerts.NewCA(t, dir, "an authority that signed nothing here").File
	dns, ips := testcerts.Localhost()
	serverCert, serverKey := ca.Leaf(t, dir, "server", x509.ExtKeyUsageServerAuth, dns, ips)
	clientCert, clientKey := ca.Leaf(t, dir, "client", x509.ExtKeyUsageClientAuth, dns, ips)

	start := func(authClients string, extra ...string) string {
		addr := freeAddr(t)
		host, port, _ := strings.Cut(addr, ":")
		args := append([]string{"--bind", host, "--port", "0", "--tls-port", port, "--save", "", "--appendonly", "no",
			"--dir", t.TempDir(), "--tls-cert-file", serverCert, "--tls-key-file", serverKey,
			"--tls-ca-cert-file", caFile, "--tls-auth-clients", authClients}, extra...)
		p := startProcess(t, "redis-server --tls-auth-clients "+authClients, exec.Command(redisBin, args...))
		waitFor(t, 10*time.Second, "redis-server accepts connections", func() (bool, string) {
			out := p.out.String()
			if strings.Contains(out, "Bad directive") || strings.Contains(out, "not supported") {
				if os.Getenv("CI") == "true" {
					t.Fatalf("redis-server was built without TLS:\n%s", out)
				}
				t.Skipf("redis-server was built without TLS:\n%s", out)
			}
			return strings.Contains(out, "Ready to accept connections"), out
		})
		return addr
	}
	ctx := context.Background()
	smoke := func(t *testing.T, queue, url string, cfg *sluice.Config) {
		t.Helper()
		c, err := sluice.Open(ctx, url, cfg)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer c.Close()
		if h := c.Health(ctx); h.Status != "healthy" {
			t.Fatalf("health over TLS: %+v", h)
		}
		q := c.QueueWith(queue, sluice.QueueSettings{MaxSize: 10, Policy: sluice.PolicyReject})
		if _, err := q.Add(ctx, map[string]int{"n": 1}, nil); err != nil {
			t.Fatal(err)
		}
		d, ok, err := q.Receive(ctx, time.Second, &sluice.ReceiveOptions{Lease: time.Minute})
		if err != nil || !ok {
			t.Fatalf("Receive: %v %v", ok, err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := q.Stats(ctx)
		if err != nil || s.Acked != 1 || s.Length != 0 {
			t.Fatalf("stats %+v, %v", s, err)
		}
	}

	acl := append([]string{"--user", "sluice"}, minimalACL(t)...)
	mtlsAddr := start("yes", acl...)
	mtls := sluice.TLSOptions{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}
	t.Run("mutual TLS, verified, ACL user", func(t *testing.T) {
		smoke(t, "mtls", "rediss://sluice@"+mtlsAddr+"/0", &sluice.Config{TLS: mtls, Password: "sluice-secret", KeyPrefix: "app:"})
	})
	t.Run("server name checked by DNS name", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(mtlsAddr)
		smoke(t, "by-name", "rediss://sluice@localhost:"+port+"/0", &sluice.Config{TLS: mtls, Password: "sluice-secret", KeyPrefix: "app:"})
	})
	t.Run("unknown authority refused", func(t *testing.T) {
		o := mtls
		o.CAFile = otherCA
		c, err := sluice.Open(ctx, "rediss://sluice@"+mtlsAddr+"/0", &sluice.Config{TLS: o, Password: "sluice-secret", KeyPrefix: "app:"})
		if err == nil {
			c.Close()
			t.Fatal("Open trusted a server signed by an unknown authority")
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %q does not say it is about the certificate", err)
		}
		if strings.Contains(err.Error(), "sluice-secret") {
			t.Errorf("error %q shows the password", err)
		}
	})

	t.Run("sluice serve with the TLS flags", func(t *testing.T) {
		bin := sluiceBinary(t)
		url := "rediss://sluice:sluice-secret@" + mtlsAddr + "/0"
		tlsFlags := []string{"--redis-tls-ca", caFile, "--redis-tls-cert", clientCert, "--redis-tls-key", clientKey, "--key-prefix", "app:"}
		addr := freeAddr(t)
		serve := exec.Command(bin, append([]string{"serve", "--redis", url, "--addr", addr}, tlsFlags...)...)
		p := startProcess(t, "sluice serve over TLS", serve)
		var body string
		waitFor(t, 20*time.Second, "the service healthy over TLS", func() (bool, string) {
			resp, err := http.Get("http://" + addr + "/health")
			if err != nil {
				return false, err.Error() + "\n" + p.out.String()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			return resp.StatusCode == http.StatusOK, body
		})
		resp, err := http.Post("http://"+addr+"/detections", "application/json", strings.NewReader(`{"camera_id": 1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /detections over TLS: %d", resp.StatusCode)
		}
		if strings.Contains(p.out.String(), "sluice-secret") {
			t.Errorf("the log shows the password:\n%s", p.out.String())
		}

		// The same service with a CA that signed nothing here stops at
		// start, saying why, without the password.
		out, err := exec.Command(bin, "serve", "--redis", url, "--addr", freeAddr(t), "--redis-tls-ca", otherCA,
			"--redis-tls-cert", clientCert, "--redis-tls-key", clientKey, "--key-prefix", "app:").CombinedOutput()
		if err == nil {
			t.Fatalf("serve trusted a server signed by an unknown authority:\n%s", out)
		}
		if !strings.Contains(string(out), "certificate") || strings.Contains(string(out), "sluice-secret") {
			t.Errorf("serve with the wrong CA said:\n%s", out)
		}
		// Half of a client key pair is a usage error.
		out, err = exec.Command(bin, "queue", "len", "q", "--redis", url, "--redis-tls-cert", clientCert).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--redis-tls-key") {
			t.Errorf("a certificate without its key: %v\n%s", err, out)
		}
	})

	plainAddr := start("no")
	t.Run("verification off, no client certificate", func(t *testing.T) {
		smoke(t, "unverified", "rediss://"+plainAddr+"/0", &sluice.Config{TLS: sluice.TLSOptions{Verify: sluice.TLSVerifyNone}})
	})
}
