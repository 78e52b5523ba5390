package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
)

// sampleEmbedded is the latency sampling rate of embedded-engine cases:
// their operations take well under a microsecond, so timing every one of
// them would measure the clock.
const sampleEmbedded = 8

// addBudget bounds how many items the add cases of the embedded engine
// may write, so that a fast machine does not fill its memory (or, with the
// file engine, its disk) before the duration is up.
const addBudget = 5_000_000

// embeddedConfig is one engine setup of an embedded run.
type embeddedConfig struct {
	label string // shown in case names
	url   string
	fsync sluice.Fsync
}

// embeddedConfigs are the setups an embedded run measures: the in-memory
// engine, or the file engine under both fsync policies.
func embeddedConfigs(o Options) (cfgs []embeddedConfig, cleanup func() error, err error) {
	if o.Engine == "memory" {
		return []embeddedConfig{{label: "memory", url: "mem://"}}, func() error { return nil }, nil
	}
	dir := o.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
			return nil, nil, fmt.Errorf("bench: temporary data dir: %w", err)
		}
	} else {
		if dir, err = os.MkdirTemp(dir, "sluice-bench-"); err != nil {
			return nil, nil, fmt.Errorf("bench: data dir: %w", err)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: data dir: %w", err)
	}
	for _, policy := range []sluice.Fsync{sluice.FsyncEverySec, sluice.FsyncAlways} {
		sub := filepath.Join(abs, string(policy))
		cfgs = append(cfgs, embeddedConfig{label: "file " + string(policy), url: "file://" + filepath.ToSlash(sub), fsync: policy})
	}
	return cfgs, func() error { return removeAll(abs) }, nil
}

