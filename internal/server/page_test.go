package server

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// walk pages through a listing with limit, calling between after each
// page, and returns every entry's key (by key) in order.
func walk(t *testing.T, b *bundle, path, field string, limit int, key func(any) string, between func(page int)) []string {
	t.Helper()
	var keys []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("walk of %s never ended", path)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		q := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		m := b.expect(200, "GET", q, nil)
		entries := m[field].([]any)
		if len(entries) > limit {
			t.Fatalf("%s: %d entries, limit %d", q, len(entries), limit)
		}
		for _, e := range entries {
			keys = append(keys, key(e))
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			return keys
		}
		cursor = next
		between(page)
	}
}

// wantExactlyOnce checks that keys hold every one of want once and no key
// twice.
func wantExactlyOnce(t *testing.T, what string, keys, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
		if seen[k] > 1 {
			t.Errorf("%s: %q listed twice", what, k)
		}
	}
	for _, w := range want {
		if seen[w] == 0 {
			t.Errorf("%s: %q missed", what, w)
		}
	}
}

func TestQueueListPagination(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		var want []string
		for i := range 23 {
			name := fmt.Sprintf("q%02d", i)
			want = append(want, name)
			b.expect(200, "POST", "/v1/queues/"+name+"/items", `1`)
		}
		// Queues added mid-walk, before and after the cursor, must not
		// disturb the walk over the ones that were there throughout.
		keys := walk(t, b, "/v1/queues", "queues", 4, func(e any) string { return e.(map[string]any)["queue_name"].(string) }, func(page int) {
			b.expect(200, "POST", fmt.Sprintf("/v1/queues/a%02d/items", page), `1`)
			b.expect(200, "POST", fmt.Sprintf("/v1/queues/z%02d/items", page), `1`)
		})
		wantExactlyOnce(t, "queue walk", keys, want)
		for i := 1; i < len(keys); i++ {
			if keys[i-1] >= keys[i] {
				t.Fatalf("walk out of order: %q then %q", keys[i-1], keys[i])
			}
		}
		m := b.expect(200, "GET", "/v1/queues", nil)
		if _, more := m["next_cursor"]; more || len(m["queues"].([]any)) > defaultPageLimit {
			t.Fatalf("default page of %d queues: %v entries, next_cursor %v", len(keys), len(m["queues"].([]any)), m["next_cursor"])
		}
	})
}

func TestDLQAndItemPagination(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		// 20 items through a queue of one: 19 overflow to the DLQ.
		var items []string
		for i := range 20 {
			items = append(items, fmt.Sprint(i))
		}
		b.expect(200, "POST", "/v1/queues/d/batch?max_size=1&policy=dlq", "["+strings.Join(items, ",")+"]")
		itemKey := func(e any) string { return fmt.Sprint(e.(map[string]any)["item"]) }
		added := 100
		keys := walk(t, b, "/v1/queues/d/dlq?kind=overflow", "items", 3, itemKey, func(int) {
			b.expect(200, "POST", "/v1/queues/d/items?max_size=1&policy=dlq", fmt.Sprint(added))
			added++
		})
		wantExactlyOnce(t, "DLQ walk", keys, items[:19])

		for i := range 10 {
			b.expect(200, "POST", "/v1/queues/list/items", fmt.Sprint(i))
		}
		keys = walk(t, b, "/v1/queues/list/items", "items", 3, func(e any) string { return fmt.Sprint(e) }, func(int) {
			b.expect(200, "POST", "/v1/queues/list/items", `"late"`)
		})
		wantExactlyOnce(t, "item walk", keys[:10], items[:10])
		for _, k := range keys[10:] {
			if k != "late" {
				t.Fatalf("item walk: %q after the first 10 items, want only the late ones", k)
			}
		}
	})
}

func TestPaginationBadInput(t *testing.T) {
	t.Parallel()
	b := start(t, openClient(t, "embedded"), nil)
	b.expect(200, "POST", "/v1/queues/q/items", `1`)
	offset := offsetNext(1)
	for _, path := range []string{
		"/v1/queues?limit=0", "/v1/queues?limit=1001", "/v1/queues?limit=x", "/v1/queues?cursor=%25%25",
		"/v1/queues?cursor=" + offset, // another listing's cursor
		"/v1/queues/q/dlq?limit=0", "/v1/queues/q/dlq?cursor=bm90LWEtY3Vyc29y", "/v1/queues/q/dlq?cursor=" + encodeCursor(cursorOffset, "-1"), "/v1/queues/q/items?cursor=" + encodeCursor(cursorOffset, "9223372036854775807"),
		"/v1/queues/q/dlq?start=1&cursor=" + offset, "/v1/queues/q/dlq?cursor=" + encodeCursor(cursorName, "q"),
		"/v1/queues/q/items?limit=-1", "/v1/queues/q/items?cursor=abc", "/v1/queues/q/items?limit=2&start=0",
	} {
		b.expectError(400, "GET", path, nil)
	}
	// The last page carries no cursor.
	if m := b.expect(200, "GET", "/v1/queues?limit=1", nil); m["next_cursor"] != nil {
		t.Fatalf("single page has next_cursor %v", m["next_cursor"])
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("")
	f.Add(offsetNext(7))
	f.Add(encodeCursor(cursorName, "q"))
	f.Add("%%")
	f.Add("bzB") // non-canonical base64 of offset 0
	f.Fuzz(func(t *testing.T, c string) {
		p := &params{q: url.Values{"cursor": {c}}}
		if n := offsetCursor(p); p.err == nil && c != "" && offsetNext(n) != c {
			t.Fatalf("offset cursor %q accepted as %d, which encodes as %q", c, n, offsetNext(n))
		}
		p = &params{q: url.Values{"cursor": {c}}}
		if name, ok := decodeCursor(p, cursorName); ok && encodeCursor(cursorName, name) != c {
			t.Fatalf("name cursor %q accepted as %q, which encodes as %q", c, name, encodeCursor(cursorName, name))
		}
	})
}
