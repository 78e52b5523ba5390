package sluice_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
)

// A bounded queue with the dlq overflow policy: when it is full, the oldest
// item moves to the overflow dead-letter queue instead of being lost.
func ExampleQueue_Add() {
	ctx := context.Background()
	client, err := sluice.Open(ctx, "") // embedded engine; "redis://..." for Redis
	if err != nil {
		panic(err)
	}
	defer client.Close()

	q := client.Queue("detections_queue", sluice.QueueMaxSize(2), sluice.QueuePolicy(sluice.PolicyDLQ))
	for cam := 1; cam <= 3; cam++ {
		res, err := q.Add(ctx, map[string]any{"camera_id": cam})
		if err != nil {
			panic(err)
		}
		fmt.Println(res.QueueLength, res.MovedToDLQCount, res.HadBackpressure)
	}
	n, _ := q.DLQ(sluice.DLQOverflow).Len(ctx)
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
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	q := client.Queue("critical", sluice.QueueMaxSize(1), sluice.QueuePolicy(sluice.PolicyReject))
	q.Add(ctx, "first")
	res, err := q.Add(ctx, "second")
	fmt.Println(res.Success, err)
	// Output:
	// false sluice: queue full: Queue 'critical' is full (1/1). Item rejected to prevent data loss.
}

// Blocking get with a typed decode; ok is false when the queue stayed empty.
func ExampleGetAs() {
	ctx := context.Background()
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	type Detection struct {
		CameraID int    `json:"camera_id"`
		Label    string `json:"label"`
	}
	q := client.Queue("detections_queue")
	q.Add(ctx, Detection{CameraID: 1, Label: "person"})

	d, ok, err := sluice.GetAs[Detection](ctx, q, 5*time.Second)
	fmt.Println(d, ok, err)
	_, ok, _ = q.Get(ctx, 0)
	fmt.Println(ok)
	// Output:
	// {1 person} true <nil>
	// false
}

// Acknowledged delivery: an item leaves the queue for good only when acked.
func ExampleQueue_Receive() {
	ctx := context.Background()
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	q := client.Queue("jobs")
	q.Add(ctx, "resize image 42")

	d, ok, _ := q.Receive(ctx, time.Second, sluice.ReceiveOptions{Lease: 30 * time.Second})
	fmt.Println(ok, d.Attempt, d.Item)
	if err := d.Ack(ctx); err != nil {
		panic(err)
	}
	p, _ := q.Pressure(ctx)
	fmt.Println(p.CurrentLength, p.InFlight)
	// Output:
	// true 1 resize image 42
	// 0 0
}

// The Python service's result-caching pattern, with one load for concurrent misses.
func ExampleCache_GetOrLoad() {
	ctx := context.Background()
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	load := func(ctx context.Context) ([]string, error) { return []string{"person", "car"}, nil }
	v, err := sluice.GetOrLoadAs(ctx, client.Cache(), "detections:camera:1:recent", time.Minute, load)
	fmt.Println(v, err)
	// Output:
	// [person car] <nil>
}

// A distributed lock with a fencing token.
func ExampleClient_Acquire() {
	ctx := context.Background()
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	lock, err := client.Acquire(ctx, "lock:camera:1", 5*time.Minute, sluice.LockOptions{Wait: time.Second})
	if err != nil {
		fmt.Println("already processing")
		return
	}
	defer lock.Release(ctx)
	fmt.Println("fence", lock.Fence)
	// Output:
	// fence 1
}

// Publish to a channel and receive on a subscription.
func ExampleClient_Subscribe() {
	ctx := context.Background()
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	sub, _ := client.Subscribe(ctx, "camera_events")
	defer sub.Close()
	client.Publish(ctx, "camera_events", map[string]any{"type": "motion_detected", "camera_id": 1})

	m, _ := sub.Next(ctx)
	fmt.Println(m.Channel, m.Data)
	// Output:
	// camera_events {"camera_id": 1, "type": "motion_detected"}
}

// A batch consumer: batches of up to 10, or what arrived before 30 s idle.
func ExampleQueue_NewBatchConsumer() {
	ctx, stop := context.WithCancel(context.Background())
	client, _ := sluice.Open(ctx, "")
	defer client.Close()

	q := client.Queue("images_to_process")
	q.AddBatch(ctx, []any{"a.jpg", "b.jpg", "c.jpg"})

	consumer, _ := q.NewBatchConsumer(func(ctx context.Context, batch []sluice.Item) error {
		fmt.Println("batch of", len(batch))
		stop() // a real consumer runs until shutdown
		return nil
	}, sluice.BatchConsumerOptions{Size: 3, IdleTimeout: 30 * time.Second})
	consumer.Run(ctx)
	// Output:
	// batch of 3
}
