package server

import (
	"context"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
)

// handleQueueReceive is POST /v1/queues/{name}/receive?timeout=&lease=&count=
// (and max_deliveries=): leased, acknowledged delivery.
func (s *Server) handleQueueReceive(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	timeout := p.duration("timeout", 0, 0, s.cfg.MaxWait)
	opts := sluice.ReceiveOptions{
		Lease:         p.duration("lease", sluice.DefaultLease, time.Millisecond, maxLockTTL),
		MaxDeliveries: int(p.int("max_deliveries", sluice.DefaultMaxDeliveries, 1, 1000)),
	}
	count := int(p.int("count", 1, 1, maxBatchDeliveries))
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}

	deadline := time.Now().Add(timeout)
	for {
		step := max(s.waitStep(deadline), 0)
		if s.waitEnded(r) {
			step = 0
		}
		var ds []*sluice.Delivery
		err := s.waitOp(r, step, func(ctx context.Context) (err error) {
			ds, err = q.ReceiveBatch(ctx, count, step, opts)
			return err
		})
		if err != nil {
			s.replyErr(w, r, err)
			return
		}
		if len(ds) > 0 {
			// Leased items the client never sees come back when their lease
			// expires: nothing is lost, so only log and count.
			ids := make([]string, len(ds))
			for i, d := range ds {
				ids[i] = d.ID
			}
			s.reply(w, r, http.StatusOK, map[string]any{"deliveries": ds}, "queue", q.Name(), "leased_ids", ids)
			return
		}
		if step == 0 || !time.Now().Before(deadline) || s.waitEnded(r) {
			if r.Context().Err() == nil {
				w.WriteHeader(http.StatusNoContent)
			}
			return
		}
	}
}

// handleQueueAck is POST /v1/queues/{name}/ack/{id}.
func (s *Server) handleQueueAck(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	err = s.write(r, func(ctx context.Context) error { return q.Ack(ctx, id) })
	s.settled(w, r, q, id, err)
}

// handleQueueNack is POST /v1/queues/{name}/nack/{id}?delay=&reason=&max_deliveries=.
func (s *Server) handleQueueNack(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	delay := p.duration("delay", 0, 0, maxLockTTL)
	maxDeliveries := int(p.int("max_deliveries", sluice.DefaultMaxDeliveries, 1, 1000))
	reason := p.str("reason")
	if len(reason) > 1024 {
		p.fail("reason", reason[:32]+"...", "at most 1024 bytes")
	}
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	id := r.PathValue("id")
	err = s.write(r, func(ctx context.Context) error {
		_, err := q.Nack(ctx, id, delay, reason, maxDeliveries)
		return err
	})
	s.settled(w, r, q, id, err)
}

func (s *Server) settled(w http.ResponseWriter, r *http.Request, q *sluice.Queue, id string, err error) {
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	if r.Context().Err() != nil {
		s.undelivered(r, "ok", "queue", q.Name(), "id", id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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

// handleDLQList is GET /v1/queues/{name}/dlq?kind=&start=&limit=.
func (s *Server) handleDLQList(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	kind := dlqKind(p, sluice.DLQOverflow)
	start := p.int("start", 0, 0, 1<<40)
	limit := p.int("limit", 100, 1, sluice.MaxPeek)
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	entries, total, err := q.DLQ(kind).List(r.Context(), start, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if entries == nil {
		entries = []sluice.DLQEntry{}
	}
	_ = writeJSON(w, http.StatusOK, map[string]any{"items": entries, "total": total})
}

// handleDLQRequeue is POST /v1/queues/{name}/dlq/requeue?kind=&count=.
func (s *Server) handleDLQRequeue(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	kind := dlqKind(p, sluice.DLQOverflow)
	count := p.int("count", 0, 0, 1<<40)
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	var res sluice.RequeueResult
	err = s.write(r, func(ctx context.Context) (err error) {
		res, err = q.DLQ(kind).Requeue(ctx, count)
		return err
	})
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	s.reply(w, r, http.StatusOK, res, "queue", q.Name(), "kind", kind)
}

// handleDLQPurge is DELETE /v1/queues/{name}/dlq?kind=; kind is required,
// since a purge cannot be undone.
func (s *Server) handleDLQPurge(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	kind := dlqKind(p, "")
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	var n int64
	err = s.write(r, func(ctx context.Context) (err error) {
		n, err = q.DLQ(kind).Purge(ctx)
		return err
	})
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	s.reply(w, r, http.StatusOK, map[string]int64{"purged": n}, "queue", q.Name(), "kind", kind)
}
