// Package bench measures Sluice against the raw Redis commands it is built
// on, and the embedded engine on its own: throughput and latency of queue
// adds, gets and acknowledged receives, cache reads and writes, locks and
// pub/sub fan-out. `sluice bench` prints its reports.
//
// A case runs a fixed operation in a number of goroutines for a bounded
// duration (or until a pre-filled queue is drained) and reports operations
// and items per second with latency percentiles. Every case of a Redis run
// works under a key prefix unique to the run, and the run deletes those
// keys at the end, so a benchmark can share a Redis with other work.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Options configure a benchmark run.
type Options struct {
	// RedisURL is the Redis to measure (redis://127.0.0.1:6379/0 when
	// empty). Only a loopback Redis is accepted: a run writes and deletes
	// many keys and measures the machine it runs on.
	RedisURL string
	// Password is used when RedisURL has none (REDIS_PASSWORD).
	Password string
	// Engine is "redis" (default), "memory" or "file".
	Engine string
	// DataDir is where the file engine writes; a temporary directory,
	// removed afterwards, when empty.
	DataDir string
	// Duration bounds each case (default 5 s).
	Duration time.Duration
	// ItemSize is the size of the JSON item in bytes (default 200).
	ItemSize int
	// Goroutines are the goroutine counts every throughput case is
	// measured at (default 1 and 50).
	Goroutines []int
	// Progress, when set, is told the name of each case as it starts.
	Progress func(format string, args ...any)
}

// DefaultRedisURL is the Redis a run uses when none is given.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

