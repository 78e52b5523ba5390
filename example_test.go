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
	client, err := sluice.Open(ctx, "") // embedded engine; "redis://..." for Redis
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.Queue("detections_queue", sluice.QueueMaxSize(2), sluice.QueuePolicy(sluice.PolicyDLQ))
	for cam := 1; cam <= 3; cam++ {
		res, err := q.Add(ctx, map[string]any{"camera_id": cam})
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

// The reject policy refuses the item and writes nothing.
func ExampleQueue_Add_reject() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.Queue("critical", sluice.QueueMaxSize(1), sluice.QueuePolicy(sluice.PolicyReject))
	if _, err := q.Add(ctx, "first"); err != nil {
		log.Fatal(err)
	}
	res, err := q.Add(ctx, "second")
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
	client, err := sluice.Open(ctx, "")
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
	if _, err := q.Add(ctx, Detection{CameraID: 1, Label: "person"}); err != nil {
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
	client, err := sluice.Open(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.Queue("jobs")
	if _, err := q.Add(ctx, "resize image 42"); err != nil {
		log.Fatal(err)
	}

	d, ok, err := q.Receive(ctx, time.Second, sluice.ReceiveOptions{Lease: 30 * time.Second})
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
	client, err := sluice.Open(ctx, "")
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
	client, err := sluice.Open(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	lock, err := client.Acquire(ctx, "lock:camera:1", 5*time.Minute, sluice.LockOptions{Wait: time.Second})
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
	client, err := sluice.Open(ctx, "")
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
	client, err := sluice.Open(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			log.Print(err)
		}
	}()

	q := client.Queue("images_to_process")
	if _, err := q.AddBatch(ctx, []any{"a.jpg", "b.jpg", "c.jpg"}); err != nil {
		log.Fatal(err)
	}

	consumer, err := q.NewBatchConsumer(func(ctx context.Context, batch []sluice.Item) error {
		fmt.Println("batch of", len(batch))
		stop() // a real consumer runs until shutdown
		return nil
	}, sluice.BatchConsumerOptions{Size: 3, IdleTimeout: 30 * time.Second})
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
