package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestItemHasTheRequestedSizeAndIsJSON(t *testing.T) {
	for _, size := range []int{32, 200, 4096} {
		it := item(size)
		if len(it) != size || !json.Valid([]byte(it)) {
			t.Fatalf("item(%d) is %d bytes, valid JSON %v", size, len(it), json.Valid([]byte(it)))
		}
	}
}

func TestMeasureCountsEveryCall(t *testing.T) {
	var calls atomic.Int64
	var left atomic.Int64
	left.Store(1000)
	res, err := measure(context.Background(), time.Minute, 4, 3, func(context.Context, int) (int, error) {
		if _, ok := take(&left, 1); !ok {
			return 0, errDrained
		}
		calls.Add(1)
		return 2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ops != 1000 || res.items != 2000 || calls.Load() != 1000 {
		t.Fatalf("ops %d items %d calls %d, want 1000, 2000, 1000", res.ops, res.items, calls.Load())
	}
	if len(res.samples) == 0 || len(res.samples) > 1000 || res.elapsed <= 0 {
		t.Fatalf("%d samples, elapsed %v", len(res.samples), res.elapsed)
	}
	for i := 1; i < len(res.samples); i++ {
		if res.samples[i] < res.samples[i-1] {
			t.Fatal("samples are not sorted")
		}
	}
}

func TestMeasureStopsOnTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var n atomic.Int64
	_, err := measure(context.Background(), time.Minute, 8, 1, func(ctx context.Context, _ int) (int, error) {
		if n.Add(1) == 50 {
			return 0, boom
		}
		return 1, ctx.Err()
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
}

func TestMeasureReportsInterruption(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	_, err := measure(ctx, time.Minute, 2, 1, func(ctx context.Context, _ int) (int, error) {
		if n.Add(1) == 10 {
			cancel()
		}
		return 1, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestTakeNeverHandsOutMoreThanThereIs(t *testing.T) {
	var left atomic.Int64
	left.Store(250)
	var got int64
	for {
		k, ok := take(&left, 100)
		if !ok {
			break
		}
		got += k
	}
	if got != 250 {
		t.Fatalf("took %d of 250", got)
	}
}

func TestSentAt(t *testing.T) {
	f := &fanout{pad: "xx"}
	for _, v := range []int64{-1, 0, 1234567890123} {
		got, ok := sentAt(f.message(v))
		if !ok || got != v {
			t.Fatalf("sentAt(message(%d)) = %d, %v", v, got, ok)
		}
	}
	if _, ok := sentAt(`"a plain string"`); ok {
		t.Fatal("sentAt accepted a foreign message")
	}
}

func TestReportOutput(t *testing.T) {
	rep := newReport("queue", Options{Engine: "redis", Duration: time.Second, ItemSize: 200})
	base := tally{ops: 1000, items: 1000, elapsed: time.Second, samples: []time.Duration{time.Microsecond, 2 * time.Millisecond}}
	rep.add("raw RPUSH", 1, base, "baseline")
	rep.add("add dlq", 1, tally{ops: 800, items: 800, elapsed: time.Second}, "")
	rep.add("add reject (full)", 1, tally{ops: 500, elapsed: time.Second}, "")
	rep.compare("add dlq", 1, "raw RPUSH", 1)
	rep.compare("add reject (full)", 1, "raw RPUSH", 1)
	if r := rep.Results[1]; r.Ratio != 0.8 || r.Baseline != "raw RPUSH (1)" {
		t.Fatalf("ratio %v baseline %q", r.Ratio, r.Baseline)
	}
	if r := rep.Results[2]; r.Ratio != 0.5 {
		t.Fatalf("a case that moves no items is compared by calls: ratio %v", r.Ratio)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"case", "goroutines", "ops/s", "p50", "p99", "ratio", "1,000", "0.80x", "raw RPUSH: baseline"} {
		if !strings.Contains(table.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, table.String())
		}
	}
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || len(back.Results) != 3 || back.Results[0].OpsPerSec != 1000 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

func TestRefusesARemoteRedis(t *testing.T) {
	_, err := Queue(context.Background(), Options{RedisURL: "redis://192.0.2.1:6379/0", Duration: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err %v, want a loopback refusal", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{{Engine: "postgres"}, {Duration: time.Hour}, {ItemSize: 3}} {
		if _, err := Queue(context.Background(), o); err == nil {
			t.Fatalf("options %+v accepted", o)
		}
	}
}

// short are options for a run that only checks every case works.
func short(engine string) Options {
	return Options{Engine: engine, RedisURL: redistest.URL(), Duration: 20 * time.Millisecond, ItemSize: 64}
}

func checkReport(t *testing.T, rep *Report, cases ...string) {
	t.Helper()
	names := map[string]bool{}
	for _, r := range rep.Results {
		names[r.Case] = true
		if r.Ops == 0 || r.OpsPerSec <= 0 || r.Seconds <= 0 {
			t.Fatalf("case %q (%d) measured nothing: %+v", r.Case, r.Goroutines, r)
		}
	}
	for _, c := range cases {
		if !names[c] {
			t.Fatalf("report lacks case %q; has %v", c, names)
		}
	}
}

func TestEmbeddedQueueSuites(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		rep, err := Queue(context.Background(), short("memory"))
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, "memory: add", "memory: "+idemLabel, "memory: get", "memory: add+get", "memory: batch add x100", "memory: receive+ack", "memory: receive+ack x100")
	})
	t.Run("file", func(t *testing.T) {
		o := short("file")
		o.DataDir = t.TempDir()
		rep, err := Queue(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, "file everysec: add", "file everysec: "+idemLabel, "file always: add", "file always: batch add x100")
	})
}

// noKeysLeft fails the test if the run left keys behind.
func noKeysLeft(t *testing.T, prefix string) {
	t.Helper()
	if prefix == "" {
		t.Fatal("the report names no key prefix")
	}
	c := redistest.Client(t)
	keys, err := c.Do(context.Background(), c.B().Keys().Pattern(prefix+"*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Fatalf("the run left %d keys, e.g. %q", len(keys), keys[0])
	}
}

func TestRedisSuites(t *testing.T) {
	redistest.Client(t) // skips (or fails under CI) without Redis
	ctx := context.Background()
	t.Run("queue", func(t *testing.T) {
		rep, err := Queue(ctx, short("redis"))
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, "raw RPUSH", "add reject (full)", "add dlq (not full)", idemLabel, "add drop_oldest (full)", "batch add x100", "raw BLPOP", "get (blocking)", "receive+ack", "receive+ack x100")
		noKeysLeft(t, rep.KeyPrefix)
	})
	t.Run("cache", func(t *testing.T) {
		rep, err := Cache(ctx, short("redis"))
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, "raw GET", "cache get", "cache get (cached)", "raw SET", "cache set")
		noKeysLeft(t, rep.KeyPrefix)
	})
	t.Run("lock", func(t *testing.T) {
		rep, err := Lock(ctx, short("redis"))
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, "raw SET NX + DEL", "lock acquire+release")
		noKeysLeft(t, rep.KeyPrefix)
	})
	t.Run("pubsub", func(t *testing.T) {
		rep, err := PubSub(ctx, short("redis"))
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, "raw PUBLISH->SUBSCRIBE", "publish->receive", "publish->receive @1000/s")
	})
}

func TestEmbeddedKVSuites(t *testing.T) {
	ctx := context.Background()
	rep, err := Cache(ctx, short("memory"))
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, "cache get", "cache get (cached)", "cache set")
	rep, err = Lock(ctx, short("memory"))
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, "lock acquire+release")
	rep, err = PubSub(ctx, short("memory"))
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, "publish->receive", "publish->receive @1000/s")
}

