package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/keyspace"
	"github.com/sluicehq/sluice/internal/remote"
	"github.com/sluicehq/sluice/internal/worker"
)

const workerSynopsis = `worker QUEUE (--exec 'PROGRAM ARGS' | --webhook URL) [flags]

Runs a program, or POSTs to a webhook, for every item of QUEUE, under a
lease: exit status 0 (a 2xx answer) acks the item; anything else nacks it
with the end of the program's stderr (the answer's body) as the reason, for
a retry after --retry-delay, doubled with each attempt up to --retry-max,
until the queue's max deliveries (declared, else --max-deliveries) moves it
to the failed DLQ. The lease is extended while a run lasts.

The program gets the item's JSON on stdin and SLUICE_QUEUE,
SLUICE_DELIVERY_ID and SLUICE_ATTEMPT in its environment. --exec is split
into words as a shell would, but runs without a shell: write
sh -c '...' for pipes, variables or redirections. With --arg, {item}, {id},
{attempt} and {queue} in the words are replaced (each word stays one
argument whatever the item holds; a placeholder in code after -c or -e is
refused: pass it as an argument, as in sh -c 'echo "$1"' sh {item}).

While runs are in progress, --prefetch runs' worth of items (by default
as many as --concurrency) are leased ahead, so that a run that ends finds
its next item received; their leases are extended while they wait, and
the acks of successful runs are sent batched, a few milliseconds later.

With --batch N, a run gets up to N items as one JSON array (handed over
when full or after --idle without a new item; SLUICE_BATCH_SIZE says how
many) and acks or nacks them together. A webhook gets the same body, with
the headers Sluice-Queue, Sluice-Delivery-Id, Sluice-Attempt (or
Sluice-Batch-Size).

SIGTERM or SIGINT stops receiving, lets running items finish for up to
--shutdown-timeout (a second signal: no longer), then kills them (SIGTERM to the run's process group,
SIGKILL after --kill-grace); killed and not-yet-started items are released,
uncounted. A run past --timeout is killed the same way and nacked with the
reason "timeout after D".

examples:
  sluice worker detections --exec 'python detect.py' --concurrency 4
  sluice worker emails --exec 'sh -c "jq -r .to | xargs ./send"' --timeout 30s
  sluice worker thumbs --exec './thumb --id {id} --item {item}' --arg
  sluice worker events --webhook http://localhost:9000/hook --batch 100 --idle 2s
  sluice worker jobs --url http://queue-host:8000 --api-key KEY --exec ./job.sh

exit status: 0 stopped by a signal, 1 the engine or service could not be
reached at start or stopped the worker (closed, API key revoked), 2 bad
arguments or configuration (an API key the service refuses at start).
Engine outages while running are logged and retried.`

// workerFlags are sluice worker's flags.
type workerFlags struct {
	exec, webhook                     string
	arg                               bool
	batch, concurrency, maxDeliveries int
	prefetch                          int
	idle, timeout, lease              *time.Duration
	retryDelay, retryMax              *time.Duration
	shutdownTimeout, killGrace        *time.Duration
	metricsAddr                       string
	progress                          *time.Duration
}

