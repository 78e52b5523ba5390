package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

// concurrencyCases hold each policy's invariants under many concurrent
// producers: the cap is never exceeded and no accepted item is lost or
// duplicated. They are what a check-then-push implementation fails.
func concurrencyCases(t *testing.T, h Harness) {
	const (
		producers = 50
		adds      = 10 // per producer; every other add is a batch of 2
		maxSize   = 100
	)
	t.Run("dlq/WithConsumers", func(t *testing.T) { concurrencyWithConsumers(t, h) })
	for _, p := range policies {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			ctx, e := setup(t, h)
			type outcome struct {
				items   []string
				results []engine.AddResult
				err     error
			}
			outcomes := make([]outcome, producers)
			var wg sync.WaitGroup
			for g := range producers {
				wg.Go(func() {
					out := &outcomes[g]
					for i := range adds {
						batch := []string{fmt.Sprintf("g%d-i%d", g, i)}
						if i%2 == 1 {
							batch = append(batch, fmt.Sprintf("g%d-i%d-b", g, i))
						}
						res, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: batch, Policy: p, MaxSize: maxSize})
						if err == nil && len(res) != len(batch) {
							err = fmt.Errorf("%d results for %d items", len(res), len(batch))
						}
						if err != nil {
							out.err = err
							return
						}
						out.items = append(out.items, batch...)
						out.results = append(out.results, res...)
					}
				})
			}
			wg.Wait()

			var total, accepted, dropped, moved int64
			acceptedItems := map[string]bool{}
			for _, out := range outcomes {
				if out.err != nil {
					t.Fatalf("QueueAdd: %v", out.err)
				}
				for i, r := range out.results {
					total++
					if r.QueueLength > maxSize || r.QueueLength < 0 {
						t.Errorf("item %s: QueueLength %d outside [0, %d]", out.items[i], r.QueueLength, maxSize)
					}
					if r.Accepted {
						accepted++
						acceptedItems[out.items[i]] = true
					} else if r.Dropped != 0 || r.MovedToDLQ != 0 {
						t.Errorf("rejected item %s reports %+v", out.items[i], r)
					}
					dropped += r.Dropped
					moved += r.MovedToDLQ
				}
			}
			queue := rangeAll(t, ctx, e, "q")
			if len(queue) != maxSize {
				t.Errorf("final length %d, want exactly %d (more than %d items were offered)", len(queue), maxSize, maxSize)
			}
			dlq := dlqAll(t, ctx, e, "q", engine.DLQOverflow)
			seen := map[string]bool{}
			for _, it := range queue {
				if seen[it] {
					t.Errorf("item %q is in the queue twice", it)
				}
				seen[it] = true
				if !acceptedItems[it] {
					t.Errorf("queue holds %q, which was not accepted", it)
				}
			}

			switch p {
			case engine.PolicyReject:
				if accepted != int64(len(queue)) {
					t.Errorf("reject: %d accepted, queue holds %d", accepted, len(queue))
				}
				if dropped != 0 || moved != 0 || len(dlq) != 0 {
					t.Errorf("reject: dropped %d, moved %d, overflow DLQ %d; want all 0", dropped, moved, len(dlq))
				}
			case engine.PolicyDropOldest:
				if accepted != total {
					t.Errorf("drop_oldest: %d of %d accepted", accepted, total)
				}
				if accepted-dropped != int64(len(queue)) {
					t.Errorf("drop_oldest: accepted %d - dropped %d != length %d", accepted, dropped, len(queue))
				}
				if moved != 0 || len(dlq) != 0 {
					t.Errorf("drop_oldest: moved %d, overflow DLQ %d; want 0", moved, len(dlq))
				}
			case engine.PolicyDLQ:
				if accepted != total {
					t.Errorf("dlq: %d of %d accepted", accepted, total)
				}
				if moved != int64(len(dlq)) {
					t.Errorf("dlq: sum of MovedToDLQ %d, overflow DLQ holds %d", moved, len(dlq))
				}
				if dropped != 0 {
					t.Errorf("dlq: dropped %d, want 0", dropped)
				}
				for _, entry := range dlq {
					data := overflowData(t, "q", entry)
					if seen[data] {
						t.Errorf("item %q is in the queue or the DLQ twice", data)
					}
					seen[data] = true
				}
				for it := range acceptedItems {
					if !seen[it] {
						t.Errorf("accepted item %q is neither in the queue nor in the DLQ", it)
					}
				}
			}
		})
	}
}

