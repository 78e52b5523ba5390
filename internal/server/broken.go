package server

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice"
)

// maxBrokenLogged bounds the names remembered for logging: past it, new
// broken keys are still skipped and counted, but no longer logged.
const maxBrokenLogged = 1024

// brokenKeys handles the queues a listing cannot read: a name in the list
// whose key holds another kind of value (written by another program, or a
// cache entry set on an emptied queue's name), or that the naming rules
// refuse (recorded by an older version). One such key must not fail the
// listing for everyone: it is skipped, counted every time, and logged once
// per name rather than once per request or scrape.
type brokenKeys struct {
	log     *slog.Logger
	skipped *prometheus.CounterVec

	mu     sync.Mutex
	logged map[string]struct{}
}

func newBrokenKeys(log *slog.Logger) *brokenKeys {
	return &brokenKeys{
		log: log,
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_listing_broken_keys_skipped_total",
			Help: "Queues left out of a listing because their key holds another kind of value or their name is not a valid queue name.",
		}, []string{"listing"}),
		logged: make(map[string]struct{}),
	}
}

// skip reports whether err makes queue name a broken key to leave out of
// listing; it counts it, and logs it the first time.
func (b *brokenKeys) skip(listing, name string, err error) bool {
	if !errors.Is(err, sluice.ErrWrongType) && !errors.Is(err, sluice.ErrInvalidName) {
		return false
	}
	b.skipped.WithLabelValues(listing).Inc()
	b.mu.Lock()
	_, seen := b.logged[name]
	first := !seen && len(b.logged) < maxBrokenLogged
	if first {
		b.logged[name] = struct{}{}
	}
	full := first && len(b.logged) == maxBrokenLogged
	b.mu.Unlock()
	if first {
		b.log.Warn("listing skips a queue it cannot read; logged once, counted in sluice_listing_broken_keys_skipped_total",
			"listing", listing, "queue", name, "err", err)
	}
	if full {
		b.log.Warn("further broken queue keys are skipped and counted without a log line", "remembered", maxBrokenLogged)
	}
	return true
}
