package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// The engine's counters of each queue, exported by queueCollector at
// scrape time: every replica reads the same numbers, so a sum over
// replicas counts each event once per replica (aggregate with max).
var (
	queueStatsDescs = []struct {
		desc  *prometheus.Desc
		value func(s sluice.QueueStats) int64
	}{
		{queueCounterDesc("added", "Items accepted by adds."), func(s sluice.QueueStats) int64 { return s.Added }},
		{queueCounterDesc("rejected", "Items rejected because their queue was full (reject policy)."), func(s sluice.QueueStats) int64 { return s.Rejected }},
		{queueCounterDesc("moved_to_dlq", "Items moved to the overflow dead-letter queue to make room (dlq policy)."), func(s sluice.QueueStats) int64 { return s.MovedToDLQ }},
		{queueCounterDesc("dropped", "Items dropped by the drop_oldest policy."), func(s sluice.QueueStats) int64 { return s.Dropped }},
		{queueCounterDesc("delivered", "Items handed out: gets, and deliveries under a lease, redeliveries included."), func(s sluice.QueueStats) int64 { return s.Delivered }},
		{queueCounterDesc("acked", "Deliveries acknowledged."), func(s sluice.QueueStats) int64 { return s.Acked }},
		{queueCounterDesc("nacked", "Deliveries negatively acknowledged."), func(s sluice.QueueStats) int64 { return s.Nacked }},
		{queueCounterDesc("dead_lettered", "Items moved to the failed dead-letter queue, their deliveries used up."), func(s sluice.QueueStats) int64 { return s.DeadLettered }},
		{queueCounterDesc("redelivered", "Redeliveries of items whose lease expired."), func(s sluice.QueueStats) int64 { return s.Redelivered }},
	}
	queueDLQDesc    = prometheus.NewDesc("sluice_queue_dlq_length", "Entries in the queue's dead-letter queue, by kind (overflow, failed).", []string{"queue", "dlq"}, nil)
	queueOldestDesc = prometheus.NewDesc("sluice_queue_oldest_item_age_seconds",
		"A lower bound of the oldest waiting item's age: how long the item at the head had been there at the maintainer's last sweep (0: empty or not swept).",
		[]string{"queue"}, nil)
)

func queueCounterDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("sluice_queue_"+name+"_total", help+" Counted by the engine for every client.", []string{"queue"}, nil)
}

// collectStats exports one queue's counters and DLQ lengths.
func (qc *queueCollector) collectStats(ctx context.Context, ch chan<- prometheus.Metric, name string) {
	s, err := qc.c.Queue(name).Stats(ctx)
	if err != nil {
		qc.log.Warn("metrics: reading queue stats failed", "queue", name, "err", err)
		return
	}
	for _, d := range queueStatsDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.value(s)), name)
	}
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, s.OldestAgeSeconds, name)
	ch <- prometheus.MustNewConstMetric(queueDLQDesc, prometheus.GaugeValue, float64(s.OverflowDLQ), name, "overflow")
	ch <- prometheus.MustNewConstMetric(queueDLQDesc, prometheus.GaugeValue, float64(s.FailedDLQ), name, "failed")
}
