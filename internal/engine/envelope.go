package engine

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Dead-letter entries are written byte for byte as the Python service's
// json.dumps writes them (", " and ": " separators, ASCII-only escapes), so
// that tools reading one service's DLQ read the other's. The Redis engine's
// Lua scripts build the same bytes; the conformance suite compares them.

// OverflowEnvelope wraps a stored item that the dlq policy pushed out of
// queue, as compat.md specifies.
func OverflowEnvelope(queue, stored string) string {
	var b strings.Builder
	b.Grow(len(stored) + len(queue) + 96)
	b.WriteString(`{"original_queue": `)
	b.WriteString(PyJSONString(queue))
	b.WriteString(`, "data": `)
	b.WriteString(PyJSONString(stored))
	b.WriteString(`, "reason": "queue_overflow", "overflow_policy": "dlq"}`)
	return b.String()
}

// FailedEntry is what the failed-job DLQ records about an item.
type FailedEntry struct {
	Queue        string
	Stored       string // the item as it was stored in the queue
	Error        string
	AttemptCount int
	// FirstFailedAt and LastFailedAt are ISO 8601 UTC timestamps.
	FirstFailedAt string
	LastFailedAt  string
}

// FailedEnvelope renders e as compat.md's failed-job DLQ entry. original_job
// is the item itself when it is a JSON object or array (what the Python
// service records), else the stored string. The extra "data" field keeps the
// stored form so that a requeue puts back exactly what was accepted.
func FailedEnvelope(e FailedEntry) string {
	var b strings.Builder
	b.Grow(2*len(e.Stored) + len(e.Error) + 192)
	b.WriteString(`{"original_job": `)
	if IsJSONContainer(e.Stored) {
		b.WriteString(e.Stored)
	} else {
		b.WriteString(PyJSONString(e.Stored))
	}
	b.WriteString(`, "error": `)
	b.WriteString(PyJSONString(e.Error))
	b.WriteString(`, "attempt_count": `)
	b.WriteString(strconv.Itoa(e.AttemptCount))
	b.WriteString(`, "first_failed_at": `)
	b.WriteString(PyJSONString(e.FirstFailedAt))
	b.WriteString(`, "last_failed_at": `)
	b.WriteString(PyJSONString(e.LastFailedAt))
	b.WriteString(`, "queue_name": `)
	b.WriteString(PyJSONString(e.Queue))
	b.WriteString(`, "data": `)
	b.WriteString(PyJSONString(e.Stored))
	b.WriteString(`}`)
	return b.String()
}

// IsJSONContainer reports whether s is a valid JSON object or array. Only
// the first byte is checked cheaply before validating.
func IsJSONContainer(s string) bool {
	if s == "" || (s[0] != '{' && s[0] != '[') {
		return false
	}
	return jsonValid(s)
}

// PyJSONString quotes s as Python's json.dumps does with ensure_ascii=True:
// `"` and `\` and \b \f \n \r \t escaped by name, other control characters
// and every non-ASCII rune as \uXXXX (UTF-16 surrogate pairs above the BMP).
// Invalid UTF-8 bytes become U+FFFD, as Python's decode would refuse them.
func PyJSONString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				if c < 0x20 {
					writeU(&b, rune(c))
				} else {
					b.WriteByte(c)
				}
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			writeU(&b, 0xD800+(r>>10))
			writeU(&b, 0xDC00+(r&0x3FF))
			continue
		}
		writeU(&b, r)
	}
	b.WriteByte('"')
	return b.String()
}

func writeU(b *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	b.WriteString(`\u`)
	b.WriteByte(hex[(r>>12)&0xF])
	b.WriteByte(hex[(r>>8)&0xF])
	b.WriteByte(hex[(r>>4)&0xF])
	b.WriteByte(hex[r&0xF])
}
