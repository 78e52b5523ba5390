package redisconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// After a topology refresh the rueidis cluster client closes the
		// connections it replaced five seconds later, from a goroutine that
		// outlives Close; it ends on its own.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"))
}

// recordSleep replaces RetryPolicy.Sleep: it records each requested delay
// and returns at once.
type recordSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *recordSleep) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delays = append(r.delays, d)
	return ctx.Err()
}

func (r *recordSleep) calls() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	var p RetryPolicy
	tests := []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{5, 0, 16 * time.Second},
		{6, 0, 30 * time.Second},
		{60, 0, 30 * time.Second},
		{1, 0.5, time.Second + 125*time.Millisecond},
		{1, 0.999999, time.Second + 249999750*time.Nanosecond},
		{6, 1, 30*time.Second + 7500*time.Millisecond},
		{1, -3, time.Second},
	}
	for _, tt := range tests {
		if got := p.Backoff(tt.attempt, tt.jitter); got != tt.want {
			t.Errorf("Backoff(%d, %v) = %v; want %v", tt.attempt, tt.jitter, got, tt.want)
		}
	}
	small := RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 3 * time.Millisecond}
	if got := small.Backoff(4, 0); got != 3*time.Millisecond {
		t.Errorf("capped Backoff = %v; want 3ms", got)
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", refused, true},
		{"wrapped refused", fmt.Errorf("PING: %w", refused), true},
		{"eof", io.EOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"io timeout", os.ErrDeadlineExceeded, true},
		{"no address", rueidis.ErrNoAddr, true},
		{"canceled", context.Canceled, false},
		{"unknown host", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, false},
		{"dns timeout", &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}, true},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %v; want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestConnectRealRedis(t *testing.T) {
	t.Parallel()
	redistest.Client(t) // skips (or fails under CI) when Redis is down
	rec := &recordSleep{}
	ctx := context.Background()
	conn, err := Connect(ctx, Config{URL: redistest.URL(), Retry: RetryPolicy{Sleep: rec.sleep}})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	if conn.Cluster || conn.Sentinel {
		t.Errorf("cluster %v sentinel %v; want a standalone connection", conn.Cluster, conn.Sentinel)
	}
	if len(rec.calls()) != 0 {
		t.Errorf("retried %d times against a live server", len(rec.calls()))
	}
	key := redistest.Prefix(t) + "k"
	redistest.Cleanup(t, conn.Client, key)
	c := conn.Client
	if err := c.Do(ctx, c.B().Set().Key(key).Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
	if err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
}

func TestConnectClosedPortRetriesThenNamesHost(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	rec := &recordSleep{}
	const secret = "hunter2-very-secret"
	var logs strings.Builder
	_, err := Connect(context.Background(), Config{
		URL:    "redis://app:" + secret + "@" + addr + "/0",
		Retry:  RetryPolicy{Sleep: rec.sleep, Jitter: func() float64 { return 0.5 }},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) {
		t.Errorf("error %q does not name %s", msg, addr)
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error %q holds the password", msg)
	}
	if !strings.Contains(msg, "after 3 attempt(s)") {
		t.Errorf("error %q; want 3 attempts", msg)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not wrap ECONNREFUSED", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs hold the password:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "redis://app:xxxxx@"+addr); n != 2 {
		t.Errorf("%d retry log lines with the redacted URL; want 2:\n%s", n, logs.String())
	}
	want := []time.Duration{1125 * time.Millisecond, 2250 * time.Millisecond}
	if got := rec.calls(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("waits %v; want %v", got, want)
	}
}

func TestConnectWrongPasswordIsNotRetried(t *testing.T) {
	t.Parallel()
	redistest.Client(t)
	rec := &recordSleep{}
	const secret = "definitely-not-the-password"
	u := strings.Replace(redistest.URL(), "redis://", "redis://nosuchuser:"+secret+"@", 1)
	_, err := Connect(context.Background(), Config{URL: u, Retry: RetryPolicy{Sleep: rec.sleep}})
	if err == nil {
		t.Fatal("Connect with a wrong user and password succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q holds the password", err)
	}
	var redisErr *rueidis.RedisError
	if !errors.As(err, &redisErr) {
		t.Errorf("error %v does not wrap the server's reply", err)
	}
	if n := len(rec.calls()); n != 0 {
		t.Errorf("an authentication failure was retried %d times", n)
	}
}

func TestConnectCancelledDuringWait(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	sleep := func(ctx context.Context, d time.Duration) error {
		cancel() // the caller gives up while we wait
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := Connect(ctx, Config{URL: "redis://" + addr, Retry: RetryPolicy{Sleep: sleep}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want context.Canceled", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "after 1 attempt(s)") {
		t.Errorf("error %q; want the refused dial of attempt 1 kept", err)
	}
}

func TestConnectClusterURLOnStandaloneServer(t *testing.T) {
	t.Parallel()
	redistest.Client(t)
	opt, _, err := Parse(Config{URL: redistest.URL()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordSleep{}
	_, err = Connect(context.Background(), Config{
		URL:   "redis+cluster://" + opt.InitAddress[0],
		Retry: RetryPolicy{Sleep: rec.sleep},
	})
	if !errors.Is(err, ErrWrongMode) {
		t.Fatalf("error %v; want ErrWrongMode", err)
	}
	if n := len(rec.calls()); n != 0 {
		t.Errorf("a topology mismatch was retried %d times", n)
	}
}

func TestConnectSingleAttempt(t *testing.T) {
	t.Parallel()
	rec := &recordSleep{}
	_, err := Connect(context.Background(), Config{
		URL:   "redis://" + closedPort(t),
		Retry: RetryPolicy{Attempts: 1, Sleep: rec.sleep},
	})
	if err == nil || !strings.Contains(err.Error(), "after 1 attempt(s)") || len(rec.calls()) != 0 {
		t.Fatalf("error %v, %d waits; want one attempt and no wait", err, len(rec.calls()))
	}
}

// TestConnectCancelledDuringDial connects to a server that accepts TCP but
// never answers the TLS handshake. With a dial timeout of an hour, only the
// caller's ctx can end the dial; it is cancelled once the server has
// accepted, so the test would hang if ctx were ignored while dialling.
func TestConnectCancelledDuringDial(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		cancel()
		accepted <- c
	}()
	_, err = Connect(ctx, Config{
		URL:         "rediss://" + l.Addr().String(),
		TLS:         TLSOptions{Verify: "none"},
		DialTimeout: time.Hour,
		Retry:       RetryPolicy{Sleep: (&recordSleep{}).sleep},
	})
	if err := l.Close(); err != nil {
		t.Error(err)
	}
	if c, ok := <-accepted; ok {
		c.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "after 1 attempt(s)") {
		t.Errorf("error %q; want the host named and a single attempt", err)
	}
}