func (e *env) worker(ctx context.Context, args []string) error {
	fs, conn, rf := e.inspectFlags("worker", workerSynopsis)
	var f workerFlags
	fs.StringVar(&f.exec, "exec", "", "program to run per item, with its arguments (split without a shell)")
	fs.StringVar(&f.webhook, "webhook", "", "URL to POST every item (or batch) to")
	fs.BoolVar(&f.arg, "arg", false, "replace {item} {id} {attempt} {queue} in the --exec words")
	fs.IntVar(&f.batch, "batch", 0, fmt.Sprintf("items per run, as a JSON array (1 to %d; 0: one item per run, not in an array)", worker.MaxBatch))
	f.idle = durationFlag(fs, "idle", worker.DefaultIdle, "with --batch: hand over a partial batch after this long without a new item")
	fs.IntVar(&f.concurrency, "concurrency", worker.DefaultConcurrency, "runs at once")
	fs.IntVar(&f.prefetch, "prefetch", 0, fmt.Sprintf("runs' worth of items (items, or batches) leased ahead while runs are in progress, 0 to %d (default: --concurrency; 0 when given: none)", worker.MaxPrefetch))
	f.timeout = durationFlag(fs, "timeout", 0, "kill a run after this long and nack it (0: no limit)")
	f.lease = durationFlag(fs, "lease", 0, "lease of received items (default: the queue's, else 30s); extended every third of it while a run lasts")
	fs.IntVar(&f.maxDeliveries, "max-deliveries", 0, "deliveries before an item moves to the failed DLQ, for a queue that declares none (default 5)")
	f.retryDelay = durationFlag(fs, "retry-delay", worker.DefaultRetryDelay, "delay of a failed item's retry after its first attempt; doubled with each attempt")
	f.retryMax = durationFlag(fs, "retry-max", worker.DefaultRetryMax, "cap of the retry delay")
	f.shutdownTimeout = durationFlag(fs, "shutdown-timeout", worker.DefaultShutdownTimeout, "on SIGTERM/SIGINT, how long running items may finish before they are killed and released")
	f.killGrace = durationFlag(fs, "kill-grace", worker.DefaultKillGrace, "time between SIGTERM and SIGKILL when a run is killed")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this host:port at /metrics (off by default)")
	f.progress = durationFlag(fs, "progress", 10*time.Second, "when stderr is not a terminal, log the counts this often (0: never)")
	pos, err := parseArgsFor(fs, args, "QUEUE")
	if err != nil {
		return err
	}
	name := pos[0]
	if err := keyspace.ValidateQueueName(name); err != nil {
		return usagef("worker: %v", err)
	}
	ui := newStatusUI(e.stderr)
	runner, err := e.workerRunner(&f, ui)
	if err != nil {
		return err
	}
	if f.batch < 0 || f.batch > worker.MaxBatch {
		return usagef("--batch %d: want 1 to %d (or 0)", f.batch, worker.MaxBatch)
	}
	if f.concurrency < 1 {
		return usagef("--concurrency %d: want 1 or more", f.concurrency)
	}
	if f.maxDeliveries < 0 {
		return usagef("--max-deliveries %d: want 0 (the queue's, else 5) or more", f.maxDeliveries)
	}
	prefetch := 0 // the worker's default: --concurrency
	if isSet(fs, "prefetch") {
		if f.prefetch < 0 || f.prefetch > worker.MaxPrefetch {
			return usagef("--prefetch %d: want 0 to %d", f.prefetch, worker.MaxPrefetch)
		}
		prefetch = f.prefetch
		if prefetch == 0 {
			prefetch = -1 // none ahead
		}
	}

	log := slog.New(slog.NewTextHandler(ui, &slog.HandlerOptions{Level: slog.LevelInfo}))
	src, lease, err := e.workerSource(ctx, conn, rf, &f, name)
	if err != nil {
		return err
	}
	defer src.close()

	reg := prometheus.NewRegistry()
	metrics, err := worker.NewMetrics(reg, name)
	if err != nil {
		return err
	}
	cfg := worker.Config{
		Queue: name, Source: src.Source, Runner: runner, Lease: lease,
		Concurrency: f.concurrency, Prefetch: prefetch, Batch: f.batch, Idle: *f.idle, Timeout: *f.timeout,
		RetryDelay: *f.retryDelay, RetryMax: *f.retryMax, ShutdownTimeout: *f.shutdownTimeout,
		Logger: log, Metrics: metrics,
	}
	w, err := worker.New(cfg)
	if err != nil {
		return usagef("worker: %v", err)
	}
	if f.metricsAddr != "" {
		stopMetrics, err := serveMetrics(ctx, f.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	mode := "exec"
	if f.webhook != "" {
		mode = "webhook"
	}
	log.Info("worker started", "queue", name, "source", src.display, "mode", mode, "concurrency", f.concurrency, "prefetch", cfg.WithDefaults().Prefetch, "batch", f.batch, "lease", lease)
	stopStatus := ui.run(w, log, *f.progress)
	stopSecond := killOnSecondSignal(w)
	err = w.Run(ctx)
	stopSecond()
	stopStatus()
	c := w.Counts()
	log.Info("worker stopped", "processed", c.Processed, "failed", c.Failed, "dead_lettered", c.DeadLettered, "released", c.Released)
	if err != nil {
		return fmt.Errorf("worker %s: %w", name, err)
	}
	return nil
}

// workerRunner checks --exec/--webhook and makes the runner.
// The runs' stderr goes through ui, which keeps it apart from the status
// line; their stdout is the worker's.
func (e *env) workerRunner(f *workerFlags, ui *statusUI) (worker.Runner, error) {
	switch {
	case (f.exec == "") == (f.webhook == ""):
		return nil, usagef("worker: give one of --exec and --webhook")
	case f.webhook != "":
		if f.arg {
			return nil, usagef("--arg goes with --exec")
		}
		u := f.webhook
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, usagef("--webhook %q: want an http:// or https:// URL", remote.Redact(u))
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = max(f.concurrency, 2)
		return &worker.Webhook{URL: u, Client: &http.Client{Transport: tr}}, nil
	}
	argv, err := worker.SplitCommand(f.exec)
	if err != nil {
		return nil, usagef("--exec: %v", err)
	}
	if f.arg {
		if err := worker.CheckPlaceholders(argv, f.batch > 0); err != nil {
			return nil, usagef("--exec: %v", err)
		}
	}
	// A program that is not there would fail every item into the DLQ.
	if !strings.Contains(argv[0], "{") {
		if _, err := exec.LookPath(argv[0]); err != nil {
			return nil, usagef("--exec: %v", err)
		}
	}
	return &worker.Exec{
		Argv: argv, Placeholders: f.arg, Env: childEnv(os.Environ()),
		Stdout: concurrent(e.stdout), Stderr: ui, KillGrace: *f.killGrace,
	}, nil
}

// childEnv is the worker's environment without its own credentials: a
// program run per item has no use for the service's API key, and may log
// its environment.
func childEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SLUICE_API_KEY=") {
			out = append(out, kv)
		}
	}
	return out
}

