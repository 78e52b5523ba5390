// Package deploy holds no code: its tests check the deployment files
// beside them (alert rules, dashboard, container recipe, service unit)
// with the real tools, and run the sluice binary built as releases build
// it.
package deploy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// work is a directory for the whole run, readable by everyone: the
// binary built there must run as an unprivileged user too.
var work string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-deploy-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	work = dir
	code := 0
	func() {
		defer func() { _ = os.RemoveAll(dir) }()
		code = runLeakChecked(m)
	}()
	os.Exit(code)
}

func runLeakChecked(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// tool returns the path of an external program the test needs. Without
// it the test skips, except under CI=true, where it fails: CI never
// passes by skipping.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (Debian package %s; .ci/run installs it)", name, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s", name, pkg)
	return ""
}

var build struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// sluiceBinary builds cmd/sluice once per run with scripts/build.sh, the
// script the Dockerfile and the release configuration build with.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	tool(t, "bash", "bash")
	build.once.Do(func() {
		build.path = filepath.Join(work, "sluice")
		cmd := exec.Command("bash", "scripts/build.sh", build.path)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "VERSION=0.0.0-test", "COMMIT=0123456789abcdef")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", build.err, build.out)
	}
	return build.path
}

// process is a program a test started; stop ends it, once.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error // the result of Wait, sent once
}

// startProcess starts cmd and stops it at the test's cleanup: SIGTERM,
// then SIGKILL when it has not exited 10 s later. Its output is logged
// when the test failed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 10 s).
func (p *process) stop(t *testing.T) {
	t.Helper()
	if p.done == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited: %v", p.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not stop on SIGTERM within 10 s; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.done = nil
}

// syncBuffer collects a process's output, written by os/exec's copying
// goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr returns a loopback address whose port is free now, from the
// range SLUICE_TEST_PORTS names ("19500-19599", the default).
func freeAddr(t *testing.T) string {
	t.Helper()
	lo, hi := 19500, 19599
	if r := os.Getenv("SLUICE_TEST_PORTS"); r != "" {
		if _, err := fmt.Sscanf(r, "%d-%d", &lo, &hi); err != nil {
			t.Fatalf("SLUICE_TEST_PORTS=%q: want LOW-HIGH", r)
		}
	}
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for p := lo; p <= hi; p++ {
		if ports.used[p] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = ln.Close()
		ports.used[p] = true
		return addr
	}
	t.Fatalf("no free port in %d-%d", lo, hi)
	return ""
}

// ports remembers the ports handed out, so two tests running side by side
// never get the same one before either listens on it.
var ports = struct {
	mu   sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// waitFor polls cond until it returns true, failing the test after
// timeout with the last reason cond gave.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, timeout, why)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

// get fetches url and returns its status and body ("" and the error as
// the body when the request failed).
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
