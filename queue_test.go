package sluice_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

type detection struct {
	Camera int    `json:"camera_id"`
	Label  string `json:"label"`
}

func TestAddResultsFollowCompat(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("detections", sluice.QueueSettings{MaxSize: 2, Policy: sluice.PolicyReject})
		for i := range 2 {
			r, err := q.Add(ctx, detection{Camera: i}, nil)
			if err != nil || !r.Success || r.QueueLength != int64(i+1) || r.HadBackpressure {
				t.Fatalf("add %d: %+v, %v", i, r, err)
			}
		}
		r, err := q.Add(ctx, detection{Camera: 9}, nil)
		if !errors.Is(err, sluice.ErrQueueFull) || r.Success || !r.HadBackpressure {
			t.Fatalf("full add: %+v, %v", r, err)
		}
		want := "Queue 'detections' is full (2/2). Item rejected to prevent data loss."
		if r.Error != want {
			t.Fatalf("error = %q, want %q", r.Error, want)
		}

		r, err = q.Add(ctx, detection{Camera: 10}, &sluice.AddOptions{Policy: sluice.PolicyDLQ})
		if err != nil || r.MovedToDLQCount != 1 || r.Warning != "Moved 1 items to DLQ due to overflow" || !r.HadBackpressure {
			t.Fatalf("dlq add: %+v, %v", r, err)
		}
		r, err = q.Add(ctx, detection{Camera: 11}, &sluice.AddOptions{Policy: sluice.PolicyDropOldest})
		if err != nil || r.DroppedCount != 1 || r.Warning != "Dropped 1 oldest items due to overflow" || r.QueueLength != 2 {
			t.Fatalf("drop add: %+v, %v", r, err)
		}
		// Unknown policies behave as reject (docs/compat.md).
		if _, err := q.Add(ctx, "x", &sluice.AddOptions{Policy: "bogus"}); !errors.Is(err, sluice.ErrQueueFull) {
			t.Fatalf("unknown policy: %v", err)
		}
		// Unbounded per call.
		if r, err := q.Add(ctx, "y", &sluice.AddOptions{MaxSize: sluice.Unbounded}); err != nil || r.QueueLength != 3 {
			t.Fatalf("unbounded add: %+v, %v", r, err)
		}
	})
}

func TestGetDecodesAndReportsEmpty(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("jobs")
		if _, ok, err := q.Get(ctx, 0); ok || err != nil {
			t.Fatalf("empty get: ok=%v err=%v", ok, err)
		}
		big := strings.Repeat("motion ", 400) // compressed on the wire
		for _, v := range []any{detection{Camera: 3, Label: "person"}, "plain text", "42", "Z:not compressed", big} {
			if _, err := q.Add(ctx, v, nil); err != nil {
				t.Fatal(err)
			}
		}
		d, ok, err := sluice.GetAs[detection](ctx, q, time.Second)
		if err != nil || !ok || d != (detection{Camera: 3, Label: "person"}) {
			t.Fatalf("GetAs: %+v %v %v", d, ok, err)
		}
		for _, want := range []string{"plain text", "42", "Z:not compressed", big} {
			it, ok, err := q.Get(ctx, 0)
			if err != nil || !ok {
				t.Fatalf("get: %v %v", ok, err)
			}
			s, err := sluice.As[string](it)
			if err != nil || s != want {
				t.Fatalf("got %.40q (%v), want %.40q", s, err, want)
			}
		}
	})
}

func TestGetAsHandsUndecodableItemsToTheCaller(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("typed")
		if _, err := q.AddBatch(ctx, []any{"not a detection", detection{Camera: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		_, ok, err := sluice.GetAs[detection](ctx, q, 0)
		var de *sluice.DecodeError
		if !ok || !errors.As(err, &de) || de.Item.String() != "not a detection" {
			t.Fatalf("decode failure: ok=%v err=%v", ok, err)
		}
		// The bad item does not block the head: the next one decodes.
		d, ok, err := sluice.GetAs[detection](ctx, q, 0)
		if err != nil || !ok || d.Camera != 2 {
			t.Fatalf("next: %+v %v %v", d, ok, err)
		}
		// The caller may put it back.
		if err := q.PutBack(ctx, de.Item); err != nil {
			t.Fatal(err)
		}
		if n, _ := q.Len(ctx); n != 1 {
			t.Fatalf("len after put back: %d", n)
		}
	})
}

func TestPeekReversedRangeIsEmpty(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("two")
		if _, err := q.AddBatch(ctx, []any{"a", "b"}, nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int64{{0, -3}, {1, 0}, {5, 9}, {-1, -2}} {
			got, err := q.Peek(ctx, r[0], r[1])
			if err != nil || len(got) != 0 {
				t.Errorf("Peek(%d, %d) = %v, %v; want empty", r[0], r[1], got, err)
			}
		}
	})
}

