package server

import (
	"context"
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
	err = s.write(r, func(ctx context.Context) error {
		_, err := q.Nack(ctx, id, &sluice.NackOptions{Delay: delay, Reason: reason, MaxDeliveries: maxDeliveries})
		return err
	})
	return s.settled(w, r, q, id, err)
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
