package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
)

// handleQueueReceive is POST /v1/queues/{name}/receive?timeout=&lease=&count=
// (and max_deliveries=): leased, acknowledged delivery.
func (s *Server) handleQueueReceive(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	timeout := p.duration("timeout", 0, 0, s.cfg.MaxWait)
	opts := &sluice.ReceiveOptions{
		// Absent: the queue's declared lease and max deliveries, else the
		// client's (30 s and 5 by default).
		Lease:         p.duration("lease", 0, time.Millisecond, maxLockTTL),
		MaxDeliveries: int(p.int("max_deliveries", 0, 1, 1000)),
	}
	count := int(p.int("count", 1, 1, maxBatchDeliveries))
	if p.err != nil {
		return p.err
	}

	var ds []*sluice.Delivery
	found, err := s.poll(r, timeout, func(ctx context.Context, step time.Duration) (_ bool, err error) {
		ds, err = q.ReceiveBatch(ctx, count, step, opts)
		return len(ds) > 0, err
	})
	switch {
	case err != nil:
		return afterWrite(err)
	case found:
		// Leased items the client never sees come back when their lease
		// expires: nothing is lost, so only log and count.
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.ID
		}
		s.reply(w, r, http.StatusOK, map[string]any{"deliveries": ds}, "queue", q.Name(), "leased_ids", ids)
	case r.Context().Err() == nil:
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// handleQueueAck is POST /v1/queues/{name}/ack/{id}.
func (s *Server) handleQueueAck(w http.ResponseWriter, r *http.Request) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	err = s.write(r, func(ctx context.Context) error { return q.Ack(ctx, id) })
	return s.settled(w, r, q, id, err)
}

