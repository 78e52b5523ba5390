package server

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
)

// Every listing route takes ?limit=&cursor= and answers at most limit
// entries (default defaultPageLimit, at most maxPageLimit) with
// "next_cursor" when more follow; passing it back continues after the last
// entry. Cursors are opaque to clients: base64url of a kind letter and a
// position, so that a cursor of one listing is refused by another.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

// Cursor kinds.
const (
	cursorName   = 'n' // after this name, in byte order (GET /v1/queues)
	cursorOffset = 'o' // from this offset of a list (DLQs, queue items)
)

// pageLimit parses ?limit=.
func pageLimit(p *params) int64 {
	return p.int("limit", defaultPageLimit, 1, maxPageLimit)
}

func encodeCursor(kind byte, pos string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, pos...))
}

// decodeCursor parses ?cursor= of the given kind; ok is false when the
// parameter is absent. A malformed cursor fails p.
func decodeCursor(p *params, kind byte) (pos string, ok bool) {
	v := p.str("cursor")
	if v == "" {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(b) < 2 || b[0] != kind {
		p.fail("cursor", clipParam(v), "a next_cursor returned by this listing")
		return "", false
	}
	return string(b[1:]), true
}

// maxOffset bounds an offset cursor far beyond any list's length.
const maxOffset = 1 << 40

// offsetCursor parses an offset cursor; 0 when absent.
func offsetCursor(p *params) int64 {
	pos, ok := decodeCursor(p, cursorOffset)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(pos, 10, 64)
	// Bounded as start= is, so offset+limit cannot overflow.
	if err != nil || n < 0 || n > maxOffset || strconv.FormatInt(n, 10) != pos {
		p.fail("cursor", clipParam(p.str("cursor")), "a next_cursor returned by this listing")
		return 0
	}
	return n
}

func offsetNext(n int64) string { return encodeCursor(cursorOffset, strconv.FormatInt(n, 10)) }

// pageNames returns the page of names (sorted here whatever the engine
// did) after the name in the cursor, and the cursor of the next page, ""
// at the end. Names are visited in byte order and the cursor is the last
// name given, so a walk sees every name that exists throughout it exactly
// once, however many are added or removed meanwhile.
func pageNames(names []string, after string, limit int) (page []string, next string) {
	slices.Sort(names)
	i, found := slices.BinarySearch(names, after)
	if found {
		i++
	}
	end := min(i+limit, len(names))
	page = names[i:end]
	if end < len(names) && len(page) > 0 {
		next = encodeCursor(cursorName, page[len(page)-1])
	}
	return page, next
}

// withCursor adds "next_cursor" to a listing's reply when there is more.
func withCursor(body map[string]any, next string) map[string]any {
	if next != "" {
		body["next_cursor"] = next
	}
	return body
}

func clipParam(v string) string {
	if len(v) > 64 {
		return v[:64] + "..."
	}
	return strings.Clone(v)
}
