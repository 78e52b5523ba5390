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

	"github.com/sluicehq/sluice"
)

// Defaults of Config.
const (
	DefaultConcurrency     = 1
	DefaultIdle            = 2 * time.Second
	DefaultRetryDelay      = time.Second
	DefaultRetryMax        = time.Minute
	DefaultShutdownTimeout = 30 * time.Second
	DefaultPoll            = time.Second
	// MaxReason bounds a nack's reason (the tail of a run's stderr or of a
	// webhook's answer): the service refuses longer ones.
	MaxReason = 1024
	// MaxBatch bounds Config.Batch, as the service bounds a receive.
	MaxBatch = 1000
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
	// for the receives in progress, so it is also how long a stop can take
	// to begin.
	Poll time.Duration
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
	case c.Idle < 0 || c.Timeout < 0 || c.RetryDelay < 0 || c.RetryMax < 0 || c.ShutdownTimeout < 0 || c.Poll < 0:
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

// Why a run's context ended.
var (
	errTimeout  = errors.New("run timed out")
	errShutdown = errors.New("shutdown timeout")
)

// settleTimeout bounds one ack, nack, release or extend: a shutdown must
// not hang on an engine that stopped answering.
const settleTimeout = 30 * time.Second

// Run consumes until ctx is done, then shuts down gracefully: it stops
// receiving, lets running items finish for up to ShutdownTimeout, then
// kills those still running and releases them (uncounted), as it releases
// anything received but not started. It returns nil after such a stop, or
// the error that stopped it early (a closed client, a service refusing the
// API key); engine outages are logged and retried.
func (w *Worker) Run(ctx context.Context) error {
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	// Runs are not cancelled by the stop, only killed when the shutdown
	// timeout is over.
	runCtx, kill := context.WithCancelCause(context.WithoutCancel(ctx))
	defer kill(nil)

	var wg sync.WaitGroup
	errs := make([]error, w.cfg.Concurrency)
	for i := range w.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.slot(stopCtx, runCtx); err != nil {
				errs[i] = err
				stop(err)
			}
		}()
	}
	slotsDone := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-slotsDone:
			return
		case <-stopCtx.Done():
		}
		w.log.Info("stopping: no new items; waiting for running ones", "running", w.counts.running.Load(), "shutdown_timeout", w.cfg.ShutdownTimeout)
		t := time.NewTimer(w.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-slotsDone:
		case <-t.C:
			w.log.Warn("shutdown timeout: killing running items; they are released", "running", w.counts.running.Load())
			kill(errShutdown)
		case <-w.killNow:
			w.log.Warn("killing running items; they are released", "running", w.counts.running.Load())
			kill(errShutdown)
		}
	}()
	wg.Wait()
	close(slotsDone)
	<-watcherDone
	return errors.Join(errs...)
}

// slot receives and runs jobs one after the other until stopCtx is done.
func (w *Worker) slot(stopCtx, runCtx context.Context) error {
	backoff := 100 * time.Millisecond
	for stopCtx.Err() == nil {
		ds, err := w.receive(stopCtx)
		if err != nil {
			if fatal(err) {
				return err
			}
			w.log.Error("receive failed; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-stopCtx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if len(ds) == 0 {
			continue
		}
		if stopCtx.Err() != nil {
			w.release(ds, "received during the shutdown")
			return nil //nolint:nilerr // stopping is not a failure
		}
		w.handle(runCtx, ds)
	}
	return nil
}

// receive leases the next job's items. The receives are not cancelled by
// a stop: an item the engine leased while the call was being abandoned
// would come back only when its lease expires, counted as a delivery.
// They wait for at most Poll (Idle for more of a batch), and whatever they
// bring after a stop is released.
func (w *Worker) receive(stopCtx context.Context) ([]Delivery, error) {
	ctx := context.WithoutCancel(stopCtx)
	n := max(w.cfg.Batch, 1)
	ds, err := w.cfg.Source.Receive(ctx, n, w.cfg.Poll, w.cfg.Lease)
	if err != nil || len(ds) == 0 || len(ds) >= n {
		return ds, err
	}
	// Collecting a batch is capped at half the lease, so no lease of the
	// batch can expire before the run starts.
	until := time.Now().Add(w.cfg.Lease / 2)
	for len(ds) < n && stopCtx.Err() == nil {
		wait := min(w.cfg.Idle, time.Until(until))
		if wait <= 0 {
			break
		}
		more, err := w.cfg.Source.Receive(ctx, n-len(ds), wait, w.cfg.Lease)
		if err != nil {
			w.log.Warn("receive failed; running the batch collected so far", "err", err, "items", len(ds))
			break
		}
		if len(more) == 0 {
			break
		}
		ds = append(ds, more...)
	}
	return ds, nil
}

// handle runs one job and settles its items.
func (w *Worker) handle(runCtx context.Context, ds []Delivery) {
	w.counts.running.Add(1)
	defer w.counts.running.Add(-1)
	ctx, cancel := context.WithCancel(runCtx)
	defer cancel()
	if w.cfg.Timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, w.cfg.Timeout, errTimeout)
		defer cancelT()
	}
	stopExtending := w.extendWhileRunning(ds)
	start := time.Now()
	err := w.cfg.Runner.Run(ctx, Job{Queue: w.cfg.Queue, Deliveries: ds, Batch: w.cfg.Batch > 0})
	elapsed := time.Since(start)
	stopExtending()
	w.cfg.Metrics.observeRun(elapsed)
	switch cause := context.Cause(ctx); {
	case err == nil:
		w.ack(ds)
	case errors.Is(cause, errShutdown):
		w.release(ds, "killed by the shutdown")
	case errors.Is(cause, errTimeout):
		w.cfg.Metrics.addTimeout()
		w.nack(ds, "timeout after "+w.cfg.Timeout.String(), elapsed)
	default:
		w.nack(ds, err.Error(), elapsed)
	}
}

// extendWhileRunning renews the leases of ds every third of a lease until
// the returned stop is called.
func (w *Worker) extendWhileRunning(ds []Delivery) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		lost := make([]bool, len(ds))
		t := time.NewTicker(max(w.cfg.Lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for i, d := range ds {
				if lost[i] {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), min(settleTimeout, w.cfg.Lease))
				err := w.cfg.Source.Extend(ctx, d, w.cfg.Lease)
				cancel()
				switch {
				case errors.Is(err, sluice.ErrLeaseNotFound):
					// Gone for good: said once, not every third of a lease.
					lost[i] = true
					w.log.Warn("the lease ran out while the item runs; it may be delivered again meanwhile", "id", d.ID, "attempt", d.Attempt)
				case err != nil:
					w.log.Warn("extending the lease failed; retrying at the next extension", "id", d.ID, "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func (w *Worker) ack(ds []Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	acked, err := w.cfg.Source.Ack(ctx, ds)
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

func (w *Worker) nack(ds []Delivery, reason string, elapsed time.Duration) {
	reason = boundReason(reason)
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
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

func (w *Worker) release(ds []Delivery, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	var n int64
	for _, d := range ds {
		if err := w.cfg.Source.Release(ctx, d); err != nil {
			w.log.Error("release failed; the item comes back when its lease expires", "id", d.ID, "err", err)
			continue
		}
		n++
	}
	w.counts.released.Add(n)
	w.cfg.Metrics.addReleased(n)
	if n > 0 {
		w.log.Info("released items", "items", n, "why", why)
	}
}

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
