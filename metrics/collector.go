// Package metrics exports a Sluice client's queue numbers to Prometheus.
// sluice serve's /metrics uses it, and a Go service embedding Sluice gets
// the same series (names, labels and meaning) on its own registry:
//
//	reg.MustRegister(metrics.NewCollector(client, nil))
//
// It is a package of its own so that programs that do not use Prometheus
// do not compile it in.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice"
)

// Defaults of CollectorOptions.
const (
	// DefaultMaxQueues bounds the queues one scrape reports, as sluice
	// serve does.
	DefaultMaxQueues = 1000
	// DefaultTimeout bounds the engine reads of one scrape.
	DefaultTimeout = 5 * time.Second
)

// CollectorOptions configure NewCollector. The zero value is valid.
type CollectorOptions struct {
	// Defaults are the settings a queue that declares none is judged by
	// (its fill ratio against MaxSize); zero fields take the client's
	// Config.Queue. sluice serve passes its QUEUE_* settings here.
	Defaults sluice.QueueSettings
	// MaxQueues bounds the queues reported per scrape, in name order
	// (default DefaultMaxQueues): each adds 15 series.
	MaxQueues int
	// Timeout bounds the engine reads of one scrape (default
	// DefaultTimeout).
	Timeout time.Duration
	// OnError, when set, is told of each engine read that failed, with the
	// queue it was for ("" for the listing of queues). The scrape goes on
	// without the series of that queue. It must not block.
	OnError func(queue string, err error)
}

// withDefaults returns o with its zero fields set to their defaults.
func (o *CollectorOptions) withDefaults() CollectorOptions {
	var out CollectorOptions
	if o != nil {
		out = *o
	}
	if out.MaxQueues <= 0 {
		out.MaxQueues = DefaultMaxQueues
	}
	if out.Timeout <= 0 {
		out.Timeout = DefaultTimeout
	}
	return out
}

// Collector is a prometheus.Collector of one client's queues and engine.
// Every number is read from the engine at scrape time, so it is the same
// whichever process wrote to the queues: when several processes export
// them, aggregate with max, not sum.
type Collector struct {
	c    *sluice.Client
	opts CollectorOptions
}

// NewCollector returns a collector of c's queues and engine health. opts
// may be nil.
func NewCollector(c *sluice.Client, opts *CollectorOptions) *Collector {
	return &Collector{c: c, opts: opts.withDefaults()}
}

// The metrics, named as sluice serve's /metrics names them (docs/http.md).
var (
	engineUpDesc = prometheus.NewDesc("sluice_engine_up",
		"1 when the engine answered the health check of this scrape, 0 when it did not.", nil, nil)
	engineWarningsDesc = prometheus.NewDesc("sluice_engine_warnings",
		"Engine settings under which acknowledged items can be lost (the warnings of /health); 0 when there are none.", nil, nil)
	lengthDesc = prometheus.NewDesc("sluice_queue_length", "Items waiting in the queue.", []string{"queue"}, nil)
	fillDesc   = prometheus.NewDesc("sluice_queue_fill_ratio",
		"Queue length over its max size, the declared one when the queue declares one (0 when unbounded).", []string{"queue"}, nil)
	inFlightDesc = prometheus.NewDesc("sluice_queue_in_flight", "Items leased to consumers and not yet settled.", []string{"queue"}, nil)
	dlqDesc      = prometheus.NewDesc("sluice_queue_dlq_length",
		"Entries in the queue's dead-letter queue, by kind (overflow, failed).", []string{"queue", "dlq"}, nil)
	oldestDesc = prometheus.NewDesc("sluice_queue_oldest_item_age_seconds",
		"A lower bound of the oldest waiting item's age: how long the item at the head had been there at the maintainer's last sweep (0: empty or not swept).",
		[]string{"queue"}, nil)

	counters = []struct {
		desc  *prometheus.Desc
		value func(s sluice.QueueStats) int64
	}{
		{counterDesc("added", "Items accepted by adds."), func(s sluice.QueueStats) int64 { return s.Added }},
		{counterDesc("rejected", "Items rejected because their queue was full (reject policy)."), func(s sluice.QueueStats) int64 { return s.Rejected }},
		{counterDesc("moved_to_dlq", "Items moved to the overflow dead-letter queue to make room (dlq policy)."), func(s sluice.QueueStats) int64 { return s.MovedToDLQ }},
		{counterDesc("dropped", "Items dropped by the drop_oldest policy."), func(s sluice.QueueStats) int64 { return s.Dropped }},
		{counterDesc("delivered", "Items handed out: gets, and deliveries under a lease, redeliveries included."), func(s sluice.QueueStats) int64 { return s.Delivered }},
		{counterDesc("acked", "Deliveries acknowledged."), func(s sluice.QueueStats) int64 { return s.Acked }},
		{counterDesc("nacked", "Deliveries negatively acknowledged."), func(s sluice.QueueStats) int64 { return s.Nacked }},
		{counterDesc("dead_lettered", "Items moved to the failed dead-letter queue, their deliveries used up."), func(s sluice.QueueStats) int64 { return s.DeadLettered }},
		{counterDesc("redelivered", "Redeliveries of items whose lease expired."), func(s sluice.QueueStats) int64 { return s.Redelivered }},
	}
)

func counterDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("sluice_queue_"+name+"_total", help+" Counted by the engine for every client.", []string{"queue"}, nil)
}

// Describe implements prometheus.Collector.
func (col *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{engineUpDesc, engineWarningsDesc, lengthDesc, fillDesc, inFlightDesc, dlqDesc, oldestDesc} {
		ch <- d
	}
	for _, c := range counters {
		ch <- c.desc
	}
}

// Collect implements prometheus.Collector: the engine's health, then each
// queue's lengths and counters.
func (col *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), col.opts.Timeout)
	defer cancel()
	h := col.c.Health(ctx)
	up := 0.0
	if h.Status == "healthy" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(engineUpDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(engineWarningsDesc, prometheus.GaugeValue, float64(len(h.Warnings)))
	names, err := col.c.Queues(ctx)
	if err != nil {
		col.failed("", err)
		return
	}
	if len(names) > col.opts.MaxQueues {
		names = names[:col.opts.MaxQueues]
	}
	for _, name := range names {
		col.collectQueue(ctx, ch, name)
	}
}

func (col *Collector) collectQueue(ctx context.Context, ch chan<- prometheus.Metric, name string) {
	p, err := col.c.QueueWithDefaults(name, col.opts.Defaults).Pressure(ctx)
	if err != nil {
		col.failed(name, err)
		return
	}
	s, err := col.c.Queue(name).Stats(ctx)
	if err != nil {
		col.failed(name, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(lengthDesc, float64(p.CurrentLength), name)
	gauge(fillDesc, p.FillRatio, name)
	gauge(inFlightDesc, float64(p.InFlight), name)
	for _, c := range counters {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.value(s)), name)
	}
	// Sampled by a maintainer (Client.RunMaintainer): 0 where none runs.
	gauge(oldestDesc, s.OldestAgeSeconds, name)
	gauge(dlqDesc, float64(s.OverflowDLQ), name, "overflow")
	gauge(dlqDesc, float64(s.FailedDLQ), name, "failed")
}

func (col *Collector) failed(queue string, err error) {
	if col.opts.OnError != nil {
		col.opts.OnError(queue, err)
	}
}
