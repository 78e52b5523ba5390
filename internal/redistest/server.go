package redistest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// StartServer runs a redis-server of the test's own on a free loopback
// port, with the arguments args builds from that port, and returns its
// address once it accepts connections. The server is killed when the test
// ends. It skips the test when redis-server is not installed; when the
// server exits before it is ready, the error holds its log (so a caller can
// tell, say, a build without TLS from a real failure).
func StartServer(t testing.TB, args func(port int) []string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	base := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--daemonize", "no", "--loglevel", "notice"}
	// The cleanup below ends the server; no context needs to.
	cmd := exec.CommandContext(context.Background(), bin, append(base, args(port)...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Redis logs a fixed line once it accepts connections; reading the log
	// avoids polling the port.
	var log strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if strings.Contains(line, "Ready to accept connections") {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
	return "", errors.New("redis-server did not start:\n" + log.String())
}
