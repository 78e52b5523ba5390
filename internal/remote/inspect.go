package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
)

// The inspection routes of the service, for the CLI's queue and dlq
// commands pointed at --url. Answers are decoded into the library's types
// where they have the same JSON (Pressure, QueueStats, SettingSources);
// items stay raw JSON, since sluice.Item is read from an engine only.

// QueueInfo is GET /v1/queues/{name}: the queue's pressure, dead-letter
// lengths, settings and counters.
type QueueInfo struct {
	sluice.Pressure
	DLQLength    int64                 `json:"dlq_length"`
	FailedLength int64                 `json:"failed_length"`
	Settings     Settings              `json:"settings"`
	Declared     Settings              `json:"declared"`
	Sources      sluice.SettingSources `json:"sources"`
	Paused       bool                  `json:"paused"`
	Stats        sluice.QueueStats     `json:"stats"`
}

// Settings are a queue's settings as the service shows them; a zero field
// is not set (in Declared: not declared).
type Settings struct {
	MaxSize           int64   `json:"max_size,omitempty"`
	Policy            string  `json:"policy,omitempty"`
	PressureThreshold float64 `json:"pressure_threshold,omitempty"`
	LeaseMS           int64   `json:"lease_ms,omitempty"`
	MaxDeliveries     int     `json:"max_deliveries,omitempty"`
}

// QueueSettings converts s to the library's settings.
func (s Settings) QueueSettings() sluice.QueueSettings {
	return sluice.QueueSettings{
		MaxSize: s.MaxSize, Policy: sluice.Policy(s.Policy), PressureThreshold: s.PressureThreshold,
		Lease: time.Duration(s.LeaseMS) * time.Millisecond, MaxDeliveries: s.MaxDeliveries,
	}
}

// QueueInfo reads one queue.
func (c *Client) QueueInfo(ctx context.Context, name string) (QueueInfo, error) {
	var out QueueInfo
	_, err := c.do(ctx, http.MethodGet, inspectPath(name, ""), nil, nil, &out)
	return out, err
}

// QueueRow is one queue of a listing.
type QueueRow struct {
	sluice.Pressure
	Declared bool `json:"declared"`
	Paused   bool `json:"paused"`
}

// QueuePage is one page of GET /v1/queues.
type QueuePage struct {
	Queues []QueueRow `json:"queues"`
	// More is true when queues follow the last one listed.
	More bool `json:"-"`
}

// Queues lists up to limit queues in name order, after the queue named
// after ("" from the first).
func (c *Client) Queues(ctx context.Context, after string, limit int) (QueuePage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if after != "" {
		q.Set("cursor", encodeCursor(cursorName, after))
	}
	var out struct {
		QueuePage
		NextCursor string `json:"next_cursor"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/queues", q, nil, &out)
	out.More = out.NextCursor != ""
	return out.QueuePage, err
}

// Peek returns the items from index start to end, inclusive, as LRANGE.
func (c *Client) Peek(ctx context.Context, name string, start, end int64) ([]json.RawMessage, error) {
	q := url.Values{"start": {strconv.FormatInt(start, 10)}, "end": {strconv.FormatInt(end, 10)}}
	var out struct {
		Items []json.RawMessage `json:"items"`
	}
	_, err := c.do(ctx, http.MethodGet, inspectPath(name, "/items"), q, nil, &out)
	return out.Items, err
}

// ListedDelivery is one delivery of GET /v1/queues/{name}/deliveries.
type ListedDelivery struct {
	ID          string     `json:"id,omitempty"`
	Attempt     int        `json:"attempt"`
	State       string     `json:"state"`
	Deadline    time.Time  `json:"deadline"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	AgeSeconds  *float64   `json:"age_seconds,omitempty"`
	// Item is the item's JSON; when ItemTruncated, a JSON string holding
	// the start of that text.
	Item          json.RawMessage `json:"item"`
	ItemTruncated bool            `json:"item_truncated,omitempty"`
	ItemBytes     int             `json:"item_bytes"`
}

// DeliveryPage is one page of a queue's deliveries. NextCursor is the
// library's cursor (sluice.DeliveriesPage.NextCursor), "" on the last page.
type DeliveryPage struct {
	Deliveries []ListedDelivery
	NextCursor string
}

// Deliveries lists a queue's deliveries after cursor, a cursor the library
// or an earlier page returned ("" from the first).
func (c *Client) Deliveries(ctx context.Context, name string, limit int, cursor string) (DeliveryPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", encodeCursor(cursorDeliveries, cursor))
	}
	var out struct {
		Deliveries []ListedDelivery `json:"deliveries"`
		NextCursor string           `json:"next_cursor"`
	}
	if _, err := c.do(ctx, http.MethodGet, inspectPath(name, "/deliveries"), q, nil, &out); err != nil {
		return DeliveryPage{}, err
	}
	page := DeliveryPage{Deliveries: out.Deliveries}
	if out.NextCursor != "" {
		pos, err := decodeCursor(cursorDeliveries, out.NextCursor)
		if err != nil {
			return DeliveryPage{}, err
		}
		page.NextCursor = pos
	}
	return page, nil
}

// DLQList returns up to limit entries of a dead-letter queue from index
// start, each as the service sent it, and the DLQ's length.
func (c *Client) DLQList(ctx context.Context, name string, kind sluice.DLQKind, start, limit int64) ([]json.RawMessage, int64, error) {
	q := url.Values{"kind": {string(kind)}, "start": {strconv.FormatInt(start, 10)}, "limit": {strconv.FormatInt(limit, 10)}}
	var out struct {
		Items []json.RawMessage `json:"items"`
		Total int64             `json:"total"`
	}
	_, err := c.do(ctx, http.MethodGet, inspectPath(name, "/dlq"), q, nil, &out)
	return out.Items, out.Total, err
}

// DLQRequeue moves up to count entries (0: all) of a dead-letter queue
// back to its queue, under the queue's settings on the service.
func (c *Client) DLQRequeue(ctx context.Context, name string, kind sluice.DLQKind, count int64) (sluice.RequeueResult, error) {
	q := url.Values{"kind": {string(kind)}, "count": {strconv.FormatInt(count, 10)}}
	var out sluice.RequeueResult
	_, err := c.do(ctx, http.MethodPost, inspectPath(name, "/dlq/requeue"), q, nil, &out)
	return out, err
}

// DLQPurge empties a dead-letter queue and returns how many entries it held.
func (c *Client) DLQPurge(ctx context.Context, name string, kind sluice.DLQKind) (int64, error) {
	var out struct {
		Purged int64 `json:"purged"`
	}
	_, err := c.do(ctx, http.MethodDelete, inspectPath(name, "/dlq"), url.Values{"kind": {string(kind)}}, nil, &out)
	return out.Purged, err
}

// inspectPath is the path of a queue's route, unescaped: do escapes it.
// Queue names hold no '/'.
func inspectPath(name, rest string) string {
	return "/v1/queues/" + name + rest
}

// Listing cursors are opaque to most clients, but this package is built
// with the service: a cursor is base64url (unpadded) of a kind letter and
// a position. The CLI pages by queue name and by the library's deliveries
// cursor, so that its output is the same whether it reads the engine or
// the service; a change of the format fails the CLI's tests that compare
// the two.
const (
	cursorName       = 'n'
	cursorDeliveries = 'd'
)

func encodeCursor(kind byte, pos string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, pos...))
}

func decodeCursor(kind byte, cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 2 || b[0] != kind {
		return "", fmt.Errorf("the service answered a cursor of another format (%.40q): is it another version?", strings.TrimSpace(cursor))
	}
	return string(b[1:]), nil
}
