package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/redistest"
)

// mainEnv makes the test binary run the program itself, so that tests can
// start it as a real process and signal it.
const mainEnv = "SLUICE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}

// result is what one run of the program produced.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the program in-process with env as its whole environment, so
// the machine's own REDIS_URL and friends never leak into a test.
func cli(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// want fails the test unless r exited with code.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// backends runs f once per engine that keeps state between two runs of
// the program: the durable embedded engine in a temporary directory, and
// Redis under a key prefix of its own. conn are the flags that select it.
func backends(t *testing.T, f func(t *testing.T, conn ...string)) {
	t.Helper()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		f(t, "--data-dir", t.TempDir())
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		c := redistest.Client(t)
		prefix := redistest.Prefix(t)
		redistest.Cleanup(t, c, prefix)
		f(t, "--redis", redistest.URL(), "--key-prefix", prefix)
	})
}

// args joins a command with the engine flags.
func args(cmd []string, conn []string) []string {
	return append(append([]string(nil), cmd...), conn...)
}

// syncBuffer is an io.Writer a test can wait on while another goroutine
// writes to it (the service's log).
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor blocks until the buffer holds s, or fails the test after d.
func (b *syncBuffer) waitFor(t *testing.T, s string, d time.Duration) string {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		if out := b.String(); strings.Contains(out, s) {
			return out
		}
		select {
		case <-b.changed:
		case <-timeout.C:
			t.Fatalf("no %q within %v; output so far:\n%s", s, d, b.String())
		}
	}
}