func TestStringItemsReadBackAsStrings(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.Queue("strings")
		for _, s := range []string{"hello", "42", "true", `{"a": 1}`, "Z:x"} {
			if _, err := q.Add(ctx, s, nil); err != nil {
				t.Fatal(err)
			}
			it, ok, err := q.Get(ctx, 0)
			if err != nil || !ok || it.String() != s {
				t.Errorf("Add(%q) read back as %q (%v %v)", s, it.String(), ok, err)
			}
		}
		if _, err := q.Add(ctx, "\xff\xfe", nil); !errors.Is(err, sluice.ErrInvalidArgument) {
			t.Errorf("invalid UTF-8 accepted: %v", err)
		}
	})
}

func TestBlockingGetEndsOnCancel(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, _, err := c.Queue("idle").Get(ctx, time.Hour)
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestPressurePeekClear(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("p", sluice.QueueSettings{MaxSize: 10, PressureThreshold: 0.5})
		items := make([]any, 6)
		for i := range items {
			items[i] = i
		}
		if _, err := q.AddBatch(ctx, items, nil); err != nil {
			t.Fatal(err)
		}
		p, err := q.Pressure(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := sluice.Pressure{QueueName: "p", CurrentLength: 6, MaxSize: 10, FillRatio: 0.6,
			IsAtPressureThreshold: true, IsFull: false, OverflowPolicy: sluice.PolicyDLQ}
		if p != want {
			t.Fatalf("pressure = %+v, want %+v", p, want)
		}
		got, err := q.Peek(ctx, 1, 3)
		if err != nil || len(got) != 3 || got[0].String() != "1" || got[2].String() != "3" {
			t.Fatalf("peek: %v %v", got, err)
		}
		if got, _ := q.Peek(ctx, -2, -1); len(got) != 2 || got[1].String() != "5" {
			t.Fatalf("peek negative: %v", got)
		}
		if cleared, err := q.Clear(ctx); !cleared || err != nil {
			t.Fatalf("clear: %v %v", cleared, err)
		}
		if cleared, _ := q.Clear(ctx); cleared {
			t.Fatal("second clear reported items")
		}
	})
}

func TestPeekIsCapped(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("many", sluice.QueueSettings{MaxSize: sluice.Unbounded})
		items := make([]any, 1200)
		for i := range items {
			items[i] = i
		}
		if _, err := q.AddBatch(ctx, items, nil); err != nil {
			t.Fatal(err)
		}
		got, err := q.Peek(ctx, 0, -1)
		if err != nil || len(got) != sluice.MaxPeek {
			t.Fatalf("peek all: %d items, %v", len(got), err)
		}
	})
}

func TestInvalidNamesAndArguments(t *testing.T) {
	c := open(t, "", nil)
	ctx := context.Background()
	for _, name := range []string{"", "has space", "a#b", strings.Repeat("x", 201)} {
		if _, err := c.Queue(name).Add(ctx, 1, nil); !errors.Is(err, sluice.ErrInvalidName) {
			t.Errorf("queue %q: err = %v", name, err)
		}
	}
	if _, _, err := c.Queue("ok").Get(ctx, -time.Second); !errors.Is(err, sluice.ErrInvalidArgument) {
		t.Errorf("negative timeout: %v", err)
	}
	if _, err := c.Queue("ok").Add(ctx, json.RawMessage("{bad"), nil); err == nil {
		t.Error("invalid raw JSON accepted")
	}
	if _, err := sluice.ParsePolicy("dlqq"); !errors.Is(err, sluice.ErrInvalidArgument) {
		t.Errorf("ParsePolicy: %v", err)
	}
	if _, err := sluice.Open(ctx, "ftp://x", nil); !errors.Is(err, sluice.ErrInvalidArgument) {
		t.Errorf("Open bad scheme: %v", err)
	}
}

