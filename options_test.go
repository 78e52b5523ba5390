package sluice_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/redisconn"
	"github.com/sluicehq/sluice/internal/redistest"
)

// Every default the Config and QueueSettings fields document.
func TestWithDefaultsFillsEveryDefault(t *testing.T) {
	want := sluice.Config{
		Queue: sluice.QueueSettings{
			MaxSize: sluice.DefaultMaxSize, Policy: sluice.DefaultPolicy,
			PressureThreshold: sluice.DefaultPressureThreshold,
			Lease:             sluice.DefaultLease, MaxDeliveries: sluice.DefaultMaxDeliveries,
		},
		CompressionThreshold: sluice.DefaultCompressionThreshold,
		TLS:                  sluice.TLSOptions{Verify: sluice.TLSVerifyRequired},
		Fsync:                sluice.FsyncEverySec,
	}
	for name, cfg := range map[string]*sluice.Config{"nil": nil, "zero": {}} {
		got := cfg.WithDefaults()
		if got.Logger == nil {
			t.Errorf("%s: Logger is nil; want a logger that discards", name)
		}
		got.Logger = nil
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("%s.WithDefaults() = %+v\nwant %+v", name, *got, want)
		}
	}
	if want.Queue.MaxSize != 10000 || want.Queue.Policy != sluice.PolicyDLQ || want.Queue.PressureThreshold != 0.8 ||
		want.Queue.Lease != 30*time.Second || want.Queue.MaxDeliveries != 5 || want.CompressionThreshold != 1024 {
		t.Fatalf("the default constants moved: %+v", want)
	}
}

func TestWithDefaultsKeepsSetFieldsAndCopies(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := &sluice.Config{
		Queue:                sluice.QueueSettings{MaxSize: sluice.Unbounded, Policy: sluice.PolicyReject, Lease: time.Minute},
		DisableCompression:   true,
		CompressionThreshold: 10,
		TLS:                  sluice.TLSOptions{Verify: sluice.TLSVerifyNone},
		Fsync:                sluice.FsyncAlways,
		MinReplicasAck:       2,
		Logger:               log,
	}
	before := *cfg
	got := cfg.WithDefaults()
	if !reflect.DeepEqual(*cfg, before) {
		t.Fatalf("WithDefaults changed its receiver: %+v, was %+v", *cfg, before)
	}
	if got == cfg {
		t.Fatal("WithDefaults returned its receiver, not a copy")
	}
	want := before
	want.Queue.PressureThreshold = sluice.DefaultPressureThreshold
	want.Queue.MaxDeliveries = sluice.DefaultMaxDeliveries
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("WithDefaults() = %+v\nwant %+v", *got, want)
	}
}

func TestOpenRefusesInvalidConfig(t *testing.T) {
	for name, cfg := range map[string]sluice.Config{
		"fsync":                {Fsync: "sometimes"},
		"fsync case":           {Fsync: "ALWAYS"},
		"tls verify":           {TLS: sluice.TLSOptions{Verify: "maybe"}},
		"max size":             {Queue: sluice.QueueSettings{MaxSize: -2}},
		"pressure above 1":     {Queue: sluice.QueueSettings{PressureThreshold: 1.5}},
		"negative pressure":    {Queue: sluice.QueueSettings{PressureThreshold: -0.1}},
		"NaN pressure":         {Queue: sluice.QueueSettings{PressureThreshold: math.NaN()}},
		"lease":                {Queue: sluice.QueueSettings{Lease: -time.Second}},
		"max deliveries":       {Queue: sluice.QueueSettings{MaxDeliveries: -1}},
		"compression":          {CompressionThreshold: -1},
		"min replicas ack":     {MinReplicasAck: -1},
		"fsync and a good one": {Fsync: "never", Queue: sluice.QueueSettings{MaxSize: 5}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := sluice.Open(context.Background(), "", &cfg)
			if !errors.Is(err, sluice.ErrInvalidArgument) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("Open with %+v: %v, want ErrInvalidArgument", cfg, err)
			}
		})
	}
}

func TestOpenAcceptsEveryValidSetting(t *testing.T) {
	for _, cfg := range []sluice.Config{
		{Fsync: sluice.FsyncAlways},
		{Fsync: sluice.FsyncEverySec},
		{TLS: sluice.TLSOptions{Verify: sluice.TLSVerifyRequired}},
		{TLS: sluice.TLSOptions{Verify: sluice.TLSVerifyNone}},
		{Queue: sluice.QueueSettings{MaxSize: sluice.Unbounded, PressureThreshold: 1}},
	} {
		c := open(t, "file://"+t.TempDir(), &cfg)
		if c.EngineKind() != sluice.EngineEmbedded {
			t.Fatalf("engine kind %q, want %q", c.EngineKind(), sluice.EngineEmbedded)
		}
	}
}

