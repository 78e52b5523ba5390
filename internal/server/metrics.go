package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sluicehq/sluice"
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
		&queueCollector{c: c, queue: cfg.queueSettings(), log: log, broken: m.broken},
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
// engine for every writer, and exported from there (queueStatsDescs).
func (m *metrics) countAdd(queue string, policy sluice.Policy, r sluice.AddResult) {
	if r.HadBackpressure {
		m.overflow.WithLabelValues(queue, string(policy)).Inc()
	}
}

// queueCollector reads every known queue's length at scrape time, so the
// gauges are right whichever process wrote to the queue.
type queueCollector struct {
	c      *sluice.Client
	queue  sluice.QueueSettings
	log    *slog.Logger
	broken *brokenKeys
}

var (
	queueLengthDesc = prometheus.NewDesc("sluice_queue_length", "Items waiting in the queue.", []string{"queue"}, nil)
	queueFillDesc   = prometheus.NewDesc("sluice_queue_fill_ratio", "Queue length over its max size, the declared one when the queue declares one (0 when unbounded).", []string{"queue"}, nil)
	queueFlightDesc = prometheus.NewDesc("sluice_queue_in_flight", "Items leased to consumers and not yet settled.", []string{"queue"}, nil)
)

// maxScrapedQueues bounds the per-queue series of one scrape.
const maxScrapedQueues = 1000

func (qc *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueLengthDesc
	ch <- queueFillDesc
	ch <- queueFlightDesc
	for _, d := range queueStatsDescs {
		ch <- d.desc
	}
	ch <- queueDLQDesc
	ch <- queueOldestDesc
}

func (qc *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names, err := qc.c.Queues(ctx)
	if err != nil {
		qc.log.Warn("metrics: listing queues failed", "err", err)
		return
	}
	if len(names) > maxScrapedQueues {
		names = names[:maxScrapedQueues]
	}
	for _, name := range names {
		p, err := qc.c.QueueWithDefaults(name, qc.queue).Pressure(ctx)
		if err != nil {
			if qc.broken.skip("metrics", name, err) {
				continue
			}
			qc.log.Warn("metrics: reading queue pressure failed", "queue", name, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(queueLengthDesc, prometheus.GaugeValue, float64(p.CurrentLength), name)
		ch <- prometheus.MustNewConstMetric(queueFillDesc, prometheus.GaugeValue, p.FillRatio, name)
		ch <- prometheus.MustNewConstMetric(queueFlightDesc, prometheus.GaugeValue, float64(p.InFlight), name)
		qc.collectStats(ctx, ch, name)
	}
}
