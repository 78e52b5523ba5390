package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/keyspace"
)

// maxBatchDeliveries bounds one receive.
const maxBatchDeliveries = 1000

func (s *Server) queue(r *http.Request) (*sluice.Queue, error) {
	name := r.PathValue("name")
	if err := keyspace.ValidateQueueName(name); err != nil {
		return nil, badRequest("%v", err)
	}
	return s.client.QueueWithDefaults(name, s.cfg.queueSettings()), nil
}

// queueParams is queue plus the query parameters most queue routes take.
func (s *Server) queueParams(r *http.Request) (*sluice.Queue, *params, error) {
	q, err := s.queue(r)
	if err != nil {
		return nil, nil, err
	}
	return q, queryParams(r), nil
}

// addRequest is what an add route asks for: items for q, under policy.
type addRequest struct {
	q      *sluice.Queue
	policy sluice.Policy
	opts   sluice.AddOptions
	items  []any
}

// add runs one add detached from the request and counts its overflow.
func (s *Server) add(r *http.Request, req addRequest) ([]sluice.AddResult, error) {
	fresh, err := s.queues.admit(r.Context(), s, req.q.Name())
	if err != nil {
		return nil, err
	}
	var res []sluice.AddResult
	err = s.write(r, func(ctx context.Context) (err error) {
		res, err = req.q.AddBatch(ctx, req.items, &req.opts)
		return err
	})
	if err != nil && fresh {
		s.queues.forget(req.q.Name())
	}
	policy := req.policy
	if req.opts.Policy == "" && hadBackpressure(res) {
		// The add ran under the queue's declared policy if it declares
		// one: label the overflow with it. Read only when something
		// overflowed, so that a plain add costs nothing more.
		if es, serr := req.q.Settings(context.WithoutCancel(r.Context())); serr == nil {
			policy = es.Settings.Policy
		}
	}
	for _, ar := range res {
		if !ar.Replayed { // counted when first added
			s.metrics.countAdd(req.q.Name(), policy, ar)
		}
	}
	return res, err
}

func hadBackpressure(res []sluice.AddResult) bool {
	for _, r := range res {
		if r.HadBackpressure && !r.Replayed {
			return true
		}
	}
	return false
}

// handleDetectionAdd is the Python service's POST /detections.
func (s *Server) handleDetectionAdd(w http.ResponseWriter, r *http.Request) error {
	var opts sluice.AddOptions
	if err := s.idempotency(r, &opts); err != nil {
		return err
	}
	item, err := decodeBody(s, w, r, decodeObject)
	if err != nil {
		return err
	}
	q := s.client.QueueWithDefaults(DetectionsQueue, s.cfg.queueSettings())
	res, err := s.add(r, addRequest{q: q, policy: s.cfg.QueueOverflowPolicy, opts: opts, items: []any{item}})
	if err != nil {
		return afterWrite(err)
	}
	markReplay(w, res)
	if ar := res[0]; !ar.Success {
		s.reply(w, r, http.StatusTooManyRequests, map[string]any{"status": "rejected", "error": ar.Error}, "queue", DetectionsQueue)
		return nil
	}
	// {"queue_length":N,"status":"queued"}, as encoding/json writes the map
	// (keys sorted), without the reflection: this is the busiest route.
	body := make(preEncoded, 0, 48)
	body = append(body, `{"queue_length":`...)
	body = strconv.AppendInt(body, res[0].QueueLength, 10)
	body = append(body, `,"status":"queued"}`...)
	s.reply(w, r, http.StatusOK, body, "queue", DetectionsQueue)
	return nil
}

// handleDetectionNext is the Python service's GET /detections/next?timeout=5.
func (s *Server) handleDetectionNext(w http.ResponseWriter, r *http.Request) error {
	p := queryParams(r)
	timeout := p.duration("timeout", 5*time.Second, 0, s.cfg.MaxWait)
	if p.err != nil {
		return p.err
	}
	q := s.client.QueueWithDefaults(DetectionsQueue, s.cfg.queueSettings())
	return s.next(w, r, q, timeout, func(it sluice.Item) any { return it }, func() {
		_ = writeJSON(w, http.StatusOK, map[string]string{"status": "empty"})
	})
}

// handleQueueNext is GET /v1/queues/{name}/next?timeout=5s.
func (s *Server) handleQueueNext(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	timeout := p.duration("timeout", 0, 0, s.cfg.MaxWait)
	if p.err != nil {
		return p.err
	}
	return s.next(w, r, q, timeout, func(it sluice.Item) any { return map[string]any{"item": it} }, func() {
		w.WriteHeader(http.StatusNoContent)
	})
}

