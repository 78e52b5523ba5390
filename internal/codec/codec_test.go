package codec

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

func newCodec(t testing.TB, o Options) *Codec {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// The expected strings are what Python's json.dumps writes for the same
// values (checked against CPython 3.11).
func TestSerializeWritesWhatPythonWrites(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{map[string]any{"data": "value"}, `{"data": "value"}`},
		{[]any{1, "a", nil, true}, `[1, "a", null, true]`},
		{map[string]any{"a": map[string]any{"b": []int{1, 2}}}, `{"a": {"b": [1, 2]}}`},
		{map[string]string{"t": "café ☕ 😀"}, `{"t": "caf\u00e9 \u2615 \ud83d\ude00"}`},
		{map[string]string{"h": "<a&b>"}, `{"h": "<a&b>"}`},
		{map[string]string{"c": "a\"b\\c\n\t\b\f\x01"}, `{"c": "a\"b\\c\n\t\b\f\u0001"}`},
		{map[string]string{"del": "a\x7fb"}, `{"del": "a\u007fb"}`},
		{map[string]string{"s": "x, y: z"}, `{"s": "x, y: z"}`},
		{"plain text", "plain text"},
		{"42", `"42"`},
		{"true", `"true"`},
		{`{"looks": "like json"}`, `"{\"looks\": \"like json\"}"`},
		{"Z:abc", `"Z:abc"`},
		{json.RawMessage(`{"a":1,"b":[2,3]}`), `{"a": 1, "b": [2, 3]}`},
		{json.RawMessage(" [ 1 ,\n2 ] "), `[1, 2]`},
		{json.RawMessage("[\"a\x7fb\"]"), `["a\u007fb"]`},
		{12.5, "12.5"},
	}
	for _, tc := range cases {
		got, err := Serialize(tc.in)
		if err != nil {
			t.Fatalf("Serialize(%#v): %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("Serialize(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := Serialize(json.RawMessage("{bad")); err == nil {
		t.Error("invalid raw message accepted")
	}
	for _, bad := range []any{"\xff\xfeab", []byte{0xff}, json.RawMessage("\"\xff\"")} {
		if _, err := Serialize(bad); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("Serialize(%q): %v, want ErrInvalidUTF8", bad, err)
		}
	}
	if _, err := Serialize(make(chan int)); err == nil {
		t.Error("unencodable value accepted")
	}
}

func TestCompressionThreshold(t *testing.T) {
	c := newCodec(t, Options{Compress: true, Threshold: 100})
	exact := strings.Repeat("a", 100)
	if got := c.Compress(exact); got != exact {
		t.Error("exactly-threshold payload was compressed")
	}
	over := strings.Repeat("a", 101)
	got := c.Compress(over)
	if !strings.HasPrefix(got, "Z:") {
		t.Fatalf("payload over threshold not compressed: %q", got)
	}
	// The frame must be a plain zstd frame with its content size, as
	// Python's zstandard.decompress requires.
	frame, err := base64.StdEncoding.DecodeString(got[2:])
	if err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(frame); err != nil || !h.HasFCS || h.FrameContentSize != 101 {
		t.Fatalf("frame header: %+v, %v", h, err)
	}
	// Incompressible data stays as it is: compression must make it shorter.
	noise := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x8a\x13\xf7\x02\xee", 1)))
	random := strings.Repeat(noise, 1)
	if got := c.Compress(random); got != random {
		t.Error("short payload compressed")
	}
	off := newCodec(t, Options{})
	if got := off.Compress(over); got != over {
		t.Error("compression applied while disabled")
	}
}

func TestRoundTrip(t *testing.T) {
	c := newCodec(t, Options{Compress: true, Threshold: 64})
	values := []any{
		map[string]any{"image_path": "/data/cam1/" + strings.Repeat("x", 500), "camera_id": 1.0},
		"short", "Z:tricky", "123", strings.Repeat("long plain ", 50), []any{"é", 2.0},
	}
	for _, v := range values {
		stored, err := c.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		data, isJSON, err := c.Decode(stored)
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if isJSON {
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
		} else {
			got = string(data)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %.60v gave %.60v", v, got)
		}
	}
}

func TestDecodeForeignValues(t *testing.T) {
	c := newCodec(t, Options{Compress: true})
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	blob := "Z:" + base64.StdEncoding.EncodeToString(enc.EncodeAll([]byte(`{"camera": 7}`), nil))
	cases := []struct {
		stored string
		want   string
		isJSON bool
	}{
		{`{"camera": 7}`, `{"camera": 7}`, true},
		{"hello", "hello", false},
		{blob, `{"camera": 7}`, true},
		{"Z:!!not base64", "Z:!!not base64", false},
		{"Z:" + base64.StdEncoding.EncodeToString([]byte("not zstd")), "Z:bm90IHpzdGQ=", false},
		{"", "", false},
	}
	for _, tc := range cases {
		data, isJSON, err := c.Decode(tc.stored)
		if err != nil || string(data) != tc.want || isJSON != tc.isJSON {
			t.Errorf("Decode(%q) = %q, %v, %v; want %q, %v", tc.stored, data, isJSON, err, tc.want, tc.isJSON)
		}
	}
}

func TestDecodeRefusesBombs(t *testing.T) {
	c := newCodec(t, Options{Compress: true, MaxDecoded: 1 << 20})
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	bomb := "Z:" + base64.StdEncoding.EncodeToString(enc.EncodeAll(make([]byte, 8<<20), nil))
	if _, _, err := c.Decode(bomb); err == nil {
		t.Fatal("8 MiB expansion accepted with a 1 MiB limit")
	}
}

func FuzzDecode(f *testing.F) {
	c := newCodec(f, Options{Compress: true, Threshold: 16})
	for _, s := range []string{"", "Z:", "Z:KLUv/SAEIQAAdGVzdA==", `{"a": 1}`, "plain", "Z:====", `"q"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data, isJSON, err := c.Decode(s)
		if err != nil {
			return
		}
		if isJSON != json.Valid(data) {
			t.Fatalf("isJSON=%v for %q", isJSON, data)
		}
	})
}

func FuzzPythonize(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `["x",{"y":"é\u0008"}]`, `"\u00e9"`, `1`, `{"k":"a,b:c"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) || !utf8.ValidString(s) {
			return // Pythonize's input is JSON in UTF-8
		}
		out := Pythonize([]byte(s))
		var a, b any
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return
		}
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatalf("Pythonize(%q) = %q: invalid JSON: %v", s, out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("Pythonize changed the value: %q -> %q", s, out)
		}
		for i := 0; i < len(out); i++ {
			if out[i] >= 0x7f {
				t.Fatalf("DEL or non-ASCII byte in %q", out)
			}
		}
	})
}

// The one-pass transcoder must agree with encoding/json on what is JSON,
// and write exactly what Pythonize writes for it.
func FuzzTranscode(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2.5e-3,-0,"x\u0008"]`, `{"k" : [ true , null ]}`, `01`, `1.`, `"\ud83d\ude00"`, `[`, `{"a":}`, "\"\x01\"", `"é"`, ` 7 `} {
		f.Add(s)
	}
	f.Add("\"\xff\"")
	f.Add("{\"a\": \"\xed\xa0\x80\"}")
	f.Add("[\"\x7f\", \"a\x7f\u00e9\"]")
	// Runs longer than the eight bytes str skips at once, with the bytes
	// it must stop at in every position of a word.
	for i := range 9 {
		for _, c := range []string{`\"`, "\x7f", "é", "\x01", `"`} {
			f.Add(`["` + strings.Repeat("a", i) + c + strings.Repeat("b", 17-i) + `"]`)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			// Refused, never rewritten with U+FFFD in place of the bytes.
			if out, ok := transcode([]byte(s)); ok {
				t.Fatalf("transcode(%q) accepted invalid UTF-8: %q", s, out)
			}
			return
		}
		out, ok := transcode([]byte(s))
		if ok != json.Valid([]byte(s)) {
			t.Fatalf("transcode(%q) ok=%v, json.Valid=%v", s, ok, !ok)
		}
		if ok && out != pythonizeReference([]byte(s)) {
			t.Fatalf("transcode(%q) = %q, reference = %q", s, out, pythonizeReference([]byte(s)))
		}
	})
}

// pythonizeReference is the plain byte-by-byte rewrite transcode must
// agree with: the oracle of FuzzTranscode.
func pythonizeReference(in []byte) string {
	var b strings.Builder
	b.Grow(len(in) + len(in)/8 + 8)
	inString := false
	run := 0 // in[run:i] is copied as it is when something must change
	for i := 0; i < len(in); {
		c := in[i]
		if !inString {
			switch c {
			case '"':
				inString = true
				i++
			case ',', ':':
				i++
				b.Write(in[run:i])
				b.WriteByte(' ')
				run = i
			case ' ', '\t', '\n', '\r':
				// insignificant whitespace of the input; ours is re-added
				b.Write(in[run:i])
				i++
				run = i
			default:
				i++
			}
			continue
		}
		switch {
		case c == '"':
			inString = false
			i++
		case c == '\\':
			if i+6 <= len(in) && in[i+1] == 'u' {
				named := ""
				switch string(in[i+2 : i+6]) {
				case "0008":
					named = `\b`
				case "000c", "000C":
					named = `\f`
				}
				if named != "" {
					b.Write(in[run:i])
					b.WriteString(named)
					i += 6
					run = i
					continue
				}
			}
			i = min(i+2, len(in))
		case c == 0x7f:
			b.Write(in[run:i])
			b.WriteString(`\u007f`)
			i++
			run = i
		case c < utf8.RuneSelf:
			i++
		default:
			b.Write(in[run:i])
			r, size := utf8.DecodeRune(in[i:])
			i += size
			run = i
			if r >= 0x10000 {
				r -= 0x10000
				writeU(&b, 0xD800+(r>>10))
				writeU(&b, 0xDC00+(r&0x3FF))
			} else {
				writeU(&b, r)
			}
		}
	}
	b.Write(in[run:])
	return b.String()
}

// TestSpecialMatchesBytewise checks the word-at-a-time test against the
// byte test for every byte value in every position of a word.
func TestSpecialMatchesBytewise(t *testing.T) {
	byteSpecial := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x7f }
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			got := special(binary.LittleEndian.Uint64(w))
			if got != byteSpecial(byte(c)) {
				t.Fatalf("special(%q) = %v, byte %#x at %d", w, got, c, pos)
			}
		}
	}
}

// BenchmarkEncodeRawJSON is the add path's encoding of a json.RawMessage
// already written the Python way (the common case for producers that
// marshal their own items): one validating pass, no copy.
func BenchmarkEncodeRawJSON(b *testing.B) {
	for _, size := range []int{200, 4096} {
		item := json.RawMessage(`{"camera_id": "cam-1", "ts": 1700000000.123, "label": "person", "pad": "` +
			strings.Repeat("x", size-80) + `"}`)
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(len(item)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Serialize(item); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
