package server

import (
	"net/http"
	"testing"
)

// Error bodies say what went wrong without the library's Go package prefix
// and name what they concern once; the status codes are the documented
// ones.
func TestErrorBodies(t *testing.T) {
	t.Parallel()
	engines(t, nil, func(t *testing.T, b *bundle) {
		cases := []struct {
			status       int
			method, path string
			body         any
			want         string
		}{
			{http.StatusNotFound, "POST", "/v1/queues/q/ack/9-9", nil,
				`ack "9-9" on queue "q": lease not found or expired`},
			{http.StatusNotFound, "POST", "/v1/queues/q/nack/9-9", nil,
				`nack "9-9" on queue "q": lease not found or expired`},
			{http.StatusConflict, "DELETE", "/v1/locks/L?token=other", nil, lockNotHeld},
			{http.StatusConflict, "POST", "/v1/locks/L/refresh", `{"token": "other", "ttl_ms": 1000}`, lockNotHeld},
			{http.StatusNotFound, "GET", "/v1/cache/missing", nil, "cache key not found"},
			{http.StatusBadRequest, "POST", "/v1/queues/a%20b/items", `1`,
				`bad request: queue name "a b" has ' ' at byte 1; allowed: letters, digits and _ . : - { }`},
			{http.StatusBadRequest, "POST", "/v1/queues/q/batch", `[1, "\ud800"]`,
				`bad request: item 1: string holds an unpaired UTF-16 surrogate escape (\uD800-\uDFFF), which is not a Unicode character`},
			{http.StatusBadRequest, "POST", "/v1/queues/q/items", "\"a\xffb\"",
				`bad request: request body is not valid UTF-8 text (first bad byte at offset 2)`},
		}
		for _, c := range cases {
			if got := b.expectError(c.status, c.method, c.path, c.body); got != c.want {
				t.Errorf("%s %s: error %q\nwant %q", c.method, c.path, got, c.want)
			}
		}
		b.expect(http.StatusOK, "POST", "/v1/queues/idem/items", `1`, "Idempotency-Key", "k1")
		got := b.expectError(http.StatusUnprocessableEntity, "POST", "/v1/queues/idem/items", `2`, "Idempotency-Key", "k1")
		if want := `add to queue "idem": idempotency key reused with other items (key "k1")`; got != want {
			t.Errorf("idempotency conflict: error %q\nwant %q", got, want)
		}
	})
}
