package codec

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// transcode validates JSON and rewrites it the way Python's json.dumps
// writes it, in one pass: encoding/json's validator alone costs several
// times what the rewrite does, and every add runs through here. ok is
// false when in is not exactly one JSON value in valid UTF-8.
func transcode(in []byte) (out string, ok bool) {
	t := transcoder{in: in}
	t.space()
	if !t.value(0) {
		return "", false
	}
	t.space()
	if t.i != len(in) {
		return "", false
	}
	if !t.rewritten {
		return string(in), true // already written the Python way
	}
	t.flush(t.i)
	return t.b.String(), true
}

// maxDepth bounds nesting, as encoding/json's decoder does.
const maxDepth = 10000

type transcoder struct {
	in  []byte
	i   int
	run int // in[run:i] has not been written yet and needs no change
	b   strings.Builder
	// rewritten is set once anything differs from the input; until then
	// nothing is copied.
	rewritten bool
}

func (t *transcoder) flush(to int) {
	if !t.rewritten {
		t.rewritten = true
		t.b.Grow(len(t.in) + len(t.in)/8 + 8)
	}
	t.b.Write(t.in[t.run:to])
	t.run = to
}

// space drops insignificant whitespace; the separators' spaces are ours.
func (t *transcoder) space() {
	if t.i < len(t.in) && isSpace(t.in[t.i]) {
		t.flush(t.i)
		for t.i < len(t.in) && isSpace(t.in[t.i]) {
			t.i++
		}
		t.run = t.i
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// separator consumes c and writes it followed by one space; input that
// already has exactly that space is left as it is.
func (t *transcoder) separator() {
	t.i++
	if t.i+1 < len(t.in) && t.in[t.i] == ' ' && !isSpace(t.in[t.i+1]) {
		t.i++
		return
	}
	t.flush(t.i)
	t.b.WriteByte(' ')
}

func (t *transcoder) peek() byte {
	if t.i < len(t.in) {
		return t.in[t.i]
	}
	return 0
}

func (t *transcoder) value(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := t.peek(); {
	case c == '{':
		return t.object(depth)
	case c == '[':
		return t.array(depth)
	case c == '"':
		return t.str()
	case c == 't':
		return t.literal("true")
	case c == 'f':
		return t.literal("false")
	case c == 'n':
		return t.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return t.number()
	}
	return false
}

func (t *transcoder) object(depth int) bool {
	t.i++ // {
	t.space()
	if t.peek() == '}' {
		t.i++
		return true
	}
	for {
		if t.peek() != '"' || !t.str() {
			return false
		}
		t.space()
		if t.peek() != ':' {
			return false
		}
		t.separator()
		t.space()
		if !t.value(depth + 1) {
			return false
		}
		t.space()
		switch t.peek() {
		case ',':
			t.separator()
			t.space()
		case '}':
			t.i++
			return true
		default:
			return false
		}
	}
}

func (t *transcoder) array(depth int) bool {
	t.i++ // [
	t.space()
	if t.peek() == ']' {
		t.i++
		return true
	}
	for {
		if !t.value(depth + 1) {
			return false
		}
		t.space()
		switch t.peek() {
		case ',':
			t.separator()
			t.space()
		case ']':
			t.i++
			return true
		default:
			return false
		}
	}
}

func (t *transcoder) literal(word string) bool {
	if len(t.in)-t.i < len(word) || string(t.in[t.i:t.i+len(word)]) != word {
		return false
	}
	t.i += len(word)
	return true
}

func (t *transcoder) digits() int {
	n := 0
	for t.i < len(t.in) && t.in[t.i] >= '0' && t.in[t.i] <= '9' {
		t.i++
		n++
	}
	return n
}

func (t *transcoder) number() bool {
	if t.peek() == '-' {
		t.i++
	}
	switch c := t.peek(); {
	case c == '0':
		t.i++
	case c >= '1' && c <= '9':
		t.digits()
	default:
		return false
	}
	if t.peek() == '.' {
		t.i++
		if t.digits() == 0 {
			return false
		}
	}
	if c := t.peek(); c == 'e' || c == 'E' {
		t.i++
		if c := t.peek(); c == '+' || c == '-' {
			t.i++
		}
		if t.digits() == 0 {
			return false
		}
	}
	return true
}

// Word-at-a-time byte tests (exact as booleans, whichever byte matches).
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special reports whether any byte of w needs str's attention: a control
// character, '"', '\\', DEL, or a byte of a non-ASCII rune.
func special(w uint64) bool {
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	del := w ^ (ones * 0x7f)
	return ((w-ones*0x20)&^w| // a byte below 0x20
		(quote-ones)&^quote|
		(backslash-ones)&^backslash|
		(del-ones)&^del|
		w)&highs != 0
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// str checks a string and escapes what Python's ensure_ascii escapes:
// non-ASCII runes and DEL (0x7F, which encoding/json leaves raw) as
// \uXXXX, and \u0008 / \u000c by their short names.
func (t *transcoder) str() bool {
	t.i++ // opening quote
	for t.i < len(t.in) {
		// Most of an item is plain ASCII inside strings: skip it eight
		// bytes at a time (this loop is most of an add's encoding cost).
		for t.i+8 <= len(t.in) && !special(binary.LittleEndian.Uint64(t.in[t.i:])) {
			t.i += 8
		}
		if t.i >= len(t.in) {
			break
		}
		c := t.in[t.i]
		switch {
		case c == '"':
			t.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if t.i+1 >= len(t.in) {
				return false
			}
			switch t.in[t.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				t.i += 2
			case 'u':
				if t.i+6 > len(t.in) || !isHex(t.in[t.i+2]) || !isHex(t.in[t.i+3]) || !isHex(t.in[t.i+4]) || !isHex(t.in[t.i+5]) {
					return false
				}
				named := ""
				switch string(t.in[t.i+2 : t.i+6]) {
				case "0008":
					named = `\b`
				case "000c", "000C":
					named = `\f`
				}
				if named != "" {
					t.flush(t.i)
					t.b.WriteString(named)
					t.run = t.i + 6
				}
				t.i += 6
			default:
				return false
			}
		case c == 0x7f:
			t.flush(t.i)
			writeU(&t.b, 0x7f)
			t.i++
			t.run = t.i
		case c < utf8.RuneSelf:
			t.i++
		default:
			r, size := utf8.DecodeRune(t.in[t.i:])
			if r == utf8.RuneError && size == 1 {
				return false // not UTF-8: refused, never replaced by U+FFFD
			}
			t.flush(t.i)
			t.i += size
			t.run = t.i
			if r >= 0x10000 {
				r -= 0x10000
				writeU(&t.b, 0xD800+(r>>10))
				writeU(&t.b, 0xDC00+(r&0x3FF))
			} else {
				writeU(&t.b, r)
			}
		}
	}
	return false
}
