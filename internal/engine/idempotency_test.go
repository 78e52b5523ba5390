package engine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIdempotencyRecordRoundTrip(t *testing.T) {
	p := AddParams{Queue: "q", Items: []string{"a", "b:c"}, Policy: "bogus", MaxSize: 7}
	rec := NewIdempotencyRecord(p)
	rec.Before = 6
	if rec.Policy != PolicyReject {
		t.Errorf("policy %q, want it normalized to reject", rec.Policy)
	}
	got, err := DecodeIdempotencyRecord(rec.Encode())
	if err != nil || got != rec {
		t.Fatalf("decode(encode) = %+v, %v; want %+v", got, err, rec)
	}
	if got, err := DecodeIdempotencyRecord("6:" + rec.Tail()); err != nil || got != rec {
		t.Fatalf("decode(length + tail) = %+v, %v", got, err)
	}
	res, err := got.Replay("k", NewIdempotencyRecord(p))
	want := []AddResult{{Accepted: true, QueueLength: 7, Replayed: true}, {Accepted: false, QueueLength: 7, Replayed: true}}
	if err != nil || len(res) != 2 || res[0] != want[0] || res[1] != want[1] {
		t.Errorf("Replay = %+v, %v; want %+v", res, err, want)
	}
	for _, bad := range []string{"", "1:2:3:reject", "x:1:0:reject:ff", "1:0:0:reject:ff", "-1:1:0:reject:ff"} {
		if _, err := DecodeIdempotencyRecord(bad); err == nil {
			t.Errorf("record %q accepted", bad)
		}
	}
}

func TestFingerprintSeparatesItems(t *testing.T) {
	// Items are length-prefixed: a different split of the same bytes is
	// other items.
	sets := [][]string{{"ab"}, {"a", "b"}, {"b", "a"}, {"", "ab"}, {"ab", ""}, {}}
	seen := map[string]int{}
	for i, s := range sets {
		fp := Fingerprint(s)
		if j, dup := seen[fp]; dup {
			t.Errorf("items %q and %q share fingerprint %s", sets[j], s, fp)
		}
		seen[fp] = i
	}
	rec := NewIdempotencyRecord(AddParams{Items: []string{"a", "b"}})
	if _, err := rec.Replay("k", NewIdempotencyRecord(AddParams{Items: []string{"ab"}})); !errors.Is(err, ErrIdempotencyConflict) {
		t.Errorf("replay for other items: %v, want ErrIdempotencyConflict", err)
	}
}

func TestValidateIdempotency(t *testing.T) {
	for _, ok := range []string{"k", " ", "~", strings.Repeat("x", 255), "order-1234:{a}/b"} {
		if err := ValidateIdempotencyKey(ok); err != nil {
			t.Errorf("key %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 256), "a\tb", "é", "a\x7f", "\x00"} {
		if err := ValidateIdempotencyKey(bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	for _, d := range []time.Duration{time.Millisecond, DefaultIdempotencyWindow, MaxIdempotencyWindow} {
		if err := ValidateIdempotencyWindow(d); err != nil {
			t.Errorf("window %v: %v", d, err)
		}
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond, MaxIdempotencyWindow + 1} {
		if err := ValidateIdempotencyWindow(d); err == nil {
			t.Errorf("window %v accepted", d)
		}
	}
}
