package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/keyspace"
)

// errBadRequest marks a client mistake: it is answered with 400 and never
// logged as a server failure.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// errTooLarge is a body over the configured limit (413).
var errTooLarge = errors.New("request body too large")

// readBody reads the whole body under the server's size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err == nil {
		// The body is in: what follows (a long-poll wait, say) must not be
		// cut off by the deadline, which would end the request's context.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: limit is %d bytes", errTooLarge, mbe.Limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w: send the body within %s", errBodyTimeout, s.cfg.BodyTimeout)
		}
		return nil, badRequest("reading request body: %v", err)
	}
	if !utf8.Valid(body) {
		return nil, badText("request body", body)
	}
	return body, nil
}

// decodeBody reads the body and decodes it with decode.
func decodeBody[T any](s *Server, w http.ResponseWriter, r *http.Request, decode func([]byte) (T, error)) (T, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(body)
}

// decodeItem decodes a body holding exactly one JSON value into what a
// queue stores: a JSON string becomes the string itself (docs/compat.md stores
// strings as they are), anything else stays the JSON text it was sent as.
func decodeItem(body []byte) (any, error) {
	raw, err := singleValue(body)
	if err != nil {
		return nil, err
	}
	return itemOf(raw)
}

// decodeObject is decodeItem restricted to a JSON object (the Python service's
// POST /detections takes a dict).
func decodeObject(body []byte) (json.RawMessage, error) {
	raw, err := singleValue(body)
	if err != nil {
		return nil, err
	}
	if raw[0] != '{' {
		return nil, badRequest("body must be a JSON object")
	}
	return raw, nil
}

// decodeBatch decodes a JSON array into one item per element.
func decodeBatch(body []byte) ([]any, error) {
	raw, err := singleValue(body)
	if err != nil {
		return nil, err
	}
	if raw[0] != '[' {
		return nil, badRequest("body must be a JSON array of items")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, badRequest("invalid JSON array: %v", err)
	}
	items := make([]any, len(elems))
	for i, e := range elems {
		it, err := itemOf(e)
		if err != nil {
			// err is a bad request already: say so once.
			return nil, badRequest("item %d: %s", i, strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
		}
		items[i] = it
	}
	return items, nil
}

// singleValue checks that body is one JSON value and returns it without
// surrounding whitespace.
func singleValue(body []byte) (json.RawMessage, error) {
	// One valid value, the common case, needs no decoder: json.Valid scans
	// without allocating, and around a valid value TrimSpace removes only
	// JSON's whitespace. The decoder below words the refusals.
	if json.Valid(body) {
		return bytes.TrimSpace(body), nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return nil, badRequest("request body is empty; want a JSON value")
		}
		return nil, badRequest("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("invalid JSON: more than one value in the body")
	}
	return raw, nil
}

func itemOf(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if loneSurrogate(raw) {
			return nil, badRequest("string holds an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF), which is not a Unicode character")
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("invalid JSON string: %v", err)
		}
		return s, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, badRequest("invalid JSON: %v", err)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// lockRequest is the body of POST /v1/locks/{name} and its refresh. Its
// durations are milliseconds or Go duration strings (msDuration).
type lockRequest struct {
	Token string     `json:"token"`
	TTL   msDuration `json:"ttl_ms"`
	Wait  msDuration `json:"wait_ms"`
}

// maxLockTTL bounds lock TTLs and waits (a day): beyond it a client has
// almost certainly sent seconds or microseconds by mistake.
const maxLockTTL = 24 * time.Hour

// decodeLockAcquire decodes {"ttl_ms", "wait_ms"}; ttl_ms is required,
// wait_ms at most maxWait (Config.MaxWait) as well as maxLockTTL.
func decodeLockAcquire(body []byte, maxWait time.Duration) (ttl, wait time.Duration, err error) {
	req, err := decodeLockRequest(body)
	if err != nil {
		return 0, 0, err
	}
	if req.Token != "" {
		return 0, 0, badRequest(`"token" is chosen by the server on acquire; do not send it`)
	}
	if ttl, err = req.TTL.field("ttl_ms", true, maxLockTTL); err != nil {
		return 0, 0, err
	}
	if wait, err = req.Wait.field("wait_ms", false, min(maxLockTTL, maxWait)); err != nil {
		return 0, 0, err
	}
	return ttl, wait, nil
}

// decodeLockRefresh decodes {"token", "ttl_ms"}; both are required.
func decodeLockRefresh(body []byte) (token string, ttl time.Duration, err error) {
	req, err := decodeLockRequest(body)
	if err != nil {
		return "", 0, err
	}
	if req.Token == "" {
		return "", 0, badRequest(`"token" is required`)
	}
	if req.Wait.set && (req.Wait.err != nil || req.Wait.d != 0) {
		return "", 0, badRequest(`"wait_ms" does not apply to a refresh`)
	}
	if ttl, err = req.TTL.field("ttl_ms", true, maxLockTTL); err != nil {
		return "", 0, err
	}
	return req.Token, ttl, nil
}

func decodeLockRequest(body []byte) (lockRequest, error) {
	var req lockRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, badRequest("request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest("invalid lock request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, badRequest("invalid JSON: more than one value in the body")
	}
	return req, nil
}

// wsCommand is a message a WebSocket client sends.
type wsCommand struct {
	Type     string   `json:"type"`
	Channels []string `json:"channels"`
}

// decodeWSCommand decodes and checks one client message.
func decodeWSCommand(data []byte) (wsCommand, error) {
	var cmd wsCommand
	if !utf8.Valid(data) {
		return cmd, badText("message", data)
	}
	if err := json.Unmarshal(data, &cmd); err != nil {
		return cmd, badRequest("invalid JSON message: %v", err)
	}
	switch cmd.Type {
	case "ping":
	case "subscribe", "unsubscribe":
		if len(cmd.Channels) == 0 {
			return cmd, badRequest("%s needs a non-empty \"channels\" list", cmd.Type)
		}
		for _, c := range cmd.Channels {
			if err := validateChannel(c); err != nil {
				return cmd, err
			}
		}
	default:
		return cmd, badRequest("unknown message type %q (want subscribe, unsubscribe or ping)", cmd.Type)
	}
	return cmd, nil
}

// parseChannels parses the channels query parameter ("a,b"), at most
// limit of them (Limits.MaxChannelsPerClient).
func parseChannels(v string, limit int) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > limit {
		return nil, badRequest("at most %d channels per client", limit)
	}
	for _, c := range parts {
		if err := validateChannel(c); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// validateChannel applies the library's channel rule (internal/keyspace).
// Commas cannot be passed in ?channels=, where they separate names.
func validateChannel(c string) error {
	return invalidName(keyspace.CheckChannel(c))
}

// params reads query parameters, remembering the first mistake.
type params struct {
	q   map[string][]string
	err error
}

func queryParams(r *http.Request) *params { return &params{q: r.URL.Query()} }

func (p *params) str(name string) string {
	if v := p.q[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (p *params) fail(name, v, want string) {
	if p.err == nil {
		p.err = badRequest("parameter %s=%q: want %s", name, v, want)
	}
}

// int returns the parameter as an integer in [lo, hi], or def when absent.
func (p *params) int(name string, def, lo, hi int64) int64 {
	v := p.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		p.fail(name, v, fmt.Sprintf("an integer from %d to %d", lo, hi))
		return def
	}
	return n
}
