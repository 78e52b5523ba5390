package redis

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/codec"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/keyspace"
)

func (f fixture) add(t *testing.T, queue string, policy engine.Policy, limit int64, items ...string) []engine.AddResult {
	t.Helper()
	res, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: queue, Items: items, Policy: policy, MaxSize: limit})
	if err != nil {
		t.Fatalf("QueueAdd: %v", err)
	}
	return res
}

func (f fixture) rangeAll(t *testing.T, queue string) []string {
	t.Helper()
	items, err := f.e.QueueRange(f.ctx, queue, 0, -1)
	if err != nil {
		t.Fatalf("QueueRange: %v", err)
	}
	return items
}

// pop takes up to n items off the head, one non-blocking QueuePop each,
// as the public package does.
func (f fixture) pop(t *testing.T, queue string, n int) []string {
	t.Helper()
	var items []string
	for range n {
		item, ok, err := f.e.QueuePop(f.ctx, queue, 0)
		if err != nil {
			t.Fatalf("QueuePop: %v", err)
		}
		if !ok {
			break
		}
		items = append(items, item)
	}
	return items
}

func (f fixture) dlq(t *testing.T, queue string, kind engine.DLQKind) []string {
	t.Helper()
	items, err := f.e.DLQRange(f.ctx, queue, kind, 0, -1)
	if err != nil {
		t.Fatalf("DLQRange: %v", err)
	}
	return items
}

func TestQueueAddPolicies(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cases := []struct {
		policy   engine.Policy
		want     []engine.AddResult
		queue    []string
		overflow []string
	}{
		{
			policy: engine.PolicyReject,
			want:   []engine.AddResult{res(true, 1, 0, 0), res(true, 2, 0, 0), res(false, 2, 0, 0), res(false, 2, 0, 0)},
			queue:  []string{"a", "b"},
		},
		{
			policy:   engine.PolicyDLQ,
			want:     []engine.AddResult{res(true, 1, 0, 0), res(true, 2, 0, 0), res(true, 2, 0, 1), res(true, 2, 0, 1)},
			queue:    []string{"c", "d"},
			overflow: []string{"a", "b"},
		},
		{
			policy: engine.PolicyDropOldest,
			want:   []engine.AddResult{res(true, 1, 0, 0), res(true, 2, 0, 0), res(true, 2, 1, 0), res(true, 2, 1, 0)},
			queue:  []string{"c", "d"},
		},
		{
			policy: "bogus", // behaves as reject
			want:   []engine.AddResult{res(true, 1, 0, 0), res(true, 2, 0, 0), res(false, 2, 0, 0), res(false, 2, 0, 0)},
			queue:  []string{"a", "b"},
		},
	}
	for _, c := range cases {
		q := "q-" + string(c.policy)
		got := f.add(t, q, c.policy, 2, "a", "b", "c", "d")
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: results %+v, want %+v", c.policy, got, c.want)
		}
		if items := f.rangeAll(t, q); !slices.Equal(items, c.queue) {
			t.Errorf("%s: queue %q, want %q", c.policy, items, c.queue)
		}
		var want []string
		for _, s := range c.overflow {
			want = append(want, engine.OverflowEnvelope(q, s))
		}
		if got := f.dlq(t, q, engine.DLQOverflow); !slices.Equal(got, want) {
			t.Errorf("%s: overflow DLQ %q, want %q", c.policy, got, want)
		}
	}
}

func TestQueueAddShrunkMaxAndUnbounded(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "1", "2", "3", "4", "5")
	got := f.add(t, "q", engine.PolicyDLQ, 2, "6")
	if want := []engine.AddResult{res(true, 2, 0, 4)}; !slices.Equal(got, want) {
		t.Fatalf("results %+v, want %+v", got, want)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"5", "6"}) {
		t.Fatalf("queue %q", items)
	}
	got = f.add(t, "q", engine.PolicyDropOldest, 1, "7")
	if want := []engine.AddResult{res(true, 1, 2, 0)}; !slices.Equal(got, want) {
		t.Fatalf("drop_oldest results %+v, want %+v", got, want)
	}
	if n := len(f.dlq(t, "q", engine.DLQOverflow)); n != 4 {
		t.Fatalf("overflow DLQ holds %d, want 4", n)
	}
}

