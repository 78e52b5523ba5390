// Package traced wraps an engine so that its main operations each make an
// OpenTelemetry span, a child of the span in the caller's context (an HTTP
// request's, say). The public package puts it around the engine only when
// the client is given a TracerProvider: without one there is no wrapper
// and tracing costs nothing.
//
// Spans carry the engine kind, the operation, the queue name and item
// counts; never items, cache values, cache keys, lock names or tokens,
// or delivery ids.
package traced

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice/internal/engine"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/sluicehq/sluice"

// Attribute keys of the spans.
const (
	AttrEngine    = attribute.Key("sluice.engine")
	AttrOperation = attribute.Key("sluice.operation")
	AttrQueue     = attribute.Key("sluice.queue")
	AttrItems     = attribute.Key("sluice.items")   // items sent to the engine
	AttrResults   = attribute.Key("sluice.results") // items the engine handed back or acted on
	AttrDLQ       = attribute.Key("sluice.dlq")
	AttrErrorType = attribute.Key("error.type") // the sentinel's text, or "engine error"
)

// Engine is an engine whose main operations are traced; everything else
// passes through to the embedded engine.
type Engine struct {
	engine.Engine
	tracer trace.Tracer
	kind   trace.SpanKind
	base   attribute.KeyValue
}

var _ engine.Engine = (*Engine)(nil)

// Wrap returns eng traced with tp's tracer.
func Wrap(eng engine.Engine, tp trace.TracerProvider) *Engine {
	kind := trace.SpanKindInternal
	if eng.Kind() == "redis" {
		kind = trace.SpanKindClient // each call is a round trip to a server
	}
	return &Engine{
		Engine: eng,
		tracer: tp.Tracer(ScopeName),
		kind:   kind,
		base:   AttrEngine.String(eng.Kind()),
	}
}

// suppressKey marks a context whose engine calls make no spans.
type suppressKey struct{}

// Suppress returns ctx under which the decorator makes no spans: for
// background work (the maintainer sweeps every queue every second) whose
// spans would bury the traces of the requests.
func Suppress(ctx context.Context) context.Context {
	return context.WithValue(ctx, suppressKey{}, true)
}

