package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestDLQRemove: one entry is deleted by index and digest; an index that
// shifted since the listing deletes nothing (409).
func TestDLQRemove(t *testing.T) {
	engines(t, nil, func(t *testing.T, b *bundle) {
		b.expect(http.StatusOK, "PUT", "/v1/queues/jobs", map[string]any{"max_size": 1, "policy": "dlq"})
		for _, v := range []string{`"a"`, `"b"`, `"c"`, `"d"`} {
			b.expect(http.StatusOK, "POST", "/v1/queues/jobs/items", v)
		}
		list := func() []map[string]any {
			m := b.expect(http.StatusOK, "GET", "/v1/queues/jobs/dlq?kind=overflow", nil)
			var out []map[string]any
			for _, e := range m["items"].([]any) {
				out = append(out, e.(map[string]any))
			}
			return out
		}
		entries := list() // a, b, c
		if len(entries) != 3 {
			t.Fatalf("overflow DLQ holds %d entries, want 3", len(entries))
		}
		digest := func(e map[string]any) string { return e["digest"].(string) }
		for _, e := range entries {
			if len(digest(e)) != 64 {
				t.Fatalf("entry %v: digest %q, want 64 hex digits", e["index"], digest(e))
			}
		}
		m := b.expect(http.StatusOK, "DELETE", "/v1/queues/jobs/dlq/1?kind=overflow&digest="+digest(entries[1]), nil)
		if m["deleted"] != true {
			t.Errorf("delete: %v", m)
		}
		left := list()
		if len(left) != 2 || left[0]["item"] != "a" || left[1]["item"] != "c" {
			t.Fatalf("after deleting b: %v", left)
		}
		// c was at 2 when listed: it is at 1 now, and nothing is at 2.
		msg := b.expectError(http.StatusConflict, "DELETE", "/v1/queues/jobs/dlq/2?kind=overflow&digest="+digest(entries[2]), nil)
		if !strings.Contains(msg, "changed") {
			t.Errorf("409 says %q", msg)
		}
		// a's digest at c's index: not the entry there.
		b.expectError(http.StatusConflict, "DELETE", "/v1/queues/jobs/dlq/1?kind=overflow&digest="+digest(entries[0]), nil)
		if n := len(list()); n != 2 {
			t.Fatalf("refused deletes changed the DLQ: %d entries", n)
		}
		b.expect(http.StatusOK, "DELETE", "/v1/queues/jobs/dlq/1?kind=overflow&digest="+digest(entries[2]), nil)

		b.expectError(http.StatusBadRequest, "DELETE", "/v1/queues/jobs/dlq/0?digest="+digest(entries[0]), nil) // kind required
		b.expectError(http.StatusBadRequest, "DELETE", "/v1/queues/jobs/dlq/0?kind=overflow", nil)              // digest required
		b.expectError(http.StatusBadRequest, "DELETE", "/v1/queues/jobs/dlq/0?kind=overflow&digest=abc", nil)
		b.expectError(http.StatusBadRequest, "DELETE", "/v1/queues/jobs/dlq/-1?kind=overflow&digest="+digest(entries[0]), nil)
		b.expectError(http.StatusBadRequest, "DELETE", "/v1/queues/jobs/dlq/x?kind=overflow&digest="+digest(entries[0]), nil)
		b.expect(http.StatusOK, "DELETE", "/v1/queues/jobs/dlq/0?kind=overflow&digest="+strings.ToUpper(digest(entries[0])), nil)
		if n := len(list()); n != 0 {
			t.Errorf("DLQ holds %d entries, want 0", n)
		}
	})
}
