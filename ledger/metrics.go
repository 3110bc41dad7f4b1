package ledger

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ledger's own measurements: plain counters always (Stats), and Prometheus
// metrics when a registry is configured.
type metrics struct {
	batches    atomic.Int64
	operations atomic.Int64
	retries    atomic.Int64
	phases     [4]atomic.Int64 // nanoseconds in each batch phase: lookup, load, decide, write
	// routes counts the operations on a commitment or hold routed to their envelope (homes.go):
	// [routeCommitment or routeHold][routeRemembered or routeRead].
	routes [2][2]atomic.Int64

	prom *promMetrics // nil without a registry
}

type promMetrics struct {
	batchSize *prometheus.HistogramVec
	phases    *prometheus.HistogramVec
	queue     *prometheus.GaugeVec
	retries   *prometheus.CounterVec
	available *prometheus.GaugeVec
	routes    *prometheus.CounterVec
}

// What an operation was routed for, and how (ledger_routes_total).
const (
	routeCommitment, routeHold = 0, 1
	routeRemembered, routeRead = 0, 1
)

var routeLabels = [2][2][2]string{
	{{"commitment", "remembered"}, {"commitment", "read"}},
	{{"hold", "remembered"}, {"hold", "read"}},
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
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ledger_batch_phase_seconds",
			Help: "Time a group-commit batch that committed spent in each phase: lookup (the request log, and the project totals read ahead, before its transaction; with any attempt that was run again), load (BEGIN, the envelopes' locks and the other reads of the transaction), decide (in memory), write (the writes and COMMIT).",
			// From 50 µs to about 1.6 s, doubling.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"phase"}),
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
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_routes_total",
			Help: "Operations on a commitment (release, payment, closing) or, with group commit on, a hold (confirmation, cancellation) routed to their envelope: by what this process remembers of it (remembered), or after reading it outside any transaction (read).",
		}, []string{"of", "by"}),
	}
	for _, c := range []prometheus.Collector{p.batchSize, p.phases, p.queue, p.retries, p.available, p.routes} {
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

// batchPhases are the times at which a group-commit batch's attempt went from one phase to the
// next (ledger_batch_phase_seconds).
type batchPhases struct {
	start, loading, deciding, writing time.Time
}

// batchDecided counts a batch that committed; phases are its times, and end when it committed.
func (m *metrics) batchDecided(n int, envs []core.Envelope, phases batchPhases, end time.Time) {
	m.batches.Add(1)
	m.operations.Add(int64(n))
	spans := [4]struct {
		name     string
		from, to time.Time
	}{
		{"lookup", phases.start, phases.loading},
		{"load", phases.loading, phases.deciding},
		{"decide", phases.deciding, phases.writing},
		{"write", phases.writing, end},
	}
	for i, p := range spans {
		m.phases[i].Add(int64(p.to.Sub(p.from)))
	}
	if m.prom == nil {
		return
	}
	m.prom.batchSize.WithLabelValues().Observe(float64(n))
	for _, p := range spans {
		m.prom.phases.WithLabelValues(p.name).Observe(p.to.Sub(p.from).Seconds())
	}
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

// routed counts an operation routed for what (routeCommitment, routeHold), how (routeRemembered,
// routeRead).
func (m *metrics) routed(what, how int) {
	m.routes[what][how].Add(1)
	if m.prom != nil {
		l := routeLabels[what][how]
		m.prom.routes.WithLabelValues(l[0], l[1]).Inc()
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
	// Phases is the time those batches spent in each phase, summed over them
	// (ledger_batch_phase_seconds).
	Phases BatchPhases
	// Routes counts the operations on commitments and holds routed to their envelope
	// (ledger_routes_total).
	Routes Routes
}

// Routes count the operations on a commitment (release, payment, closing) or a hold
// (confirmation, cancellation) routed by what the process remembers of it, or after a read.
type Routes struct {
	CommitmentsRemembered, CommitmentsRead, HoldsRemembered, HoldsRead int64
}

// BatchPhases are the phases of group-commit batches that committed: Lookup, the request log (and
// the project totals read ahead) before the transaction, with any attempt that was run again;
// Load, BEGIN, the envelopes' locks and the transaction's other reads; Decide, in memory; Write,
// the writes and COMMIT.
type BatchPhases struct {
	Lookup, Load, Decide, Write time.Duration
}

// Stats returns the counters of this process since Open.
func (l *Ledger) Stats() Stats {
	m := l.metrics
	return Stats{Batches: m.batches.Load(), Operations: m.operations.Load(), Retries: m.retries.Load(),
		Phases: BatchPhases{Lookup: time.Duration(m.phases[0].Load()), Load: time.Duration(m.phases[1].Load()),
			Decide: time.Duration(m.phases[2].Load()), Write: time.Duration(m.phases[3].Load())},
		Routes: Routes{CommitmentsRemembered: m.routes[routeCommitment][routeRemembered].Load(),
			CommitmentsRead: m.routes[routeCommitment][routeRead].Load(),
			HoldsRemembered: m.routes[routeHold][routeRemembered].Load(), HoldsRead: m.routes[routeHold][routeRead].Load()}}
}
