// Package worker runs a program or calls a webhook for every item of a
// queue, under a lease: `sluice worker`. A run that succeeds acks its
// items, one that fails nacks them with a backoff (dead-lettered at the
// queue's max deliveries), one that outlives its timeout is killed and
// nacked, and the lease is extended while a run lasts, so a slow item is
// never handed to a second consumer meanwhile. A shutdown lets running
// items finish, then kills and releases them; nothing taken is lost.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/consume"
)

// Defaults of Config.
const (
	DefaultConcurrency     = 1
	DefaultIdle            = 2 * time.Second
	DefaultRetryDelay      = time.Second
	DefaultRetryMax        = time.Minute
	DefaultShutdownTimeout = 30 * time.Second
	DefaultPoll            = time.Second
	DefaultAckInterval     = 5 * time.Millisecond
	// MaxReason bounds a nack's reason (the tail of a run's stderr or of a
	// webhook's answer): the service refuses longer ones.
	MaxReason = 1024
	// MaxBatch bounds Config.Batch, as the service bounds a receive.
	MaxBatch = 1000
	// MaxPrefetch bounds Config.Prefetch.
	MaxPrefetch = 1000
)

// Job is one run: one delivery, or a batch of them.
type Job struct {
	Queue      string
	Deliveries []Delivery
	// Batch is true in batch mode (Config.Batch > 0), even for a batch of
	// one: the run gets a JSON array.
	Batch bool
}

// Runner handles jobs. A nil error acks the job's items; an error nacks
// them with its text as the reason. When ctx is done the run must stop
// (kill its process, cancel its request) and return.
type Runner interface {
	Run(ctx context.Context, job Job) error
}

