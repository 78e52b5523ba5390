// Command peers measures Sluice beside asynq on the same Redis, in one run:
// enqueueing (Add against asynq's Client.Enqueue) at 1 and 50 goroutines,
// and processing with a no-op handler (Queue.Consume against asynq's
// Server) at concurrency 4 and 50. It is a module of its own so that the
// Sluice module does not depend on asynq:
//
//	cd bench/peers && go run . --redis redis://127.0.0.1:6379/15
//
// The cases run in interleaved rounds, so a machine whose speed drifts
// slows both sides alike. Every key either side wrote is deleted at the
// end: asynq's under "asynq:{sluice-peers-<run>}" (its queue is named for
// the run), Sluice's under its own key prefix.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

type options struct {
	redis    string
	duration time.Duration
	drain    int
	itemSize int
}

func run() error {
	var o options
	flag.StringVar(&o.redis, "redis", "redis://127.0.0.1:6379/15", "Redis both sides use (a loopback address; keys are deleted at the end)")
	flag.DurationVar(&o.duration, "duration", 6*time.Second, "time each enqueue case runs, over 3 rounds")
	flag.IntVar(&o.drain, "drain", 30000, "tasks each processing case drains, per round")
	flag.IntVar(&o.itemSize, "item-size", 200, "payload size in bytes")
	flag.Parse()
	ctx := context.Background()

	u, err := url.Parse(o.redis)
	if err != nil || u.Scheme != "redis" {
		return fmt.Errorf("--redis %q: want redis://host:port/db", o.redis)
	}
	db, _ := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	pw, _ := u.User.Password()
	aopt := asynq.RedisClientOpt{Addr: u.Host, DB: db, Password: pw}

	tag := make([]byte, 4)
	_, _ = rand.Read(tag)
	runID := "sluice-peers-" + hex.EncodeToString(tag)
	client, err := sluice.Open(ctx, o.redis, &sluice.Config{KeyPrefix: runID + ":"})
	if err != nil {
		return err
	}
	defer client.Close()
	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{u.Host}, SelectDB: db, Password: pw, DisableCache: true})
	if err != nil {
		return err
	}
	defer raw.Close()
	defer cleanup(ctx, raw, runID)

	payload := payload(o.itemSize)
	ac := asynq.NewClient(aopt)
	defer ac.Close()
	q := client.QueueWith("q", sluice.QueueSettings{MaxSize: sluice.Unbounded})

	type row struct {
		label string
		n     int
		items int64
		secs  float64
		peer  string
	}
	var rows []*row
	find := func(label string, n int) *row {
		for _, r := range rows {
			if r.label == label && r.n == n {
				return r
			}
		}
		r := &row{label: label, n: n}
		rows = append(rows, r)
		return r
	}

	const rounds = 3
	slice := o.duration / rounds
	for round := range rounds {
		for _, n := range []int{1, 50} {
			fmt.Fprintf(os.Stderr, "round %d: enqueue, %d goroutines\n", round+1, n)
			k, s, err := timed(n, slice, func() error {
				_, err := ac.Enqueue(asynq.NewTask("noop", payload), asynq.Queue(runID), asynq.MaxRetry(0))
				return err
			})
			if err != nil {
				return fmt.Errorf("asynq enqueue: %w", err)
			}
			r := find("asynq Enqueue", n)
			r.items, r.secs = r.items+k, r.secs+s
			k, s, err = timed(n, slice, func() error {
				_, err := q.Add(ctx, json.RawMessage(payload), nil)
				return err
			})
			if err != nil {
				return fmt.Errorf("sluice add: %w", err)
			}
			r = find("sluice Add", n)
			r.items, r.secs, r.peer = r.items+k, r.secs+s, "asynq Enqueue"
			if err := clear(ctx, raw, runID, q); err != nil {
				return err
			}
		}
		for _, c := range []int{4, 50} {
			fmt.Fprintf(os.Stderr, "round %d: process, concurrency %d\n", round+1, c)
			s, err := asynqDrain(ctx, ac, aopt, runID, payload, o.drain, c)
			if err != nil {
				return fmt.Errorf("asynq process: %w", err)
			}
			r := find("asynq process (no-op)", c)
			r.items, r.secs = r.items+int64(o.drain), r.secs+s
			s, err = sluiceDrain(ctx, q, payload, o.drain, c)
			if err != nil {
				return fmt.Errorf("sluice consume: %w", err)
			}
			r = find("sluice Consume (no-op)", c)
			r.items, r.secs, r.peer = r.items+int64(o.drain), r.secs+s, "asynq process (no-op)"
			if err := clear(ctx, raw, runID, q); err != nil {
				return err
			}
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(os.Stdout, "Sluice and asynq v0.26.0 (go.mod) on Redis %s, %d-byte payloads, %d rounds\n\n", u.Host, o.itemSize, rounds)
	fmt.Fprintln(tw, "case\tgoroutines\titems/s\tratio\tpeer\t")
	for _, r := range rows {
		rate := float64(r.items) / r.secs
		ratio := ""
		if r.peer != "" {
			if p := find(r.peer, r.n); p.secs > 0 {
				ratio = fmt.Sprintf("%.2fx", rate/(float64(p.items)/p.secs))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t\n", r.label, r.n, rate, ratio, r.peer)
	}
	return tw.Flush()
}

func payload(size int) []byte {
	const head, tail = `{"event": "motion", "pad": "`, `"}`
	return []byte(head + strings.Repeat("x", max(size-len(head)-len(tail), 0)) + tail)
}

// timed runs f on n goroutines for d and returns the calls made and the
// seconds they took.
func timed(n int, d time.Duration, f func() error) (int64, float64, error) {
	var calls atomic.Int64
	var first error
	var once sync.Once
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := f(); err != nil {
					once.Do(func() { first = err })
					return
				}
				calls.Add(1)
			}
		}()
	}
	wg.Wait()
	return calls.Load(), time.Since(start).Seconds(), first
}

