package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluicehq/sluice"
)

// Delivery is an item handed out under a lease by POST .../receive.
type Delivery struct {
	ID string `json:"id"`
	// Item is the item's JSON (a plain string item arrives as a JSON
	// string).
	Item    json.RawMessage `json:"item"`
	Attempt int             `json:"attempt"`
}

// ReceiveParams tune one Receive; zero fields are left to the service
// (the queue's declared lease and max deliveries, else its defaults).
type ReceiveParams struct {
	// Count is how many items at most (default 1).
	Count int
	// Wait is how long the service waits for the first item (0: not at
	// all). The service caps it (60 s by default).
	Wait          time.Duration
	Lease         time.Duration
	MaxDeliveries int
}

// waitSlack is added to a long poll's own wait for the request's deadline:
// the service answers 204 when its wait is over, and a request that hangs
// well past that is a dead connection.
const waitSlack = 30 * time.Second

// Receive asks for up to p.Count deliveries of queue. No delivery (the
// service's 204) is a nil slice and a nil error.
func (c *Client) Receive(ctx context.Context, queue string, p ReceiveParams) ([]Delivery, error) {
	q := url.Values{}
	if p.Count > 0 {
		q.Set("count", strconv.Itoa(p.Count))
	}
	if p.Wait > 0 {
		q.Set("timeout", durationParam(p.Wait))
	}
	if p.Lease > 0 {
		q.Set("lease", durationParam(p.Lease))
	}
	if p.MaxDeliveries > 0 {
		q.Set("max_deliveries", strconv.Itoa(p.MaxDeliveries))
	}
	ctx, cancel := context.WithTimeout(ctx, p.Wait+waitSlack)
	defer cancel()
	var out struct {
		Deliveries []Delivery `json:"deliveries"`
	}
	if _, err := c.do(ctx, http.MethodPost, queuePath(queue, "receive"), q, nil, &out); err != nil {
		return nil, fmt.Errorf("receive from queue %q: %w", queue, err)
	}
	return out.Deliveries, nil
}

// Ack settles one delivery. An unknown or expired lease is
// sluice.ErrLeaseNotFound.
func (c *Client) Ack(ctx context.Context, queue, id string) error {
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "ack", id), nil, nil, nil)
	return settleError("ack", queue, id, err)
}

// AckBatch settles several deliveries in one request; acked[i] tells
// whether ids[i] still held its lease. A service without the batch route
// (older than this client) gets one request per id instead.
func (c *Client) AckBatch(ctx context.Context, queue string, ids []string) (acked []bool, err error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out struct {
		Results []struct {
			ID    string `json:"id"`
			Acked bool   `json:"acked"`
		} `json:"results"`
	}
	_, err = c.do(ctx, http.MethodPost, queuePath(queue, "ack"), nil, map[string][]string{"ids": ids}, &out)
	if IsStatus(err, http.StatusNotFound) || IsStatus(err, http.StatusMethodNotAllowed) {
		return c.ackOneByOne(ctx, queue, ids)
	}
	if err != nil {
		return nil, fmt.Errorf("ack %d deliveries on queue %q: %w", len(ids), queue, err)
	}
	byID := make(map[string]bool, len(out.Results))
	for _, r := range out.Results {
		byID[r.ID] = r.Acked
	}
	acked = make([]bool, len(ids))
	for i, id := range ids {
		acked[i] = byID[id]
	}
	return acked, nil
}

func (c *Client) ackOneByOne(ctx context.Context, queue string, ids []string) ([]bool, error) {
	acked := make([]bool, len(ids))
	for i, id := range ids {
		err := c.Ack(ctx, queue, id)
		switch {
		case err == nil:
			acked[i] = true
		case !errors.Is(err, sluice.ErrLeaseNotFound):
			return acked, err
		}
	}
	return acked, nil
}

// NackParams tune one Nack; zero fields are the service's defaults (no
// delay, reason "nacked", the queue's max deliveries).
type NackParams struct {
	Delay         time.Duration
	Reason        string
	MaxDeliveries int
}

// Nack outcomes (NackResult.Outcome).
const (
	OutcomeRedelivered  = "redelivered"
	OutcomeDeadLettered = "dead_lettered"
)