func TestEngineKind(t *testing.T) {
	if k := open(t, "mem://", nil).EngineKind(); k != sluice.EngineEmbedded {
		t.Errorf("mem:// engine kind %q", k)
	}
	redistest.Client(t)
	if k := open(t, redistest.URL(), &sluice.Config{KeyPrefix: redistest.Prefix(t)}).EngineKind(); k != sluice.EngineRedis {
		t.Errorf("redis engine kind %q", k)
	}
}

// A MaxSize of 0 is the default size; Unbounded is no bound, reported as
// such by Pressure; other negative sizes are refused.
func TestQueueSizes(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		for _, tc := range []struct {
			q    *sluice.Queue
			want int64
		}{
			{c.Queue("plain"), sluice.DefaultMaxSize},
			{c.QueueWith("zero", sluice.QueueSettings{MaxSize: 0}), sluice.DefaultMaxSize},
			{c.QueueWith("unbounded", sluice.QueueSettings{MaxSize: sluice.Unbounded}), sluice.Unbounded},
		} {
			if got := tc.q.HandleSettings().MaxSize; got != tc.want {
				t.Errorf("%s: HandleSettings().MaxSize = %d, want %d", tc.q.Name(), got, tc.want)
			}
			if _, err := tc.q.Add(ctx, "x", nil); err != nil {
				t.Fatal(err)
			}
			p, err := tc.q.Pressure(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p.MaxSize != tc.want {
				t.Errorf("%s: Pressure().MaxSize = %d, want %d", tc.q.Name(), p.MaxSize, tc.want)
			}
			if tc.want == sluice.Unbounded && (p.FillRatio != 0 || p.IsFull || p.IsAtPressureThreshold) {
				t.Errorf("%s: unbounded pressure %+v", tc.q.Name(), p)
			}
		}

		bad := c.QueueWith("bad", sluice.QueueSettings{MaxSize: -2})
		if _, err := bad.Add(ctx, "x", nil); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("add to a queue of size -2: %v, want ErrInvalidArgument", err)
		}
		if _, err := bad.Pressure(ctx); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("pressure of a queue of size -2: %v, want ErrInvalidArgument", err)
		}

		full := c.QueueWith("full", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyReject})
		if _, err := full.Add(ctx, "a", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := full.Add(ctx, "b", &sluice.AddOptions{MaxSize: -2}); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("add with MaxSize -2: %v, want ErrInvalidArgument", err)
		}
		if _, err := full.Add(ctx, "b", &sluice.AddOptions{}); !errors.Is(err, sluice.ErrQueueFull) {
			t.Errorf("add with MaxSize 0 (the queue's, 1): %v, want ErrQueueFull", err)
		}
		if r, err := full.Add(ctx, "b", &sluice.AddOptions{MaxSize: sluice.Unbounded}); err != nil || r.QueueLength != 2 {
			t.Errorf("unbounded add: %+v, %v", r, err)
		}
	})
}

func TestClientQueueSettingsApplyToEveryQueue(t *testing.T) {
	c := open(t, "", &sluice.Config{Queue: sluice.QueueSettings{MaxSize: sluice.Unbounded, MaxDeliveries: 2}})
	p, err := c.Queue("q").Pressure(context.Background())
	if err != nil || p.MaxSize != sluice.Unbounded {
		t.Fatalf("pressure %+v, %v; want MaxSize %d", p, err, sluice.Unbounded)
	}
	// QueueWith's zero fields keep the client's settings.
	s := c.QueueWith("q", sluice.QueueSettings{Policy: sluice.PolicyReject}).HandleSettings()
	want := sluice.QueueSettings{
		MaxSize: sluice.Unbounded, Policy: sluice.PolicyReject, PressureThreshold: sluice.DefaultPressureThreshold,
		Lease: sluice.DefaultLease, MaxDeliveries: 2,
	}
	if s != want {
		t.Fatalf("settings %+v, want %+v", s, want)
	}
}

