package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice"
)

// Goroutine counts every throughput case is measured at unless
// Options.Goroutines says otherwise, and the number of consumers of the
// blocking-get and receive cases.
var goroutineCounts = []int{1, 50}

const consumers = 4

// notFull is a capacity no case reaches: the add script still checks the
// bound, as it does for every bounded queue, but never overflows.
const notFull = int64(1) << 40

// fullSize is the capacity of the "full" cases: the queue is filled to it
// before they start, so every add overflows.
const fullSize = 1000

var policies = []sluice.Policy{sluice.PolicyReject, sluice.PolicyDLQ, sluice.PolicyDropOldest}

// declaredLabel is the case of an add to a declared queue, reported as a
// ratio to the same add with the bound and policy given per call.
const declaredLabel = "declared bounded add"

// Queue measures queue adds, gets and acknowledged receives on o.Engine.
// On Redis every case is set beside the raw rueidis commands it is built on
// (RPUSH, BLPOP), run against the same server in the same run.
func Queue(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Engine == "redis" {
		return redisQueue(ctx, o)
	}
	return embeddedQueue(ctx, o)
}

// quietLogger keeps library logs out of a benchmark's output.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// redisSuite is the state of a run against Redis.
type redisSuite struct {
	o      Options
	raw    rueidis.Client
	client *sluice.Client
	prefix string
	item   string
	rep    *Report
	seq    int
}

// openRedisSuite opens a run on Redis; extra (nil: none) holds the
// settings the suite needs besides those every run has (prefix, password,
// logger).
func openRedisSuite(ctx context.Context, o Options, suite string, extra *sluice.Config) (*redisSuite, error) {
	var base sluice.Config
	if extra != nil {
		base = *extra
	}
	raw, err := rawRedis(ctx, o)
	if err != nil {
		return nil, err
	}
	s := &redisSuite{o: o, raw: raw, prefix: "sluice-bench:" + runID() + ":", item: item(o.ItemSize), rep: newReport(suite, o)}
	s.rep.Machine.RedisVersion = redisVersion(ctx, raw)
	s.rep.KeyPrefix = s.prefix
	base.KeyPrefix, base.Password, base.Logger = s.prefix, o.Password, quietLogger()
	s.client, err = sluice.Open(ctx, o.RedisURL, &base)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("bench: open sluice client: %w", err)
	}
	return s, nil
}

// close deletes every key of the run and closes both clients.
func (s *redisSuite) close() error {
	err := deletePrefix(s.raw, s.prefix)
	s.client.Close()
	s.raw.Close()
	return err
}

// name returns a fresh queue name; key is its Redis key.
func (s *redisSuite) name() (name, key string) {
	s.seq++
	name = fmt.Sprintf("q%d", s.seq)
	return name, s.prefix + name
}

// fill pushes n copies of the item to key with raw RPUSHes of 1000.
func (s *redisSuite) fill(ctx context.Context, key string, n int) error {
	// At most 1000 items and 4 MiB per RPUSH, and 64 MiB per round trip:
	// large items in one pipeline would pass Redis's query buffer limit.
	per := max(1, min(1000, fillCommandBytes/max(len(s.item), 1)))
	depth := max(1, fillPipelineBytes/(per*max(len(s.item), 1)))
	elems := make([]string, per)
	for i := range elems {
		elems[i] = s.item
	}
	var cmds rueidis.Commands
	for left := n; left > 0; left -= per {
		cmds = append(cmds, s.raw.B().Rpush().Key(key).Element(elems[:min(per, left)]...).Build())
		if len(cmds) >= min(64, depth) || left <= per {
			for _, r := range s.raw.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					return fmt.Errorf("bench: fill %s: %w", key, err)
				}
			}
			cmds = cmds[:0]
		}
	}
	return nil
}

// refill empties key, fills it with n items and sets left, the items a
// drain case may still take, to n.
func (s *redisSuite) refill(ctx context.Context, key string, n int, left *atomic.Int64) error {
	if err := s.unlink(ctx, key); err != nil {
		return err
	}
	if err := s.fill(ctx, key, n); err != nil {
		return err
	}
	left.Store(int64(n))
	return nil
}