// start begins the span of operation op, named "sluice " + op.
func (e *Engine) start(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if ctx.Value(suppressKey{}) != nil {
		// A span that records nothing, and not ctx's own span, which
		// the caller's end must not end.
		return ctx, trace.SpanFromContext(context.Background())
	}
	ctx, span := e.tracer.Start(ctx, "sluice "+op, trace.WithSpanKind(e.kind))
	if span.IsRecording() {
		span.SetAttributes(e.base, AttrOperation.String(op))
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// end records err, if any, and ends the span.
func end(span trace.Span, err error) {
	if err != nil {
		text := errorText(err)
		span.SetStatus(codes.Error, text)
		span.SetAttributes(AttrErrorType.String(text))
	}
	span.End()
}

// known are the errors a span names. Anything else is "engine error": an
// engine's own error text may hold a server's address or a key, which
// have no place in a trace.
var known = []error{
	engine.ErrClosed, engine.ErrLeaseNotFound, engine.ErrLockNotHeld, engine.ErrWrongType,
	engine.ErrUnavailable, engine.ErrIdempotencyConflict, engine.ErrSettingsConflict,
	engine.ErrQueueInFlight, context.Canceled, context.DeadlineExceeded,
}

// errorText is what a span says of err.
func errorText(err error) string {
	for _, k := range known {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return "engine error"
}

func results(span trace.Span, n int) {
	span.SetAttributes(AttrResults.Int(n))
}

// QueueAdd is traced as "sluice queue.add".
func (e *Engine) QueueAdd(ctx context.Context, p engine.AddParams) ([]engine.AddResult, error) {
	ctx, span := e.start(ctx, "queue.add", AttrQueue.String(p.Queue), AttrItems.Int(len(p.Items)))
	res, err := e.Engine.QueueAdd(ctx, p)
	accepted := 0
	for _, r := range res {
		if r.Accepted {
			accepted++
		}
	}
	results(span, accepted)
	end(span, err)
	return res, err
}

// QueuePop is traced as "sluice queue.pop".
func (e *Engine) QueuePop(ctx context.Context, queue string, timeout time.Duration) (string, bool, error) {
	ctx, span := e.start(ctx, "queue.pop", AttrQueue.String(queue))
	item, ok, err := e.Engine.QueuePop(ctx, queue, timeout)
	if ok {
		results(span, 1)
	} else {
		results(span, 0)
	}
	end(span, err)
	return item, ok, err
}

// QueuePushFront is traced as "sluice queue.push_front".
func (e *Engine) QueuePushFront(ctx context.Context, queue string, items []string) error {
	ctx, span := e.start(ctx, "queue.push_front", AttrQueue.String(queue), AttrItems.Int(len(items)))
	err := e.Engine.QueuePushFront(ctx, queue, items)
	end(span, err)
	return err
}

// QueueReceive is traced as "sluice queue.receive".
func (e *Engine) QueueReceive(ctx context.Context, p engine.ReceiveParams) ([]engine.Delivery, error) {
	ctx, span := e.start(ctx, "queue.receive", AttrQueue.String(p.Queue), AttrItems.Int(p.Count))
	ds, err := e.Engine.QueueReceive(ctx, p)
	results(span, len(ds))
	end(span, err)
	return ds, err
}

// QueueAckBatch is traced as "sluice queue.ack".
func (e *Engine) QueueAckBatch(ctx context.Context, queue string, ids []string) ([]bool, error) {
	ctx, span := e.start(ctx, "queue.ack", AttrQueue.String(queue), AttrItems.Int(len(ids)))
	acked, err := e.Engine.QueueAckBatch(ctx, queue, ids)
	n := 0
	for _, ok := range acked {
		if ok {
			n++
		}
	}
	results(span, n)
	end(span, err)
	return acked, err
}

// QueueNack is traced as "sluice queue.nack", or "sluice queue.release"
// for a release.
func (e *Engine) QueueNack(ctx context.Context, p engine.NackParams) (engine.NackResult, error) {
	op := "queue.nack"
	if p.Release {
		op = "queue.release"
	}
	ctx, span := e.start(ctx, op, AttrQueue.String(p.Queue))
	res, err := e.Engine.QueueNack(ctx, p)
	if res.DeadLettered {
		span.SetAttributes(attribute.Bool("sluice.dead_lettered", true))
	}
	end(span, err)
	return res, err
}

// QueueExtend is traced as "sluice queue.extend".
func (e *Engine) QueueExtend(ctx context.Context, queue, id string, lease time.Duration) error {
	ctx, span := e.start(ctx, "queue.extend", AttrQueue.String(queue))
	err := e.Engine.QueueExtend(ctx, queue, id, lease)
	end(span, err)
	return err
}

// QueueReclaim is traced as "sluice queue.reclaim".
func (e *Engine) QueueReclaim(ctx context.Context, queue string, maxDeliveries int) (int64, error) {
	ctx, span := e.start(ctx, "queue.reclaim", AttrQueue.String(queue))
	n, err := e.Engine.QueueReclaim(ctx, queue, maxDeliveries)
	results(span, int(n))
	end(span, err)
	return n, err
}

// DLQRange is traced as "sluice dlq.list".
func (e *Engine) DLQRange(ctx context.Context, queue string, kind engine.DLQKind, start, stop int64) ([]string, error) {
	ctx, span := e.start(ctx, "dlq.list", AttrQueue.String(queue), AttrDLQ.String(string(kind)))
	out, err := e.Engine.DLQRange(ctx, queue, kind, start, stop)
	results(span, len(out))
	end(span, err)
	return out, err
}

// DLQRequeue is traced as "sluice dlq.requeue".
func (e *Engine) DLQRequeue(ctx context.Context, p engine.RequeueParams) (engine.RequeueResult, error) {
	ctx, span := e.start(ctx, "dlq.requeue", AttrQueue.String(p.Queue), AttrDLQ.String(string(p.Kind)))
	res, err := e.Engine.DLQRequeue(ctx, p)
	results(span, int(res.Requeued))
	end(span, err)
	return res, err
}

// DLQPurge is traced as "sluice dlq.purge".
func (e *Engine) DLQPurge(ctx context.Context, queue string, kind engine.DLQKind) (int64, error) {
	ctx, span := e.start(ctx, "dlq.purge", AttrQueue.String(queue), AttrDLQ.String(string(kind)))
	n, err := e.Engine.DLQPurge(ctx, queue, kind)
	results(span, int(n))
	end(span, err)
	return n, err
}

// Publish is traced as "sluice publish". The channel is not recorded: a
// channel name may identify a user.
func (e *Engine) Publish(ctx context.Context, channel, payload string) (int64, error) {
	ctx, span := e.start(ctx, "publish")
	n, err := e.Engine.Publish(ctx, channel, payload)
	results(span, int(n))
	end(span, err)
	return n, err
}

// CacheGet is traced as "sluice cache.get"; sluice.results is 1 on a hit.
func (e *Engine) CacheGet(ctx context.Context, key string) (string, bool, error) {
	ctx, span := e.start(ctx, "cache.get")
	v, ok, err := e.Engine.CacheGet(ctx, key)
	results(span, boolInt(ok))
	end(span, err)
	return v, ok, err
}

// CacheGetCached is traced as "sluice cache.get" too.
func (e *Engine) CacheGetCached(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	ctx, span := e.start(ctx, "cache.get")
	v, ok, err := e.Engine.CacheGetCached(ctx, key, ttl)
	results(span, boolInt(ok))
	end(span, err)
	return v, ok, err
}

// CacheSet is traced as "sluice cache.set"; sluice.results is 1 when
// the value was written.
func (e *Engine) CacheSet(ctx context.Context, p engine.CacheSetParams) (bool, error) {
	ctx, span := e.start(ctx, "cache.set")
	ok, err := e.Engine.CacheSet(ctx, p)
	results(span, boolInt(ok))
	end(span, err)
	return ok, err
}

// CacheDelete is traced as "sluice cache.delete".
func (e *Engine) CacheDelete(ctx context.Context, keys ...string) (int64, error) {
	ctx, span := e.start(ctx, "cache.delete", AttrItems.Int(len(keys)))
	n, err := e.Engine.CacheDelete(ctx, keys...)
	results(span, int(n))
	end(span, err)
	return n, err
}

// LockAcquire is traced as "sluice lock.acquire"; sluice.results is 1
// when the lock was taken.
func (e *Engine) LockAcquire(ctx context.Context, name, token string, ttl time.Duration) (int64, bool, error) {
	ctx, span := e.start(ctx, "lock.acquire")
	fence, ok, err := e.Engine.LockAcquire(ctx, name, token, ttl)
	results(span, boolInt(ok))
	end(span, err)
	return fence, ok, err
}

// LockRelease is traced as "sluice lock.release".
func (e *Engine) LockRelease(ctx context.Context, name, token string) error {
	ctx, span := e.start(ctx, "lock.release")
	err := e.Engine.LockRelease(ctx, name, token)
	end(span, err)
	return err
}

// LockRefresh is traced as "sluice lock.refresh".
func (e *Engine) LockRefresh(ctx context.Context, name, token string, ttl time.Duration) error {
	ctx, span := e.start(ctx, "lock.refresh")
	err := e.Engine.LockRefresh(ctx, name, token, ttl)
	end(span, err)
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