func TestQueueAddLargeBatchOneScript(t *testing.T) {
	t.Parallel()
	f := setup(t)
	items := make([]string, 2500)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	res := f.add(t, "q", engine.PolicyDLQ, 1000, items...)
	if last := res[len(res)-1]; last.QueueLength != 1000 || last.MovedToDLQ != 1 {
		t.Fatalf("last result %+v", last)
	}
	queue := f.rangeAll(t, "q")
	if !slices.Equal(queue, items[1500:]) {
		t.Fatalf("queue holds %d items, first %q", len(queue), queue[0])
	}
	overflow := f.dlq(t, "q", engine.DLQOverflow)
	if len(overflow) != 1500 || overflow[0] != engine.OverflowEnvelope("q", "0") || overflow[1499] != engine.OverflowEnvelope("q", "1499") {
		t.Fatalf("overflow DLQ holds %d entries", len(overflow))
	}
}

// TestOverflowEnvelopeBytes holds the Lua envelope to engine.OverflowEnvelope
// byte for byte, including invalid UTF-8 (which both replace with U+FFFD).
func TestOverflowEnvelopeBytes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	items := []string{
		"plain ascii",
		`{"id": 1, "quote": "say \"hi\"", "path": "a\\b/c"}`,
		"ctrl \x00\x01\x08\x09\x0a\x0b\x0c\x0d\x1f\x7f end",
		"caf\u00e9 \u4e2d\u6587 \u20ac",
		"emoji \U0001F600 \U0001F680 \U0010FFFF",
		"bad utf8 \xff \xc3 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf",
		"",
		`Z:KLUv/QBYAQAAaGk=`,
	}
	queue := "q:{env}.x-1"
	f.add(t, queue, engine.PolicyDLQ, 1, items...)
	f.add(t, queue, engine.PolicyDLQ, 1, "last")
	got := f.dlq(t, queue, engine.DLQOverflow)
	if len(got) != len(items) {
		t.Fatalf("overflow DLQ holds %d entries, want %d", len(got), len(items))
	}
	for i, s := range items {
		if want := engine.OverflowEnvelope(queue, s); got[i] != want {
			t.Errorf("item %q:\n got  %q\n want %q", s, got[i], want)
		}
	}
}

func TestQueuePop(t *testing.T) {
	t.Parallel()
	f := setup(t)
	item, ok, err := f.e.QueuePop(f.ctx, "q", 0)
	if err != nil || ok {
		t.Fatalf("pop of empty queue: %q %v %v", item, ok, err)
	}
	f.add(t, "q", engine.PolicyDLQ, 0, "a", "b", "c", "d")
	item, ok, err = f.e.QueuePop(f.ctx, "q", time.Second)
	if err != nil || !ok || item != "a" {
		t.Fatalf("pop: %q %v %v", item, ok, err)
	}
	if items := f.pop(t, "q", 5); !slices.Equal(items, []string{"b", "c", "d"}) {
		t.Fatalf("pops past the end: %q", items)
	}
	item, ok, err = f.e.QueuePop(f.ctx, "q", time.Millisecond)
	if err != nil || ok {
		t.Fatalf("blocking pop of empty queue: %q %v %v", item, ok, err)
	}
}