// Config configures a Worker. Zero fields take the defaults above.
type Config struct {
	// Queue names the queue in logs and in the runs' metadata.
	Queue  string
	Source Source
	Runner Runner
	// Lease is the lease items are received with (required); it is
	// extended every third of it while a run lasts.
	Lease time.Duration
	// Concurrency is how many runs at once.
	Concurrency int
	// Prefetch is how many runs' worth of items (items, or batches) are
	// leased ahead while runs are in progress, so that a run that ends
	// finds its next item received (default Concurrency, at most
	// MaxPrefetch; -1: none ahead). Their leases are extended while they
	// wait; a shutdown releases them, uncounted.
	Prefetch int
	// Batch > 0 switches to batch mode: up to Batch items per run, handed
	// over when full or when no item came for Idle, acked or nacked
	// together.
	Batch int
	Idle  time.Duration
	// Timeout bounds a run (0: none); a run past it is killed and nacked
	// with the reason "timeout after Timeout".
	Timeout time.Duration
	// RetryDelay is the delay of a failed item's redelivery after its
	// first attempt; it doubles with every attempt up to RetryMax.
	RetryDelay time.Duration
	RetryMax   time.Duration
	// ShutdownTimeout is how long running items may finish once Run's
	// context is done; then they are killed and released.
	ShutdownTimeout time.Duration
	// Poll is how long one receive waits for an item; a shutdown waits
	// for the receive in progress, so it is also how long a stop can take
	// to begin.
	Poll time.Duration
	// AckInterval is how long the ack of a successful run may wait to be
	// sent with others (default DefaultAckInterval); acks are also sent
	// when 100 are waiting, and all of them before Run returns.
	AckInterval time.Duration
	// Logger receives one record per failed or settled-with-trouble run
	// (default: discard).
	Logger *slog.Logger
	// Metrics, when not nil, is updated as runs end.
	Metrics *Metrics
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Idle == 0 {
		c.Idle = DefaultIdle
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	switch c.Prefetch {
	case 0:
		c.Prefetch = min(c.Concurrency, MaxPrefetch)
	case -1:
		c.Prefetch = 0
	}
	if c.AckInterval == 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrInvalidConfig is a Config that New refuses.
var ErrInvalidConfig = errors.New("invalid worker configuration")

func (c Config) validate() error {
	switch {
	case c.Source == nil || c.Runner == nil:
		return fmt.Errorf("%w: a source and a runner are required", ErrInvalidConfig)
	case c.Lease <= 0:
		return fmt.Errorf("%w: lease %v: want > 0", ErrInvalidConfig, c.Lease)
	case c.Concurrency < 1:
		return fmt.Errorf("%w: concurrency %d: want >= 1", ErrInvalidConfig, c.Concurrency)
	case c.Batch < 0 || c.Batch > MaxBatch:
		return fmt.Errorf("%w: batch %d: want 1 to %d", ErrInvalidConfig, c.Batch, MaxBatch)
	case c.Prefetch < 0 || c.Prefetch > MaxPrefetch:
		return fmt.Errorf("%w: prefetch %d: want 0 to %d", ErrInvalidConfig, c.Prefetch, MaxPrefetch)
	case c.Idle < 0 || c.Timeout < 0 || c.RetryDelay < 0 || c.RetryMax < 0 || c.ShutdownTimeout < 0 || c.Poll < 0 || c.AckInterval < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	return nil
}

// Worker consumes one queue. Make one with New; Run it once.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	counts counts
	// killNow is closed by Kill; Run's shutdown waits for it or for the
	// shutdown timeout.
	killNow  chan struct{}
	killOnce sync.Once
}

// New checks cfg and returns a worker.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, log: cfg.Logger.With("queue", cfg.Queue), killNow: make(chan struct{})}, nil
}

// Counts are a worker's totals, in items.
type Counts struct {
	// Processed items were acked after a successful run.
	Processed int64
	// Failed items were nacked (DeadLettered of them moved to the failed
	// DLQ).
	Failed       int64
	DeadLettered int64
	// Released items were handed back unhandled (shutdown).
	Released int64
	// Running is the number of runs in progress.
	Running int64
}

type counts struct {
	processed, failed, deadLettered, released, running atomic.Int64
}

// Counts returns the totals so far.
func (w *Worker) Counts() Counts {
	return Counts{
		Processed: w.counts.processed.Load(), Failed: w.counts.failed.Load(),
		DeadLettered: w.counts.deadLettered.Load(), Released: w.counts.released.Load(),
		Running: w.counts.running.Load(),
	}
}

// Kill ends a shutdown at once, without waiting for the shutdown timeout:
// the running items are killed and released (a second Ctrl-C). Before the
// shutdown began it only makes the shutdown, when it comes, immediate.
func (w *Worker) Kill() {
	w.killOnce.Do(func() { close(w.killNow) })
}

// errTimeout is the cause of a run's context that ended at Timeout.
var errTimeout = errors.New("run timed out")

// settleTimeout bounds one ack, nack or release: a shutdown must not hang
// on an engine that stopped answering.
const settleTimeout = 30 * time.Second

// Run consumes until ctx is done, then shuts down gracefully: it stops
// receiving, releases what it received but did not start, lets running
// items finish for up to ShutdownTimeout, then kills those still running
// and releases them (uncounted), and sends the waiting acks. It returns
// nil after such a stop, or the error that stopped it early (a closed
// client, a service refusing the API key); engine outages are logged and
// retried.
//
// It runs on the machinery of Queue.Consume, whatever the Source: Prefetch
// runs' worth of items are leased ahead, the leases of every item held
// (waiting or running) are extended every third of the lease, and the
// acks of successful runs are sent batched and asynchronously; nacks and
// releases go out at once.
func (w *Worker) Run(ctx context.Context) error {
	return consume.Run(ctx, consume.Config[Delivery]{
		Source: leased{src: w.cfg.Source, lease: w.cfg.Lease},
		Handle: w.run,
		Nack:   w.nack,

		Concurrency: w.cfg.Concurrency, Prefetch: w.cfg.Prefetch,
		Group: max(w.cfg.Batch, 1), Idle: w.cfg.Idle, Poll: w.cfg.Poll, MaxReceive: MaxBatch,
		// An item the engine leased while an abandoned receive was in
		// flight would come back only when its lease expires, counted as a
		// delivery: a stop waits for the receive (Poll) instead.
		DetachReceive: true,
		Lease:         w.cfg.Lease, AckInterval: w.cfg.AckInterval,
		ShutdownTimeout: w.cfg.ShutdownTimeout, Kill: w.killNow, SettleTimeout: settleTimeout,
		Fatal: fatal,

		Acked:    w.acked,
		Released: w.released,
		ReceiveFailed: func(err error, retryIn time.Duration) {
			w.log.Error("receive failed; retrying", "err", err, "retry_in", retryIn)
		},
		Error: w.trouble,
		Stopping: func() {
			w.log.Info("stopping: no new items; waiting for running ones", "running", w.counts.running.Load(), "shutdown_timeout", w.cfg.ShutdownTimeout)
		},
		Killing: func(timedOut bool) {
			if timedOut {
				w.log.Warn("shutdown timeout: killing running items; they are released", "running", w.counts.running.Load())
			} else {
				w.log.Warn("killing running items; they are released", "running", w.counts.running.Load())
			}
		},
	})
}

// runError is a failed run, as nack reports it.
type runError struct {
	err     error
	elapsed time.Duration
	timeout bool
}

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// run runs one job under Timeout. Its ctx is cancelled by the shutdown
// timeout (or Kill): the job is then released rather than nacked.
func (w *Worker) run(ctx context.Context, ds []Delivery) error {
	w.counts.running.Add(1)
	defer w.counts.running.Add(-1)
	if w.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, w.cfg.Timeout, errTimeout)
		defer cancel()
	}
	start := time.Now()
	err := w.cfg.Runner.Run(ctx, Job{Queue: w.cfg.Queue, Deliveries: ds, Batch: w.cfg.Batch > 0})
	elapsed := time.Since(start)
	w.cfg.Metrics.observeRun(elapsed)
	if err == nil {
		return nil
	}
	if errors.Is(context.Cause(ctx), errTimeout) {
		return &runError{err: errors.New("timeout after " + w.cfg.Timeout.String()), elapsed: elapsed, timeout: true}
	}
	return &runError{err: err, elapsed: elapsed}
}

