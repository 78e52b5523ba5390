package bench

import (
	"context"
	"testing"
	"time"
)

func TestWorkerSuite(t *testing.T) {
	o := short("memory")
	o.Duration = 300 * time.Millisecond
	o.Goroutines = []int{2}
	rep, err := Worker(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, "memory: worker exec /bin/true", "memory: worker webhook",
		"memory: worker exec /bin/true, batches of 100", "memory: worker webhook, batches of 100")
}