func (s *redisSuite) unlink(ctx context.Context, keys ...string) error {
	var all []string
	for _, k := range keys {
		all = append(all, k, s.prefix+"dlq:overflow:"+k[len(s.prefix):], s.prefix+"dlq:"+k[len(s.prefix):])
	}
	return s.raw.Do(ctx, s.raw.B().Unlink().Key(all...).Build()).Error()
}

// drainBudget is how many items a drain case pre-fills: enough for a
// whole case at a rate well above what the machine does, bounded so the
// fill itself stays short. A case that drains them early ends early.
func drainBudget(d time.Duration, perSecond, ceiling int) int {
	return min(int(d.Seconds()*float64(perSecond)), ceiling)
}

// Bounds of what a drain case pre-fills, for large items.
const (
	fillCommandBytes  = 4 << 20
	fillPipelineBytes = 64 << 20
	// fillBytes bounds a pre-filled queue: 64 KB items at the item-count
	// budget would ask Redis for gigabytes.
	fillBytes = 512 << 20
)

// take reserves k items of a pre-filled queue; false once it is drained,
// so that no worker ever blocks on an empty queue and stretches the case.
func take(left *atomic.Int64, k int64) (int64, bool) {
	after := left.Add(-k)
	if after >= 0 {
		return k, true
	}
	if got := k + after; got > 0 {
		return got, true
	}
	return 0, false
}

