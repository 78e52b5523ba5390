package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Webhook POSTs every job to URL: the item's JSON (a batch's: a JSON
// array of the items) with the headers Sluice-Queue, and
// Sluice-Delivery-Id and Sluice-Attempt for one item (Sluice-Batch-Size for
// a batch). A 2xx answer acks; any other answer nacks with its status and
// the end of its body as the reason; a failed request nacks with the
// error.
type Webhook struct {
	URL string
	// Client sends the requests (nil: a client of its own without an
	// overall timeout; Config.Timeout bounds a run).
	Client *http.Client
}

// Run sends job and reads the answer.
func (h *Webhook) Run(ctx context.Context, job Job) error {
	body, hdr := h.input(job)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	hc := h.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	tail := &tailBuffer{max: MaxReason}
	_, _ = io.Copy(tail, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	msg := "webhook answered " + resp.Status
	if t := strings.TrimSpace(tail.String()); t != "" {
		msg += ": " + t
	}
	return errors.New(msg)
}

func (h *Webhook) input(job Job) ([]byte, http.Header) {
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Sluice-Queue", job.Queue)
	if job.Batch {
		hdr.Set("Sluice-Batch-Size", strconv.Itoa(len(job.Deliveries)))
		return batchBody(job), hdr
	}
	d := job.Deliveries[0]
	hdr.Set("Sluice-Delivery-Id", d.ID)
	hdr.Set("Sluice-Attempt", strconv.Itoa(d.Attempt))
	return d.Item, hdr
}
