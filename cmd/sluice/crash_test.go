package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// crashWriters is how many HTTP clients add concurrently while the
// service is killed.
const crashWriters = 8

// TestServeCrashKeepsAcknowledgedAdds runs `sluice serve --data-dir` as a
// process of its own, exactly as the command runs (by default fsync
// everysec, then with --fsync always), has crashWriters clients POST items
// concurrently, SIGKILLs the service at a random moment, and checks, by
// opening the data directory with the library, that every item answered
// 200 is in the queue exactly once. Several kills per policy, each on the
// directory the previous one left.
func TestServeCrashKeepsAcknowledgedAdds(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the service")
	}
	for _, policy := range []string{"default", "always"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var args []string
			if policy == "always" {
				args = []string{"--fsync", "always"}
			}
			acked := make(map[string]bool)
			for round := range 3 {
				kill := 100 + rand.IntN(600)
				for _, item := range killServeUnderLoad(t, dir, args, round, kill) {
					acked[item] = true
				}
				held := heldItems(t, dir)
				for item, n := range held {
					if n > 1 {
						t.Fatalf("round %d: item %s is in the queue %d times", round, item, n)
					}
				}
				for item := range acked {
					if held[item] == 0 {
						t.Fatalf("round %d (killed after %d answers of 200): item %s was answered 200 and is lost", round, kill, item)
					}
				}
				t.Logf("round %d: killed after %d answers of 200; %d acknowledged so far, %d held", round, kill, len(acked), len(held))
			}
		})
	}
}

// killServeUnderLoad starts the service on dir, adds items from
// crashWriters clients until n were answered 200, SIGKILLs it, and returns
// the items answered 200.
func killServeUnderLoad(t *testing.T, dir string, args []string, round, n int) []string {
	t.Helper()
	argv := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json"}, args...)
	cmd := exec.Command(os.Args[0], argv...)
	// A whole environment of its own: the machine's SLUICE_* or REDIS_URL
	// must not change what the service opens.
	cmd.Env = []string{mainEnv + "=1", "QUEUE_MAX_SIZE=10000000", "QUEUE_OVERFLOW_POLICY=reject"}
	log := newSyncBuffer()
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			<-waited
		}
	}()
	m := startedAddr.FindStringSubmatch(log.waitFor(t, "sluice starting", 30*time.Second))
	if m == nil {
		t.Fatalf("no address in the start line:\n%s", log.String())
	}
	url := "http://" + m[1] + "/v1/queues/crash/items"

	transport := &http.Transport{MaxIdleConnsPerHost: crashWriters}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var (
		mu       sync.Mutex
		answered []string
		count    atomic.Int64
		dying    atomic.Bool
		reached  = make(chan struct{})
		once     sync.Once
		wg       sync.WaitGroup
	)
	for w := range crashWriters {
		wg.Go(func() {
			for i := 0; ; i++ {
				item := fmt.Sprintf("r%d-w%d-%d", round, w, i)
				resp, err := client.Post(url, "application/json", strings.NewReader(`{"id":"`+item+`"}`))
				if err != nil {
					if !dying.Load() {
						t.Errorf("POST %s before the kill: %v", item, err)
						once.Do(func() { close(reached) })
					}
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					if !dying.Load() {
						t.Errorf("POST %s before the kill: status %d", item, resp.StatusCode)
						once.Do(func() { close(reached) })
					}
					return
				}
				mu.Lock()
				answered = append(answered, item)
				mu.Unlock()
				if count.Add(1) == int64(n) {
					once.Do(func() { close(reached) })
				}
			}
		})
	}
	<-reached
	dying.Store(true)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	<-waited
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return answered
}

// heldItems opens dir with the library and counts each item the queue
// holds.
func heldItems(t *testing.T, dir string) map[string]int {
	t.Helper()
	ctx := context.Background()
	client, err := sluice.Open(ctx, "file://"+dir, &sluice.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open %s after the kill: %v", dir, err)
	}
	defer client.Close()
	q := client.Queue("crash")
	held := make(map[string]int)
	for start := int64(0); ; {
		items, err := q.Peek(ctx, start, start+sluice.MaxPeek-1)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			var v struct{ ID string }
			if err := it.Decode(&v); err != nil {
				t.Fatalf("an item does not decode: %v", err)
			}
			held[v.ID]++
		}
		if len(items) < sluice.MaxPeek {
			return held
		}
		start += int64(len(items))
	}
}