// NackResult is what the service says became of a nacked item.
type NackResult struct {
	// Outcome is OutcomeRedelivered or OutcomeDeadLettered; "" when the
	// service does not say (a version that answered nack with 204).
	Outcome string `json:"outcome"`
	// RedeliverAt is when a redelivered item is deliverable again.
	RedeliverAt time.Time `json:"redeliver_at"`
}

// Nack ends a delivery unsuccessfully. An unknown or expired lease is
// sluice.ErrLeaseNotFound.
func (c *Client) Nack(ctx context.Context, queue, id string, p NackParams) (NackResult, error) {
	q := url.Values{}
	if p.Delay > 0 {
		q.Set("delay", durationParam(p.Delay))
	}
	if p.Reason != "" {
		q.Set("reason", p.Reason)
	}
	if p.MaxDeliveries > 0 {
		q.Set("max_deliveries", strconv.Itoa(p.MaxDeliveries))
	}
	var res NackResult
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "nack", id), q, nil, &res)
	return res, settleError("nack", queue, id, err)
}

// Extend renews a delivery's lease for lease from now (0: the queue's
// lease) and returns the new deadline (zero if the service did not say).
// An unknown or expired lease is sluice.ErrLeaseNotFound.
func (c *Client) Extend(ctx context.Context, queue, id string, lease time.Duration) (time.Time, error) {
	q := url.Values{}
	if lease > 0 {
		q.Set("lease", durationParam(lease))
	}
	var out struct {
		Deadline time.Time `json:"deadline"`
	}
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "extend", id), q, nil, &out)
	return out.Deadline, settleError("extend", queue, id, err)
}

// Release hands a delivery back unhandled, without counting it against
// the item's max deliveries. An unknown or expired lease is
// sluice.ErrLeaseNotFound.
func (c *Client) Release(ctx context.Context, queue, id string) error {
	_, err := c.do(ctx, http.MethodPost, queuePath(queue, "release", id), nil, nil, nil)
	return settleError("release", queue, id, err)
}

// DeliverySettings are the lease and max deliveries a queue hands items
// out with, as GET /v1/queues/{name} reports them.
type DeliverySettings struct {
	// Lease and MaxDeliveries are the effective values.
	Lease         time.Duration
	MaxDeliveries int
	// DeclaredMaxDeliveries is the declared max deliveries, 0 when the
	// queue declares none.
	DeclaredMaxDeliveries int
}

// QueueDeliverySettings reads queue's effective lease and max deliveries.
func (c *Client) QueueDeliverySettings(ctx context.Context, queue string) (DeliverySettings, error) {
	type settings struct {
		LeaseMS       int64 `json:"lease_ms"`
		MaxDeliveries int   `json:"max_deliveries"`
	}
	var out struct {
		Settings settings `json:"settings"`
		Declared settings `json:"declared"`
	}
	if _, err := c.do(ctx, http.MethodGet, queuePath(queue), nil, nil, &out); err != nil {
		return DeliverySettings{}, fmt.Errorf("settings of queue %q: %w", queue, err)
	}
	return DeliverySettings{
		Lease:                 time.Duration(out.Settings.LeaseMS) * time.Millisecond,
		MaxDeliveries:         out.Settings.MaxDeliveries,
		DeclaredMaxDeliveries: out.Declared.MaxDeliveries,
	}, nil
}

// settleError maps a settle route's 404 to sluice.ErrLeaseNotFound.
func settleError(op, queue, id string, err error) error {
	switch {
	case err == nil:
		return nil
	case IsStatus(err, http.StatusNotFound):
		return fmt.Errorf("%s %q on queue %q: %w", op, id, queue, sluice.ErrLeaseNotFound)
	}
	return fmt.Errorf("%s %q on queue %q: %w", op, id, queue, err)
}

// queuePath is /v1/queues/{queue}[/elem...], each element escaped.
func queuePath(queue string, elems ...string) string {
	p := "/v1/queues/" + url.PathEscape(queue)
	for _, e := range elems {
		p += "/" + url.PathEscape(e)
	}
	return p
}

// durationParam spells d as the service's duration parameters accept it:
// milliseconds, which a Go duration string ("1m30s") is not guaranteed to
// be read as on every route.
func durationParam(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}
