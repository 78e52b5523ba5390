package engine

import (
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/internal/codec"
)

// Dead-letter entries are written byte for byte as the Python service's
// json.dumps writes them (", " and ": " separators, ASCII-only escapes), so
// that tools reading one service's DLQ read the other's. The Redis engine's
// Lua scripts build the same bytes; the conformance suite compares them.

// OverflowEnvelope wraps a stored item that the dlq policy pushed out of
// queue, as docs/compat.md specifies.
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

// FailedEnvelope renders e as docs/compat.md's failed-job DLQ entry. original_job
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

// PyJSONString quotes s as Python's json.dumps does (see codec.QuoteASCII).
func PyJSONString(s string) string { return codec.QuoteASCII(s) }
