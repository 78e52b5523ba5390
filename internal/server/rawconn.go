package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// net/http answers a request it cannot parse (a malformed percent-escape
// in the path, a bad header, an unsupported transfer encoding, ...) itself,
// before any handler runs: it writes a plain-text reply straight to the
// connection and closes it at once, so a client still sending a body gets
// a reset instead of the reply. Run wraps its listener so that such replies
// become JSON, like every other error, and such connections close
// gracefully.

// earlyErrorHeaders follows the status line of those replies and of no
// other: handlers' replies carry a Date header and sort Connection first.
const earlyErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// Draining the rest of a refused request is bounded in time and size; past
// either the connection is closed whatever the client is doing.
const (
	drainTimeout = time.Second
	drainLimit   = 4 << 20
)

type earlyErrorListener struct{ net.Listener }

func (l earlyErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &earlyErrorConn{Conn: c}, nil
}

// earlyErrorConn rewrites net/http's early error replies and, after one,
// closes by shutting down its side, then reading what the client still
// sends until it closes too (or the bounds run out): closing a socket with
// unread data makes the kernel reset the connection, and the reset can
// destroy the reply before the client reads it.
type earlyErrorConn struct {
	net.Conn
	rewrote atomic.Bool
	closing atomic.Bool
}

func (c *earlyErrorConn) Write(p []byte) (int, error) {
	if reply, ok := jsonEarlyError(p); ok {
		c.rewrote.Store(true)
		if _, err := c.Conn.Write(reply); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *earlyErrorConn) Close() error {
	// Only the first Close drains; another (http.Server.Close, say) closes
	// at once, which also ends a drain in progress.
	if c.rewrote.Load() && c.closing.CompareAndSwap(false, true) {
		c.drain()
	}
	return c.Conn.Close()
}

func (c *earlyErrorConn) drain() {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	if c.Conn.SetReadDeadline(time.Now().Add(drainTimeout)) != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, drainLimit))
}

// jsonEarlyError returns the JSON form of p when p is one of net/http's
// early error replies: "HTTP/1.1 <code> <text>" + earlyErrorHeaders + body,
// where the body says what was refused ("400 Bad Request: missing required
// Host header", "Unsupported transfer encoding") or only repeats the status
// ("400 Bad Request").
func jsonEarlyError(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	eol := bytes.IndexByte(p, '\r')
	if eol < 0 || !bytes.HasPrefix(p[eol:], []byte(earlyErrorHeaders)) {
		return nil, false
	}
	statusLine := string(p[len(proto):eol])
	if len(statusLine) < 3 {
		return nil, false
	}
	code, err := strconv.Atoi(statusLine[:3])
	if err != nil || code < 400 {
		return nil, false
	}
	text := string(p[eol+len(earlyErrorHeaders):])
	if text != statusLine && !(code == http.StatusNotImplemented && text == "Unsupported transfer encoding") {
		// Not one of net/http's replies, which end with their status
		// line (or say the one thing a 501 refuses), in one write.
		return nil, false
	}
	text = strings.TrimPrefix(text, statusLine[:3]+" ")
	msg := "request refused: " + text
	if code == http.StatusBadRequest {
		msg = "malformed request: " + strings.TrimPrefix(text, "Bad Request: ")
	}
	if code == http.StatusBadRequest && text == http.StatusText(code) {
		// The parser did not say what it refused; this is the likeliest.
		msg = "malformed request: the request line or a header could not be parsed (a literal % in the path must be sent as %25)"
	}
	body, _ := json.Marshal(errorBody{Error: msg})
	body = append(body, '\n')
	var b bytes.Buffer
	b.WriteString(proto + statusLine[:3] + " " + http.StatusText(code) + "\r\n")
	b.WriteString("Content-Type: application/json\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(body)
	return b.Bytes(), true
}
