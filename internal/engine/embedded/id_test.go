package embedded

import (
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