func embeddedQueue(ctx context.Context, o Options) (rep *Report, err error) {
	cfgs, cleanup, err := embeddedConfigs(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rep = newReport("queue", o)
	for _, cfg := range cfgs {
		if err := embeddedQueueCases(ctx, o, cfg, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// embeddedSuite is the state of one engine setup's cases.
type embeddedSuite struct {
	o      Options
	cfg    embeddedConfig
	client *sluice.Client
	rep    *Report
	raw    json.RawMessage
	seq    int
}

func (s *embeddedSuite) queue(size int64) *sluice.Queue {
	s.seq++
	return s.client.QueueWith(fmt.Sprintf("q%d", s.seq), sluice.QueueSettings{MaxSize: size, Policy: sluice.PolicyDLQ})
}

func (s *embeddedSuite) run(ctx context.Context, label string, n int, note string, f op) error {
	name := s.cfg.label + ": " + label
	s.o.Progress("%s, %d goroutines", name, n)
	t, err := measure(ctx, s.o.Duration, n, sampleEmbedded, f)
	if err != nil {
		return fmt.Errorf("bench: %s (%d goroutines): %w", name, n, err)
	}
	s.rep.add(name, n, t, note)
	return nil
}

// fill adds n items with batch adds of 1000.
func (s *embeddedSuite) fill(ctx context.Context, q *sluice.Queue, n int) error {
	batch := make([]any, 1000)
	for i := range batch {
		batch[i] = s.raw
	}
	for left := n; left > 0; left -= len(batch) {
		if _, err := q.AddBatch(ctx, batch[:min(len(batch), left)], nil); err != nil {
			return fmt.Errorf("bench: fill %s: %w", q.Name(), err)
		}
	}
	return nil
}

func (s *embeddedSuite) clear(ctx context.Context, q *sluice.Queue) error {
	if _, err := q.Clear(ctx); err != nil {
		return fmt.Errorf("bench: clear %s: %w", q.Name(), err)
	}
	return nil
}

func embeddedQueueCases(ctx context.Context, o Options, cfg embeddedConfig, rep *Report) error {
	client, err := sluice.Open(ctx, cfg.url, &sluice.Config{Logger: quietLogger(), Fsync: cfg.fsync})
	if err != nil {
		return fmt.Errorf("bench: open %s engine: %w", cfg.label, err)
	}
	s := &embeddedSuite{o: o, cfg: cfg, client: client, rep: rep, raw: json.RawMessage(item(o.ItemSize))}
	err = s.cases(ctx)
	if cerr := client.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("bench: close %s engine: %w", cfg.label, cerr)
	}
	return err
}

func (s *embeddedSuite) cases(ctx context.Context) error {
	batch := make([]any, 100)
	for i := range batch {
		batch[i] = s.raw
	}
	// The fsync=always engine is bounded by the disk, not the code: give
	// it fewer items to drain so its fill stays short.
	perSecond := 2_000_000
	if s.cfg.label == "file always" {
		perSecond = 50_000
	}
	budget := drainBudget(s.o.Duration, perSecond, 2_000_000)

	for _, n := range s.o.Goroutines {
		var left atomic.Int64
		left.Store(addBudget)
		q := s.queue(notFull)
		err := s.run(ctx, "add", n, "", func(ctx context.Context, _ int) (int, error) {
			if _, ok := take(&left, 1); !ok {
				return 0, errDrained
			}
			_, err := q.Add(ctx, s.raw, nil)
			return 1, err
		})
		if err != nil {
			return err
		}
		if err := s.clear(ctx, q); err != nil {
			return err
		}

		left.Store(addBudget)
		s.seq++
		name := fmt.Sprintf("q%d", s.seq)
		if err := s.client.DeclareQueue(ctx, name, sluice.QueueSettings{MaxSize: notFull, Policy: sluice.PolicyDLQ}); err != nil {
			return fmt.Errorf("bench: declare %s: %w", name, err)
		}
		q = s.client.Queue(name)
		err = s.run(ctx, declaredLabel, n, "bound and policy declared", func(ctx context.Context, _ int) (int, error) {
			if _, ok := take(&left, 1); !ok {
				return 0, errDrained
			}
			_, err := q.Add(ctx, s.raw, nil)
			return 1, err
		})
		if err != nil {
			return err
		}
		s.rep.compare(s.cfg.label+": "+declaredLabel, n, s.cfg.label+": add", n)
		if err := s.clear(ctx, q); err != nil {
			return err
		}

		left.Store(addBudget)
		q = s.queue(notFull)
		if err := s.run(ctx, idemLabel, n, "a fresh key per add, window 1 s", keyedAdd(q, s.raw, n, &left)); err != nil {
			return err
		}
		if err := s.clear(ctx, q); err != nil {
			return err
		}

		q = s.queue(notFull)
		if err := s.fill(ctx, q, budget); err != nil {
			return err
		}
		left.Store(int64(budget))
		err = s.run(ctx, "get", n, "drains a pre-filled queue", func(ctx context.Context, _ int) (int, error) {
			if _, ok := take(&left, 1); !ok {
				return 0, errDrained
			}
			_, ok, err := q.Get(ctx, time.Second)
			if err == nil && !ok {
				err = errors.New("get found the pre-filled queue empty")
			}
			return 1, err
		})
		if err != nil {
			return err
		}
		if err := s.clear(ctx, q); err != nil {
			return err
		}

		left.Store(addBudget)
		q = s.queue(notFull)
		err = s.run(ctx, "batch add x100", n, "items/s counts items; one op is one batch of 100", func(ctx context.Context, _ int) (int, error) {
			if _, ok := take(&left, 100); !ok {
				return 0, errDrained
			}
			_, err := q.AddBatch(ctx, batch, nil)
			return 100, err
		})
		if err != nil {
			return err
		}
		if err := s.clear(ctx, q); err != nil {
			return err
		}
	}

	q := s.queue(notFull)
	err := s.run(ctx, "add+get", 1, "one op is an Add followed by a Get; items/s counts both operations", func(ctx context.Context, _ int) (int, error) {
		if _, err := q.Add(ctx, s.raw, nil); err != nil {
			return 0, err
		}
		_, ok, err := q.Get(ctx, 0)
		if err == nil && !ok {
			err = errors.New("get found the queue empty right after an add")
		}
		return 2, err
	})
	if err != nil {
		return err
	}

	lease := &sluice.ReceiveOptions{Lease: time.Minute}
	for _, per := range []int{1, 100} {
		q := s.queue(notFull)
		if err := s.fill(ctx, q, budget); err != nil {
			return err
		}
		var left atomic.Int64
		left.Store(int64(budget))
		label, note := "receive+ack", "one Receive and one Ack per item"
		if per > 1 {
			label, note = "receive+ack x100", "ReceiveBatch of 100, then one AckBatch of them"
		}
		if err := s.run(ctx, label, consumers, note, receiveAck(q, &left, per, lease)); err != nil {
			return err
		}
		if err := s.clear(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