// next pops one item, waiting up to timeout in PollInterval steps, and
// hands it over. An item the client can no longer receive goes back to
// the head of the queue.
func (s *Server) next(w http.ResponseWriter, r *http.Request, q *sluice.Queue, timeout time.Duration, body func(sluice.Item) any, empty func()) error {
	var it sluice.Item
	found, err := s.poll(r, timeout, func(ctx context.Context, step time.Duration) (ok bool, err error) {
		if s.hooks.waiting != nil {
			s.hooks.waiting(r)
		}
		it, ok, err = q.Get(ctx, step)
		return ok, err
	})
	switch {
	case err != nil:
		return afterWrite(err)
	case found:
		if s.hooks.popped != nil {
			s.hooks.popped(r)
		}
		s.handOver(w, r, q, it, body(it))
	case r.Context().Err() == nil:
		empty()
	}
	return nil
}

// poll calls get, which may block for step, until it finds something,
// timeout has passed or the wait has ended. Each call is detached from the
// request (see waitOp): it may be taking items off a queue.
func (s *Server) poll(r *http.Request, timeout time.Duration, get func(ctx context.Context, step time.Duration) (bool, error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		step := max(s.waitStep(deadline), 0)
		if s.waitEnded(r) {
			step = 0
		}
		var found bool
		err := s.waitOp(r, step, func(ctx context.Context) (err error) {
			found, err = get(ctx, step)
			return err
		})
		if err != nil || found {
			return found, err
		}
		if step == 0 || !time.Now().Before(deadline) || s.waitEnded(r) {
			return false, nil
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

// queueRow is one queue of GET /v1/queues: its pressure, and whether it
// declares settings or is paused (GET /v1/queues/{name} has the details).
type queueRow struct {
	sluice.Pressure
	Declared bool `json:"declared"`
	Paused   bool `json:"paused"`
}

// handleQueueList is GET /v1/queues?limit=&cursor=: queues in name order,
// a page at a time (page.go).
func (s *Server) handleQueueList(w http.ResponseWriter, r *http.Request) error {
	p := queryParams(r)
	limit := pageLimit(p)
	after, _ := decodeCursor(p, cursorName)
	if p.err != nil {
		return p.err
	}
	names, err := s.client.Queues(r.Context())
	if err != nil {
		return err
	}
	page, next := pageNames(names, after, int(limit))
	out := make([]queueRow, 0, len(page))
	for _, n := range page {
		q := s.client.QueueWithDefaults(n, s.cfg.queueSettings())
		p, err := q.Pressure(r.Context())
		var es sluice.EffectiveSettings
		if err == nil {
			es, err = q.Settings(r.Context())
		}
		if err != nil {
			if s.metrics.broken.skip("queues", n, err) {
				continue
			}
			return err
		}
		out = append(out, queueRow{Pressure: p, Declared: es.IsDeclared(), Paused: es.Paused})
	}
	_ = writeJSON(w, http.StatusOK, withCursor(map[string]any{"queues": out}, next))
	return nil
}

// handleQueueInfo is GET /v1/queues/{name}: its pressure, DLQ lengths and
// settings, with where each comes from (declare.go).
func (s *Server) handleQueueInfo(w http.ResponseWriter, r *http.Request) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	info, err := s.queueInfo(r.Context(), q)
	var stats sluice.QueueStats
	if err == nil {
		stats, err = q.Stats(r.Context())
	}
	if err != nil {
		return err
	}
	_ = writeJSON(w, http.StatusOK, queueInfoWithStats{queueInfo: info, Stats: stats})
	return nil
}

// queueInfoWithStats is GET /v1/queues/{name}'s answer: queueInfo, plus
// the engine's counters of the queue (inflight.go).
type queueInfoWithStats struct {
	queueInfo
	Stats sluice.QueueStats `json:"stats"`
}

// maxAddDelay bounds ?delay= on the add routes.
const maxAddDelay = 365 * 24 * time.Hour

// parseAdd parses what the add routes share, in this order: the queue,
// ?policy=&max_size=&delay=, and the body, which decode turns into items.
func (s *Server) parseAdd(w http.ResponseWriter, r *http.Request, decode func([]byte) ([]any, error)) (addRequest, error) {
	q, p, err := s.queueParams(r)
	if err != nil {
		return addRequest{}, err
	}
	req := addRequest{q: q, policy: s.cfg.QueueOverflowPolicy}
	if v := p.str("policy"); v != "" {
		pol, err := sluice.ParsePolicy(v)
		if err != nil {
			return addRequest{}, badRequest("parameter policy=%q: want reject, dlq or drop_oldest", v)
		}
		req.policy = pol
		req.opts.Policy = pol
	}
	if p.str("max_size") != "" {
		// Over HTTP, as in Config.QueueMaxSize, 0 and -1 both mean unbounded.
		req.opts.MaxSize = p.int("max_size", 0, -1, 1<<40)
		if req.opts.MaxSize == 0 {
			req.opts.MaxSize = sluice.Unbounded
		}
	}
	// ?delay= schedules the items (sluice.AddOptions.Delay): a Go duration
	// or a number of seconds.
	req.opts.Delay = p.duration("delay", 0, 0, maxAddDelay)
	if p.err != nil {
		return addRequest{}, p.err
	}
	if err := s.idempotency(r, &req.opts); err != nil {
		return addRequest{}, err
	}
	if req.items, err = decodeBody(s, w, r, decode); err != nil {
		return addRequest{}, err
	}
	return req, nil
}

// handleQueueAdd is POST /v1/queues/{name}/items.
func (s *Server) handleQueueAdd(w http.ResponseWriter, r *http.Request) error {
	req, err := s.parseAdd(w, r, func(body []byte) ([]any, error) {
		item, err := decodeItem(body)
		return []any{item}, err
	})
	if err != nil {
		return err
	}
	res, err := s.add(r, req)
	if err != nil {
		return afterWrite(err)
	}
	status := http.StatusOK
	if !res[0].Success {
		status = http.StatusTooManyRequests
	}
	markReplay(w, res)
	s.reply(w, r, status, res[0], "queue", req.q.Name())
	return nil
}

// handleQueueBatch is POST /v1/queues/{name}/batch.
func (s *Server) handleQueueBatch(w http.ResponseWriter, r *http.Request) error {
	req, err := s.parseAdd(w, r, decodeBatch)
	if err != nil {
		return err
	}
	res := []sluice.AddResult{}
	if len(req.items) > 0 {
		if res, err = s.add(r, req); err != nil {
			return afterWrite(err)
		}
	}
	markReplay(w, res)
	s.reply(w, r, http.StatusOK, map[string]any{"results": res}, "queue", req.q.Name(), "items", len(req.items))
	return nil
}

// handleQueuePeek is GET /v1/queues/{name}/items?start=&end= (inclusive
// indexes, as LRANGE), or ?limit=&cursor= to page from the head.
func (s *Server) handleQueuePeek(w http.ResponseWriter, r *http.Request) error {
	q, p, err := s.queueParams(r)
	if err != nil {
		return err
	}
	if p.str("limit") != "" || p.str("cursor") != "" {
		return s.pageItems(w, r, q, p)
	}
	const bound = 1 << 40
	start := p.int("start", 0, -bound, bound)
	end := p.int("end", 100, -bound, bound)
	if p.err != nil {
		return p.err
	}
	items, err := q.Peek(r.Context(), start, end)
	if err != nil {
		return err
	}
	if items == nil {
		items = []sluice.Item{}
	}
	_ = writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// pageItems is the paged form of the peek: offsets from the head, which
// stay put while items are added at the tail (a consumer taking items
// from the head shifts them).
func (s *Server) pageItems(w http.ResponseWriter, r *http.Request, q *sluice.Queue, p *params) error {
	if p.str("start") != "" || p.str("end") != "" {
		p.fail("start/end", p.str("start")+p.str("end"), "absent when limit or cursor is given")
	}
	limit := pageLimit(p)
	start := offsetCursor(p)
	if p.err != nil {
		return p.err
	}
	items, err := q.Peek(r.Context(), start, start+limit-1)
	if err != nil {
		return err
	}
	if items == nil {
		items = []sluice.Item{}
	}
	var next string
	if n := start + int64(len(items)); len(items) > 0 {
		length, err := q.Len(r.Context())
		if err != nil {
			return err
		}
		if n < length {
			next = offsetNext(n)
		}
	}
	_ = writeJSON(w, http.StatusOK, withCursor(map[string]any{"items": items}, next))
	return nil
}

// handleQueueClear is DELETE /v1/queues/{name}/items.
func (s *Server) handleQueueClear(w http.ResponseWriter, r *http.Request) error {
	q, err := s.queue(r)
	if err != nil {
		return err
	}
	var cleared bool
	err = s.write(r, func(ctx context.Context) (err error) {
		cleared, err = q.Clear(ctx)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, map[string]bool{"cleared": cleared}, "queue", q.Name())
	return nil
}