func TestQueuePopWakesOnAdd(t *testing.T) {
	t.Parallel()
	f := setup(t)
	got := make(chan string, 1)
	go func() {
		item, _, err := f.e.QueuePop(f.ctx, "q", 20*time.Second)
		if err != nil {
			item = err.Error()
		}
		got <- item
	}()
	// Keep adding until the waiting pop takes one: no sleep is needed to
	// know it is blocked.
	for i := 0; ; i++ {
		f.add(t, "q", engine.PolicyDLQ, 0, fmt.Sprint(i))
		select {
		case item := <-got:
			if item != "0" {
				t.Fatalf("pop returned %q, want the first item", item)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestQueuePopClose(t *testing.T) {
	t.Parallel()
	f := setup(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := f.e.QueuePop(f.ctx, "q", time.Hour)
		done <- err
	}()
	f.waitBlocked(t)
	f.e.Close()
	if err := <-done; !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("pop after Close returned %v", err)
	}
	if _, err := f.e.QueueLen(f.ctx, "q"); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("QueueLen after Close returned %v", err)
	}
}

// waitBlocked returns once some client of this database is blocked. Tests
// run in parallel, so it waits for the count to grow past its start value.
func (f fixture) waitBlocked(t *testing.T) {
	t.Helper()
	start := f.blockedClients(t)
	for f.blockedClients(t) <= start {
		select {
		case <-f.ctx.Done():
			t.Fatal("no client blocked")
		case <-time.After(time.Millisecond):
		}
	}
}

func (f fixture) blockedClients(t *testing.T) int {
	t.Helper()
	info, err := f.raw.Do(f.ctx, f.raw.B().Info().Section("clients").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, line := range splitLines(info) {
		if _, err := fmt.Sscanf(line, "blocked_clients:%d", &n); err == nil {
			return n
		}
	}
	t.Fatal("INFO clients has no blocked_clients")
	return 0
}

func TestQueuePushFrontLenClear(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyReject, 2, "c", "d")
	if err := f.e.QueuePushFront(f.ctx, "q", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if items := f.rangeAll(t, "q"); !slices.Equal(items, []string{"a", "b", "c", "d"}) {
		t.Fatalf("queue %q", items)
	}
	if n, err := f.e.QueueLen(f.ctx, "q"); err != nil || n != 4 {
		t.Fatalf("len %d %v", n, err)
	}
	if items, err := f.e.QueueRange(f.ctx, "q", -2, -1); err != nil || !slices.Equal(items, []string{"c", "d"}) {
		t.Fatalf("range %q %v", items, err)
	}
	f.add(t, "q", engine.PolicyDLQ, 1, "e")
	if ok, err := f.e.QueueClear(f.ctx, "q"); err != nil || !ok {
		t.Fatalf("clear %v %v", ok, err)
	}
	if ok, err := f.e.QueueClear(f.ctx, "q"); err != nil || ok {
		t.Fatalf("second clear %v %v", ok, err)
	}
	if n, _ := f.e.DLQLen(f.ctx, "q", engine.DLQOverflow); n != 4 {
		t.Fatalf("clear touched the DLQ: %d entries", n)
	}
}

func TestQueueNamesAndWrongType(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "b", engine.PolicyDLQ, 0, "x")
	f.add(t, "a", engine.PolicyDLQ, 0, "x")
	f.add(t, "a", engine.PolicyDLQ, 0, "y")
	names, err := f.e.QueueNames(f.ctx)
	if err != nil || !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("names %q %v", names, err)
	}
	if err := f.raw.Do(f.ctx, f.raw.B().Set().Key(f.prefix+"s").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err = f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "s", Items: []string{"x"}, Policy: engine.PolicyDLQ})
	if !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("add to a string key: %v", err)
	}
	if _, err := f.e.QueueLen(f.ctx, "s"); !errors.Is(err, engine.ErrWrongType) {
		t.Fatalf("len of a string key: %v", err)
	}
}

