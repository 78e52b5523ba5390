package chaos_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Roles a re-executed test binary can take, chosen by envRole.
const (
	envRole        = "SLUICE_CHAOS_ROLE"
	roleConsumer   = "consumer"
	roleServer     = "server"
	envEndpoint    = "SLUICE_CHAOS_ENDPOINT" // "redis" or "http"
	envURL         = "SLUICE_CHAOS_URL"      // Redis URL, or the service's base URL
	envPrefix      = "SLUICE_CHAOS_PREFIX"
	envQueue       = "SLUICE_CHAOS_QUEUE"
	envMaxSize     = "SLUICE_CHAOS_MAX_SIZE"
	envLease       = "SLUICE_CHAOS_LEASE"
	envMaxDeliv    = "SLUICE_CHAOS_MAX_DELIVERIES"
	envDataDir     = "SLUICE_CHAOS_DATA_DIR"
	envFsync       = "SLUICE_CHAOS_FSYNC" // the service's fsync policy; "" is the default
	envListenAddr  = "SLUICE_CHAOS_ADDR"
	listeningToken = "listening"
)

// proc is one child process: a consumer or the service. Its stdout is
// collected whole (consumers) or streamed (the service announces its
// address on its first line).
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error // Wait's result, set before done closes
	killed bool
}

func helperCommand(role string, env []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosHelperProcess$")
	cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	return cmd
}

// startConsumer runs a consumer process.
func startConsumer(t *testing.T, name string, env []string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: helperCommand(roleConsumer, env), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// startServer runs the service and returns once it listens, with its
// address. addr "" picks a free loopback port.
func startServer(t *testing.T, env []string, addr string) (*proc, string) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	p := &proc{name: "server", cmd: helperCommand(roleServer, append(env, envListenAddr+"="+addr)), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	br := bufio.NewReader(out)
	line, rerr := br.ReadString('\n')
	go func() {
		// Drain the rest so the child never blocks on a full pipe; Wait
		// must come after the reads finish.
		_, _ = io.Copy(io.Discard, br)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	listening, ok := strings.CutPrefix(strings.TrimSpace(line), listeningToken+" ")
	if rerr != nil || !ok {
		<-p.done
		t.Fatalf("server did not start (first line %q, %v): %v\n%s", line, rerr, p.err, p.stderr.String())
	}
	return p, listening
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		t.Errorf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// stop asks the process to finish (SIGTERM) and waits for it; one that
// does not stop within a minute is killed and reported.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		t.Errorf("stop %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Errorf("%s ignored SIGTERM for a minute; killing it", p.name)
		p.kill(t)
		return
	}
	if p.err != nil {
		t.Errorf("%s exited with %v; stderr:\n%s", p.name, p.err, tail(p.stderr.String()))
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string) string {
	const keep = 4000
	if len(s) > keep {
		return "..." + s[len(s)-keep:]
	}
	return s
}

func envs(kv ...string) []string {
	if len(kv)%2 != 0 {
		panic("envs: odd number of arguments")
	}
	out := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out = append(out, fmt.Sprintf("%s=%s", kv[i], kv[i+1]))
	}
	return out
}
