package server

import (
	"context"
	"net/http"
	"time"

	"github.com/sluicehq/sluice"
)

// maxBatchDeliveries bounds one receive.
const maxBatchDeliveries = 1000

func (s *Server) queue(r *http.Request) (*sluice.Queue, error) {
	name := r.PathValue("name")
	if !validName(name) {
		return nil, badRequest("invalid queue name %q: want 1-200 characters of A-Z a-z 0-9 _ . : - { }", name)
	}
	return s.client.Queue(name, s.cfg.queueOptions()...), nil
}

// add runs one add detached from the request and counts its overflow.
func (s *Server) add(r *http.Request, q *sluice.Queue, items []any, policy sluice.Policy, opts []sluice.AddOption) ([]sluice.AddResult, error) {
	var res []sluice.AddResult
	err := s.write(r, func(ctx context.Context) (err error) {
		res, err = q.AddBatch(ctx, items, opts...)
		return err
	})
	for _, ar := range res {
		s.metrics.countAdd(q.Name(), policy, ar)
	}
	return res, err
}

// handleDetectionAdd is the seed's POST /detections.
func (s *Server) handleDetectionAdd(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	item, err := decodeObject(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := s.client.Queue(DetectionsQueue, s.cfg.queueOptions()...)
	res, err := s.add(r, q, []any{item}, s.cfg.QueueOverflowPolicy, nil)
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	if ar := res[0]; !ar.Success {
		s.reply(w, r, http.StatusTooManyRequests, map[string]any{"status": "rejected", "error": ar.Error}, "queue", DetectionsQueue)
		return
	}
	s.reply(w, r, http.StatusOK, map[string]any{"status": "queued", "queue_length": res[0].QueueLength}, "queue", DetectionsQueue)
}

// handleDetectionNext is the seed's GET /detections/next?timeout=5.
func (s *Server) handleDetectionNext(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r)
	timeout := p.seconds("timeout", 5*time.Second, s.cfg.MaxWait)
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	q := s.client.Queue(DetectionsQueue, s.cfg.queueOptions()...)
	s.next(w, r, q, timeout, func(it sluice.Item) any { return it }, func() {
		_ = writeJSON(w, http.StatusOK, map[string]string{"status": "empty"})
	})
}

// handleQueueNext is GET /v1/queues/{name}/next?timeout=5s.
func (s *Server) handleQueueNext(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	timeout := p.duration("timeout", 0, 0, s.cfg.MaxWait)
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	s.next(w, r, q, timeout, func(it sluice.Item) any { return map[string]any{"item": it} }, func() {
		w.WriteHeader(http.StatusNoContent)
	})
}

// next pops one item, waiting up to timeout in PollInterval steps, and
// hands it over. An item the client can no longer receive goes back to
// the head of the queue.
func (s *Server) next(w http.ResponseWriter, r *http.Request, q *sluice.Queue, timeout time.Duration, body func(sluice.Item) any, empty func()) {
	deadline := time.Now().Add(timeout)
	for {
		step := max(s.waitStep(deadline), 0)
		if s.waitEnded(r) {
			step = 0
		}
		var (
			it sluice.Item
			ok bool
		)
		if s.hooks.waiting != nil {
			s.hooks.waiting(r)
		}
		err := s.waitOp(r, step, func(ctx context.Context) (err error) {
			it, ok, err = q.Get(ctx, step)
			return err
		})
		if err != nil {
			s.replyErr(w, r, err)
			return
		}
		if ok {
			if s.hooks.popped != nil {
				s.hooks.popped(r)
			}
			s.handOver(w, r, q, it, body(it))
			return
		}
		if step == 0 || !time.Now().Before(deadline) || s.waitEnded(r) {
			if r.Context().Err() == nil {
				empty()
			}
			return
		}
	}
}

// waitOp is write for an engine call that may block for step.
func (s *Server) waitOp(r *http.Request, step time.Duration, op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.WriteTimeout+step)
	defer cancel()
	return op(ctx)
}