func redisQueue(ctx context.Context, o Options) (rep *Report, err error) {
	s, err := openRedisSuite(ctx, o, "queue", nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, n := range o.Goroutines {
		if err := group(ctx, o, s.rep, s.addCases(n)); err != nil {
			return nil, err
		}
	}
	if err := group(ctx, o, s.rep, s.consumerCases()); err != nil {
		return nil, err
	}
	return s.rep, nil
}

// addCases are the producer cases at n goroutines: raw RPUSH, Add under
// each policy on a queue that is not full and on one that is, Add with an
// idempotency key, and batches of 100 against one RPUSH of 100.
func (s *redisSuite) addCases(n int) []benchCase {
	raw := json.RawMessage(s.item)
	batch := make([]any, 100)
	elems := make([]string, 100)
	for i := range batch {
		batch[i], elems[i] = raw, s.item
	}
	_, rpushKey := s.name()
	cases := []benchCase{{
		label: "raw RPUSH", note: "baseline", n: n, sample: 1,
		prepare: fixed(func(ctx context.Context, _ int) (int, error) {
			return 1, s.raw.Do(ctx, s.raw.B().Rpush().Key(rpushKey).Element(s.item).Build()).Error()
		}),
		cleanup: func(ctx context.Context) error { return s.unlink(ctx, rpushKey) },
	}}
	// With concurrent callers Sluice merges their adds into one script
	// call: the limit of that is one RPUSH of what the callers had.
	limit := ""
	if n > 1 {
		limit = combinedLabel
		_, combinedKey := s.name()
		cp := &combinedPush{s: s, key: combinedKey}
		cases = append(cases, benchCase{
			label: combinedLabel, note: "limit: each RPUSH carries every item the callers had waiting (as Sluice merges adds)", n: n, sample: 1,
			prepare: fixed(cp.push),
			cleanup: func(ctx context.Context) error { return s.unlink(ctx, combinedKey) },
		})
	}
	for _, p := range policies {
		for _, full := range []bool{false, true} {
			name, key := s.name()
			size, label := notFull, fmt.Sprintf("add %s (not full)", p)
			if full {
				size, label = fullSize, fmt.Sprintf("add %s (full)", p)
			}
			q := s.client.QueueWith(name, sluice.QueueSettings{MaxSize: size, Policy: p})
			add := func(ctx context.Context, _ int) (int, error) {
				_, err := q.Add(ctx, raw, nil)
				if errors.Is(err, sluice.ErrQueueFull) {
					return 0, nil
				}
				return 1, err
			}
			note := ""
			if full && p == sluice.PolicyReject {
				note = "writes nothing: not an add target"
			}
			cases = append(cases, benchCase{
				label: label, note: note, n: n, sample: 1, baseline: "raw RPUSH", limit: limit,
				prepare: func(ctx context.Context) (op, error) {
					if full {
						if err := s.fill(ctx, key, fullSize); err != nil {
							return nil, err
						}
					}
					return add, nil
				},
				cleanup: func(ctx context.Context) error { return s.unlink(ctx, key) },
			})
		}
	}
	// The same add on a queue that declares its bound and policy, taken
	// against the per-call bound above in the same interleaved run: the
	// declared settings are read inside the add's script.
	declName, declKey := s.name()
	declQ := s.client.Queue(declName)
	cases = append(cases, benchCase{
		label: declaredLabel, note: "dlq (not full), bound and policy declared", n: n, sample: 1,
		baseline: "add dlq (not full)", limit: limit,
		prepare: func(ctx context.Context) (op, error) {
			err := s.client.DeclareQueue(ctx, declName, sluice.QueueSettings{MaxSize: notFull, Policy: sluice.PolicyDLQ})
			return func(ctx context.Context, _ int) (int, error) {
				_, err := declQ.Add(ctx, raw, nil)
				return 1, err
			}, err
		},
		cleanup: func(ctx context.Context) error { return s.unlink(ctx, declKey) },
	})
	idemName, idemKey := s.name()
	idemQ := s.client.QueueWith(idemName, sluice.QueueSettings{MaxSize: notFull, Policy: sluice.PolicyDLQ})
	cases = append(cases, benchCase{
		label: idemLabel, note: "dlq (not full), a fresh key per add, window 1 s", n: n, sample: 1,
		baseline: "raw RPUSH",
		prepare:  fixed(keyedAdd(idemQ, raw, n, nil)),
		cleanup:  func(ctx context.Context) error { return s.unlink(ctx, idemKey) },
	})
	_, rpush100Key := s.name()
	name, batchKey := s.name()
	q := s.client.QueueWith(name, sluice.QueueSettings{MaxSize: notFull, Policy: sluice.PolicyDLQ})
	return append(cases,
		benchCase{
			label: "raw RPUSH x100", note: "baseline: one RPUSH of 100 items", n: n, sample: 1,
			prepare: fixed(func(ctx context.Context, _ int) (int, error) {
				return 100, s.raw.Do(ctx, s.raw.B().Rpush().Key(rpush100Key).Element(elems...).Build()).Error()
			}),
			cleanup: func(ctx context.Context) error { return s.unlink(ctx, rpush100Key) },
		},
		benchCase{
			label: "batch add x100", note: "items/s counts items; one op is one AddBatch of 100", n: n, sample: 1,
			baseline: "raw RPUSH x100",
			prepare: fixed(func(ctx context.Context, _ int) (int, error) {
				_, err := q.AddBatch(ctx, batch, nil)
				return 100, err
			}),
			cleanup: func(ctx context.Context) error { return s.unlink(ctx, batchKey) },
		},
	)
}

// combinedLabel is the limit of merged adds.
const combinedLabel = "raw RPUSH (combined)"

// combinedPush is the limit of Sluice's merged adds: a caller that finds no
// RPUSH on the wire sends one carrying every item waiting by then, and the
// others wait for the push that carried theirs.
type combinedPush struct {
	s   *redisSuite
	key string

	mu      sync.Mutex
	waiting []chan error
	busy    bool
}

func (c *combinedPush) push(ctx context.Context, _ int) (int, error) {
	done := make(chan error, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, done)
	if c.busy {
		c.mu.Unlock()
		return 1, <-done
	}
	c.busy = true
	for len(c.waiting) > 0 {
		batch := c.waiting
		c.waiting = nil
		c.mu.Unlock()
		elems := make([]string, len(batch))
		for i := range elems {
			elems[i] = c.s.item
		}
		err := c.s.raw.Do(ctx, c.s.raw.B().Rpush().Key(c.key).Element(elems...).Build()).Error()
		for _, w := range batch {
			w <- err
		}
		c.mu.Lock()
	}
	c.busy = false
	c.mu.Unlock()
	return 1, <-done
}

// consumerCases drain pre-filled queues with 4 consumers: raw BLPOP,
// Sluice's blocking get, and receive+ack singly and in batches of 100.
func (s *redisSuite) consumerCases() []benchCase {
	budget := min(drainBudget(s.o.Duration/rounds, 150_000, 400_000), max(fillBytes/max(len(s.item), 1), 1000))
	lease := &sluice.ReceiveOptions{Lease: time.Minute}
	var cases []benchCase
	add := func(label, note, baseline string, f func(q *sluice.Queue, key string, left *atomic.Int64) op) {
		name, key := s.name()
		q := s.client.QueueWith(name, sluice.QueueSettings{MaxSize: notFull})
		var left atomic.Int64
		cases = append(cases, benchCase{
			label: label, note: note, n: consumers, sample: 1, baseline: baseline,
			prepare: func(ctx context.Context) (op, error) {
				if err := s.refill(ctx, key, budget, &left); err != nil {
					return nil, err
				}
				return f(q, key, &left), nil
			},
		})
	}
	add("raw BLPOP", "baseline; drains a pre-filled list", "", func(_ *sluice.Queue, key string, left *atomic.Int64) op {
		return func(ctx context.Context, _ int) (int, error) {
			if _, ok := take(left, 1); !ok {
				return 0, errDrained
			}
			return 1, s.raw.Do(ctx, s.raw.B().Blpop().Key(key).Timeout(1).Build()).Error()
		}
	})
	add("get (blocking)", "Get with a 1 s timeout; drains a pre-filled queue", "raw BLPOP", func(q *sluice.Queue, _ string, left *atomic.Int64) op {
		return func(ctx context.Context, _ int) (int, error) {
			if _, ok := take(left, 1); !ok {
				return 0, errDrained
			}
			_, ok, err := q.Get(ctx, time.Second)
			if err == nil && !ok {
				err = errors.New("get found the pre-filled queue empty")
			}
			return 1, err
		}
	})
	add("receive+ack", "one Receive and one Ack per item", "raw BLPOP", func(q *sluice.Queue, _ string, left *atomic.Int64) op {
		return receiveAck(q, left, 1, lease)
	})
	add("raw LPOP x100", "limit: LPOP of 100 at a time; drains a pre-filled list", "", func(_ *sluice.Queue, key string, left *atomic.Int64) op {
		return func(ctx context.Context, _ int) (int, error) {
			k, ok := take(left, 100)
			if !ok {
				return 0, errDrained
			}
			got, err := s.raw.Do(ctx, s.raw.B().Lpop().Key(key).Count(k).Build()).AsStrSlice()
			left.Add(k - int64(len(got)))
			return len(got), err
		}
	})
	add("receive+ack x100", "ReceiveBatch of 100, then one AckBatch of them", "raw BLPOP", func(q *sluice.Queue, _ string, left *atomic.Int64) op {
		return receiveAck(q, left, 100, lease)
	})
	cases[len(cases)-1].limit = "raw LPOP x100"
	cases = append(cases, s.consumeCase(budget), s.batchConsumerCase(budget))
	return cases
}

// consumeCase drains a pre-filled queue with Queue.Consume (4 handlers,
// prefetch 200, acks batched); each op takes one handled item from a
// handler, so the rate is Consume's.
func (s *redisSuite) consumeCase(budget int) benchCase {
	return s.handedCase(budget, "consume", "Consume, 4 handlers, prefetch 200, batched acks; every item acked", 1,
		func(ctx context.Context, q *sluice.Queue, handed chan<- int, _ <-chan struct{}) error {
			return q.Consume(ctx, func(hctx context.Context, _ *sluice.Delivery) error {
				select {
				case handed <- 1:
					return nil
				case <-hctx.Done():
					return hctx.Err() // released: the slice is over
				}
			}, &sluice.ConsumeOptions{Concurrency: consumers, Prefetch: 200, Lease: time.Minute, ShutdownTimeout: time.Nanosecond})
		})
}

// batchConsumerCase drains a pre-filled queue with an acknowledged batch
// consumer (4 batches of 100 at once); each op takes one handled batch.
func (s *redisSuite) batchConsumerCase(budget int) benchCase {
	return s.handedCase(budget, "batch consumer x100", "acknowledged BatchConsumer, 4 concurrent batches of 100; every item acked", 100,
		func(ctx context.Context, q *sluice.Queue, handed chan<- int, quit <-chan struct{}) error {
			bc, err := q.NewBatchConsumer(func(_ context.Context, items []sluice.Item) error {
				select {
				case handed <- len(items):
				case <-quit: // the slice is over; refill starts the next one afresh
				}
				return nil
			}, &sluice.BatchConsumerOptions{Size: 100, IdleTimeout: 100 * time.Millisecond, Concurrency: consumers,
				Acknowledged: true, Receive: sluice.ReceiveOptions{Lease: time.Minute}})
			if err != nil {
				return err
			}
			return bc.Run(ctx)
		})
}

// handedCase drains a pre-filled queue with a consumer that run starts:
// its handler sends the number of items it handled on handed until quit
// is closed or ctx ends; each op takes one handler call, up to per items.
func (s *redisSuite) handedCase(budget int, label, note string, per int, run func(ctx context.Context, q *sluice.Queue, handed chan<- int, quit <-chan struct{}) error) benchCase {
	name, key := s.name()
	q := s.client.QueueWith(name, sluice.QueueSettings{MaxSize: notFull})
	var left atomic.Int64
	var stop func()
	handed := make(chan int)
	return benchCase{
		label: label, note: note, n: consumers, sample: 1,
		baseline: "raw BLPOP", limit: "raw LPOP x100",
		prepare: func(ctx context.Context) (op, error) {
			if err := s.refill(ctx, key, budget, &left); err != nil {
				return nil, err
			}
			cctx, cancel := context.WithCancel(ctx)
			quit := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- run(cctx, q, handed, quit) }()
			stop = func() {
				close(quit)
				cancel()
				<-done
			}
			return func(ctx context.Context, _ int) (int, error) {
				k, ok := take(&left, int64(per))
				if !ok {
					return 0, errDrained
				}
				select {
				case n := <-handed:
					left.Add(k - int64(n))
					return n, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}, nil
		},
		cleanup: func(context.Context) error {
			stop()
			return nil
		},
	}
}

// receiveAck receives up to per items under a lease and acks each one.
func receiveAck(q *sluice.Queue, left *atomic.Int64, per int, opts *sluice.ReceiveOptions) op {
	return func(ctx context.Context, _ int) (int, error) {
		k, ok := take(left, int64(per))
		if !ok {
			return 0, errDrained
		}
		ds, err := q.ReceiveBatch(ctx, int(k), time.Second, opts)
		if err != nil {
			return 0, err
		}
		if len(ds) == 0 {
			return 0, errors.New("receive found the pre-filled queue empty")
		}
		if len(ds) == 1 {
			if err := ds[0].Ack(ctx); err != nil {
				return 0, err
			}
		} else {
			ids := make([]string, len(ds))
			for i, d := range ds {
				ids[i] = d.ID
			}
			acked, err := q.AckBatch(ctx, ids...)
			if err != nil {
				return 0, err
			}
			for i, ok := range acked {
				if !ok {
					return 0, fmt.Errorf("ack of %s: %w", ids[i], sluice.ErrLeaseNotFound)
				}
			}
		}
		// A short batch leaves items for the next receive; give their
		// reservations back.
		left.Add(k - int64(len(ds)))
		return len(ds), nil
	}
}

// removeAll removes a temporary data directory of the file engine.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bench: remove %s: %w", dir, err)
	}
	return nil
}