func TestHTTPSuite(t *testing.T) {
	o := short("memory")
	o.Duration = 100 * time.Millisecond
	rep, err := HTTP(context.Background(), o, HTTPOptions{Clients: 4, FanoutClients: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Post.Requests == 0 || rep.Next.Requests == 0 || rep.Engine != "embedded" {
		t.Fatalf("report %+v", rep)
	}
}

func TestGroupInterleavesRounds(t *testing.T) {
	var order []string
	var calls [2]atomic.Int64
	mk := func(i int, label string) benchCase {
		return benchCase{label: label, n: 2, sample: 1, baseline: map[int]string{1: "a"}[i],
			prepare: func(context.Context) (op, error) {
				order = append(order, label)
				var left atomic.Int64
				left.Store(10)
				return func(context.Context, int) (int, error) {
					if _, ok := take(&left, 1); !ok {
						return 0, errDrained
					}
					calls[i].Add(1)
					return 1, nil
				}, nil
			},
		}
	}
	rep := newReport("t", Options{Duration: time.Minute})
	if err := group(context.Background(), Options{Duration: time.Minute, Progress: func(string, ...any) {}}, rep, []benchCase{mk(0, "a"), mk(1, "b")}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != strings.Repeat("ab", rounds) {
		t.Fatalf("slices ran in order %q", got)
	}
	if len(rep.Results) != 2 || rep.Results[0].Ops != 10*rounds || calls[1].Load() != 10*rounds {
		t.Fatalf("results %+v", rep.Results)
	}
	if rep.Results[1].Baseline != "a (2)" || rep.Results[1].Ratio <= 0 {
		t.Fatalf("no ratio against the baseline: %+v", rep.Results[1])
	}
}

// TestPublishEndsWhenASubscriberMissesTheEndMarker: a subscriber whose
// buffer was full drops the end marker; the case must still finish.
func TestPublishEndsWhenASubscriberMissesTheEndMarker(t *testing.T) {
	f := &fanout{t: &target{o: Options{Duration: 10 * time.Millisecond}}, base: time.Now()}
	heard, deaf := &listener{done: make(chan struct{})}, &listener{done: make(chan struct{})}
	publish := func(_ context.Context, payload string) (int64, error) {
		f.on(heard, payload) // deaf hears nothing, the marker included
		return 2, nil
	}
	res, err := f.publish(context.Background(), publish, 2, false, []*listener{heard, deaf})
	if err != nil {
		t.Fatal(err)
	}
	if res.ops == 0 || res.items != res.ops {
		t.Fatalf("published %d, delivered %d", res.ops, res.items)
	}
}
