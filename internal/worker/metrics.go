package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a worker's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	processed    prometheus.Counter
	failed       prometheus.Counter
	deadLettered prometheus.Counter
	released     prometheus.Counter
	timeouts     prometheus.Counter
	runSeconds   prometheus.Histogram
}

// NewMetrics registers the worker's metrics with reg: counters
// sluice_worker_{processed,failed,dead_lettered,released,timeouts}_total
// (items; timeouts in runs) and the histogram sluice_worker_run_seconds.
func NewMetrics(reg prometheus.Registerer, queue string) (*Metrics, error) {
	labels := prometheus.Labels{"queue": queue}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_worker_" + name + "_total", Help: help, ConstLabels: labels})
	}
	m := &Metrics{
		processed:    counter("processed", "Items acked after a successful run."),
		failed:       counter("failed", "Items nacked after a failed run (dead-lettered ones included)."),
		deadLettered: counter("dead_lettered", "Nacked items that moved to the failed DLQ."),
		released:     counter("released", "Items handed back unhandled by a shutdown."),
		timeouts:     counter("timeouts", "Runs killed by the run timeout."),
		runSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_worker_run_seconds", Help: "Duration of runs (one item, or one batch).",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	for _, c := range []prometheus.Collector{m.processed, m.failed, m.deadLettered, m.released, m.timeouts, m.runSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observeRun(d time.Duration) {
	if m != nil {
		m.runSeconds.Observe(d.Seconds())
	}
}

func (m *Metrics) addProcessed(n int64) {
	if m != nil {
		m.processed.Add(float64(n))
	}
}

func (m *Metrics) addFailed(dead bool) {
	if m != nil {
		m.failed.Inc()
		if dead {
			m.deadLettered.Inc()
		}
	}
}

func (m *Metrics) addReleased(n int64) {
	if m != nil {
		m.released.Add(float64(n))
	}
}

func (m *Metrics) addTimeout() {
	if m != nil {
		m.timeouts.Inc()
	}
}
