package sluice_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/sluicehq/sluice"
)

// Consume runs handlers with items leased ahead and acks sent in batches;
// a handler's error nacks its item. Cancelling ctx stops it cleanly.
func ExampleQueue_Consume() {
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

	q := client.Queue("detections")
	if _, err := q.AddBatch(ctx, []any{"cam-1 person", "cam-2 car", "cam-3 person"}, nil); err != nil {
		log.Fatal(err)
	}

	cctx, stop := context.WithCancel(ctx)
	people := make(chan string, 3)
	handled := 0
	err = q.Consume(cctx, func(_ context.Context, d *sluice.Delivery) error {
		if strings.HasSuffix(d.Item.String(), "person") {
			people <- d.Item.String()
		}
		handled++ // one handler (Concurrency 1): no lock needed
		if handled == 3 {
			stop() // returns once the acks are sent
		}
		return nil
	}, &sluice.ConsumeOptions{Concurrency: 1, Prefetch: 10})
	if err != nil {
		log.Fatal(err)
	}
	close(people)
	for p := range people {
		fmt.Println(p)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("acked:", s.Acked)
	// Output:
	// cam-1 person
	// cam-3 person
	// acked: 3
}