// asynqDrain enqueues total tasks, then times a Server at concurrency c
// processing them with a no-op handler.
func asynqDrain(ctx context.Context, ac *asynq.Client, opt asynq.RedisClientOpt, queue string, payload []byte, total, c int) (float64, error) {
	if _, _, err := timedN(50, total, func() error {
		_, err := ac.Enqueue(asynq.NewTask("noop", payload), asynq.Queue(queue), asynq.MaxRetry(0))
		return err
	}); err != nil {
		return 0, err
	}
	var done atomic.Int64
	all := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(total) {
			close(all)
		}
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: c, Queues: map[string]int{queue: 1}, LogLevel: asynq.ErrorLevel})
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		srv.Shutdown()
		return 0, errors.New("asynq did not process the tasks within 5 minutes")
	}
	secs := time.Since(start).Seconds()
	srv.Shutdown()
	return secs, ctx.Err()
}

// sluiceDrain adds total items, then times Consume at concurrency c with a
// no-op handler until every item is handled (and, when it returns, acked).
func sluiceDrain(ctx context.Context, q *sluice.Queue, payload []byte, total, c int) (float64, error) {
	batch := make([]any, 0, 1000)
	for range 1000 {
		batch = append(batch, json.RawMessage(payload))
	}
	for left := total; left > 0; left -= len(batch) {
		if _, err := q.AddBatch(ctx, batch[:min(left, len(batch))], nil); err != nil {
			return 0, err
		}
	}
	var done atomic.Int64
	all := make(chan struct{})
	cctx, stop := context.WithCancel(ctx)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		errc <- q.Consume(cctx, func(context.Context, *sluice.Delivery) error {
			if done.Add(1) == int64(total) {
				close(all)
			}
			return nil
		}, &sluice.ConsumeOptions{Concurrency: c, Prefetch: max(2*c, 100)})
	}()
	var err error
	select {
	case <-all:
	case err = <-errc:
		stop()
		return 0, fmt.Errorf("consume ended early: %v", err)
	case <-time.After(5 * time.Minute):
		err = errors.New("sluice did not process the items within 5 minutes")
	}
	secs := time.Since(start).Seconds()
	stop()
	if cerr := <-errc; err == nil {
		err = cerr
	}
	return secs, err
}

// timedN makes total calls of f on n goroutines.
func timedN(n, total int, f func() error) (int64, float64, error) {
	var left atomic.Int64
	left.Store(int64(total))
	var first error
	var once sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := f(); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return int64(total), time.Since(start).Seconds(), first
}

// clear empties both sides' queues between cases.
func clear(ctx context.Context, raw rueidis.Client, runID string, q *sluice.Queue) error {
	if _, err := q.Clear(ctx); err != nil {
		return err
	}
	return deleteMatching(ctx, raw, "asynq:{"+runID+"}*")
}

// cleanup deletes every key of the run.
func cleanup(ctx context.Context, raw rueidis.Client, runID string) {
	for _, pattern := range []string{"asynq:{" + runID + "}*", runID + ":*"} {
		if err := deleteMatching(ctx, raw, pattern); err != nil {
			fmt.Fprintln(os.Stderr, "peers: cleanup:", err)
		}
	}
	// asynq registers its queue name in asynq:queues.
	raw.Do(ctx, raw.B().Srem().Key("asynq:queues").Member(runID).Build())
}

func deleteMatching(ctx context.Context, raw rueidis.Client, pattern string) error {
	var cursor uint64
	for {
		e, err := raw.Do(ctx, raw.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return err
		}
		if len(e.Elements) > 0 {
			if err := raw.Do(ctx, raw.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return err
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}
