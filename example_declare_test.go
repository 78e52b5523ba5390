package sluice_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/sluicehq/sluice"
)

// A declared queue keeps its bound and policy for every client: an add
// that names no bound is held to the declared one, a looser bound is
// refused, and Settings says where each value comes from.
func ExampleClient_DeclareQueue() {
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

	if err := client.DeclareQueue(ctx, "jobs", sluice.QueueSettings{MaxSize: 2, Policy: sluice.PolicyReject}); err != nil {
		log.Fatal(err)
	}
	q := client.Queue("jobs") // the client's default bound is 10000
	for i := 1; i <= 3; i++ {
		res, err := q.Add(ctx, i, nil)
		fmt.Println(res.Success, errors.Is(err, sluice.ErrQueueFull))
	}
	_, err = q.Add(ctx, 4, &sluice.AddOptions{MaxSize: 100})
	fmt.Println(errors.Is(err, sluice.ErrSettingsConflict))

	s, err := q.Settings(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Settings.MaxSize, s.Sources.MaxSize, s.Settings.Lease, s.Sources.Lease)
	// Output:
	// true false
	// true false
	// false true
	// true
	// 2 declared 30s default
}