// concurrencyWithConsumer adds consumers popping while producers add under
// dlq: every accepted item ends up popped, queued or dead-lettered, once.
func concurrencyWithConsumers(t *testing.T, h Harness) {
	t.Parallel()
	ctx, e := setup(t, h)
	const producers, adds, consumers, maxSize = 20, 20, 4, 50
	var (
		wg, cg  sync.WaitGroup
		mu      sync.Mutex
		popped  []string
		errs    = make(chan error, producers+consumers)
		stop    = make(chan struct{})
		offered []string
	)
	for c := range consumers {
		cg.Go(func() {
			for {
				var got []string
				// Half the consumers block for a moment, so that pops
				// waiting on an empty queue race the adds too.
				var timeout time.Duration
				if c%2 == 0 {
					timeout = 10 * time.Millisecond
				}
				item, ok, err := e.QueuePop(ctx, "q", timeout)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					got = []string{item}
				}
				mu.Lock()
				popped = append(popped, got...)
				mu.Unlock()
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	for g := range producers {
		batch := make([]string, adds)
		for i := range batch {
			batch[i] = fmt.Sprintf("g%d-i%d", g, i)
		}
		offered = append(offered, batch...)
		wg.Go(func() {
			for _, it := range batch {
				res, err := e.QueueAdd(ctx, engine.AddParams{Queue: "q", Items: []string{it}, Policy: engine.PolicyDLQ, MaxSize: maxSize})
				if err != nil {
					errs <- err
					return
				}
				if !res[0].Accepted || res[0].QueueLength > maxSize {
					errs <- fmt.Errorf("add of %s: %+v", it, res[0])
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	cg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, it := range popped {
		seen[it]++
	}
	for _, it := range rangeAll(t, ctx, e, "q") {
		seen[it]++
	}
	for _, entry := range dlqAll(t, ctx, e, "q", engine.DLQOverflow) {
		seen[overflowData(t, "q", entry)]++
	}
	for _, it := range offered {
		if seen[it] != 1 {
			t.Errorf("item %s found %d times among popped, queued and dead-lettered, want once", it, seen[it])
		}
	}
	if len(seen) != len(offered) {
		t.Errorf("%d distinct items found, %d offered", len(seen), len(offered))
	}
}

// overflowData decodes an overflow DLQ entry, checks it is exactly the
// envelope of its data, and returns the data.
func overflowData(t *testing.T, queue, entry string) string {
	t.Helper()
	var env struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(entry), &env); err != nil {
		t.Errorf("overflow DLQ entry %s is not JSON: %v", clip(entry), err)
		return ""
	}
	if want := engine.OverflowEnvelope(queue, env.Data); entry != want {
		t.Errorf("overflow DLQ entry %s, want %s", clip(entry), clip(want))
	}
	return env.Data
}

func rangeAll(t *testing.T, ctx context.Context, e engine.Engine, queue string) []string {
	t.Helper()
	items, err := e.QueueRange(ctx, queue, 0, -1)
	if err != nil {
		t.Fatalf("QueueRange(%q): %v", queue, err)
	}
	return items
}

func dlqAll(t *testing.T, ctx context.Context, e engine.Engine, queue string, kind engine.DLQKind) []string {
	t.Helper()
	items, err := e.DLQRange(ctx, queue, kind, 0, -1)
	if err != nil {
		t.Fatalf("DLQRange(%q, %s): %v", queue, kind, err)
	}
	return items
}
