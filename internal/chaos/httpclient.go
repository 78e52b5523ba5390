package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluicehq/sluice"
)

// HTTPQueue speaks to one queue of the Sluice HTTP service. It is an
// Endpoint for consumers, and adds and reports for the test's producers.
type HTTPQueue struct {
	// Base is the service's root URL, like http://127.0.0.1:8000.
	Base  string
	Queue string
	// Lease and MaxDeliveries are sent with every receive and nack.
	Lease         time.Duration
	MaxDeliveries int
	Client        *http.Client
}

func (h *HTTPQueue) url(path string, q url.Values) string {
	u := h.Base + "/v1/queues/" + url.PathEscape(h.Queue) + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// do sends a request and returns the status and body. A non-nil error
// means the request's outcome on the server is unknown.
func (h *HTTPQueue) do(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("chaos: build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("chaos: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("chaos: %s %s: read reply: %w", method, u, err)
	}
	return resp.StatusCode, b, nil
}

type httpDelivery struct {
	ID      string          `json:"id"`
	Item    json.RawMessage `json:"item"`
	Attempt int             `json:"attempt"`
}

// Receive implements Endpoint.
func (h *HTTPQueue) Receive(ctx context.Context, timeout time.Duration) (Delivery, bool, error) {
	q := url.Values{
		"timeout":        {timeout.String()},
		"lease":          {h.Lease.String()},
		"max_deliveries": {strconv.Itoa(h.MaxDeliveries)},
		"count":          {"1"},
	}
	status, body, err := h.do(ctx, http.MethodPost, h.url("/receive", q), nil)
	switch {
	case err != nil:
		return Delivery{}, false, err
	case status == http.StatusNoContent:
		return Delivery{}, false, nil
	case status != http.StatusOK:
		return Delivery{}, false, fmt.Errorf("chaos: receive: status %d: %s", status, body)
	}
	var reply struct {
		Deliveries []httpDelivery `json:"deliveries"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return Delivery{}, false, fmt.Errorf("chaos: receive: decode %q: %w", body, err)
	}
	if len(reply.Deliveries) != 1 {
		return Delivery{}, false, fmt.Errorf("chaos: receive: asked for 1 delivery, got %d", len(reply.Deliveries))
	}
	d := reply.Deliveries[0]
	var job Job
	if err := json.Unmarshal(d.Item, &job); err != nil {
		return Delivery{}, false, fmt.Errorf("chaos: delivery %s is not a job: %w", d.ID, err)
	}
	return Delivery{ID: d.ID, Job: job.ID, Attempt: d.Attempt}, true, nil
}

// Ack implements Endpoint.
func (h *HTTPQueue) Ack(ctx context.Context, id string) error {
	return h.settle(ctx, h.url("/ack/"+url.PathEscape(id), nil))
}

// Nack implements Endpoint.
func (h *HTTPQueue) Nack(ctx context.Context, id, reason string) error {
	q := url.Values{"reason": {reason}, "max_deliveries": {strconv.Itoa(h.MaxDeliveries)}}
	return h.settle(ctx, h.url("/nack/"+url.PathEscape(id), q))
}

func (h *HTTPQueue) settle(ctx context.Context, u string) error {
	status, body, err := h.do(ctx, http.MethodPost, u, nil)
	switch {
	case err != nil:
		return err
	case status == http.StatusNoContent:
		return nil
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %s", sluice.ErrLeaseNotFound, body)
	}
	return fmt.Errorf("chaos: settle: status %d: %s", status, body)
}

// AddBatch adds jobs in one request. A non-nil error means their outcome
// is unknown.
func (h *HTTPQueue) AddBatch(ctx context.Context, jobs []Job) ([]sluice.AddResult, error) {
	body, err := json.Marshal(jobs)
	if err != nil {
		return nil, fmt.Errorf("chaos: encode batch: %w", err)
	}
	status, reply, err := h.do(ctx, http.MethodPost, h.url("/batch", nil), body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("chaos: add batch: status %d: %s", status, reply)
	}
	var res struct {
		Results []sluice.AddResult `json:"results"`
	}
	if err := json.Unmarshal(reply, &res); err != nil {
		return nil, fmt.Errorf("chaos: add batch: decode %q: %w", reply, err)
	}
	if len(res.Results) != len(jobs) {
		return nil, fmt.Errorf("chaos: add batch: %d results for %d jobs", len(res.Results), len(jobs))
	}
	return res.Results, nil
}

// Pressure reports the queue's length and in-flight count.
func (h *HTTPQueue) Pressure(ctx context.Context) (sluice.Pressure, error) {
	status, body, err := h.do(ctx, http.MethodGet, h.url("", nil), nil)
	if err != nil {
		return sluice.Pressure{}, err
	}
	if status != http.StatusOK {
		return sluice.Pressure{}, fmt.Errorf("chaos: queue info: status %d: %s", status, body)
	}
	var p sluice.Pressure
	if err := json.Unmarshal(body, &p); err != nil {
		return sluice.Pressure{}, fmt.Errorf("chaos: queue info: decode %q: %w", body, err)
	}
	return p, nil
}

// Live reports whether the service answers its liveness probe.
func (h *HTTPQueue) Live(ctx context.Context) bool {
	status, _, err := h.do(ctx, http.MethodGet, h.Base+"/health/live", nil)
	return err == nil && status == http.StatusOK
}
