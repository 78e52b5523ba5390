package redis

// Tests that change a topology while clients run: a slot migration and the
// failover of a killed primary. They run on the throwaway sets of
// redistest.ClusterTopology and redistest.SentinelTopology, one test at a
// time per set, and start a killed node again before the next test.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/redistest"
)

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr string
	master   bool
	slots    [][2]int64
}

func clusterNodes(t *testing.T, c rueidis.Client) []clusterNode {
	t.Helper()
	text, err := c.Do(context.Background(), c.B().ClusterNodes().Build()).ToString()
	if err != nil {
		t.Fatalf("CLUSTER NODES: %v", err)
	}
	// Under RESP3 the reply is a verbatim string, which may keep its format tag.
	text = strings.TrimPrefix(text, "txt:")
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || strings.Contains(f[2], "fail") {
			continue
		}
		n := clusterNode{id: f[0], addr: strings.SplitN(f[1], "@", 2)[0], master: strings.Contains(f[2], "master")}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated, listed apart
			}
			lo, hi, _ := strings.Cut(r, "-")
			a, _ := strconv.ParseInt(lo, 10, 64)
			b := a
			if hi != "" {
				b, _ = strconv.ParseInt(hi, 10, 64)
			}
			n.slots = append(n.slots, [2]int64{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func ownerOf(nodes []clusterNode, slot int64) (clusterNode, bool) {
	for _, n := range nodes {
		for _, r := range n.slots {
			if n.master && slot >= r[0] && slot <= r[1] {
				return n, true
			}
		}
	}
	return clusterNode{}, false
}

func keySlot(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	slot, err := c.Do(context.Background(), c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	return slot
}

func nodeClient(t *testing.T, c rueidis.Client, addr string) rueidis.Client {
	t.Helper()
	n, ok := c.Nodes()[addr]
	if !ok {
		t.Fatalf("the client knows no node %s", addr)
	}
	return n
}

func run(t *testing.T, c rueidis.Client, args ...string) rueidis.RedisResult {
	t.Helper()
	res := c.Do(context.Background(), c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	if err := res.Error(); err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return res
}

// TestClusterPubSubAcrossNodes publishes with plain PUBLISH on every
// primary, as another client (a Python service) may: a subscriber of the
// engine gets each message, wherever it was published.
func TestClusterPubSubAcrossNodes(t *testing.T) {
	m := connectEnv(t, "SLUICE_TEST_CLUSTER_URL")
	e := m.engine(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"news"}, Patterns: []string{"ev.*"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var masters []string
	for _, n := range clusterNodes(t, m.conn.Client) {
		if n.master {
			masters = append(masters, n.addr)
		}
	}
	sort.Strings(masters)
	if len(masters) < 2 {
		t.Fatalf("%d primaries; the test needs several", len(masters))
	}
	for i, addr := range masters {
		node := nodeClient(t, m.conn.Client, addr)
		for _, ch := range []string{"news", "ev.x"} {
			payload := fmt.Sprintf("%s via %s", ch, addr)
			if err := node.Do(ctx, node.B().Publish().Channel(e.keys.Channel(ch)).Message(payload).Build()).Error(); err != nil {
				t.Fatalf("PUBLISH on %s: %v", addr, err)
			}
			select {
			case msg := <-sub.Messages():
				if msg.Channel != ch || msg.Payload != payload {
					t.Fatalf("message %+v; want %q on %q", msg, payload, ch)
				}
			case <-ctx.Done():
				t.Fatalf("no message published on primary %d (%s) arrived", i, addr)
			}
		}
	}
	// Through the engine the count covers the subscriber, whichever node
	// serves it.
	if n, err := e.Publish(ctx, "news", "counted"); err != nil || n != 1 {
		t.Fatalf("Publish = %d, %v; want 1 receiver", n, err)
	}
}

// ledger records what the callers of a load saw.
type ledger struct {
	mu       sync.Mutex
	accepted map[string]bool // add returned nil
	primary  map[string]bool // add returned a ReplicaAckError: stored on the primary only
	unsure   map[string]bool // add returned another error: stored or not
	acked    map[string]int
	errs     map[string]int // error text (shortened) -> count
	tries    int            // adds tried, whatever their outcome
}

func newLedger() *ledger {
	return &ledger{accepted: map[string]bool{}, primary: map[string]bool{}, unsure: map[string]bool{}, acked: map[string]int{}, errs: map[string]int{}}
}

// waitTries polls until n more adds were tried, whatever came of them.
func (l *ledger) waitTries(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	l.mu.Lock()
	want := l.tries + n
	l.mu.Unlock()
	for {
		l.mu.Lock()
		tries := l.tries
		l.mu.Unlock()
		if tries >= want {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("producers stalled: %d adds tried, want %d", tries, want)
		}
		time.Sleep(20 * time.Millisecond) // polling the ledger
	}
}

// waitProgress polls until n more adds were accepted and n more items
// acked (when acks is set) than when it was called: load is under way
// whatever the machine's speed.
func (l *ledger) waitProgress(t *testing.T, ctx context.Context, n int, acks bool) {
	t.Helper()
	count := func() (int, int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.accepted) + len(l.primary), len(l.acked)
	}
	add0, ack0 := count()
	for {
		add, ack := count()
		if add-add0 >= n && (!acks || ack-ack0 >= n) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("load stalled: %d adds and %d acks in a row, want %d", add-add0, ack-ack0, n)
		}
		time.Sleep(20 * time.Millisecond) // polling the ledger
	}
}

func (l *ledger) noteErr(op string, err error) {
	msg := err.Error()
	if len(msg) > 90 {
		msg = msg[:90]
	}
	l.mu.Lock()
	l.errs[op+": "+msg]++
	l.mu.Unlock()
}

func (l *ledger) report(t *testing.T) {
	keys := make([]string, 0, len(l.errs))
	for k := range l.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("caller saw %d x %s", l.errs[k], k)
	}
}

// produce adds unique items to queue until stop (or ctx ends), one per
// call. okAt gets the start and the end of each add that was applied.
func produce(ctx context.Context, e *Engine, l *ledger, queue, name string, stop <-chan struct{}, okAt func(start, end time.Time)) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		item := fmt.Sprintf("%s-%d", name, i)
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.QueueAdd(actx, engine.AddParams{Queue: queue, Items: []string{item}, Policy: engine.PolicyDLQ, MaxSize: 1 << 40})
		cancel()
		_, applied := ackError(err)
		l.mu.Lock()
		l.tries++
		switch {
		case err == nil:
			l.accepted[item] = true
		case applied:
			l.primary[item] = true
		default:
			l.unsure[item] = true
		}
		l.mu.Unlock()
		if (err == nil || applied) && okAt != nil {
			okAt(start, time.Now())
		}
		if err != nil {
			l.noteErr("add", err)
			if !applied {
				time.Sleep(20 * time.Millisecond) // back off while the topology settles
			}
		}
	}
}

