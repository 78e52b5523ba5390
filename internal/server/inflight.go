package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
)

// GET /v1/queues/{name}/deliveries lists a queue's deliveries, a page at a
// time, for operators: what is in flight, for how long, on which attempt.

// cursorDeliveries is the cursor kind of the deliveries listing (see
// page.go); its position is the library's NextCursor.
const cursorDeliveries = 'd'

// maxListedItemBytes bounds each item in a deliveries listing: an item's
// JSON text longer than this is cut, and answered as a string.
const maxListedItemBytes = 1024

// deliveryJSON is one listed delivery.
type deliveryJSON struct {
	// ID is absent while the item waits for redelivery.
	ID      string `json:"id,omitempty"`
	Attempt int    `json:"attempt"`
	// State is "leased" or "waiting" (for redelivery).
	State    string    `json:"state"`
	Deadline time.Time `json:"deadline"`
	// DeliveredAt and AgeSeconds are absent when the engine does not know
	// when the delivery was handed out.
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	AgeSeconds  *float64   `json:"age_seconds,omitempty"`
	// Item is the item as JSON, or, when ItemTruncated, the first
	// maxListedItemBytes bytes of its JSON text as a string.
	Item          json.RawMessage `json:"item"`
	ItemTruncated bool            `json:"item_truncated,omitempty"`
	// ItemBytes is the length of the item's whole JSON text.
	ItemBytes int `json:"item_bytes"`
}

func listedDelivery(d sluice.DeliveryInfo) deliveryJSON {
	out := deliveryJSON{ID: d.ID, Attempt: d.Attempt, State: "leased", Deadline: d.Deadline.UTC()}
	if d.Waiting {
		out.State = "waiting"
	}
	if !d.DeliveredAt.IsZero() {
		at, age := d.DeliveredAt.UTC(), d.Age.Seconds()
		out.DeliveredAt, out.AgeSeconds = &at, &age
	}
	text := d.Item.JSON()
	out.ItemBytes = len(text)
	if len(text) <= maxListedItemBytes {
		out.Item = text
		return out
	}
	cut := maxListedItemBytes
	for cut > 0 && !utf8Start(text[cut]) {
		cut-- // never split a UTF-8 sequence
	}
	out.Item, _ = json.Marshal(string(text[:cut]))
	out.ItemTruncated = true
	return out
}

// utf8Start reports whether b begins a UTF-8 sequence (is no continuation
// byte).
func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// handleQueueDeliveries is GET /v1/queues/{name}/deliveries?limit=&cursor=.
func (s *Server) handleQueueDeliveries(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	limit := pageLimit(p)
	cursor, _ := decodeCursor(p, cursorDeliveries)
	if p.err != nil {
		return p.err
	}
	page, err := q.Deliveries(r.Context(), &sluice.ListDeliveriesOptions{Limit: int(limit), Cursor: cursor})
	if errors.Is(err, sluice.ErrInvalidArgument) {
		p.fail("cursor", clipParam(p.str("cursor")), "a next_cursor returned by this listing")
		return p.err
	}
	if err != nil {
		return err
	}
	out := make([]deliveryJSON, len(page.Deliveries))
	for i, d := range page.Deliveries {
		out[i] = listedDelivery(d)
	}
	var next string
	if page.NextCursor != "" {
		next = encodeCursor(cursorDeliveries, page.NextCursor)
	}
	_ = writeJSON(w, http.StatusOK, withCursor(map[string]any{"deliveries": out}, next))
	return nil
}
