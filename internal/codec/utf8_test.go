package codec

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

type textKey string

func (k textKey) MarshalText() ([]byte, error) { return []byte("k" + string(k)), nil }

type rawJSONValue string

func (v rawJSONValue) MarshalJSON() ([]byte, error) { return []byte(`"` + string(v) + `"`), nil }

type tagged struct {
	Shown  string `json:"shown"`
	Hidden string `json:"-"`
	//lint:ignore SA5008 "-," names the field "-", a case the check must cover.
	Dash  string `json:"-,"`
	inner string
}

// Every way a Go value can carry text into JSON is checked: encoding/json
// would write \ufffd in place of the bad bytes without a word.
func TestSerializeRefusesInvalidUTF8(t *testing.T) {
	bad := "a\xffb"
	for name, v := range map[string]any{
		"string":            bad,
		"bytes":             []byte(bad),
		"raw message":       json.RawMessage(`{"a": "` + bad + `"}`),
		"map value":         map[string]any{"k": bad},
		"map key":           map[string]int{bad: 1},
		"nested slice":      []any{1, []any{"ok", bad}},
		"array":             [2]string{"ok", bad},
		"struct field":      struct{ S string }{bad},
		"tagged field":      tagged{Shown: bad},
		"dash-named field":  tagged{Dash: bad},
		"pointer":           &struct{ P *string }{&bad},
		"text marshaler":    []textKey{textKey(bad)},
		"text marshal key":  map[textKey]int{textKey(bad): 1},
		"json marshaler":    rawJSONValue(bad),
		"marshaler in map":  map[string]rawJSONValue{"k": rawJSONValue(bad)},
		"valid fffd beside": map[string]string{"ok": "\ufffd", "bad": bad},
	} {
		_, err := Serialize(v)
		if !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("%s: Serialize error %v, want ErrInvalidUTF8", name, err)
		}
		if _, isBytes := v.([]byte); isBytes {
			continue // JSON writes bytes as base64
		}
		if _, err := JSON(v); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("%s: JSON error %v, want ErrInvalidUTF8", name, err)
		}
	}
}

func TestSerializeKeepsValidText(t *testing.T) {
	for name, c := range map[string]struct {
		v    any
		want string
	}{
		"replacement char":  {map[string]string{"k": "\ufffd"}, `{"k": "\ufffd"}`},
		"escaped text":      {map[string]string{"k": `\ufffd`}, `{"k": "\\ufffd"}`},
		"hidden bad field":  {tagged{Shown: "x", Hidden: "\xff", inner: "\xff"}, `{"shown": "x", "-": ""}`},
		"bytes are base64":  {map[string][]byte{"b": {0xff}}, `{"b": "/w=="}`},
		"raw fffd escape":   {json.RawMessage(`"\ufffd"`), `"\ufffd"`},
		"unpaired escape":   {json.RawMessage(`["\ud800"]`), `["\ud800"]`},
		"marshaler escapes": {rawJSONValue(`\ufffd`), `"\ufffd"`},
	} {
		got, err := JSON(c.v)
		if err != nil || got != c.want {
			t.Errorf("%s: JSON = %q, %v; want %q", name, got, err, c.want)
		}
	}
}

// FuzzSerializeNeverReplaces: text inside a value comes back exactly, or
// the value is refused with ErrInvalidUTF8; never anything in between.
func FuzzSerializeNeverReplaces(f *testing.F) {
	for _, s := range []string{"plain", "\xff", "é", "\ufffd", "a\xed\xa0\x80b", `\ufffd`, "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{map[string]string{"k": s}, map[string]int{s: 1}, []string{s}} {
			out, err := Serialize(v)
			if !utf8.ValidString(s) {
				if !errors.Is(err, ErrInvalidUTF8) {
					t.Fatalf("Serialize(%#v) = %q, %v; want ErrInvalidUTF8", v, out, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Serialize(%#v): %v", v, err)
			}
			var back any
			if err := json.Unmarshal([]byte(out), &back); err != nil {
				t.Fatalf("Serialize(%#v) = %q: %v", v, out, err)
			}
			var got string
			switch b := back.(type) {
			case map[string]any:
				for k, x := range b {
					if x == 1.0 {
						got = k
					} else {
						got = x.(string)
					}
				}
			case []any:
				got = b[0].(string)
			}
			if got != s {
				t.Fatalf("Serialize(%#v) = %q: reads back %q", v, out, got)
			}
		}
	})
}