// nil per-call options take the queue's settings and the documented
// defaults.
func TestNilOptionsMeanDefaults(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("nil-opts", sluice.QueueSettings{MaxDeliveries: 1})
		if _, err := q.AddBatch(ctx, []any{"a", "b"}, nil); err != nil {
			t.Fatal(err)
		}
		d, ok, err := q.Receive(ctx, 0, nil)
		if err != nil || !ok {
			t.Fatalf("receive: %v %v", ok, err)
		}
		// The queue's MaxDeliveries (1): the first nack dead-letters, with
		// the default reason.
		dl, err := d.Nack(ctx, nil)
		if err != nil || !dl {
			t.Fatalf("nack: dead-lettered %v, %v; want true", dl, err)
		}
		entries, _, err := q.DLQ(sluice.DLQFailed).List(ctx, 0, 1)
		if err != nil || len(entries) != 1 || entries[0].Error != "nacked" {
			t.Fatalf("failed DLQ: %+v, %v", entries, err)
		}
		ds, err := q.ReceiveBatch(ctx, 1, 0, nil)
		if err != nil || len(ds) != 1 {
			t.Fatalf("receive batch: %d, %v", len(ds), err)
		}
		if dl, err := q.Nack(ctx, ds[0].ID, nil); err != nil || !dl {
			t.Fatalf("Queue.Nack: dead-lettered %v, %v; want true", dl, err)
		}
		if _, err := q.Nack(ctx, "1.2.3", &sluice.NackOptions{MaxDeliveries: -1}); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("nack with MaxDeliveries -1: %v", err)
		}
		if _, _, err := q.Receive(ctx, 0, &sluice.ReceiveOptions{Lease: -time.Second}); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("receive with a negative lease: %v", err)
		}

		// A nil LockOptions makes one attempt.
		held, err := c.Acquire(ctx, "nil-opts-lock", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Acquire(ctx, "nil-opts-lock", time.Minute, nil); !errors.Is(err, sluice.ErrLockHeld) {
			t.Errorf("second acquire: %v, want ErrLockHeld", err)
		}
		if _, err := c.Acquire(ctx, "nil-opts-lock", time.Minute, &sluice.LockOptions{Wait: -time.Second}); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("acquire with a negative wait: %v", err)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}

		handler := func(context.Context, []sluice.Item) error { return nil }
		if _, err := q.NewBatchConsumer(handler, nil); err != nil {
			t.Errorf("batch consumer with nil options: %v", err)
		}
		bad := &sluice.BatchConsumerOptions{Receive: sluice.ReceiveOptions{MaxDeliveries: -1}}
		if _, err := q.NewBatchConsumer(handler, bad); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("batch consumer with MaxDeliveries -1: %v, want ErrInvalidArgument", err)
		}
		for _, o := range []sluice.BatchConsumerOptions{{Prefetch: -2}, {Prefetch: sluice.MaxConsumePrefetch + 1}, {Concurrency: sluice.MaxConsumePrefetch + 1}} {
			if _, err := q.NewBatchConsumer(handler, &o); !errors.Is(err, sluice.ErrInvalidArgument) {
				t.Errorf("batch consumer with %+v: %v, want ErrInvalidArgument", o, err)
			}
		}
		if _, err := c.SubscribeWith(ctx, nil); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("subscribe to nothing: %v, want ErrInvalidArgument", err)
		}
	})
}

// NewFromRueidis checks its configuration as Open does.
func TestNewFromRueidisValidates(t *testing.T) {
	rc := redistest.Client(t)
	if _, err := sluice.NewFromRueidis(rc, &sluice.Config{Fsync: "never"}); !errors.Is(err, sluice.ErrInvalidArgument) {
		t.Fatalf("NewFromRueidis with a bad fsync policy: %v, want ErrInvalidArgument", err)
	}
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, rc, prefix)
	c, err := sluice.NewFromRueidis(rc, &sluice.Config{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := c.QueueWith("q", sluice.QueueSettings{MaxSize: 1})
	if _, err := q.AddBatch(context.Background(), []any{"a", "b"}, nil); err != nil {
		t.Fatal(err)
	}
}

// NewFromRueidis honours MinReplicasAck: no server here has 50 replicas,
// so the add is applied but reported unconfirmed.
func TestNewFromRueidisWaitsForReplicas(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t)
	redistest.Cleanup(t, rc, prefix)
	c, err := sluice.NewFromRueidis(rc, &sluice.Config{KeyPrefix: prefix, MinReplicasAck: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	q := c.Queue("q")
	if _, err := q.Add(ctx, "x", nil); err == nil || errors.Is(err, sluice.ErrQueueFull) {
		t.Fatalf("add confirmed by none of 50 replicas: %v; want the replica error", err)
	}
	if n, err := q.Len(ctx); err != nil || n != 1 {
		t.Fatalf("length %d, %v; want the add applied on the primary", n, err)
	}
}

// A rueidis cluster client is recognised: the keys of one queue get a
// hash tag, so the overflow script, which touches the queue, its DLQ and
// the queue registry, stays in one slot.
func TestNewFromRueidisRecognisesACluster(t *testing.T) {
	u := os.Getenv("SLUICE_TEST_CLUSTER_URL")
	if u == "" {
		t.Skip("SLUICE_TEST_CLUSTER_URL is not set")
	}
	ctx := context.Background()
	conn, err := redisconn.Connect(ctx, redisconn.Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	c, err := sluice.NewFromRueidis(conn.Client, &sluice.Config{KeyPrefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	q := c.QueueWith("overflowing", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyDLQ})
	t.Cleanup(func() {
		if _, err := q.Clear(ctx); err != nil {
			t.Error(err)
		}
		if _, err := q.DLQ(sluice.DLQOverflow).Purge(ctx); err != nil {
			t.Error(err)
		}
	})
	res, err := q.AddBatch(ctx, []any{"a", "b", "c"}, nil)
	if err != nil {
		t.Fatalf("add on a cluster: %v", err)
	}
	if res[2].MovedToDLQCount != 1 {
		t.Fatalf("results %+v; want the third add to move one item", res)
	}
}