// TestPythonProducerCompat reads what the Python service writes (raw
// RPUSH) and checks that what the engine writes is exactly what LRANGE
// shows.
func TestPythonProducerCompat(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c, err := codec.New(codec.Options{Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := make([]byte, 4096)
	for i := range big {
		big[i] = 'a' + byte(i%3)
	}
	compressed := c.Compress(`"` + string(big) + `"`)
	if compressed[:2] != codec.CompressedPrefix {
		t.Fatalf("codec did not compress: %q", compressed[:10])
	}
	python := []string{`{"camera_id": "cam-1", "score": 0.97, "tags": ["a", "b"]}`, "plain string", compressed}
	key := f.e.keys.Queue("detections_queue").List
	if err := f.raw.Do(f.ctx, f.raw.B().Rpush().Key(key).Element(python...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got := f.rangeAll(t, "detections_queue"); !slices.Equal(got, python) {
		t.Fatalf("range %q", got)
	}
	for _, want := range python {
		got, ok, err := f.e.QueuePop(f.ctx, "detections_queue", 0)
		if err != nil || !ok || got != want {
			t.Fatalf("pop %q %v %v, want %q", got, ok, err, want)
		}
	}
	if n, err := f.e.QueueLen(f.ctx, "detections_queue"); err != nil || n != 0 {
		t.Fatalf("queue not empty: %d %v", n, err)
	}
	data, isJSON, err := c.Decode(compressed)
	if err != nil || !isJSON || string(data) != `"`+string(big)+`"` {
		t.Fatalf("decode of the popped blob: %v %v", isJSON, err)
	}
	written := []string{python[0], "another", compressed}
	f.add(t, "detections_queue", engine.PolicyDLQ, 10000, written...)
	raw, err := f.raw.Do(f.ctx, f.raw.B().Lrange().Key(key).Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil || !slices.Equal(raw, written) {
		t.Fatalf("raw LRANGE %q %v", raw, err)
	}
}

// TestConcurrentAddsHoldTheBound runs 50 producers against a queue of max
// 100 under each policy and checks every result and the final state.
func TestConcurrentAddsHoldTheBound(t *testing.T) {
	t.Parallel()
	for _, policy := range []engine.Policy{engine.PolicyReject, engine.PolicyDLQ, engine.PolicyDropOldest} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			const adders, perProducer, limit = 50, 40, 100
			var mu sync.Mutex
			var accepted, moved, dropped int64
			// Failures are collected under mu, never sent on a channel
			// that could fill: a violated bound must fail the test, not
			// block a producer until the package times out.
			var errs []error
			var wg sync.WaitGroup
			for p := range adders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perProducer {
						// Mix single adds and batches.
						items := []string{fmt.Sprintf("%d-%d", p, i)}
						if i%10 == 0 {
							items = append(items, fmt.Sprintf("%d-%d-b", p, i))
						}
						res, err := f.e.QueueAdd(f.ctx, engine.AddParams{Queue: "q", Items: items, Policy: policy, MaxSize: limit})
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
							mu.Unlock()
							return
						}
						for _, r := range res {
							if r.QueueLength > limit {
								errs = append(errs, fmt.Errorf("queue length %d > %d", r.QueueLength, limit))
							}
							if r.Accepted {
								accepted++
							}
							moved += r.MovedToDLQ
							dropped += r.Dropped
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("%d failures, the first: %v", len(errs), errs[0])
			}
			total := int64(adders * (perProducer + perProducer/10))
			queue := f.rangeAll(t, "q")
			overflow := f.dlq(t, "q", engine.DLQOverflow)
			if len(queue) != limit {
				t.Fatalf("queue holds %d, want %d", len(queue), limit)
			}
			switch policy {
			case engine.PolicyReject:
				if accepted != limit || moved != 0 || dropped != 0 {
					t.Fatalf("accepted %d moved %d dropped %d", accepted, moved, dropped)
				}
			case engine.PolicyDropOldest:
				if accepted != total || dropped != total-limit || moved != 0 {
					t.Fatalf("accepted %d dropped %d of %d", accepted, dropped, total)
				}
			case engine.PolicyDLQ:
				if accepted != total || moved != total-limit || dropped != 0 || int64(len(overflow)) != moved {
					t.Fatalf("accepted %d moved %d overflow %d of %d", accepted, moved, len(overflow), total)
				}
				seen := map[string]int{}
				for _, s := range queue {
					seen[s]++
				}
				for _, env := range overflow {
					seen[unwrapOverflow(t, env)]++
				}
				if int64(len(seen)) != total {
					t.Fatalf("%d distinct items, want %d", len(seen), total)
				}
				for s, n := range seen {
					if n != 1 {
						t.Fatalf("item %q held %d times", s, n)
					}
				}
			}
		})
	}
}

// TestClusterLayoutKeepsOneSlot exercises every script in the cluster
// layout and checks that each key it wrote carries the queue's hash tag
// (the registry set excepted, which is outside every script).
func TestClusterLayoutKeepsOneSlot(t *testing.T) {
	t.Parallel()
	f := setup(t)
	e := New(f.raw, Options{Keys: keyspace.Space{Prefix: f.prefix, Cluster: true}})
	defer e.Close()
	g := fixture{e: e, raw: f.raw, prefix: f.prefix, ctx: f.ctx}
	g.add(t, "jobs", engine.PolicyDLQ, 2, "a", "b", "c", "d")
	d := g.receive(t, "jobs", 1, 1)[0]
	if _, err := e.QueueNack(g.ctx, engine.NackParams{Queue: "jobs", ID: d.ID, Error: "x", MaxDeliveries: 1}); err != nil {
		t.Fatal(err)
	}
	d = g.receive(t, "jobs", 1, 3)[0]
	if _, err := e.QueueNack(g.ctx, engine.NackParams{Queue: "jobs", ID: d.ID, Delay: time.Hour, MaxDeliveries: 3}); err != nil {
		t.Fatal(err)
	}
	if res := g.requeue(t, engine.RequeueParams{Queue: "jobs", Kind: engine.DLQOverflow, Policy: engine.PolicyDLQ, MaxSize: 2}); res.Requeued != 2 {
		t.Fatalf("requeue %+v", res)
	}
	if item, ok, err := e.QueuePop(g.ctx, "jobs", time.Millisecond); err != nil || !ok {
		t.Fatalf("pop %q %v %v", item, ok, err)
	}
	keys, err := f.raw.Do(f.ctx, f.raw.B().Keys().Pattern(f.prefix+"*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"dlq:{jobs}", "sluice#jobs:{jobs}", "sluice#leases:{jobs}", "sluice#queues", "sluice#seq:{jobs}", "sluice#stats:{jobs}", "{jobs}"}
	for i := range want {
		want[i] = f.prefix + want[i]
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q\nwant %q", keys, want)
	}
}

// TestOverflowEnvelopeRandomBytes compares the Lua quoting with Go's on
// seeded random byte strings mixing ASCII escapes, valid UTF-8 of every
// length, truncated sequences and stray bytes.
func TestOverflowEnvelopeRandomBytes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "\"", "\\", "\n", "\x00", "\x1f", "\x7f", "\u00e9", "\u20ac", "\U0001F600",
		"\xc3", "\xe2\x82", "\xf0\x9f\x98", "\x80", "\xbf", "\xc0\x80", "\xed\xa0\x80", "\xf5", "\xff", " "}
	items := make([]string, 400)
	for i := range items {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		items[i] = b.String()
	}
	f.add(t, "q", engine.PolicyDLQ, 1, append(items, "last")...)
	got := f.dlq(t, "q", engine.DLQOverflow)
	if len(got) != len(items) {
		t.Fatalf("overflow DLQ holds %d entries", len(got))
	}
	for i, s := range items {
		if want := engine.OverflowEnvelope("q", s); got[i] != want {
			t.Fatalf("item %q:\n got  %q\n want %q", s, got[i], want)
		}
	}
}

// TestRejectBothPaths walks a reject queue in and out of full, so that adds
// run both ways queue_add.lua has for reject (push then take back, and read
// the length first once the queue was seen full) with the same outcomes.
func TestRejectBothPaths(t *testing.T) {
	t.Parallel()
	f := setup(t)
	pop := func(n int) {
		t.Helper()
		f.pop(t, "q", n)
	}
	check := func(got, want []engine.AddResult, queue ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("results %+v, want %+v", got, want)
		}
		if items := f.rangeAll(t, "q"); !slices.Equal(items, queue) {
			t.Fatalf("queue %q, want %q", items, queue)
		}
	}
	check(f.add(t, "q", engine.PolicyReject, 3, "a", "b", "c", "d"),
		[]engine.AddResult{res(true, 1, 0, 0), res(true, 2, 0, 0), res(true, 3, 0, 0), res(false, 3, 0, 0)}, "a", "b", "c")
	check(f.add(t, "q", engine.PolicyReject, 3, "e"), []engine.AddResult{res(false, 3, 0, 0)}, "a", "b", "c")
	pop(1)
	check(f.add(t, "q", engine.PolicyReject, 3, "f", "g"),
		[]engine.AddResult{res(true, 3, 0, 0), res(false, 3, 0, 0)}, "b", "c", "f")
	pop(2)
	check(f.add(t, "q", engine.PolicyReject, 3, "h"), []engine.AddResult{res(true, 2, 0, 0)}, "f", "h")
	check(f.add(t, "q", engine.PolicyReject, 3, "i", "j"),
		[]engine.AddResult{res(true, 3, 0, 0), res(false, 3, 0, 0)}, "f", "h", "i")
}
