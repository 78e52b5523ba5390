package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// defaultLogInterval is how often one kind of failure may be logged: an
// engine outage fails every request, and one line per request (thousands a
// second) would bury everything else in the log.
const defaultLogInterval = 10 * time.Second

// logLimiter writes at most one line per key and interval. The lines it
// holds back are counted, and the count goes out with the next line of the
// same key (as "suppressed", the repeats since the previous line), or
// with flush. It needs no goroutine: time only matters when a line comes.
// Keys name kinds of failure (a fixed, small set), so the map stays small.
type logLimiter struct {
	interval time.Duration
	now      func() time.Time // time.Now; tests set a clock of their own

	mu   sync.Mutex
	keys map[string]*logWindow
}

type logWindow struct {
	last       time.Time // when the last line of the key was written
	suppressed int64     // lines held back since
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, now: time.Now, keys: make(map[string]*logWindow)}
}

// allow reports whether a line for key may be written now and, if so, how
// many were held back since the last one.
func (l *logLimiter) allow(key string) (ok bool, suppressed int64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil {
		l.keys[key] = &logWindow{last: now}
		return true, 0
	}
	if now.Sub(w.last) < l.interval {
		w.suppressed++
		return false, 0
	}
	suppressed = w.suppressed
	w.last, w.suppressed = now, 0
	return true, suppressed
}

// log writes msg with attrs unless a line for key went out less than an
// interval ago. A line that follows held-back ones says how many.
func (l *logLimiter) log(ctx context.Context, logger *slog.Logger, level slog.Level, key, msg string, attrs ...slog.Attr) {
	if !logger.Enabled(ctx, level) {
		return
	}
	ok, n := l.allow(key)
	if !ok {
		return
	}
	if n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n), slog.Duration("suppressed_window", l.interval))
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// flush writes, for every key with held-back lines, one line with their
// count, so that the tail of a burst is not lost when the server stops.
func (l *logLimiter) flush(logger *slog.Logger) {
	l.mu.Lock()
	type pending struct {
		key string
		n   int64
	}
	var out []pending
	for k, w := range l.keys {
		if w.suppressed > 0 {
			out = append(out, pending{k, w.suppressed})
			w.suppressed = 0
		}
	}
	l.mu.Unlock()
	for _, p := range out {
		logger.LogAttrs(context.Background(), slog.LevelWarn, "repeated log lines held back",
			slog.String("kind", p.key), slog.Int64("suppressed", p.n))
	}
}
