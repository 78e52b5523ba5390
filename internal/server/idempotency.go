package server

import (
	"net/http"

	"github.com/sluicehq/sluice"
)

// Idempotent adds: a producer that retries a POST after a timeout sends
// the same Idempotency-Key, and the retry is answered with the first
// add's result instead of adding again (see sluice.AddOptions).
const (
	// idempotencyKeyHeader names the add, 1-255 printable ASCII characters.
	idempotencyKeyHeader = "Idempotency-Key"
	// idempotencyReplayedHeader is "true" on the answer to a repeat: the
	// first add's result, nothing written now.
	idempotencyReplayedHeader = "Idempotency-Replayed"
)

// idempotency sets the add options for the request's Idempotency-Key,
// none without one. A repeated header or an empty key is a 400 here; a
// malformed key is one from the add, which checks it before writing
// anything.
func (s *Server) idempotency(r *http.Request, opts *sluice.AddOptions) error {
	vals := r.Header.Values(idempotencyKeyHeader)
	switch len(vals) {
	case 0:
		return nil
	case 1:
	default:
		return badRequest("header %s is given %d times; send it once", idempotencyKeyHeader, len(vals))
	}
	if vals[0] == "" {
		// An empty AddOptions.IdempotencyKey means no key; a client that
		// sends the header means one.
		return badRequest("header %s is empty; send 1-255 printable ASCII characters", idempotencyKeyHeader)
	}
	opts.IdempotencyKey, opts.IdempotencyWindow = vals[0], s.cfg.IdempotencyWindow
	return nil
}

// markReplay sets the replay header when res answers a repeat.
func markReplay(w http.ResponseWriter, res []sluice.AddResult) {
	if len(res) > 0 && res[0].Replayed {
		w.Header().Set(idempotencyReplayedHeader, "true")
	}
}
