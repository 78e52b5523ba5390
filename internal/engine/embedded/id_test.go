package embedded

import (
	"fmt"
	"math"
	"testing"
)

// FuzzParseID holds the delivery id parser to one spelling per delivery:
// whatever it accepts formats back to the same text, and it never panics.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1.1.00000000000000ff", "18446744073709551615.2.ffffffffffffffff", "1.1", "0.1.0000000000000001",
		"01.1.0000000000000001", "1.1.000000000000000F", "1.1.+000000000000001", "1..0000000000000001", "", "..", "1.1.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seq, n, token, ok := parseID(s)
		if !ok {
			return
		}
		if got := formatID(seq, n, token); got != s {
			t.Fatalf("parseID(%q) = %d, %d, %x; formats back as %q", s, seq, n, token, got)
		}
		if seq == 0 || n < 1 {
			t.Fatalf("parseID(%q) accepted seq %d, delivery %d", s, seq, n)
		}
	})
}

// FuzzFormatID holds the hand-written id formatter to the spelling ids
// have always had (fmt's "%d.%d.%016x"), and the parser to accepting every
// id it writes.
func FuzzFormatID(f *testing.F) {
	for _, c := range []struct {
		seq      uint64
		delivery int
		token    uint64
	}{{1, 1, 1}, {1, 1, 0xff}, {math.MaxUint64, math.MaxInt, math.MaxUint64}, {42, 7, 0x0123456789abcdef}, {0, 0, 0}, {3, -2, 5}} {
		f.Add(c.seq, c.delivery, c.token)
	}
	f.Fuzz(func(t *testing.T, seq uint64, delivery int, token uint64) {
		id := formatID(seq, delivery, token)
		if want := fmt.Sprintf("%d.%d.%016x", seq, delivery, token); id != want {
			t.Fatalf("formatID(%d, %d, %x) = %q, want %q", seq, delivery, token, id, want)
		}
		gotSeq, gotDelivery, gotToken, ok := parseID(id)
		if want := seq > 0 && delivery > 0; ok != want {
			t.Fatalf("parseID(%q) ok = %v, want %v", id, ok, want)
		}
		if ok && (gotSeq != seq || gotDelivery != delivery || gotToken != token) {
			t.Fatalf("parseID(%q) = %d, %d, %x", id, gotSeq, gotDelivery, gotToken)
		}
	})
}

func TestNewTokenDiffers(t *testing.T) {
	seen := map[uint64]bool{}
	for range 1000 {
		v := newToken()
		if v == 0 || seen[v] {
			t.Fatalf("newToken returned %x twice or zero", v)
		}
		seen[v] = true
	}
}
