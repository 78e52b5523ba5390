package server

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sluicehq/sluice"
	sluicemetrics "github.com/sluicehq/sluice/metrics"
)

// metrics are one Server's instruments, registered on its own registry so
// that two servers in one process (tests, embedding) never collide.
type metrics struct {
	reg *prometheus.Registry

	httpDuration *prometheus.HistogramVec
	undelivered  *prometheus.CounterVec

	overflow *prometheus.CounterVec
	putBack  *prometheus.CounterVec

	wsClients   prometheus.Gauge
	sseClients  prometheus.Gauge
	fannedOut   prometheus.Counter
	slowClosed  prometheus.Counter
	engineSubs  prometheus.Gauge
	missedGaps  prometheus.Counter
	authFailure prometheus.Counter
	panics      prometheus.Counter
	// limitRefused counts requests refused by a Limits setting, by limit.
	limitRefused *prometheus.CounterVec
	broken       *brokenKeys
}

func newMetrics(c *sluice.Client, cfg Config, log *slog.Logger) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }

	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern, method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"route", "method", "code"})
	m.undelivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_http_undelivered_outcomes_total",
		Help: "Engine operations that completed after their client had gone, so the reply could not be delivered.",
	}, []string{"route", "outcome"})
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_queue_overflow_total",
		Help: "Adds that found their queue full, by queue and overflow policy.",
	}, []string{"queue", "policy"})
	m.putBack = newQueueCounter("sluice_queue_put_back_total",
		"Items popped for a client that had gone and put back at the head of their queue.")
	m.wsClients = newGauge("sluice_websocket_clients", "Connected WebSocket clients.")
	m.sseClients = newGauge("sluice_sse_clients", "Connected Server-Sent Events clients.")
	m.fannedOut = newCounter("sluice_pubsub_messages_fanned_out_total",
		"Messages handed to WebSocket and SSE clients (one per client per message).")
	m.slowClosed = newCounter("sluice_pubsub_slow_clients_closed_total",
		"WebSocket and SSE clients disconnected because their buffer filled up.")
	m.engineSubs = newGauge("sluice_pubsub_engine_subscriptions", "Channels with an engine subscription, shared by all clients.")
	m.missedGaps = newCounter("sluice_pubsub_gaps_total",
		"Interruptions of an engine subscription, during which messages were missed.")
	m.authFailure = newCounter("sluice_http_auth_failures_total", "Requests refused for a missing or wrong API key.")
	m.panics = newCounter("sluice_http_panics_total", "Handler panics recovered into 500 replies.")
	m.limitRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_limit_refused_total",
		Help: "Requests refused by a configured limit (queues, stream_clients, subscriptions, channels_per_client).",
	}, []string{"limit"})
	f(m.limitRefused)
	m.broken = newBrokenKeys(log)
	for _, col := range []prometheus.Collector{
		m.httpDuration, m.undelivered, m.overflow, m.putBack,
		m.wsClients, m.sseClients, m.fannedOut, m.slowClosed, m.engineSubs, m.missedGaps,
		m.authFailure, m.panics, m.broken.skipped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		queueCollector(c, cfg, log, m.broken),
	} {
		f(col)
	}
	return m
}

func newQueueCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"queue"})
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// countAdd records the overflow outcome of one add made by this process.
// What the items' policy did (rejected, moved, dropped) is counted by the
// engine for every writer, and exported from there (queueCollector).
func (m *metrics) countAdd(queue string, policy sluice.Policy, r sluice.AddResult) {
	if r.HadBackpressure {
		m.overflow.WithLabelValues(queue, string(policy)).Inc()
	}
}

// queueCollector reads every known queue's lengths and the engine's
// counters at scrape time, so the numbers are right whichever process
// wrote to the queue, and the engine's health. It is the public
// collector of package metrics, which Go programs embedding Sluice use:
// the two export the same series by construction. A queue whose key
// holds another kind of value is skipped and counted (brokenKeys), any
// other failure logged.
func queueCollector(c *sluice.Client, cfg Config, log *slog.Logger, broken *brokenKeys) prometheus.Collector {
	return sluicemetrics.NewCollector(c, &sluicemetrics.CollectorOptions{
		Defaults: cfg.queueSettings(),
		OnError: func(queue string, err error) {
			switch {
			case queue == "":
				log.Warn("metrics: listing queues failed", "err", err)
			case !broken.skip("metrics", queue, err):
				log.Warn("metrics: reading queue failed", "queue", queue, "err", err)
			}
		},
	})
}
