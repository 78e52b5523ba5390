package server

import (
	"bytes"
	"encoding/base64"
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

// wsProtocol is the subprotocol the server selects when a client offers
// it. A browser that sends its API key as a subprotocol (wsKeyProtocol)
// offers this one too: the server must select one of the offered
// protocols, and never echoes the key's.
const wsProtocol = "sluice"

// wsKeyProtocol starts the subprotocol that carries an API key, encoded
// in unpadded base64url (a subprotocol is an HTTP token: the key's own
// characters may not be allowed in it).
const wsKeyProtocol = "sluice.key."

// subprotocolKey returns the API key a WebSocket handshake offers as a
// subprotocol, or "".
func subprotocolKey(r *http.Request) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), wsKeyProtocol)
			if !ok {
				continue
			}
			if key, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
				return string(key)
			}
		}
	}
	return ""
}
