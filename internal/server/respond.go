package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice"
)

// errorBody is every error reply.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v with status. It returns the write error, which
// callers that hand over an item use to decide whether it was delivered.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, ok := v.(preEncoded)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			b, _ = json.Marshal(errorBody{Error: "encoding the reply failed: " + err.Error()})
			status = http.StatusInternalServerError
		}
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// With the length known, the flush below sends the whole reply in one
	// write and the server has nothing left to send when the handler ends
	// (without it the reply would be chunked: a second write per request).
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

// preEncoded is a reply body already encoded, for the hot routes whose
// answer is a fixed shape (the Python service's POST /detections).
type preEncoded []byte

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func writeError(w http.ResponseWriter, status int, msg string) {
	_ = writeJSON(w, status, errorBody{Error: msg})
}

// errorStatus maps an error to its HTTP status. Client mistakes are 4xx;
// only engine trouble is 5xx.
func errorStatus(err error) int {
	if st := limitStatus(err); st != 0 {
		return st
	}
	switch {
	case errors.Is(err, errBadRequest), errors.Is(err, sluice.ErrInvalidName),
		errors.Is(err, sluice.ErrInvalidArgument), errors.Is(err, sluice.ErrNotJSON):
		return http.StatusBadRequest
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, sluice.ErrLeaseNotFound):
		return http.StatusNotFound
	case errors.Is(err, sluice.ErrLockNotHeld), errors.Is(err, sluice.ErrWrongType),
		errors.Is(err, sluice.ErrSettingsConflict), errors.Is(err, sluice.ErrQueueInFlight):
		return http.StatusConflict
	case errors.Is(err, sluice.ErrQueueFull):
		return http.StatusTooManyRequests
	case errors.Is(err, sluice.ErrIdempotencyConflict):
		return http.StatusUnprocessableEntity
	case errors.Is(err, sluice.ErrClosed), errors.Is(err, context.DeadlineExceeded), errors.Is(err, sluice.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers err; 5xx ones are logged, since they are the server's,
// and answered with a message of their kind (see serverFailure).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := errorStatus(err)
	msg := clientText(err)
	if status >= 500 && limitStatus(err) == 0 {
		// A configured limit's refusal is the client's to read as it is.
		msg = s.serverFailure(w, r, status, err)
	}
	writeError(w, status, msg)
}

// write runs an engine write detached from the request: a client hanging
// up cannot cancel it halfway, and the outcome stands whatever happens to
// the reply. It is bounded by WriteTimeout and by nothing else.
func (s *Server) write(r *http.Request, op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.WriteTimeout)
	defer cancel()
	err := op(ctx)
	if s.hooks.wrote != nil {
		s.hooks.wrote(r)
	}
	return err
}

// reply writes the outcome of an engine write. When the client is gone,
// or the write of the reply fails, the outcome happened all the same: it
// is logged and counted, never silently lost.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any, attrs ...any) {
	gone := r.Context().Err() != nil
	var err error
	if !gone {
		err = writeJSON(w, status, v)
	}
	if gone || err != nil {
		s.undelivered(r, outcomeName(status), append(attrs, "status", status, "reply_err", err)...)
	}
}

// replyErr is reply for a failed engine write.
func (s *Server) replyErr(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		s.undelivered(r, "error", "err", err)
		return
	}
	s.fail(w, r, err)
}

// handlerFunc is a handler that returns its failure instead of answering
// it; handle answers it in one place.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts h to net/http. The failure of an engine write (marked by
// afterWrite) goes to replyErr, since its client may have gone; any other
// (bad input, a failed read) goes to fail.
func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, cancel := s.boundRead(r)
		defer cancel()
		err := h(w, r)
		if err == nil {
			return
		}
		var wf writeFailure
		if errors.As(err, &wf) {
			s.replyErr(w, r, wf.err)
			return
		}
		s.fail(w, r, err)
	}
}

// writeFailure marks the error of an engine write for handle.
type writeFailure struct{ err error }

func (f writeFailure) Error() string { return f.err.Error() }
func (f writeFailure) Unwrap() error { return f.err }

// afterWrite marks err, if any, as the failure of an engine write.
func afterWrite(err error) error {
	if err == nil {
		return nil
	}
	return writeFailure{err}
}

// noContent answers 204 to a write that succeeded, or records that its
// client left before hearing so.
func (s *Server) noContent(w http.ResponseWriter, r *http.Request, attrs ...any) {
	if r.Context().Err() != nil {
		s.undelivered(r, "ok", attrs...)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) undelivered(r *http.Request, outcome string, attrs ...any) {
	s.metrics.undelivered.WithLabelValues(r.Pattern, outcome).Inc()
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "client gone before the reply; the outcome stands",
		slog.String("route", r.Pattern), slog.String("outcome", outcome), slog.Group("detail", attrs...))
}

func outcomeName(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status == http.StatusTooManyRequests:
		return "rejected"
	case status == http.StatusConflict:
		return "conflict"
	}
	return "error"
}

// waitStep is how long a blocking call may wait in one engine call: the
// rest of the budget, at most PollInterval.
func (s *Server) waitStep(deadline time.Time) time.Duration {
	return min(time.Until(deadline), s.cfg.PollInterval)
}

// waitEnded reports whether a blocking call must stop waiting: its client
// left, or the server is shutting down.
func (s *Server) waitEnded(r *http.Request) bool {
	if r.Context().Err() != nil {
		return true
	}
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}