// acked counts the items of a batched ack.
func (w *Worker) acked(ds []Delivery, acked []bool, err error) {
	if err != nil {
		// Whether the ack happened is unknown: unacked items come back
		// when their lease expires (at-least-once).
		w.log.Error("ack failed after a successful run; the items may be delivered again", "items", len(ds), "err", err)
		return
	}
	var n int64
	for i, ok := range acked {
		if ok {
			n++
		} else {
			w.log.Warn("ack after a successful run found the lease gone; the item will be delivered again", "id", ds[i].ID)
		}
	}
	w.counts.processed.Add(n)
	w.cfg.Metrics.addProcessed(n)
}

// nack settles the items of a failed run: a retry after the doubled
// delay, or the failed DLQ when they used their deliveries.
func (w *Worker) nack(ctx context.Context, ds []Delivery, err error) {
	var elapsed time.Duration
	var re *runError
	if errors.As(err, &re) {
		elapsed = re.elapsed
		if re.timeout {
			w.cfg.Metrics.addTimeout()
		}
	}
	reason := boundReason(err.Error())
	for _, d := range ds {
		delay := w.retryDelay(d.Attempt)
		dead, err := w.cfg.Source.Nack(ctx, d, delay, reason)
		if err != nil {
			w.log.Error("run failed and its nack too; the item comes back when its lease expires", "id", d.ID, "attempt", d.Attempt, "reason", reason, "err", err)
			continue
		}
		w.counts.failed.Add(1)
		w.cfg.Metrics.addFailed(dead)
		if dead {
			w.counts.deadLettered.Add(1)
			w.log.Warn("run failed; dead-lettered", "id", d.ID, "attempt", d.Attempt, "seconds", elapsed.Seconds(), "reason", reason, "dead_lettered", true)
		} else {
			w.log.Warn("run failed; nacked for a retry", "id", d.ID, "attempt", d.Attempt, "seconds", elapsed.Seconds(), "reason", reason, "dead_lettered", false, "retry_in", delay)
		}
	}
}

// released counts items handed back unhandled.
func (w *Worker) released(ds []Delivery, started bool) {
	n := int64(len(ds))
	w.counts.released.Add(n)
	w.cfg.Metrics.addReleased(n)
	why := "received but not started"
	if started {
		why = "killed by the shutdown"
	}
	w.log.Info("released items", "items", n, "why", why)
}

// trouble logs what went wrong without losing anything.
func (w *Worker) trouble(ds []Delivery, err error) {
	id := ""
	attempt := 0
	if len(ds) > 0 {
		id, attempt = ds[0].ID, ds[0].Attempt
	}
	switch {
	case errors.Is(err, consume.ErrLeaseLost):
		w.log.Warn("the lease ran out while the item was held; it may be delivered again meanwhile", "id", id, "attempt", attempt)
	default:
		w.log.Warn("lease trouble; nothing is lost", "id", id, "err", err)
	}
}

// leased is a Source as the consume package sees it: leases of the
// worker's length.
type leased struct {
	src   Source
	lease time.Duration
}

func (l leased) Receive(ctx context.Context, n int, wait time.Duration) ([]Delivery, error) {
	return l.src.Receive(ctx, n, wait, l.lease)
}

func (l leased) Extend(ctx context.Context, d Delivery) error {
	return l.src.Extend(ctx, d, l.lease)
}

func (l leased) Ack(ctx context.Context, ds []Delivery) ([]bool, error) { return l.src.Ack(ctx, ds) }
func (l leased) Release(ctx context.Context, d Delivery) error          { return l.src.Release(ctx, d) }
func (l leased) ID(d Delivery) string                                   { return d.ID }
func (l leased) Lease(Delivery) time.Duration                           { return l.lease }

// retryDelay is RetryDelay doubled for every attempt after the first,
// capped at RetryMax.
func (w *Worker) retryDelay(attempt int) time.Duration {
	d := w.cfg.RetryDelay
	for i := 1; i < attempt && d < w.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, w.cfg.RetryMax)
}

// boundReason keeps a reason within MaxReason bytes of valid UTF-8: the
// start (what failed: "exit status 3") and the end (the last words of the
// program, where its error usually is).
func boundReason(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	if len(s) <= MaxReason {
		return s
	}
	const sep = " ... "
	head, tail := 128, MaxReason-128-len(sep)
	h := s[:head]
	for !utf8.ValidString(h) {
		h = h[:len(h)-1]
	}
	t := s[len(s)-tail:]
	for !utf8.ValidString(t) {
		t = t[1:]
	}
	return h + sep + t
}