// consume receives and acks until stop and then until the queue is drained
// (or ctx ends).
func consume(ctx context.Context, e *Engine, l *ledger, queue string, stop <-chan struct{}) {
	stopped := false
	for ctx.Err() == nil {
		if !stopped {
			select {
			case <-stop:
				stopped = true
			default:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ds, err := e.QueueReceive(rctx, engine.ReceiveParams{Queue: queue, Count: 20, Timeout: 100 * time.Millisecond, Lease: 10 * time.Second, MaxDeliveries: 10})
		cancel()
		if err != nil {
			l.noteErr("receive", err)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if len(ds) == 0 && stopped {
			n, err1 := e.QueueLen(ctx, queue)
			f, err2 := e.QueueInFlight(ctx, queue)
			if err1 == nil && err2 == nil && n == 0 && f == 0 {
				return
			}
			if ctx.Err() != nil {
				return
			}
		}
		for _, d := range ds {
			for {
				err := engine.Ack(ctx, e, queue, d.ID)
				if err == nil {
					l.mu.Lock()
					l.acked[d.Item]++
					l.mu.Unlock()
					break
				}
				l.noteErr("ack", err)
				if errors.Is(err, engine.ErrLeaseNotFound) || ctx.Err() != nil {
					break // redelivered after its lease; counted then
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// TestClusterReshardBusyQueue moves the slot of a queue between primaries,
// key by key with MIGRATE, while producers add and consumers receive and
// ack. Every add that succeeded must be acked exactly once, or be in the
// failed DLQ; callers may see errors (ASK, TRYAGAIN) but nothing accepted
// may vanish.
//
// It runs twice: with plain adds, and with MinReplicasAck 1, whose writes
// follow MOVED and ASK by hand (writeDurable).
func TestClusterReshardBusyQueue(t *testing.T) {
	t.Parallel()
	tp := redistest.ClusterTopology(t)
	m := connectURL(t, tp.URL)
	t.Run("plain", func(t *testing.T) { reshardBusyQueue(t, m, Options{}) })
	t.Run("durable", func(t *testing.T) {
		reshardBusyQueue(t, m, Options{MinReplicasAck: 1, ReplicasAckTimeout: 5 * time.Second})
	})
}

func reshardBusyQueue(t *testing.T, m multiNode, opts Options) {
	c := m.conn.Client
	e := m.engine(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const queue = "busy"
	k := e.keys.Queue(queue)
	slot := keySlot(t, c, k.List)
	nodes := clusterNodes(t, c)
	src, ok := ownerOf(nodes, slot)
	if !ok {
		t.Fatalf("no primary owns slot %d", slot)
	}
	var dst clusterNode
	for _, n := range nodes {
		if n.master && n.id != src.id {
			dst = n
			break
		}
	}
	l := newLedger()
	stop := make(chan struct{})
	var producers, consumers sync.WaitGroup
	// On a failure too, the load ends before the test does.
	defer func() {
		cancel()
		producers.Wait()
		consumers.Wait()
	}()
	for p := range 4 {
		producers.Add(1)
		go func() { defer producers.Done(); produce(ctx, e, l, queue, "p"+strconv.Itoa(p), stop, nil) }()
	}
	for range 2 {
		consumers.Add(1)
		go func() { defer consumers.Done(); consume(ctx, e, l, queue, stop) }()
	}

	l.waitProgress(t, ctx, 200, true) // load before the move
	srcC, dstC := nodeClient(t, c, src.addr), nodeClient(t, c, dst.addr)
	s := strconv.FormatInt(slot, 10)
	done := false
	t.Cleanup(func() {
		// A move cut short leaves the slot with its owner, so that the
		// next test finds the cluster whole.
		if !done {
			dstC.Do(context.Background(), dstC.B().Arbitrary("CLUSTER", "SETSLOT", s, "STABLE").Build())
			srcC.Do(context.Background(), srcC.B().Arbitrary("CLUSTER", "SETSLOT", s, "STABLE").Build())
		}
	})
	run(t, dstC, "CLUSTER", "SETSLOT", s, "IMPORTING", src.id)
	run(t, srcC, "CLUSTER", "SETSLOT", s, "MIGRATING", dst.id)
	host, port, _ := net.SplitHostPort(dst.addr)
	moved := 0
	for {
		keys, err := srcC.Do(ctx, srcC.B().ClusterGetkeysinslot().Slot(slot).Count(10).Build()).AsStrSlice()
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT: %v", err)
		}
		if len(keys) == 0 {
			break
		}
		// One key per MIGRATE, with some load in between, so that the
		// queue's keys sit on both nodes for a while under load.
		for _, key := range keys {
			run(t, srcC, "MIGRATE", host, port, key, "0", "5000")
			moved++
			l.waitTries(t, ctx, 20)
		}
	}
	// The new owner first, then the old one: the order the Redis manual
	// gives, so that no node sends a client back and forth.
	run(t, dstC, "CLUSTER", "SETSLOT", s, "NODE", dst.id)
	run(t, srcC, "CLUSTER", "SETSLOT", s, "NODE", dst.id)
	for _, n := range clusterNodes(t, c) {
		if n.master && n.id != src.id && n.id != dst.id {
			run(t, nodeClient(t, c, n.addr), "CLUSTER", "SETSLOT", s, "NODE", dst.id)
		}
	}
	done = true
	t.Logf("slot %d (%s) moved from %s to %s: %d keys", slot, k.List, src.addr, dst.addr, moved)
	l.waitProgress(t, ctx, 200, true) // load after the move
	close(stop)
	producers.Wait()
	consumers.Wait()

	failed, err := e.DLQRange(ctx, queue, engine.DLQFailed, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	l.report(t)
	checkLedger(t, l, len(failed))
}

// checkLedger: each accepted item acked once (or dead-lettered), each acked
// item one that some caller added.
func checkLedger(t *testing.T, l *ledger, deadLettered int) {
	t.Helper()
	missing, dup, phantom, unsureStored := 0, 0, 0, 0
	for item := range l.accepted {
		switch n := l.acked[item]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("accepted item %q was never acked", item)
			}
		case n > 1:
			dup++
		}
	}
	for item, n := range l.acked {
		if !l.accepted[item] && !l.primary[item] && !l.unsure[item] {
			phantom++
		}
		if l.unsure[item] {
			unsureStored++
		}
		if n > 1 && !l.accepted[item] {
			dup++
		}
	}
	t.Logf("%d adds accepted, %d failed (of which %d were stored all the same), %d acked, %d in the failed DLQ, %d acked twice",
		len(l.accepted), len(l.unsure), unsureStored, len(l.acked), deadLettered, dup)
	if missing > deadLettered {
		t.Errorf("%d accepted items missing (%d dead-lettered)", missing, deadLettered)
	}
	if phantom > 0 {
		t.Errorf("%d acked items were never added", phantom)
	}
	if dup > 0 {
		t.Errorf("%d items acked more than once", dup)
	}
}

// failoverLoad adds with MinReplicasAck 1 while kill runs, and then until
// adds succeed again. It reports the time from the last successful add
// before the outage to the first one after, and checks that every add that
// was applied is in the queue at the end.
func failoverLoad(t *testing.T, m multiNode, kill func(e *Engine)) {
	e := m.engine(t, Options{MinReplicasAck: 1, ReplicasAckTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const queue = "failover"
	l := newLedger()
	var mu sync.Mutex
	var oks []time.Time     // when applied adds returned
	var lastStart time.Time // when the latest applied add began
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// On a failure too, the load ends before the test does.
	defer func() {
		cancel()
		wg.Wait()
	}()
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			produce(ctx, e, l, queue, "p"+strconv.Itoa(p), stop, func(start, end time.Time) {
				mu.Lock()
				oks = append(oks, end)
				if start.After(lastStart) {
					lastStart = start
				}
				mu.Unlock()
			})
		}()
	}
	// A subscriber and a blocking consumer, to see both carry on on the
	// new primary.
	sub, err := e.Subscribe(ctx, engine.SubscribeParams{Channels: []string{"ping"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	received := make(chan string, 16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			select {
			case <-stop:
				return
			default:
			}
			ds, err := e.QueueReceive(ctx, engine.ReceiveParams{Queue: "work", Count: 1, Timeout: time.Second, Lease: time.Minute, MaxDeliveries: 3})
			if err != nil {
				l.noteErr("blocking receive", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for _, d := range ds {
				received <- d.Item
				if err := engine.Ack(ctx, e, "work", d.ID); err != nil {
					l.noteErr("ack", err)
				}
			}
		}
	}()
	l.waitProgress(t, ctx, 200, false) // load before the kill
	killed := time.Now()
	kill(e)
	// Wait until writes land again: an add that began after the kill and
	// was applied was served by the new primary.
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := e.QueueLen(ctx, queue)
		mu.Lock()
		after := lastStart.After(killed)
		mu.Unlock()
		if err == nil && after {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no add succeeded within 90s of the kill")
		}
		time.Sleep(50 * time.Millisecond) // polling for the failover's end
	}
	if _, err := e.QueueAdd(ctx, engine.AddParams{Queue: "work", Items: []string{"after"}, MaxSize: 0}); err != nil {
		if _, applied := ackError(err); !applied {
			t.Fatalf("add after failover: %v", err)
		}
	}
	select {
	case item := <-received:
		t.Logf("blocking consumer received %q after the failover", item)
	case <-time.After(30 * time.Second):
		t.Errorf("the blocking consumer did not receive an item added after the failover")
	}
	gotMessage := false
	for i := 0; i < 300 && !gotMessage; i++ {
		if _, err := e.Publish(ctx, "ping", "after"); err != nil {
			l.noteErr("publish", err)
		}
		select {
		case msg := <-sub.Messages():
			gotMessage = msg.Kind != engine.MessageGap && msg.Payload == "after"
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !gotMessage {
		t.Errorf("the subscription got no message published after the failover")
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	sort.Slice(oks, func(i, j int) bool { return oks[i].Before(oks[j]) })
	var gap time.Duration
	var lastBefore, firstAfter time.Time
	for i := 1; i < len(oks); i++ {
		if d := oks[i].Sub(oks[i-1]); d > gap {
			gap, lastBefore, firstAfter = d, oks[i-1], oks[i]
		}
	}
	mu.Unlock()
	items, err := e.QueueRange(ctx, queue, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]bool, len(items))
	for _, it := range items {
		stored[it] = true
	}
	lost := 0
	for item := range l.accepted {
		if !stored[item] {
			lost++
			if lost <= 5 {
				t.Errorf("add of %q succeeded but the item is gone after failover", item)
			}
		}
	}
	unsureStored, primaryLost := 0, 0
	for item := range l.unsure {
		if stored[item] {
			unsureStored++
		}
	}
	for item := range l.primary {
		if !stored[item] {
			primaryLost++
		}
	}
	l.report(t)
	t.Logf("failover: no add applied for %v (last %v, first again %v after the kill); %d adds confirmed by a replica, %d lost; %d applied on a primary without a replica to confirm them (%d of those lost); %d failed (%d of those stored all the same)",
		gap.Round(time.Millisecond), lastBefore.Sub(killed).Round(time.Millisecond), firstAfter.Sub(killed).Round(time.Millisecond),
		len(l.accepted), lost, len(l.primary), primaryLost, len(l.unsure), unsureStored)
}

// TestClusterFailoverUnderLoad kills the primary serving a busy queue.
func TestClusterFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	tp := redistest.ClusterTopology(t)
	m := connectURL(t, tp.URL)
	failoverLoad(t, m, func(e *Engine) {
		c := m.conn.Client
		owner, ok := ownerOf(clusterNodes(t, c), keySlot(t, c, e.keys.Queue("failover").List))
		if !ok {
			t.Fatal("no owner for the queue's slot")
		}
		t.Logf("killing primary %s", owner.addr)
		tp.Kill(t, owner.addr)
	})
}

// TestSentinelFailoverUnderLoad kills the primary Sentinel names.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	tp := redistest.SentinelTopology(t)
	m := connectURL(t, tp.URL)
	failoverLoad(t, m, func(*Engine) {
		primary := tp.Primary(t)
		t.Logf("killing primary %s", primary)
		tp.Kill(t, primary)
	})
}
