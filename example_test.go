package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/sluicehq/sluice"
)

// A bounded queue with the dlq overflow policy: when it is full, the oldest
// item moves to the overflow dead-letter queue instead of being lost.
func ExampleQueue_Add() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil) // embedded engine; "redis://..." for Redis
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.QueueWith("detections_queue", sluice.QueueSettings{MaxSize: 2, Policy: sluice.PolicyDLQ})
	for cam := 1; cam <= 3; cam++ {
		res, err := q.Add(ctx, map[string]any{"camera_id": cam}, nil)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.QueueLength, res.MovedToDLQCount, res.HadBackpressure)
	}
	n, err := q.DLQ(sluice.DLQOverflow).Len(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("in overflow DLQ:", n)
	// Output:
	// 1 0 false
	// 2 0 false
	// 2 1 true
	// in overflow DLQ: 1
}

// A client with settings of its own: every queue of it holds at most 500
// items and rejects what does not fit. A nil *Config means every default.
func ExampleOpen() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "mem://", &sluice.Config{
		Queue: sluice.QueueSettings{MaxSize: 500, Policy: sluice.PolicyReject},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	s := client.Queue("jobs").HandleSettings()
	fmt.Println(client.EngineKind(), s.MaxSize, s.Policy, s.Lease)
	// Output:
	// embedded 500 reject 30s
}

// The defaults a Config's zero fields stand for.
func ExampleConfig_WithDefaults() {
	cfg := (&sluice.Config{}).WithDefaults()
	fmt.Println(cfg.Queue.MaxSize, cfg.Queue.Policy, cfg.Queue.PressureThreshold, cfg.Queue.Lease, cfg.Queue.MaxDeliveries)
	fmt.Println(cfg.CompressionThreshold, cfg.Fsync, cfg.TLS.Verify)
	// Output:
	// 10000 dlq 0.8 30s 5
	// 1024 everysec required
}

// Without a bound, a queue's pressure reports MaxSize as Unbounded (-1).
func ExampleClient_QueueWith() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.QueueWith("telemetry", sluice.QueueSettings{MaxSize: sluice.Unbounded})
	if _, err := q.Add(ctx, "reading", nil); err != nil {
		log.Fatal(err)
	}
	p, err := q.Pressure(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.CurrentLength, p.MaxSize, p.IsFull)
	// Output:
	// 1 -1 false
}

// The reject policy refuses the item and writes nothing.
func ExampleQueue_Add_reject() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.QueueWith("critical", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyReject})
	if _, err := q.Add(ctx, "first", nil); err != nil {
		log.Fatal(err)
	}
	res, err := q.Add(ctx, "second", nil)
	switch {
	case errors.Is(err, sluice.ErrQueueFull):
		fmt.Println(res.Success, err)
	case err != nil:
		log.Fatal(err)
	}
	// Output:
	// false sluice: add to queue "critical": queue full (1/1); nothing written
}

// Blocking get with a typed decode; ok is false when the queue stayed empty.
func ExampleGetAs() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	type Detection struct {
		CameraID int    `json:"camera_id"`
		Label    string `json:"label"`
	}
	q := client.Queue("detections_queue")
	if _, err := q.Add(ctx, Detection{CameraID: 1, Label: "person"}, nil); err != nil {
		log.Fatal(err)
	}

	d, ok, err := sluice.GetAs[Detection](ctx, q, 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d, ok)
	_, ok, err = q.Get(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ok)
	// Output:
	// {1 person} true
	// false
}

// Acknowledged delivery: an item leaves the queue for good only when acked.
func ExampleQueue_Receive() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.Queue("jobs")
	if _, err := q.Add(ctx, "resize image 42", nil); err != nil {
		log.Fatal(err)
	}

	d, ok, err := q.Receive(ctx, time.Second, &sluice.ReceiveOptions{Lease: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	if !ok {
		fmt.Println("nothing arrived")
		return
	}
	fmt.Println(d.Attempt, d.Item)
	if err := d.Ack(ctx); err != nil {
		log.Fatal(err)
	}
	p, err := q.Pressure(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.CurrentLength, p.InFlight)
	// Output:
	// 1 resize image 42
	// 0 0
}

// The Python service's result-caching pattern, with one load for concurrent misses.
func ExampleCache_GetOrLoad() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	load := func(ctx context.Context) ([]string, error) { return []string{"person", "car"}, nil }
	v, err := sluice.GetOrLoadAs(ctx, client.Cache(), "detections:camera:1:recent", time.Minute, load)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)
	// Output:
	// [person car]
}

// A distributed lock with a fencing token.
func ExampleClient_Acquire() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	lock, err := client.Acquire(ctx, "lock:camera:1", 5*time.Minute, &sluice.LockOptions{Wait: time.Second})
	switch {
	case errors.Is(err, sluice.ErrLockHeld):
		fmt.Println("already processing")
		return
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("fence", lock.Fence)
	if err := lock.Release(ctx); err != nil {
		log.Fatal(err) // the lock expired (or was taken) before the work ended
	}
	// Output:
	// fence 1
}

// Publish to a channel and receive on a subscription.
func ExampleClient_Subscribe() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	sub, err := client.Subscribe(ctx, "camera_events")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := sub.Close(); err != nil {
			log.Print(err)
		}
	}()
	if _, err := client.Publish(ctx, "camera_events", map[string]any{"type": "motion_detected", "camera_id": 1}); err != nil {
		log.Fatal(err)
	}

	m, err := sub.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Channel, m.Data)
	// Output:
	// camera_events {"camera_id": 1, "type": "motion_detected"}
}

// A batch consumer: batches of up to 10, or what arrived before 30 s idle.
func ExampleQueue_NewBatchConsumer() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	client, err := sluice.Open(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.Queue("images_to_process")
	if _, err := q.AddBatch(ctx, []any{"a.jpg", "b.jpg", "c.jpg"}, nil); err != nil {
		log.Fatal(err)
	}

	consumer, err := q.NewBatchConsumer(func(ctx context.Context, batch []sluice.Item) error {
		fmt.Println("batch of", len(batch))
		stop() // a real consumer runs until shutdown
		return nil
	}, &sluice.BatchConsumerOptions{Size: 3, IdleTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	// Run returns nil after a graceful shutdown (here, stop above).
	if err := consumer.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// batch of 3
}
