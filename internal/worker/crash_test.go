package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
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
			const total = 2000
			dir := t.TempDir()
			c, err := sluice.Open(context.Background(), "file://"+dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			items := make([]any, total)
			for i := range items {
				items[i] = map[string]int{"n": i}
			}
			if _, err := c.Queue("work").AddBatch(context.Background(), items, &sluice.AddOptions{MaxSize: sluice.Unbounded}); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}

			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWorkerLosesNothing$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", workerChildEnv, dir, batch))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ran := make(map[int]bool, total)
			sc := bufio.NewScanner(out)
			for len(ran) < total/3 && sc.Scan() { // the length first: a line scanned is recorded
				if n, err := strconv.Atoi(sc.Text()); err == nil {
					ran[n] = true
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() { // what it printed before it died
				if n, err := strconv.Atoi(sc.Text()); err == nil {
					ran[n] = true
				}
			}
			_ = cmd.Wait()
			if len(ran) < total/3 {
				t.Fatalf("the worker ran %d items before it was killed; want at least %d", len(ran), total/3)
			}

			c, err = sluice.Open(context.Background(), "file://"+dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			q := c.Queue("work")
			seen := make(map[int]bool, total)
			for {
				// The dead worker's leases (300 ms) run out while this waits.
				ds, err := q.ReceiveBatch(context.Background(), 500, 2*time.Second, &sluice.ReceiveOptions{Lease: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				if len(ds) == 0 {
					break
				}
				for _, d := range ds {
					var v struct{ N int }
					if err := d.Item.Decode(&v); err != nil {
						t.Fatal(err)
					}
					seen[v.N] = true
				}
			}
			for i := range total {
				if !ran[i] && !seen[i] {
					t.Fatalf("item %d was neither run by the killed worker nor delivered again: lost (ran %d, redelivered or left %d)", i, len(ran), len(seen))
				}
			}
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
				var it struct{ N int }
				if err := json.Unmarshal(d.Item, &it); err != nil {
					return err
				}
				b.WriteString(strconv.Itoa(it.N) + "\n")
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
