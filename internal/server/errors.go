package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice"
)

// retryAfter is the Retry-After of a 503: long enough for a client not to
// hammer a server that is reconnecting, short enough to notice a quick
// recovery (a restart, a failover).
const retryAfter = 2 // seconds

// A server failure (5xx) is answered with a message chosen by its kind,
// never with the error's text: that names the engine's addresses, files
// and internal packages, which are the operator's business, not the
// client's. The text goes to the log, at most once per kind and interval.
type failure struct {
	kind   string // log key and "kind" attribute
	msg    string // the reply's message
	status int
}

// classify sorts a 5xx error (status from errorStatus) by kind.
func classify(status int, err error) failure {
	switch {
	case errors.Is(err, sluice.ErrUnavailable):
		return failure{"engine_unavailable", "engine unavailable; retry later", http.StatusServiceUnavailable}
	case errors.Is(err, context.DeadlineExceeded):
		return failure{"engine_timeout", "engine did not answer in time; retry later", http.StatusServiceUnavailable}
	case errors.Is(err, sluice.ErrClosed):
		return failure{"engine_closed", "engine closed (the service is stopping); retry later", http.StatusServiceUnavailable}
	case status == http.StatusServiceUnavailable:
		return failure{"unavailable", "service unavailable; retry later", status}
	}
	return failure{"internal", "internal server error; the service log has the details", status}
}

// serverFailure logs a 5xx error (rate-limited) and prepares its reply:
// it sets Retry-After on a 503 and returns the public message.
func (s *Server) serverFailure(w http.ResponseWriter, r *http.Request, status int, err error) string {
	f := classify(status, err)
	key := f.kind
	if f.kind == "internal" {
		// Unexpected failures differ from route to route; an outage
		// fails them all alike.
		key += " " + r.Pattern
	}
	s.logs.log(r.Context(), s.log, slog.LevelError, key, "request failed",
		slog.String("kind", f.kind), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", f.status), slog.Any("err", err))
	if f.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	return f.msg
}

// boundRead bounds the engine calls of a GET that only reads (all but the
// blocking gets, which bound each wait themselves) by WriteTimeout. A read
// would otherwise last as long as its client waits: the Redis client
// retries reads while the server is unreachable.
func (s *Server) boundRead(r *http.Request) (*http.Request, context.CancelFunc) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || strings.HasSuffix(r.Pattern, "/next") {
		return r, func() {}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout)
	return r.WithContext(ctx), cancel
}

// publicMessage is what a client may read of err: its text for a client
// mistake, the message of its kind for a server failure.
func publicMessage(err error) string {
	if status := errorStatus(err); status >= 500 && limitStatus(err) == 0 {
		return classify(status, err).msg
	}
	return clientText(err)
}

// clientText is err's text for an HTTP or WebSocket client: without the
// library's "sluice: " prefix, which names a Go package the client does
// not use. The rest names the operation and what it concerns once, as in
// `ack "1700000000000-0" on queue "jobs": lease not found or expired`.
func clientText(err error) string {
	return strings.TrimPrefix(err.Error(), "sluice: ")
}
