package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
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
	caKey, ca, caPEM := newCA(t, "sluice deploy test CA")
	caFile := writeFileBytes(t, dir, "ca.pem", caPEM)
	_, _, otherPEM := newCA(t, "an authority that signed nothing here")
	otherCA := writeFileBytes(t, dir, "other-ca.pem", otherPEM)
	serverCert, serverKey := newLeaf(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := newLeaf(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)

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

	plainAddr := start("no")
	t.Run("verification off, no client certificate", func(t *testing.T) {
		smoke(t, "unverified", "rediss://"+plainAddr+"/0", &sluice.Config{TLS: sluice.TLSOptions{Verify: sluice.TLSVerifyNone}})
	})
}

func newCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// newLeaf writes a certificate signed by ca for localhost and 127.0.0.1,
// and its key, and returns their paths.
func newLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFileBytes(t, dir, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		writeFileBytes(t, dir, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func writeFileBytes(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