// workerSource is where the worker's items come from.
type workerSource struct {
	worker.Source
	display string
	close   func()
}

// workerSource opens the engine, or the --url service, and resolves the
// lease: --lease, else the queue's.
func (e *env) workerSource(ctx context.Context, conn *connFlags, rf *remoteFlags, f *workerFlags, name string) (workerSource, time.Duration, error) {
	// Every run holds a connection (receive, extend, settle): keep as many
	// idle ones as there are runs, not the default two.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(f.concurrency*2, 2)
	rc, display, err := e.serviceWith(conn, rf, &http.Client{Transport: tr})
	if err != nil {
		return workerSource{}, 0, err
	}
	if rc != nil {
		s, err := rc.QueueDeliverySettings(ctx, name)
		if err != nil {
			tr.CloseIdleConnections()
			return workerSource{}, 0, serviceError(fmt.Errorf("service %s: %w", display, err))
		}
		lease := s.Lease
		if *f.lease > 0 {
			lease = *f.lease
		}
		maxDeliveries := s.MaxDeliveries
		if s.DeclaredMaxDeliveries == 0 && f.maxDeliveries > 0 {
			maxDeliveries = f.maxDeliveries
		}
		return workerSource{Source: worker.FromRemote(rc, name, maxDeliveries), display: display, close: tr.CloseIdleConnections}, lease, nil
	}
	client, err := e.open(ctx, conn)
	if err != nil {
		return workerSource{}, 0, err
	}
	closeClient := func() { _ = client.Close() }
	// The queue's declared max deliveries wins over --max-deliveries.
	q := client.QueueWithDefaults(name, sluice.QueueSettings{MaxDeliveries: f.maxDeliveries})
	lease := *f.lease
	if lease == 0 {
		s, err := q.Settings(ctx)
		if err != nil {
			closeClient()
			return workerSource{}, 0, err
		}
		lease = s.Settings.Lease
	}
	t, _ := conn.resolve(e.getenv)
	return workerSource{Source: worker.FromQueue(q), display: t.display, close: closeClient}, lease, nil
}

// killOnSecondSignal makes a second SIGINT or SIGTERM (the first one
// ended ctx and began the shutdown) kill the running items at once rather
// than after --shutdown-timeout. It counts the signals itself, from the
// start, so that a second signal that comes quickly is not missed. stop
// ends the watch.
func killOnSecondSignal(w *worker.Worker) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer signal.Stop(sigs)
		for n := 0; n < 2; n++ {
			select {
			case <-done:
				return
			case <-sigs:
			}
		}
		w.Kill()
	}()
	return func() {
		close(done)
		<-finished
	}
}

// serveMetrics serves reg at /metrics on addr until the returned stop.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// concurrent makes w safe for the runs that write to it at once: a file
// is (each run gets the descriptor itself), another writer gets a lock.
func concurrent(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok {
		return w
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// statusUI is the worker's stderr, written by its log and by the runs'
// stderr: on a terminal it redraws one status line about once a second and
// clears it around every write; else it passes the writes through and the
// log has the counts every --progress.
type statusUI struct {
	out io.Writer
	tty bool
	// mu orders log records and redraws, which come from every run.
	mu   sync.Mutex
	line string
}

func newStatusUI(out io.Writer) *statusUI {
	tty := false
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &statusUI{out: out, tty: tty}
}

// Write writes a log record, above the status line.
func (u *statusUI) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tty && u.line != "" {
		_, _ = io.WriteString(u.out, "\r\x1b[K")
		defer func() { _, _ = io.WriteString(u.out, u.line) }()
	}
	return u.out.Write(p)
}

func (u *statusUI) draw(line string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.line = line
	_, _ = io.WriteString(u.out, "\r\x1b[K"+line)
}

// run starts the status line (or the progress log) of w; stop ends it.
func (u *statusUI) run(w *worker.Worker, log *slog.Logger, progress time.Duration) (stop func()) {
	every := progress
	if u.tty {
		every = time.Second
	}
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		last, lastAt := int64(0), time.Now()
		for {
			select {
			case <-done:
				if u.tty {
					u.draw("")
				}
				return
			case now := <-t.C:
				c := w.Counts()
				rate := float64(c.Processed+c.Failed-last) / now.Sub(lastAt).Seconds()
				last, lastAt = c.Processed+c.Failed, now
				if u.tty {
					u.draw(fmt.Sprintf("%d processed, %d failed (%d dead-lettered), %d running, %.1f/s",
						c.Processed, c.Failed, c.DeadLettered, c.Running, rate))
					continue
				}
				log.Info("progress", "processed", c.Processed, "failed", c.Failed, "dead_lettered", c.DeadLettered, "running", c.Running, "per_second", rate)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
