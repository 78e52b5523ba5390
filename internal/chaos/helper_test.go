package chaos_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/chaos"
	"github.com/sluicehq/sluice/internal/server"
)

// TestChaosHelperProcess is not a test: the chaos tests re-execute the
// test binary with envRole set to run a consumer or the service in a
// process of its own, which they can SIGKILL.
func TestChaosHelperProcess(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		t.Skip("runs only as a child process of the chaos tests")
	}
	var err error
	switch role {
	case roleConsumer:
		err = runConsumer()
	case roleServer:
		err = runServer()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos %s: %v\n", role, err)
		os.Exit(1)
	}
	// Exit here: the testing package would print its own lines to stdout.
	os.Exit(0)
}

func envInt(name string) (int, error) {
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

func runConsumer() error {
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		stop.Store(true)
	}()

	lease, err := time.ParseDuration(os.Getenv(envLease))
	if err != nil {
		return fmt.Errorf("%s: %w", envLease, err)
	}
	maxDeliveries, err := envInt(envMaxDeliv)
	if err != nil {
		return err
	}
	opts := chaos.ConsumerOptions{Poll: 250 * time.Millisecond, RetryPause: 50 * time.Millisecond}
	switch os.Getenv(envEndpoint) {
	case "redis":
		maxSize, err := envInt(envMaxSize)
		if err != nil {
			return err
		}
		client, err := sluice.Open(context.Background(), os.Getenv(envURL), &sluice.Config{KeyPrefix: os.Getenv(envPrefix)})
		if err != nil {
			return err
		}
		defer client.Close()
		q := client.QueueWith(os.Getenv(envQueue), sluice.QueueSettings{MaxSize: int64(maxSize), Policy: sluice.PolicyDLQ})
		ep := &chaos.ClientEndpoint{Queue: q, Opts: sluice.ReceiveOptions{Lease: lease, MaxDeliveries: maxDeliveries}}
		return chaos.Consume(ep, os.Stdout, &stop, opts)
	case "http":
		ep := &chaos.HTTPQueue{
			Base: os.Getenv(envURL), Queue: os.Getenv(envQueue),
			Lease: lease, MaxDeliveries: maxDeliveries,
			// Longer than a receive's wait; a request to a dead server
			// fails fast and is retried.
			Client: &http.Client{Timeout: 30 * time.Second},
		}
		return chaos.Consume(ep, os.Stdout, &stop, opts)
	}
	return fmt.Errorf("%s: want redis or http, got %q", envEndpoint, os.Getenv(envEndpoint))
}

// runServer serves the durable embedded engine over HTTP until SIGTERM,
// wired as `sluice serve --data-dir` wires it, under the fsync policy of
// envFsync ("" is the default of `sluice serve`, everysec).
func runServer() error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	maxSize, err := envInt(envMaxSize)
	if err != nil {
		return err
	}
	dir := os.Getenv(envDataDir)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := sluice.Open(ctx, "file://"+dir, &sluice.Config{
		Fsync:  sluice.Fsync(os.Getenv(envFsync)),
		Queue:  sluice.QueueSettings{MaxSize: int64(maxSize), Policy: sluice.PolicyDLQ},
		Logger: log,
	})
	if err != nil {
		return err
	}
	cfg := server.DefaultConfig()
	cfg.Addr = os.Getenv(envListenAddr)
	cfg.DataDir = dir
	cfg.QueueMaxSize = int64(maxSize)
	cfg.QueueOverflowPolicy = sluice.PolicyDLQ
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.PollInterval = 250 * time.Millisecond
	srv, err := server.New(client, cfg, log)
	if err != nil {
		client.Close()
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		client.Close()
		return err
	}
	fmt.Printf("%s %s\n", listeningToken, ln.Addr())
	err = srv.Run(ctx, ln)
	if cerr := client.Close(); err == nil {
		err = cerr
	}
	return err
}
