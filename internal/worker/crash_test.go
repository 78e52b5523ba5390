package worker

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/crashtest"
)

// workerChildEnv makes the test binary a worker that a test kills: its
// value is the data directory, then the batch size.
const workerChildEnv = "SLUICE_TEST_WORKER_CHILD"

// TestKilledWorkerLosesNothing kills -9 a worker process in the middle of
// its work (items leased ahead, runs in progress, acks waiting to be
// sent) on the durable embedded engine: every item is then either one the
// dead worker ran or one a new consumer receives once the leases run out.
func TestKilledWorkerLosesNothing(t *testing.T) {
	if v := os.Getenv(workerChildEnv); v != "" {
		workerChild(v)
		return
	}
	for _, batch := range []int{0, 20} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			crashtest.KilledLosesNothing(t, "TestKilledWorkerLosesNothing", func(dir string) string {
				return fmt.Sprintf("%s=%s,%d", workerChildEnv, dir, batch)
			})
		})
	}
}

// workerChild runs a worker on the directory's queue until it is killed,
// printing each item's number before its run returns.
func workerChild(v string) {
	dir, b, _ := strings.Cut(v, ",")
	batch, _ := strconv.Atoi(b)
	c, err := sluice.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	w, err := New(Config{Queue: "work", Source: FromQueue(c.Queue("work")), Lease: 300 * time.Millisecond,
		Concurrency: 4, Prefetch: 4, Batch: batch, Idle: 10 * time.Millisecond, Poll: 100 * time.Millisecond,
		Runner: runnerFunc(func(_ context.Context, job Job) error {
			var b strings.Builder
			for _, d := range job.Deliveries {
				b.Write(d.Item)
				b.WriteString("\n")
			}
			fmt.Print(b.String())
			return nil
		})})
	if err == nil {
		err = w.Run(context.Background())
	}
	fmt.Fprintln(os.Stderr, "worker returned:", err)
	os.Exit(4)
}
