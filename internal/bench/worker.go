package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/worker"
)

// workerConcurrency is what the worker suite measures when
// Options.Goroutines is not given: a worker runs processes, and 50 of them
// at once measure the machine's fork rate rather than the worker.
var workerConcurrency = []int{1, 8}

// WorkerConcurrency are the default concurrencies of the worker suite.
func WorkerConcurrency() []int { return append([]int(nil), workerConcurrency...) }

// Worker measures `sluice worker` end to end on o.Engine: items per second
// through a worker that runs /bin/true per item (and per batch of 100),
// and through one that POSTs to an in-process webhook answering 204, at
// each concurrency of o.Goroutines. A feeder keeps the queue from running
// dry; each case runs for o.Duration and then stops the worker gracefully.
func Worker(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Engine == "redis" {
		s, err := openRedisSuite(ctx, o, "worker", nil)
		if err != nil {
			return nil, err
		}
		if err := workerCases(ctx, o, s.client, "redis", s.rep); err != nil {
			_ = s.close()
			return nil, err
		}
		return s.rep, s.close()
	}
	cfgs, cleanup, err := embeddedConfigs(o)
	if err != nil {
		return nil, err
	}
	rep := newReport("worker", o)
	for _, cfg := range cfgs {
		c, err := sluice.Open(ctx, cfg.url, &sluice.Config{Fsync: cfg.fsync, Logger: quietLogger()})
		if err == nil {
			err = workerCases(ctx, o, c, cfg.label, rep)
			c.Close()
		}
		if err != nil {
			_ = cleanup()
			return nil, err
		}
	}
	return rep, cleanup()
}

func workerCases(ctx context.Context, o Options, c *sluice.Client, label string, rep *Report) error {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	seq := 0
	for _, batch := range []int{0, 100} {
		for _, mode := range []string{"exec /bin/true", "webhook"} {
			for _, n := range o.Goroutines {
				var runner worker.Runner = &worker.Exec{Argv: []string{"/bin/true"}}
				if mode == "webhook" {
					runner = &worker.Webhook{URL: hook.URL, Client: hc}
				}
				name := label + ": worker " + mode
				if batch > 0 {
					name += fmt.Sprintf(", batches of %d", batch)
				}
				o.Progress("%s, concurrency %d", name, n)
				seq++
				t, err := workerCase(ctx, o, c.Queue(fmt.Sprintf("w%d", seq)), runner, n, batch)
				if err != nil {
					return fmt.Errorf("bench: %s (concurrency %d): %w", name, n, err)
				}
				rep.add(name, n, t, "goroutines is --concurrency; ops are runs (one item, or one batch)")
			}
		}
	}
	return nil
}

// workerCase runs one worker on q for o.Duration.
func workerCase(ctx context.Context, o Options, q *sluice.Queue, runner worker.Runner, concurrency, batch int) (tally, error) {
	raw := json.RawMessage(item(o.ItemSize))
	feed := make([]any, 1000)
	for i := range feed {
		feed[i] = raw
	}
	// Enough for the first moments; the feeder tops the queue up.
	top := func() error {
		n, err := q.Len(ctx)
		if err != nil || n >= 5000 {
			return err
		}
		for range 10 {
			if _, err := q.AddBatch(ctx, feed, &sluice.AddOptions{MaxSize: sluice.Unbounded}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := top(); err != nil {
		return tally{}, err
	}
	w, err := worker.New(worker.Config{
		Queue: q.Name(), Source: worker.FromQueue(q), Runner: runner, Lease: time.Minute,
		Concurrency: concurrency, Batch: batch, Idle: 10 * time.Millisecond, Poll: 100 * time.Millisecond,
	})
	if err != nil {
		return tally{}, err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var runErr, feedErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		runErr = w.Run(wctx)
	}()
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if err := top(); err != nil && wctx.Err() == nil {
				feedErr = err
				stop()
				return
			}
		}
	}()
	timer := time.NewTimer(o.Duration)
	select {
	case <-timer.C:
	case <-wctx.Done():
	}
	timer.Stop()
	counts, elapsed := w.Counts(), time.Since(start)
	stop()
	wg.Wait()
	if err := firstErr(runErr, feedErr, ctx.Err()); err != nil {
		return tally{}, err
	}
	if counts.Failed > 0 {
		return tally{}, fmt.Errorf("%d runs failed", counts.Failed)
	}
	runs := counts.Processed
	if batch > 0 {
		runs = (counts.Processed + int64(batch) - 1) / int64(batch)
	}
	if _, err := q.Clear(ctx); err != nil {
		return tally{}, err
	}
	return tally{ops: runs, items: counts.Processed, elapsed: elapsed}, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
