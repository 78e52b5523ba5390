package sluice_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sluicehq/sluice"
)

// The engine counts what happens to a queue, and lists what is in flight.
func ExampleQueue_Stats() {
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

	q := client.QueueWith("jobs", sluice.QueueSettings{MaxSize: 2, Policy: sluice.PolicyReject})
	if _, err := q.AddBatch(ctx, []any{"a", "b", "c"}, nil); err != nil { // c is rejected
		log.Fatal(err)
	}
	d, _, err := q.Receive(ctx, 0, &sluice.ReceiveOptions{Lease: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	page, err := q.Deliveries(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, info := range page.Deliveries {
		fmt.Println(info.ID == d.ID, info.Item, info.Attempt)
	}
	if err := d.Ack(ctx); err != nil {
		log.Fatal(err)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("added %d, rejected %d, delivered %d, acked %d, waiting %d\n", s.Added, s.Rejected, s.Delivered, s.Acked, s.Length)
	// Output:
	// true a 1
	// added 2, rejected 1, delivered 1, acked 1, waiting 1
}
