package codec

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/internal/compattest"
)

// TestPythonFixtures holds the codec to what CPython's json.dumps wrote
// for the same values (scripts/compat-fixtures.py), byte for byte: each
// input form of a value rewrites to json.dumps's bytes, the value decoded
// into Go and serialized again gives them too (keys sorted, as Go writes
// a map), and a string quotes as json.dumps quotes it.
func TestPythonFixtures(t *testing.T) {
	for _, tc := range compattest.JSON(t) {
		for _, in := range tc.Inputs {
			if got, err := JSON(json.RawMessage(in)); err != nil || got != tc.Dumps {
				t.Errorf("%s: JSON(raw %q) = %q, %v\nwant %q", tc.Name, in, got, err, tc.Dumps)
			}
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(tc.Inputs[0])))
		dec.UseNumber() // numbers as Python wrote them (1.0, 1e-07)
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", tc.Name, err)
		}
		if got, err := JSON(v); err != nil || got != tc.DumpsSortKeys {
			t.Errorf("%s: JSON(%#v) = %q, %v\nwant %q", tc.Name, v, got, err, tc.DumpsSortKeys)
		}
		if s, ok := v.(string); ok {
			if got := QuoteASCII(s); got != tc.Dumps {
				t.Errorf("%s: QuoteASCII(%q) = %q\nwant %q", tc.Name, s, got, tc.Dumps)
			}
		}
	}
}
