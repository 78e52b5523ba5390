package enginetest

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

// minTokenHex is the least random part a delivery id may carry: 16 hex
// digits, 64 bits.
const minTokenHex = 16

// guessIDCases hold engines to delivery ids nobody can guess: each ends in
// a random part of at least 64 bits, drawn anew for every delivery, and an
// id whose random part was altered, or an id in the old sequential form,
// settles nothing. The ids stay URL-safe, since the HTTP service carries
// them in paths.
func guessIDCases(t *testing.T, h Harness) {
	t.Run("RandomPartPerDelivery", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x", "y")
		p := engine.ReceiveParams{Queue: "q", Count: 2, Lease: longLease, MaxDeliveries: 5}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x", "y"}, 1)
		// A release redelivers x with a new id of its own.
		nack(t, ctx, e, engine.NackParams{Queue: "q", ID: ds[0].ID, MaxDeliveries: 5, Release: true})
		p.Count = 1
		again := receive(t, ctx, e, p)
		wantDeliveries(t, again, []string{"x"}, 1)
		ids := []string{ds[0].ID, ds[1].ID, again[0].ID}
		seen := map[string]string{}
		for _, id := range ids {
			tok := tokenOf(t, id)
			if prev, dup := seen[tok]; dup {
				t.Errorf("ids %q and %q share their random part", prev, id)
			}
			seen[tok] = id
		}
	})

	t.Run("AlteredRandomPartSettlesNothing", func(t *testing.T) {
		t.Parallel()
		ctx, e := setup(t, h)
		add(t, ctx, e, "q", engine.PolicyDLQ, 0, "x")
		p := engine.ReceiveParams{Queue: "q", Count: 1, Lease: longLease, MaxDeliveries: 5}
		ds := receive(t, ctx, e, p)
		wantDeliveries(t, ds, []string{"x"}, 1)
		id := ds[0].ID
		tokenOf(t, id)
		prefix := id[:strings.LastIndexByte(id, '.')+1]
		guesses := []string{
			flipLastHex(id),
			prefix + strings.Repeat("0", minTokenHex),
			prefix + strings.Repeat("f", minTokenHex),
			prefix[:len(prefix)-1], // the sequential form of old ids
			"1.1",
		}
		for _, g := range guesses {
			if g == id {
				t.Fatalf("guess %q equals the real id", g)
			}
			wantErrIs(t, "Ack of guessed id "+g, engine.Ack(ctx, e, "q", g), engine.ErrLeaseNotFound)
			_, err := e.QueueNack(ctx, engine.NackParams{Queue: "q", ID: g, MaxDeliveries: 5})
			wantErrIs(t, "QueueNack of guessed id "+g, err, engine.ErrLeaseNotFound)
			wantErrIs(t, "QueueExtend of guessed id "+g, e.QueueExtend(ctx, "q", g, longLease), engine.ErrLeaseNotFound)
			acked, err := e.QueueAckBatch(ctx, "q", []string{g})
			if err != nil || len(acked) != 1 || acked[0] {
				t.Fatalf("QueueAckBatch of guessed id %q = %v, %v; want [false]", g, acked, err)
			}
		}
		// None of the guesses disturbed the real delivery.
		wantInFlight(t, ctx, e, "q", 1)
		if err := engine.Ack(ctx, e, "q", id); err != nil {
			t.Fatalf("Ack of the real id after the guesses: %v", err)
		}
		wantInFlight(t, ctx, e, "q", 0)
	})
}

// tokenOf returns an id's random part, its last dot-separated field, after
// checking that it is long enough and the whole id is URL-safe.
func tokenOf(t *testing.T, id string) string {
	t.Helper()
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '_') {
			t.Fatalf("delivery id %q holds %q, which is not URL-safe", id, c)
		}
	}
	i := strings.LastIndexByte(id, '.')
	if i < 0 || len(id)-i-1 < minTokenHex {
		t.Fatalf("delivery id %q: want a last field of at least %d hex digits (64 random bits)", id, minTokenHex)
	}
	tok := id[i+1:]
	for _, c := range tok {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			t.Fatalf("delivery id %q: random part %q is not lower-case hex", id, tok)
		}
	}
	return tok
}

// flipLastHex changes the id's last hex digit.
func flipLastHex(id string) string {
	last := id[len(id)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return id[:len(id)-1] + string(repl)
}
