package server

import (
	"net/http"

	"github.com/sluicehq/sluice"
)

// Idempotent adds: a producer that retries a POST after a timeout sends
// the same Idempotency-Key, and the retry is answered with the first
// add's result instead of adding again (see sluice.WithIdempotencyKey).
const (
	// idempotencyKeyHeader names the add, 1-255 printable ASCII characters.
	idempotencyKeyHeader = "Idempotency-Key"
	// idempotencyReplayedHeader is "true" on the answer to a repeat: the
	// first add's result, nothing written now.
	idempotencyReplayedHeader = "Idempotency-Replayed"
)

// idempotency returns the add options for the request's Idempotency-Key,
// none without one. A repeated header is a 400 here; a malformed key is
// one from the add, which checks it before writing anything.
func (s *Server) idempotency(r *http.Request) ([]sluice.AddOption, error) {
	vals := r.Header.Values(idempotencyKeyHeader)
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, badRequest("header %s is given %d times; send it once", idempotencyKeyHeader, len(vals))
	}
	return []sluice.AddOption{sluice.WithIdempotencyKey(vals[0]), sluice.WithIdempotencyWindow(s.cfg.IdempotencyWindow)}, nil
}

// markReplay sets the replay header when res answers a repeat.
func markReplay(w http.ResponseWriter, res []sluice.AddResult) {
	if len(res) > 0 && res[0].Replayed {
		w.Header().Set(idempotencyReplayedHeader, "true")
	}
}
