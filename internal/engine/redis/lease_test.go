package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
)

func (f fixture) receive(t *testing.T, queue string, count, maxDeliveries int) []engine.Delivery {
	t.Helper()
	ds, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{
		Queue: queue, Count: count, Lease: time.Minute, MaxDeliveries: maxDeliveries,
	})
	if err != nil {
		t.Fatalf("QueueReceive: %v", err)
	}
	return ds
}

// expireLeases makes every lease (single or batch) and delayed retry of queue due now, by
// moving its deadline into the past: tests need no clock to pass.
func (f fixture) expireLeases(t *testing.T, queue string) {
	t.Helper()
	k := f.e.keys.Queue(queue)
	for _, key := range []string{k.Leases, k.Batches} {
		members, err := f.raw.Do(f.ctx, f.raw.B().Zrange().Key(key).Min("0").Max("-1").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if err := f.raw.Do(f.ctx, f.raw.B().Zadd().Key(key).Xx().ScoreMember().ScoreMember(1, m).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func (f fixture) inFlight(t *testing.T, queue string) int64 {
	t.Helper()
	n, err := f.e.QueueInFlight(f.ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReceiveAck(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a", "b", "c")
	ds := f.receive(t, "q", 2, 3)
	if len(ds) != 2 || ds[0].Item != "a" || ds[1].Item != "b" || ds[0].Attempt != 1 || ds[0].ID == ds[1].ID {
		t.Fatalf("deliveries %+v", ds)
	}
	if n, _ := f.e.QueueLen(f.ctx, "q"); n != 1 {
		t.Fatalf("queue len %d, want 1", n)
	}
	if n := f.inFlight(t, "q"); n != 2 {
		t.Fatalf("in flight %d, want 2", n)
	}
	if err := engine.Ack(f.ctx, f.e, "q", ds[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := engine.Ack(f.ctx, f.e, "q", ds[0].ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("second ack: %v", err)
	}
	for _, bad := range []string{"", "nope", "1", "1:r", "99.1"} {
		if err := engine.Ack(f.ctx, f.e, "q", bad); !errors.Is(err, engine.ErrLeaseNotFound) {
			t.Fatalf("ack %q: %v", bad, err)
		}
	}
	if n := f.inFlight(t, "q"); n != 1 {
		t.Fatalf("in flight %d, want 1", n)
	}
	if ds := f.receive(t, "q", 5, 3); len(ds) != 1 || ds[0].Item != "c" {
		t.Fatalf("second receive %+v", ds)
	}
	if ds := f.receive(t, "q", 5, 3); len(ds) != 0 {
		t.Fatalf("receive of an empty queue %+v", ds)
	}
}

func TestExpiredLeaseIsRedeliveredFirst(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a", "b")
	first := f.receive(t, "q", 1, 3)[0]
	f.expireLeases(t, "q")
	ds := f.receive(t, "q", 2, 3)
	if len(ds) != 2 || ds[0].Item != "a" || ds[0].Attempt != 2 || ds[1].Item != "b" || ds[1].Attempt != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	if ds[0].ID == first.ID {
		t.Fatal("redelivery kept the old delivery id")
	}
	// The first consumer is stale: it can no longer settle the item.
	if err := engine.Ack(f.ctx, f.e, "q", first.ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("stale ack: %v", err)
	}
	if err := f.e.QueueExtend(f.ctx, "q", first.ID, time.Minute); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("stale extend: %v", err)
	}
	if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: first.ID, MaxDeliveries: 3}); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("stale nack: %v", err)
	}
	if err := engine.Ack(f.ctx, f.e, "q", ds[0].ID); err != nil {
		t.Fatal(err)
	}
}

// failedEntry parses a failed-DLQ entry and checks that it is byte for
// byte what engine.FailedEnvelope renders from its fields and the item as
// it was stored (the "data" field alone loses invalid UTF-8).
func failedEntry(t *testing.T, raw, stored string) engine.FailedEntry {
	t.Helper()
	var doc struct {
		Error         string `json:"error"`
		AttemptCount  int    `json:"attempt_count"`
		FirstFailedAt string `json:"first_failed_at"`
		LastFailedAt  string `json:"last_failed_at"`
		QueueName     string `json:"queue_name"`
		Data          string `json:"data"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("failed DLQ entry %q: %v", raw, err)
	}
	e := engine.FailedEntry{
		Queue: doc.QueueName, Stored: stored, Error: doc.Error, AttemptCount: doc.AttemptCount,
		FirstFailedAt: doc.FirstFailedAt, LastFailedAt: doc.LastFailedAt,
	}
	if doc.Data != strings.ToValidUTF8(stored, "\uFFFD") {
		t.Fatalf("data %q, want %q", doc.Data, stored)
	}
	if want := engine.FailedEnvelope(e); raw != want {
		t.Fatalf("failed DLQ entry:\n got  %q\n want %q", raw, want)
	}
	for _, ts := range []string{e.FirstFailedAt, e.LastFailedAt} {
		if _, err := time.Parse("2006-01-02T15:04:05.999999-07:00", ts); err != nil || !strings.HasSuffix(ts, "+00:00") {
			t.Fatalf("timestamp %q: %v", ts, err)
		}
	}
	return e
}

func TestExpiredLeaseDeadLettersAtMaxDeliveries(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, `{"id": 7, "name": "caf\u00e9"}`)
	f.receive(t, "q", 1, 2)
	f.expireLeases(t, "q")
	if ds := f.receive(t, "q", 1, 2); len(ds) != 1 || ds[0].Attempt != 2 {
		t.Fatalf("redelivery %+v", ds)
	}
	f.expireLeases(t, "q")
	if ds := f.receive(t, "q", 1, 2); len(ds) != 0 {
		t.Fatalf("delivered past max deliveries: %+v", ds)
	}
	entries := f.dlq(t, "q", engine.DLQFailed)
	if len(entries) != 1 {
		t.Fatalf("failed DLQ holds %d entries", len(entries))
	}
	e := failedEntry(t, entries[0], `{"id": 7, "name": "caf\u00e9"}`)
	if e.Error != "lease expired" || e.AttemptCount != 2 || e.Queue != "q" || e.Stored != `{"id": 7, "name": "caf\u00e9"}` {
		t.Fatalf("entry %+v", e)
	}
	if !strings.HasPrefix(entries[0], `{"original_job": {"id": 7, `) {
		t.Fatalf("original_job is not the JSON item itself: %q", entries[0])
	}
	if n := f.inFlight(t, "q"); n != 0 {
		t.Fatalf("in flight %d after dead-lettering", n)
	}
}

func TestNack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "job \u4e2d \U0001F600")
	d := f.receive(t, "q", 1, 2)[0]
	res, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: d.ID, Delay: time.Hour, Error: "first", MaxDeliveries: 2})
	if err != nil || res.DeadLettered {
		t.Fatalf("nack %+v %v", res, err)
	}
	if err := engine.Ack(f.ctx, f.e, "q", d.ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("ack after nack: %v", err)
	}
	if ds := f.receive(t, "q", 1, 2); len(ds) != 0 {
		t.Fatalf("delivered before the nack delay: %+v", ds)
	}
	if n := f.inFlight(t, "q"); n != 1 {
		t.Fatalf("in flight %d, want 1 waiting for redelivery", n)
	}
	f.expireLeases(t, "q")
	ds := f.receive(t, "q", 1, 2)
	if len(ds) != 1 || ds[0].Attempt != 2 || ds[0].Item != d.Item {
		t.Fatalf("redelivery %+v", ds)
	}
	res, err = f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, Error: "boom \"quoted\"\n", MaxDeliveries: 2})
	if err != nil || !res.DeadLettered {
		t.Fatalf("final nack %+v %v", res, err)
	}
	entries := f.dlq(t, "q", engine.DLQFailed)
	if len(entries) != 1 {
		t.Fatalf("failed DLQ holds %d entries", len(entries))
	}
	e := failedEntry(t, entries[0], d.Item)
	if e.Error != "boom \"quoted\"\n" || e.AttemptCount != 2 || e.Stored != d.Item {
		t.Fatalf("entry %+v", e)
	}
}

func TestNackWithoutDelayRedeliversAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a", "b")
	d := f.receive(t, "q", 1, 5)[0]
	if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: d.ID, MaxDeliveries: 5}); err != nil {
		t.Fatal(err)
	}
	ds := f.receive(t, "q", 1, 5)
	if len(ds) != 1 || ds[0].Item != "a" || ds[0].Attempt != 2 {
		t.Fatalf("nacked item not first: %+v", ds)
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a")
	d := f.receive(t, "q", 1, 3)[0]
	if err := f.e.QueueExtend(f.ctx, "q", d.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	score, err := f.raw.Do(f.ctx, f.raw.B().Zscore().Key(f.e.keys.Queue("q").Leases).Member(d.ID).Build()).AsFloat64()
	if err != nil {
		t.Fatal(err)
	}
	now, err := f.raw.Do(f.ctx, f.raw.B().Time().Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	var sec int64
	if _, err := fmt.Sscan(now[0], &sec); err != nil {
		t.Fatal(err)
	}
	if left := time.Duration(int64(score)-sec*1000) * time.Millisecond; left <= time.Minute {
		t.Fatalf("extended deadline is %s away, want about an hour", left)
	}
	f.expireLeases(t, "q")
	if err := f.e.QueueExtend(f.ctx, "q", d.ID, time.Hour); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("extend of an expired lease: %v", err)
	}
	// Expired but not yet redelivered: the holder may still ack it.
	if err := engine.Ack(f.ctx, f.e, "q", d.ID); err != nil {
		t.Fatalf("ack of an expired, not redelivered lease: %v", err)
	}
}

func TestReclaim(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a", "b", "c")
	ds := f.receive(t, "q", 2, 3)
	if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: ds[1].ID, Delay: time.Hour, MaxDeliveries: 3}); err != nil {
		t.Fatal(err)
	}
	f.expireLeases(t, "q")
	n, err := f.e.QueueReclaim(f.ctx, "q", 1)
	if err != nil || n != 2 {
		t.Fatalf("reclaim at max 1: %d %v", n, err)
	}
	if got := len(f.dlq(t, "q", engine.DLQFailed)); got != 2 {
		t.Fatalf("failed DLQ holds %d", got)
	}
	c := f.receive(t, "q", 1, 3)[0]
	f.expireLeases(t, "q")
	if n, err := f.e.QueueReclaim(f.ctx, "q", 3); err != nil || n != 0 {
		t.Fatalf("reclaim below max: %d %v", n, err)
	}
	if ds := f.receive(t, "q", 1, 3); len(ds) != 1 || ds[0].Item != c.Item || ds[0].Attempt != 2 {
		t.Fatalf("after reclaim %+v", ds)
	}
}

// TestFailedEnvelopeJSONDetection dead-letters items that are or almost are
// JSON containers: the Lua validator must agree with Go's json.Valid on
// each, which the byte comparison in failedEntry checks.
func TestFailedEnvelopeJSONDetection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	items := []string{
		`{"a": [1, 2.5e3, -0, true, false, null, "x\u00e9\n"], "b": {}}`,
		`[]`, `[ ]`, `{}`, "{\"a\":1}  \n", `[1,2]`, `[-1.5E+3]`,
		`[0x10]`, `[1,]`, `{"a" 1}`, `[nan]`, `[Infinity]`, `[01]`, `{"a":"\q"}`, `[1] x`,
		`[1.]`, `[-]`, `[1e]`, "[\"tab\tinside\"]", `[`, `{"a":}`, `{,}`, `[1 2]`, `{"a":1,}`,
		`["\ud800"]`, `["\u12G4"]`, "[\"caf\xc3\xa9\"]", "[\"\xff\"]", `{"a":{"b":[{"c":null}]}}`,
		strings.Repeat("[", 300) + strings.Repeat("]", 300),
		strings.Repeat("[", 300) + strings.Repeat("]", 299),
		`[true false]`, `[tru]`, `"just a string"`, `42`, `null`,
	}
	f.add(t, "q", engine.PolicyDLQ, 0, items...)
	for range items {
		d := f.receive(t, "q", 1, 1)[0]
		if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: d.ID, Error: "x", MaxDeliveries: 1}); err != nil {
			t.Fatal(err)
		}
	}
	entries := f.dlq(t, "q", engine.DLQFailed)
	if len(entries) != len(items) {
		t.Fatalf("failed DLQ holds %d entries", len(entries))
	}
	for i, raw := range entries {
		failedEntry(t, raw, items[i])
	}
}

func TestBlockingReceiveWakesOnAdd(t *testing.T) {
	t.Parallel()
	f := setup(t)
	got := make(chan []engine.Delivery, 1)
	go func() {
		ds, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: 2, Timeout: 20 * time.Second, Lease: time.Minute, MaxDeliveries: 3})
		if err != nil {
			ds = []engine.Delivery{{Item: err.Error()}}
		}
		got <- ds
	}()
	f.waitBlocked(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a")
	ds := <-got
	if len(ds) != 1 || ds[0].Item != "a" || ds[0].Attempt != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	if n, _ := f.e.QueueLen(f.ctx, "q"); n != 0 {
		t.Fatalf("queue len %d", n)
	}
	if err := engine.Ack(f.ctx, f.e, "q", ds[0].ID); err != nil {
		t.Fatal(err)
	}
}

func TestBlockingReceiveCancel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := f.e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: time.Hour, Lease: time.Minute, MaxDeliveries: 3})
		done <- err
	}()
	f.waitBlocked(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled receive returned %v", err)
	}
}

// TestHandoffIsLeasedFirst simulates a receiver that moved an item to the
// handoff list and died before leasing it.
func TestHandoffIsLeasedFirst(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a", "b")
	k := f.e.keys.Queue("q")
	if err := f.raw.Do(f.ctx, f.raw.B().Lmove().Source(k.List).Destination(k.Handoff).Left().Right().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.e.QueueLen(f.ctx, "q"); n != 1 {
		t.Fatalf("queue len %d counts the handoff", n)
	}
	if n := f.inFlight(t, "q"); n != 1 {
		t.Fatalf("in flight %d, want the handoff item", n)
	}
	ds := f.receive(t, "q", 2, 3)
	if len(ds) != 2 || ds[0].Item != "a" || ds[1].Item != "b" {
		t.Fatalf("deliveries %+v", ds)
	}
}

// TestBlockingReceiveSeesExpiringLease: a receiver blocked on an empty
// queue must pick up a lease that expires while it waits.
func TestBlockingReceiveSeesExpiringLease(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a")
	first, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: 1, Lease: 50 * time.Millisecond, MaxDeliveries: 3})
	if err != nil || len(first) != 1 {
		t.Fatalf("%+v %v", first, err)
	}
	ds, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: 20 * time.Second, Lease: time.Minute, MaxDeliveries: 3})
	if err != nil || len(ds) != 1 || ds[0].Item != "a" || ds[0].Attempt != 2 {
		t.Fatalf("%+v %v", ds, err)
	}
}

func TestReceiveRejectsBadParams(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, p := range []engine.ReceiveParams{
		{Queue: "q", Count: 0, Lease: time.Second, MaxDeliveries: 1},
		{Queue: "q", Count: 1, Lease: 0, MaxDeliveries: 1},
		{Queue: "q", Count: 1, Lease: time.Second, MaxDeliveries: 0},
	} {
		if _, err := f.e.QueueReceive(f.ctx, p); err == nil {
			t.Fatalf("%+v accepted", p)
		}
	}
	if n := f.inFlight(t, "q"); n != 0 {
		t.Fatal(n)
	}
	if !slices.Equal(f.rangeAll(t, "q"), nil) {
		t.Fatal("queue not empty")
	}
}

func TestBlockingReceiveClose(t *testing.T) {
	t.Parallel()
	f := setup(t)
	done := make(chan error, 1)
	go func() {
		_, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: 1, Timeout: time.Hour, Lease: time.Minute, MaxDeliveries: 3})
		done <- err
	}()
	f.waitBlocked(t)
	f.e.Close()
	if err := <-done; !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("receive after Close returned %v", err)
	}
}

// TestConcurrentReceiversGetEachItemOnce runs blocking receivers against a
// producer: every item is delivered and acked exactly once.
func TestConcurrentReceiversGetEachItemOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const receivers, items = 8, 400
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	got := make(chan string, items)
	errs := make(chan error, receivers)
	for range receivers {
		go func() {
			for {
				ds, err := f.e.QueueReceive(ctx, engine.ReceiveParams{Queue: "q", Count: 3, Timeout: 10 * time.Second, Lease: time.Minute, MaxDeliveries: 3})
				if err != nil {
					errs <- err
					return
				}
				for _, d := range ds {
					if err := engine.Ack(f.ctx, f.e, "q", d.ID); err != nil {
						errs <- err
						return
					}
					got <- d.Item
				}
			}
		}()
	}
	for i := range items {
		f.add(t, "q", engine.PolicyDLQ, 0, fmt.Sprint(i))
	}
	seen := map[string]bool{}
	for range items {
		select {
		case s := <-got:
			if seen[s] {
				t.Fatalf("item %s delivered twice", s)
			}
			seen[s] = true
		case err := <-errs:
			t.Fatal(err)
		}
	}
	cancel()
	for range receivers {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("receiver ended with %v", err)
		}
	}
	if n := f.inFlight(t, "q"); n != 0 {
		t.Fatalf("in flight %d after every ack", n)
	}
}

func TestNackRelease(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.add(t, "q", engine.PolicyDLQ, 0, "a")
	d := f.receive(t, "q", 1, 1)[0]
	res, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: d.ID, MaxDeliveries: 1, Release: true})
	if err != nil || res.DeadLettered {
		t.Fatalf("release %+v %v", res, err)
	}
	again := f.receive(t, "q", 1, 1)
	if len(again) != 1 || again[0].Attempt != 1 || again[0].Item != "a" || again[0].ID == d.ID {
		t.Fatalf("after release %+v (first delivery %+v)", again, d)
	}
	if err := engine.Ack(f.ctx, f.e, "q", d.ID); !errors.Is(err, engine.ErrLeaseNotFound) {
		t.Fatalf("ack of the released delivery: %v", err)
	}
	// A counted failure now uses the one delivery and dead-letters.
	res, err = f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: again[0].ID, Error: "e", MaxDeliveries: 1})
	if err != nil || !res.DeadLettered {
		t.Fatalf("nack %+v %v", res, err)
	}
	if e := failedEntry(t, f.dlq(t, "q", engine.DLQFailed)[0], "a"); e.AttemptCount != 1 || e.Error != "e" {
		t.Fatalf("entry %+v", e)
	}
}

// TestBatchLeaseState checks the state of leased batches (scripts/batch.lua)
// on the server: a receive of more than one batch's worth of items, every
// item acked, nacked or released in one mixed call, leaves no batch entry
// and no batch field behind, and each id settles only its own item.
func TestBatchLeaseState(t *testing.T) {
	t.Parallel()
	f := setup(t)
	k := f.e.keys.Queue("q")
	items := make([]string, 2500)
	for i := range items {
		items[i] = fmt.Sprintf(`{"i": %d}`, i)
	}
	f.add(t, "q", engine.PolicyReject, 0, items...)
	ds, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: len(items), Lease: time.Minute, MaxDeliveries: 3})
	if err != nil || len(ds) != len(items) {
		t.Fatalf("QueueReceive = %d deliveries, %v", len(ds), err)
	}
	seen := map[string]bool{}
	for i, d := range ds {
		if d.Item != items[i] || d.Attempt != 1 || seen[d.ID] {
			t.Fatalf("delivery %d = %+v", i, d)
		}
		seen[d.ID] = true
	}
	if n, err := f.raw.Do(f.ctx, f.raw.B().Zcard().Key(k.Batches).Build()).AsInt64(); err != nil || n != 3 {
		t.Fatalf("batches zset holds %d, %v; want 3 (1000, 1000, 500)", n, err)
	}
	if n := f.inFlight(t, "q"); n != int64(len(items)) {
		t.Fatalf("in flight %d", n)
	}
	// Release the first item, nack the second, ack the rest in one call
	// with some ids twice and the released one again.
	if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: ds[0].ID, Release: true, MaxDeliveries: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.QueueNack(f.ctx, engine.NackParams{Queue: "q", ID: ds[1].ID, Delay: time.Hour, MaxDeliveries: 3}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	ids = append(ids, ds[5].ID, ds[1999].ID)
	acked, err := f.e.QueueAckBatch(f.ctx, "q", ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range acked {
		if want := i >= 2 && i < len(ds); ok != want {
			t.Fatalf("ack %d (%s) = %v, want %v", i, ids[i], ok, want)
		}
	}
	if n, err := f.raw.Do(f.ctx, f.raw.B().Zcard().Key(k.Batches).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("batches zset holds %d, %v after every item was settled", n, err)
	}
	fields, err := f.raw.Do(f.ctx, f.raw.B().Hkeys().Key(k.Jobs).Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	// Only the two items that became single deliveries keep a record.
	if len(fields) != 2 || strings.HasPrefix(fields[0], "b") || strings.HasPrefix(fields[1], "b") {
		t.Fatalf("jobs hash fields %v, want the two single records", fields)
	}
	again, err := f.e.QueueReceive(f.ctx, engine.ReceiveParams{Queue: "q", Count: 10, Lease: time.Minute, MaxDeliveries: 3})
	if err != nil || len(again) != 1 || again[0].Item != items[0] || again[0].Attempt != 1 {
		t.Fatalf("after the release, received %+v, %v", again, err)
	}
}

// TestAckArgs checks how ack ids are parsed and grouped for
// lease_ack_batch.lua, including forms no lease can have.
func TestAckArgs(t *testing.T) {
	tok := "0123456789abcdef"
	ids := []string{
		"12.1." + tok, "b7.2." + tok, "b7.1." + tok, "b9.1." + tok, "b7.2." + tok,
		"b7.0." + tok, "b7.1001." + tok, "b.1." + tok, "b7.1." + tok[1:], "12.1", "", "x", "b7.1." + tok + "0", "12.x." + tok,
	}
	a := newAckArgs(ids)
	want := []string{"1", "12.1." + tok, "7", "11", tok + tok, "9", "1", tok}
	if !slices.Equal(a.args, want) {
		t.Fatalf("args %q, want %q", a.args, want)
	}
	if !slices.Equal(a.singles, []int{0}) || len(a.groups) != 2 ||
		!slices.Equal(a.groups[0].at, []int{2, 1}) || !slices.Equal(a.groups[1].at, []int{3}) {
		t.Fatalf("singles %v, groups %+v", a.singles, a.groups)
	}
}