func (s *Server) handOver(w http.ResponseWriter, r *http.Request, q *sluice.Queue, it sluice.Item, body any) {
	var werr error
	if r.Context().Err() == nil {
		if werr = writeJSON(w, http.StatusOK, body); werr == nil {
			return
		}
	}
	// The client is gone: the item never reached it, so it goes back to
	// where it was. (A reply that failed halfway may have reached it; then
	// it is delivered twice rather than lost.)
	err := s.write(r, func(ctx context.Context) error { return q.PutBack(ctx, it) })
	if err != nil {
		s.metrics.undelivered.WithLabelValues(r.Pattern, "lost").Inc()
		s.log.Error("client gone and putting its item back failed; the item is in this log only",
			"queue", q.Name(), "item", it.Stored(), "reply_err", werr, "err", err)
		return
	}
	s.metrics.putBack.WithLabelValues(q.Name()).Inc()
	s.log.Info("client gone before receiving its item; put back at the head", "queue", q.Name(), "reply_err", werr)
}

// handleQueueList is GET /v1/queues.
func (s *Server) handleQueueList(w http.ResponseWriter, r *http.Request) {
	names, err := s.client.Queues(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]sluice.Pressure, 0, len(names))
	for _, n := range names {
		p, err := s.client.Queue(n, s.cfg.queueOptions()...).Pressure(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, p)
	}
	_ = writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

// queueInfo is GET /v1/queues/{name}.
type queueInfo struct {
	sluice.Pressure
	DLQLength    int64 `json:"dlq_length"`
	FailedLength int64 `json:"failed_length"`
}

func (s *Server) handleQueueInfo(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	info := queueInfo{}
	if info.Pressure, err = q.Pressure(ctx); err == nil {
		if info.DLQLength, err = q.DLQ(sluice.DLQOverflow).Len(ctx); err == nil {
			info.FailedLength, err = q.DLQ(sluice.DLQFailed).Len(ctx)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_ = writeJSON(w, http.StatusOK, info)
}

// addOptions parses ?policy=&max_size= of the add routes.
func (s *Server) addOptions(r *http.Request) (sluice.Policy, []sluice.AddOption, error) {
	p := queryParams(r)
	policy := s.cfg.QueueOverflowPolicy
	var opts []sluice.AddOption
	if v := p.str("policy"); v != "" {
		pol, err := sluice.ParsePolicy(v)
		if err != nil {
			return "", nil, badRequest("parameter policy=%q: want reject, dlq or drop_oldest", v)
		}
		policy = pol
		opts = append(opts, sluice.WithPolicy(pol))
	}
	if p.str("max_size") != "" {
		opts = append(opts, sluice.WithMaxSize(p.int("max_size", 0, -1, 1<<40)))
	}
	return policy, opts, p.err
}

// handleQueueAdd is POST /v1/queues/{name}/items.
func (s *Server) handleQueueAdd(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	policy, opts, err := s.addOptions(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	item, err := decodeItem(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.add(r, q, []any{item}, policy, opts)
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	status := http.StatusOK
	if !res[0].Success {
		status = http.StatusTooManyRequests
	}
	s.reply(w, r, status, res[0], "queue", q.Name())
}

// handleQueueBatch is POST /v1/queues/{name}/batch.
func (s *Server) handleQueueBatch(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	policy, opts, err := s.addOptions(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	items, err := decodeBatch(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res := []sluice.AddResult{}
	if len(items) > 0 {
		if res, err = s.add(r, q, items, policy, opts); err != nil {
			s.replyErr(w, r, err)
			return
		}
	}
	s.reply(w, r, http.StatusOK, map[string]any{"results": res}, "queue", q.Name(), "items", len(items))
}

// handleQueuePeek is GET /v1/queues/{name}/items?start=&end=.
func (s *Server) handleQueuePeek(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := queryParams(r)
	const bound = 1 << 40
	start := p.int("start", 0, -bound, bound)
	end := p.int("end", 100, -bound, bound)
	if p.err != nil {
		s.fail(w, r, p.err)
		return
	}
	items, err := q.Peek(r.Context(), start, end)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if items == nil {
		items = []sluice.Item{}
	}
	_ = writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// handleQueueClear is DELETE /v1/queues/{name}/items.
func (s *Server) handleQueueClear(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var cleared bool
	err = s.write(r, func(ctx context.Context) (err error) {
		cleared, err = q.Clear(ctx)
		return err
	})
	if err != nil {
		s.replyErr(w, r, err)
		return
	}
	s.reply(w, r, http.StatusOK, map[string]bool{"cleared": cleared}, "queue", q.Name())
}