// handleQueueNack is POST /v1/queues/{name}/nack/{id}?delay=&reason=&max_deliveries=.
// It answers what became of the item; redeliver_at is by the server's
// clock (the engine's may differ a little).
func (s *Server) handleQueueNack(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	delay := p.duration("delay", 0, 0, maxLockTTL)
	// Absent: the queue's declared max deliveries, else the client's.
	maxDeliveries := int(p.int("max_deliveries", 0, 1, 1000))
	reason := p.str("reason")
	if len(reason) > 1024 {
		p.fail("reason", reason[:32]+"...", "at most 1024 bytes")
	}
	if p.err != nil {
		return p.err
	}
	id := r.PathValue("id")
	var deadLettered bool
	err = s.write(r, func(ctx context.Context) (err error) {
		deadLettered, err = q.Nack(ctx, id, &sluice.NackOptions{Delay: delay, Reason: reason, MaxDeliveries: maxDeliveries})
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	res := nackResult{ID: id, Outcome: "dead_lettered"}
	if !deadLettered {
		res.Outcome = "redelivered"
		res.RedeliverAt = time.Now().Add(delay).UTC().Format(time.RFC3339Nano)
	}
	s.reply(w, r, http.StatusOK, res, "queue", q.Name(), "id", id)
	return nil
}

// nackResult is the answer of a nack.
type nackResult struct {
	ID string `json:"id"`
	// Outcome is "redelivered" or "dead_lettered".
	Outcome string `json:"outcome"`
	// RedeliverAt is set when redelivered.
	RedeliverAt string `json:"redeliver_at,omitempty"`
}

// handleQueueExtend is POST /v1/queues/{name}/extend/{id}?lease=: the
// lease runs for lease from now (by the server's clock, which the answer's
// deadline is read from).
func (s *Server) handleQueueExtend(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	lease := p.duration("lease", 0, time.Millisecond, maxLockTTL)
	if p.err != nil {
		return p.err
	}
	if lease == 0 {
		// As receive: the queue's declared lease, else the client's.
		es, err := q.Settings(r.Context())
		if err != nil {
			return err
		}
		lease = es.Settings.Lease
	}
	id := r.PathValue("id")
	var at time.Time
	err = s.write(r, func(ctx context.Context) error {
		at = time.Now()
		return q.Extend(ctx, id, lease)
	})
	if err != nil {
		return afterWrite(err)
	}
	deadline := at.Add(lease).UTC().Format(time.RFC3339Nano)
	s.reply(w, r, http.StatusOK, map[string]string{"id": id, "deadline": deadline}, "queue", q.Name(), "id", id)
	return nil
}

// handleQueueRelease is POST /v1/queues/{name}/release/{id}: the item is
// handed back unhandled, without counting the delivery.
func (s *Server) handleQueueRelease(w http.ResponseWriter, r *http.Request) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	err = s.write(r, func(ctx context.Context) error { return q.Release(ctx, id) })
	return s.settled(w, r, q, id, err)
}

// maxAckBatch bounds the ids of one POST .../ack.
const maxAckBatch = 1000

// handleQueueAckBatch is POST /v1/queues/{name}/ack with {"ids":[...]}:
// the deliveries are settled in one atomic step; each result says whether
// its id still held its lease.
func (s *Server) handleQueueAckBatch(w http.ResponseWriter, r *http.Request) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	ids, err := decodeBody(s, w, r, decodeAckBatch)
	if err != nil {
		return err
	}
	var acked []bool
	err = s.write(r, func(ctx context.Context) (err error) {
		acked, err = q.AckBatch(ctx, ids...)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	res := ackBatchResult{Results: make([]ackResult, len(ids))}
	for i, id := range ids {
		ok := i < len(acked) && acked[i]
		res.Results[i] = ackResult{ID: id, Acked: ok}
		if ok {
			res.Acked++
		}
	}
	s.reply(w, r, http.StatusOK, res, "queue", q.Name(), "ids", ids)
	return nil
}

type ackBatchResult struct {
	Acked   int         `json:"acked"`
	Results []ackResult `json:"results"`
}

type ackResult struct {
	ID    string `json:"id"`
	Acked bool   `json:"acked"`
}

// decodeAckBatch reads {"ids":[...]}: 1 to maxAckBatch ids, each not
// empty; any other field is refused.
func decodeAckBatch(body []byte) ([]string, error) {
	raw, err := singleValue(body)
	if err != nil {
		return nil, err
	}
	if raw[0] != '{' {
		return nil, badRequest(`body must be a JSON object {"ids": [...]}`)
	}
	var req struct {
		IDs []string `json:"ids"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest(`invalid body: %v; want {"ids": ["id", ...]}`, err)
	}
	if len(req.IDs) < 1 || len(req.IDs) > maxAckBatch {
		return nil, badRequest("ids: %d given; want 1 to %d", len(req.IDs), maxAckBatch)
	}
	for i, id := range req.IDs {
		if id == "" {
			return nil, badRequest("ids[%d] is empty", i)
		}
	}
	return req.IDs, nil
}

func (s *Server) settled(w http.ResponseWriter, r *http.Request, q *sluice.Queue, id string, err error) error {
	if err != nil {
		return afterWrite(err)
	}
	s.noContent(w, r, "queue", q.Name(), "id", id)
	return nil
}

// dlq parses the kind parameter; def "" makes it required.
func dlqKind(p *params, def sluice.DLQKind) sluice.DLQKind {
	v := p.str("kind")
	if v == "" {
		if def == "" {
			p.fail("kind", "", "overflow or failed (required)")
		}
		return def
	}
	k, err := sluice.ParseDLQKind(v)
	if err != nil {
		p.fail("kind", v, "overflow or failed")
		return def
	}
	return k
}

// dlqParams is queueParams plus the DLQ's kind, def when absent.
func (s *Server) dlqParams(r *http.Request, def sluice.DLQKind) (*sluice.Queue, *params, sluice.DLQKind, error) {
	q, p, err := s.queueParams(r)
	if err != nil {
		return nil, nil, "", err
	}
	return q, p, dlqKind(p, def), nil
}

// handleDLQList is GET /v1/queues/{name}/dlq?kind=&limit=&cursor= (or
// start= instead of cursor=). Entries are appended at the tail, so offset
// cursors stay put while entries are added; a requeue or purge takes
// entries from the head and shifts them (docs/http.md says so).
func (s *Server) handleDLQList(w http.ResponseWriter, r *http.Request) error {
	q, p, kind, err := s.dlqParams(r, sluice.DLQOverflow)
	if err != nil {
		return err
	}
	start := p.int("start", 0, 0, 1<<40)
	if p.str("cursor") != "" {
		if p.str("start") != "" {
			p.fail("start", p.str("start"), "absent when cursor is given")
		}
		start = offsetCursor(p)
	}
	limit := min(pageLimit(p), sluice.MaxPeek)
	if p.err != nil {
		return p.err
	}
	entries, total, err := q.DLQ(kind).List(r.Context(), start, limit)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []sluice.DLQEntry{}
	}
	var next string
	if n := start + int64(len(entries)); len(entries) > 0 && n < total {
		next = offsetNext(n)
	}
	_ = writeJSON(w, http.StatusOK, withCursor(map[string]any{"items": entries, "total": total}, next))
	return nil
}

// handleDLQRequeue is POST /v1/queues/{name}/dlq/requeue?kind=&count=.
func (s *Server) handleDLQRequeue(w http.ResponseWriter, r *http.Request) error {
	q, p, kind, err := s.dlqParams(r, sluice.DLQOverflow)
	if err != nil {
		return err
	}
	count := p.int("count", 0, 0, 1<<40)
	if p.err != nil {
		return p.err
	}
	var res sluice.RequeueResult
	err = s.write(r, func(ctx context.Context) (err error) {
		res, err = q.DLQ(kind).Requeue(ctx, count)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, res, "queue", q.Name(), "kind", kind)
	return nil
}

// handleDLQPurge is DELETE /v1/queues/{name}/dlq?kind=; kind is required,
// since a purge cannot be undone.
func (s *Server) handleDLQPurge(w http.ResponseWriter, r *http.Request) error {
	q, p, kind, err := s.dlqParams(r, "")
	if err != nil {
		return err
	}
	if p.err != nil {
		return p.err
	}
	var n int64
	err = s.write(r, func(ctx context.Context) (err error) {
		n, err = q.DLQ(kind).Purge(ctx)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, map[string]int64{"purged": n}, "queue", q.Name(), "kind", kind)
	return nil
}
