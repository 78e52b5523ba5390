package server

import (
	"bytes"
	"net/http"
	"strings"
)

// checkUpgrade answers, as JSON, a request to a WebSocket route that is
// not a WebSocket handshake (426 with the Upgrade header, as RFC 9110
// asks), and reports whether the request may go on to the handshake.
// The WebSocket library would answer in plain text.
func checkUpgrade(w http.ResponseWriter, r *http.Request) bool {
	if headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket") {
		return true
	}
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Upgrade", "websocket")
	writeError(w, http.StatusUpgradeRequired, "this route is a WebSocket endpoint: send a WebSocket handshake (Connection: Upgrade, Upgrade: websocket)")
	return false
}

// headerHasToken reports whether a comma-separated header holds token,
// ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// plainErrorWriter turns an error reply written with http.Error (by the
// WebSocket library, when it refuses a handshake) into JSON carrying the
// same text. It holds the reply until finish; a successful handshake
// (101, then the hijack) passes straight through.
type plainErrorWriter struct {
	http.ResponseWriter
	status int
	text   bytes.Buffer
}

func (w *plainErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *plainErrorWriter) WriteHeader(code int) {
	if code < 400 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.status = code
}

func (w *plainErrorWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		return w.ResponseWriter.Write(b)
	}
	return w.text.Write(b)
}

// finish writes the held error reply, if any, as JSON.
func (w *plainErrorWriter) finish() {
	if w.status == 0 {
		return
	}
	h := w.Header()
	h.Del("X-Content-Type-Options")
	writeError(w.ResponseWriter, w.status, strings.TrimSpace(w.text.String()))
}