func (o Options) withDefaults() Options {
	if o.RedisURL == "" {
		o.RedisURL = DefaultRedisURL
	}
	if o.Engine == "" {
		o.Engine = "redis"
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.ItemSize <= 0 {
		o.ItemSize = 200
	}
	if len(o.Goroutines) == 0 {
		o.Goroutines = goroutineCounts
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	return o
}

func (o Options) validate() error {
	switch o.Engine {
	case "redis", "memory", "file":
	default:
		return fmt.Errorf("bench: unknown engine %q (want redis, memory or file)", o.Engine)
	}
	if o.Duration > 10*time.Minute {
		return fmt.Errorf("bench: duration %v is over the 10 minute bound of a case", o.Duration)
	}
	if o.ItemSize < 32 || o.ItemSize > 1<<20 {
		return fmt.Errorf("bench: item size %d out of range (32 bytes to 1 MiB)", o.ItemSize)
	}
	for _, n := range o.Goroutines {
		if n < 1 || n > 10000 {
			return fmt.Errorf("bench: %d goroutines out of range (1 to 10000)", n)
		}
	}
	return nil
}

// errDrained ends one worker of a case early: the pre-filled queue it
// reads from is empty.
var errDrained = errors.New("bench: drained")

// op is one operation of a case, run by worker w. It returns how many
// items it moved (a batch add of 100 moves 100).
type op func(ctx context.Context, w int) (items int, err error)

// tally is what one case measured.
type tally struct {
	ops     int64
	items   int64
	elapsed time.Duration
	// samples are latencies of every sampleEvery-th operation, sorted.
	samples []time.Duration
}

func (t tally) percentile(p float64) time.Duration {
	if len(t.samples) == 0 {
		return 0
	}
	i := int(p * float64(len(t.samples)-1))
	return t.samples[i]
}

// measure runs op in n goroutines until d has passed or every goroutine
// reported errDrained. Latency is sampled on every sampleEvery-th call, so
// that the clock reads cost little next to a sub-microsecond operation.
// The first other error stops the case and is returned.
func measure(parent context.Context, d time.Duration, n, sampleEvery int, f op) (tally, error) {
	if sampleEvery < 1 {
		sampleEvery = 1
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		res      tally
		lastEnd  time.Time
	)
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	start := time.Now()
	for w := range n {
		wg.Go(func() {
			var ops, items int64
			samples := make([]time.Duration, 0, 4096)
			var err error
			for !stop.Load() && ctx.Err() == nil {
				var k int
				if ops%int64(sampleEvery) == 0 {
					t0 := time.Now()
					k, err = f(ctx, w)
					samples = append(samples, time.Since(t0))
				} else {
					k, err = f(ctx, w)
				}
				if err != nil {
					break
				}
				ops++
				items += int64(k)
			}
			end := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if end.After(lastEnd) {
				lastEnd = end
			}
			res.ops += ops
			res.items += items
			if err != nil && len(samples) > 0 {
				samples = samples[:len(samples)-1] // the failed or empty call
			}
			res.samples = append(res.samples, samples...)
			if err != nil && !errors.Is(err, errDrained) && ctx.Err() == nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	if err := parent.Err(); err != nil {
		return res, fmt.Errorf("bench: interrupted: %w", err)
	}
	res.elapsed = lastEnd.Sub(start)
	slices.Sort(res.samples)
	return res, nil
}

// item returns a JSON object of exactly size bytes, written the way the
// Python service writes JSON (", " and ": "), so that Sluice stores it as
// it is and a raw RPUSH of it stores the very same bytes.
func item(size int) string {
	const head = `{"event": "motion", "pad": "`
	const tail = `"}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		pad = 0
	}
	return head + strings.Repeat("x", pad) + tail
}

// runID is a short random tag that keeps one run's keys apart from any
// other run's and from everything else in the database.
func runID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("bench: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// rawRedis connects a plain rueidis client to the Redis under test, to run
// the baselines and to clean up.
func rawRedis(ctx context.Context, o Options) (rueidis.Client, error) {
	opt, err := rueidis.ParseURL(o.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("bench: Redis URL: %w", err)
	}
	if opt.Password == "" && o.Password != "" {
		opt.Password = o.Password
	}
	for _, addr := range opt.InitAddress {
		if !loopback(addr) {
			return nil, fmt.Errorf("bench: Redis at %s is not on a loopback address; benchmarks run against a local Redis only", addr)
		}
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to Redis at %s: %w", strings.Join(opt.InitAddress, ","), err)
	}
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: ping Redis: %w", err)
	}
	return c, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deletePrefix removes every key of the run. It runs with its own timeout
// so that an interrupted run still cleans up.
func deletePrefix(c rueidis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cursor uint64
	for {
		res, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("bench: clean up keys %s*: %w", prefix, err)
		}
		if len(res.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(res.Elements...).Build()).Error(); err != nil {
				return fmt.Errorf("bench: clean up keys %s*: %w", prefix, err)
			}
		}
		if res.Cursor == 0 {
			return nil
		}
		cursor = res.Cursor
	}
}

// redisVersion reads the server's version for the report.
func redisVersion(ctx context.Context, c rueidis.Client) string {
	info, err := c.Do(ctx, c.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// rounds is how many slices a group's duration is cut into. The cases of
// a group take turns slice by slice, so a change in the machine's load
// during a run falls on a case and its baseline alike, and their ratio
// stays meaningful on a shared machine.
const rounds = 5

// benchCase is one row of a group.
type benchCase struct {
	label, note string
	n           int // goroutines
	sample      int // latency sampling rate, see measure
	// baseline, when set, is the label of the case (at the same n) this
	// one's ratio is taken against: what a user would write instead.
	baseline string
	// limit, when set, is the label of the case (at the same n) that
	// bounds what this one could do, when that is not the baseline.
	limit string
	// prepare runs before each slice and returns the operation to measure
	// (a drain case fills its queue here); cleanup runs after each slice.
	prepare func(ctx context.Context) (op, error)
	cleanup func(ctx context.Context) error
}

// group measures cases in interleaved slices of d/rounds each and adds
// their rows to rep, in order.
func group(ctx context.Context, o Options, rep *Report, cases []benchCase) error {
	slice := max(o.Duration/rounds, time.Millisecond)
	totals := make([]tally, len(cases))
	for round := range rounds {
		for i, c := range cases {
			if round == 0 {
				o.Progress("%s, %d goroutines", c.label, c.n)
			}
			f, err := c.prepare(ctx)
			if err != nil {
				return fmt.Errorf("bench: %s (%d goroutines): %w", c.label, c.n, err)
			}
			t, err := measure(ctx, slice, c.n, c.sample, f)
			if err == nil && c.cleanup != nil {
				err = c.cleanup(ctx)
			}
			if err != nil {
				return fmt.Errorf("bench: %s (%d goroutines): %w", c.label, c.n, err)
			}
			totals[i].merge(t)
		}
	}
	for i, c := range cases {
		slices.Sort(totals[i].samples)
		rep.add(c.label, c.n, totals[i], c.note)
	}
	for _, c := range cases {
		if c.baseline != "" {
			rep.compare(c.label, c.n, c.baseline, c.n)
		}
		if c.limit != "" {
			rep.compareLimit(c.label, c.n, c.limit, c.n)
		}
	}
	return nil
}

func (t *tally) merge(u tally) {
	t.ops += u.ops
	t.items += u.items
	t.elapsed += u.elapsed
	t.samples = append(t.samples, u.samples...)
}

// fixed is a prepare function for an operation that needs no setup.
func fixed(f op) func(context.Context) (op, error) {
	return func(context.Context) (op, error) { return f, nil }
}
