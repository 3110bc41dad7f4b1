package ledger

import (
	"strconv"
	"sync/atomic"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ledger's own measurements: plain counters always (Stats), and Prometheus
// metrics when a registry is configured.
type metrics struct {
	batches    atomic.Int64
	operations atomic.Int64
	retries    atomic.Int64

	prom *promMetrics // nil without a registry
}

type promMetrics struct {
	batchSize *prometheus.HistogramVec
	queue     *prometheus.GaugeVec
	retries   *prometheus.CounterVec
	available *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	if reg == nil {
		return m, nil
	}
	p := &promMetrics{
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_batch_size",
			Help:    "Commits and releases decided per transaction on one envelope (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}, nil),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_queue_depth",
			Help: "Operations waiting in a group-commit queue (envelopes are spread over the queues by a hash of their id).",
		}, []string{"queue"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_transaction_retries_total",
			Help: "Transactions run again after a retryable failure (serialization failure, deadlock, busy database, request recorded meanwhile).",
		}, []string{"engine"}),
		available: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_envelope_available_minor_units",
			Help: "Available amount of an envelope after the last batch this process decided on it.",
		}, []string{"envelope", "currency"}),
	}
	for _, c := range []prometheus.Collector{p.batchSize, p.queue, p.retries, p.available} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.prom = p
	return m, nil
}

func (m *metrics) queueDepth(queue int, n int) {
	if m.prom != nil {
		m.prom.queue.WithLabelValues(strconv.Itoa(queue)).Set(float64(n))
	}
}

func (m *metrics) batchDecided(n int, envs []core.Envelope) {
	m.batches.Add(1)
	m.operations.Add(int64(n))
	if m.prom == nil {
		return
	}
	m.prom.batchSize.WithLabelValues().Observe(float64(n))
	m.envelopes(envs)
}

// envelopes sets the available gauge of envelopes as a transaction of this process left them.
func (m *metrics) envelopes(envs []core.Envelope) {
	if m.prom == nil {
		return
	}
	for _, env := range envs {
		m.prom.available.WithLabelValues(EnvelopeName(env.ID), env.Currency).Set(float64(env.Available()))
	}
}

func (m *metrics) retried(engine string) {
	m.retries.Add(1)
	if m.prom != nil {
		m.prom.retries.WithLabelValues(engine).Inc()
	}
}

// Stats are counters of this process since Open.
type Stats struct {
	// Batches is how many transactions decided commits and releases; Operations how many
	// commits and releases they decided.
	Batches, Operations int64
	// Retries is how many transactions of any kind were run again after a retryable failure.
	Retries int64
}

// Stats returns the counters of this process since Open.
func (l *Ledger) Stats() Stats {
	return Stats{Batches: l.metrics.batches.Load(), Operations: l.metrics.operations.Load(), Retries: l.metrics.retries.Load()}
}