// A queue named like a DLQ would be that DLQ: reading it would hand out
// another queue's dead letters, and clearing it would purge them.
func TestQueueNamedLikeADLQIsRefused(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		foo := c.QueueWith("foo", sluice.QueueSettings{MaxSize: 1, Policy: sluice.PolicyDLQ})
		if _, err := foo.AddBatch(ctx, []any{"a", "b"}, nil); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"dlq:overflow:foo", "dlq:foo", "overflow:foo", "sluice#queues"} {
			q := c.Queue(name)
			if _, err := q.Add(ctx, "x", nil); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Add to %q: %v, want ErrInvalidName", name, err)
			}
			if n, err := q.Len(ctx); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Len of %q: %d, %v, want ErrInvalidName", name, n, err)
			}
			if _, _, err := q.Get(ctx, 0); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Get from %q: %v, want ErrInvalidName", name, err)
			}
			if _, err := q.Clear(ctx); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Clear of %q: %v, want ErrInvalidName", name, err)
			}
			if _, err := q.Peek(ctx, 0, 10); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Peek of %q: %v, want ErrInvalidName", name, err)
			}
			if _, err := q.Pressure(ctx); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Pressure of %q: %v, want ErrInvalidName", name, err)
			}
			if _, err := q.ReceiveBatch(ctx, 1, 0, nil); !errors.Is(err, sluice.ErrInvalidName) {
				t.Errorf("Receive from %q: %v, want ErrInvalidName", name, err)
			}
		}
		if n, err := foo.DLQ(sluice.DLQOverflow).Len(ctx); n != 1 || err != nil {
			t.Fatalf("foo's overflow DLQ: %d entries, %v; want its 1 entry untouched", n, err)
		}
	})
}

func TestAddWithIdempotencyKey(t *testing.T) {
	engines(t, func(t *testing.T, c *sluice.Client) {
		ctx := context.Background()
		q := c.QueueWith("orders", sluice.QueueSettings{MaxSize: 10})
		first, err := q.Add(ctx, detection{Camera: 1}, &sluice.AddOptions{IdempotencyKey: "order-1"})
		if err != nil || first.Replayed || first.QueueLength != 1 {
			t.Fatalf("first add: %+v, %v", first, err)
		}
		again, err := q.Add(ctx, detection{Camera: 1}, &sluice.AddOptions{IdempotencyKey: "order-1", IdempotencyWindow: time.Hour})
		want := first
		want.Replayed = true
		if err != nil || again != want {
			t.Fatalf("repeat: %+v, %v; want %+v", again, err, want)
		}
		if _, err := q.Add(ctx, detection{Camera: 2}, &sluice.AddOptions{IdempotencyKey: "order-1"}); !errors.Is(err, sluice.ErrIdempotencyConflict) {
			t.Fatalf("key reused for another item: %v, want ErrIdempotencyConflict", err)
		}
		batch, err := q.AddBatch(ctx, []any{1, 2}, &sluice.AddOptions{IdempotencyKey: "batch-1"})
		if err != nil || len(batch) != 2 || batch[1].QueueLength != 3 {
			t.Fatalf("batch: %+v, %v", batch, err)
		}
		batch, err = q.AddBatch(ctx, []any{1, 2}, &sluice.AddOptions{IdempotencyKey: "batch-1"})
		if err != nil || !batch[0].Replayed || !batch[1].Replayed || batch[1].QueueLength != 3 {
			t.Fatalf("batch repeat: %+v, %v", batch, err)
		}
		// A window alone changes nothing: without a key every add writes.
		if r, err := q.Add(ctx, 1, &sluice.AddOptions{IdempotencyWindow: time.Hour}); err != nil || r.Replayed || r.QueueLength != 4 {
			t.Fatalf("add with a window and no key: %+v, %v", r, err)
		}
		for _, opts := range []sluice.AddOptions{
			{IdempotencyKey: strings.Repeat("k", 256)},
			{IdempotencyKey: "new\nline"},
			{IdempotencyKey: "k", IdempotencyWindow: -time.Second},
			{IdempotencyKey: "k", IdempotencyWindow: sluice.MaxIdempotencyWindow + time.Hour},
		} {
			if _, err := q.Add(ctx, 1, &opts); !errors.Is(err, sluice.ErrInvalidArgument) {
				t.Errorf("invalid idempotency option: %v, want ErrInvalidArgument", err)
			}
		}
		if n, err := q.Len(ctx); err != nil || n != 4 {
			t.Fatalf("length %d, %v; want 4", n, err)
		}
	})
}
