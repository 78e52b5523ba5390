// Package remote is a client of a running Sluice service's HTTP API, for
// the CLI: a worker or an inspection command pointed at --url talks to the
// service instead of the engine, which is the only way to reach an
// embedded engine that a service holds open, and lets a worker run on a
// machine that cannot reach Redis.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxErrorBody bounds how much of an error response is read: a proxy's
// HTML error page should not fill memory or the terminal.
const maxErrorBody = 4 << 10

// Client talks to one service. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	apiKey string
	hc     *http.Client
}

// New returns a client of the service at baseURL (http or https, with an
// optional path prefix). apiKey, when not empty, is sent on every request;
// hc nil means a client without an overall timeout, since long-polling
// requests carry their own.
func New(baseURL, apiKey string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("service URL %q: want http://host:port or https://host:port", Redact(baseURL))
	}
	if u.User != nil {
		return nil, fmt.Errorf("service URL %q: pass the API key with --api-key, not in the URL", Redact(baseURL))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, apiKey: apiKey, hc: hc}, nil
}

// Redact drops a URL's user information, so that an error never shows a
// password someone put there.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return raw
	}
	u.User = url.User("xxxxx")
	return u.String()
}

// StatusError is a non-2xx answer of the service: its status and the text
// of its {"error": ...} body.
type StatusError struct {
	Status  int
	Message string
	// RetryAfter is the service's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("service answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("service answered %d: %s", e.Status, e.Message)
}

// IsStatus reports whether err is a StatusError with the given status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// do sends one request: path is below the base URL (it may carry a query),
// in is encoded as the JSON body when not nil, and a 2xx answer's body is
// decoded into out when out is not nil. It returns the status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error repeats the URL; the caller names the service.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	se := &StatusError{Status: resp.StatusCode}
	var eb struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		se.Message = eb.Error
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}
