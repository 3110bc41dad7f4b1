// Package ledger is the budget ledger: envelopes, commitments and a double-entry journal, kept
// exact under serializable transactions on SQLite, PostgreSQL or CockroachDB. It is what server/
// and cmd/ import; it knows nothing of gRPC.
//
// Every mutation names itself with a request id, which belongs to its caller (two callers may use
// the same id; see core.RequestKey). The first outcome of a request (its result, or a business
// refusal such as INSUFFICIENT_FUNDS) is recorded in the same transaction as its postings and
// replayed to every retry by the same caller with the same id and payload; a different payload
// under a used id is refused with REQUEST_ID_REUSED. Validation failures (INVALID_ARGUMENT), stale
// etags (ETAG_MISMATCH: see etag.go) and transient failures (STORE_UNAVAILABLE,
// TRANSACTION_CONFLICT, a deadline) record nothing, so the same request may be sent again — except
// a STORE_UNAVAILABLE after a COMMIT whose outcome could not be learnt (the database went away
// during it and did not come back): that request may have been recorded, and sending it again
// replays it if it was.
//
// The package only orchestrates; each responsibility lives in a package below it, and every
// arrow points down:
//
//   - core: the pure decision core (types, errors, validation, fingerprints, funding rules, and
//     the decision of every operation from loaded state; no I/O, no clock);
//   - groupcommit: the per-envelope queues that batch requests into one transaction;
//   - store: the database engines (SQLite, PostgreSQL/CockroachDB), migrations, and one file per
//     table: it only loads and writes;
//   - audit: the verifier, one check per invariant;
//   - report: funding reports, now or as of a past time.
//
// One operation runs as: validate (core) → look up the request log (store) → in one serializable
// transaction: load and lock (store) → decide (core) → write (store) → answer.
package ledger

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/budgetledger/budgetledger/ledger/audit"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/groupcommit"
	"github.com/budgetledger/budgetledger/ledger/report"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config tunes a Ledger. The zero value is usable.
type Config struct {
	// TxTimeout bounds every database transaction, retries included (default 5s): no request
	// waits on the database longer than this.
	TxTimeout time.Duration
	// MaxConns caps the connection pool (PostgreSQL/CockroachDB default: pool_max_conns in the
	// URL, else 16; SQLite: 8).
	MaxConns int
	// DisableBatching runs one transaction per Commit, Release, hold decision (create, confirm,
	// cancel), payment or closing instead of group commit per envelope; for comparison and
	// diagnosis.
	DisableBatching bool
	// MaxBatch caps how many operations one group-commit transaction decides (default 1000).
	MaxBatch int
	// BatchQueues is how many group-commit queues (and so concurrent batch transactions) the
	// envelopes are spread over (default DefaultBatchQueues). One envelope always goes to the same
	// queue.
	BatchQueues int
	// Registerer receives the ledger's Prometheus metrics (default: none are registered).
	Registerer prometheus.Registerer
	// MustExist opens only a ledger that exists: a missing SQLite file is ErrNoDatabase instead
	// of a new, empty ledger (for the verifier and other tools that only read).
	MustExist bool
	// FollowerReads lets Verify and the reports read, on CockroachDB, a consistent snapshot a few
	// seconds old (AS OF SYSTEM TIME follower_read_timestamp()): they then never conflict with
	// writers, and any replica can serve them, but they do not see what committed in those last
	// seconds. No effect on SQLite and PostgreSQL. See docs/cockroachdb.md.
	FollowerReads bool
	// TracerProvider, when set, traces the ledger's transactions (OpenTelemetry): a span per
	// group-commit batch with its size and retries, and one per other mutation.
	TracerProvider trace.TracerProvider
	// HoldSweepInterval is how often the hold sweeper looks for expired holds when no hold of
	// this process is due sooner (default 200ms); negative: no sweeper runs in this process (tests
	// and tools then call SweepExpiredHolds). No sweeper runs with MustExist either.
	HoldSweepInterval time.Duration
	// Clock, when set, is the time every decision takes as now instead of the system's clock:
	// tests (and the reference model's comparison) drive holds' expiry and rules' windows with it.
	// Decisions on one envelope still follow the order of its lock (see stampAfter).
	Clock func() time.Time
	// Log configures the transparency log (tlog.go).
	Log LogConfig
	// Logger, when set, receives the warnings of opening the database (store.Config.Logger).
	Logger *slog.Logger
}

// DefaultBatchQueues is the number of group-commit queues when Config.BatchQueues is not set:
// half the CPUs the process may use, at least 1 and at most 4. Measured (docs/benchmarks.md,
// "How many queues"): a batch's work is CPU — deciding, encoding, and the database's own — so
// concurrent batches on a machine with few cores only split the queued requests into smaller
// batches, each paying a transaction's fixed cost: on 2 cores, 30 envelopes under 64 clients ran
// 7 % faster with 25–30 % less CPU per award on one queue than on four.
func DefaultBatchQueues() int { return min(4, max(1, runtime.GOMAXPROCS(0)/2)) }

// ErrNoDatabase is what Open returns when Config.MustExist is set and there is no ledger.
var ErrNoDatabase = store.ErrNoDatabase

// ErrSchemaNewer is what Open returns for a ledger that a later release has migrated: its schema
// has migrations this binary does not know, so this binary neither serves nor verifies it.
var ErrSchemaNewer = store.ErrSchemaNewer

func (c Config) withDefaults() Config {
	if c.TxTimeout <= 0 {
		c.TxTimeout = 5 * time.Second
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.BatchQueues <= 0 {
		c.BatchQueues = DefaultBatchQueues()
	}
	return c
}

// Ledger is the budget ledger over one database. It is safe for concurrent use, and several
// processes may share one PostgreSQL or CockroachDB database: the database transaction, not the
// process, enforces every invariant.
type Ledger struct {
	db      store.Engine
	cfg     Config
	batcher *groupcommit.Batcher[*core.Unit] // nil when batching is disabled
	metrics *metrics

	// parents caches envelopes' parents (they never change), for the funding rules' inheritance.
	parents store.ParentCache
	tracer  trace.Tracer
	// seq assigns journal positions after commits (nil where they are assigned inline).
	seq *sequencer
	// sweep returns expired holds to their envelopes (nil when disabled; see holdsweeper.go).
	sweep *sweeper
	// holdLocks serializes this process's decisions on the holds of one envelope (holds.go).
	holdLocks envelopeLocks
	// tlog is the transparency log's state (tlog.go).
	tlog *tlogState
	// beforeCommit, set by tests only, runs at the end of every transaction of mutate, before
	// its COMMIT, so that a test can hold a decision open.
	beforeCommit func()
	// shareRuled holds the ids of envelopes that had a funding-share rule in force at their last
	// batch here: their project totals are read ahead, outside the transaction.
	shareRuled shareRuled
	// verifications are the verifications running or done in the background (verification.go).
	verifications *verifications
	// commitmentHomes and holdHomes remember where recent commitments and holds belong (homes.go).
	commitmentHomes homes[string]
	holdHomes       homes[*core.Hold]
	// retriedAt is when (Unix nanoseconds) a batch's transaction last had to be retried (peeking).
	retriedAt atomic.Int64
}

// Open opens (creating it if needed) the ledger stored at database and brings its schema up to
// date:
//
//   - "postgres://…" or "postgresql://…": PostgreSQL, or CockroachDB (detected from its version
//     string);
//   - "sqlite:PATH", "file:PATH" or a bare PATH: an embedded SQLite file.
func Open(ctx context.Context, database string, cfg Config) (*Ledger, error) {
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, database, store.Config{TxTimeout: cfg.TxTimeout, MaxConns: cfg.MaxConns, OnRetry: m.retried,
		MustExist: cfg.MustExist, FollowerReads: cfg.FollowerReads, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	l := newLedger(db, cfg, m)
	if err := l.positionWaiting(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// newLedger starts a Ledger on an open engine (tests give it a wrapped one).
func newLedger(db store.Engine, cfg Config, m *metrics) *Ledger {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	l := &Ledger{db: db, cfg: cfg, metrics: m, tracer: tp.Tracer("github.com/budgetledger/budgetledger/ledger"),
		verifications: newVerifications()}
	l.startLog()
	l.startSequencer()
	l.startSweeper()
	if !cfg.DisableBatching {
		l.batcher = groupcommit.New(groupcommit.Config[*core.Unit]{
			Queues:    cfg.BatchQueues,
			MaxBatch:  cfg.MaxBatch,
			Size:      func(u *core.Unit) int { return len(u.Ops) },
			Apply:     l.applyBatch,
			Depth:     m.queueDepth,
			ErrClosed: errShuttingDown,
		})
	}
	return l
}

// errShuttingDown refuses work submitted after Close began; the caller may retry elsewhere.
var errShuttingDown = &Error{Reason: ReasonStoreUnavailable, Message: "the ledger is shutting down; nothing was recorded; retry"}

// Engine names the database engine: "sqlite", "postgres" or "cockroachdb".
func (l *Ledger) Engine() string { return l.db.Name() }

// Close finishes the operations already queued, then releases the database connections.
// Operations submitted meanwhile are refused with STORE_UNAVAILABLE. A verification running in
// the background is cancelled (it ends CANCELLED) and waited for.
func (l *Ledger) Close() {
	l.verifications.close()
	if l.batcher != nil {
		l.batcher.Close()
	}
	l.stopSweeper()
	l.stopSequencer()
	l.stopLog()
	l.db.Close()
}

// Ping reports whether the database answers, within the transaction timeout.
func (l *Ledger) Ping(ctx context.Context) error {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	if err := l.db.Ping(ctx); err != nil {
		return l.classify(ctx, err)
	}
	return nil
}

// errTxTimeout is the cause of a context ended by Config.TxTimeout rather than by the caller.
var errTxTimeout = errors.New("the database did not answer within the transaction timeout")

// txContext bounds one database operation by Config.TxTimeout.
func (l *Ledger) txContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, l.cfg.TxTimeout, errTxTimeout)
}

// classify turns an error out of the database layer into what the caller may do about it. Domain
// errors pass through; a retryable database error never becomes a business refusal.
func (l *Ledger) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := core.AsError(err); ok {
		return err
	}
	if errors.Is(err, store.ErrCommitOutcomeUnknown) {
		return core.Wrap(ReasonStoreUnavailable,
			"the outcome of COMMIT is unknown (the connection broke during COMMIT, or the database answered that the result is ambiguous) and the database could not be reached again to check it; retry with the same request_id to learn it", err)
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if errors.Is(context.Cause(ctx), errTxTimeout) {
			// Our own deadline, not the caller's: the database is too slow or unreachable.
			return core.Wrap(ReasonStoreUnavailable,
				"the database did not answer within the transaction timeout; nothing was recorded; retry with the same request_id", err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
	}
	switch {
	case store.Retryable(err):
		return core.Wrap(ReasonTransactionConflict,
			"the transaction kept conflicting with concurrent ones; nothing was recorded; retry", err)
	case store.Unavailable(err):
		return core.Wrap(ReasonStoreUnavailable, "the database cannot be reached; nothing was recorded; retry", err)
	}
	return core.Wrap(ReasonInternal, "internal error", err)
}

// stamp is what a decision made now takes from the world.
func (l *Ledger) stamp() core.Stamp {
	return core.Stamp{At: l.now(), NewID: newID}
}

// stamp is the stamp of a decision made now by the system's clock.
func stamp() core.Stamp {
	return core.Stamp{At: time.Now().UTC().Truncate(time.Microsecond), NewID: newID}
}

// now is the ledger's clock (Config.Clock, else the system's), at the microsecond stored.
func (l *Ledger) now() time.Time {
	if l.cfg.Clock != nil {
		return l.cfg.Clock().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// stampAfter is the stamp of a decision that holds the locks of envelopes: it is taken once the
// locks are held, and is later than the last change of every one of them, even if another
// process's clock ran ahead. So the times of the decisions on one envelope follow the order in
// which they held its lock, and a rule change is in force for exactly the decisions that come
// after it (invariant 8).
func (l *Ledger) stampAfter(envs map[string]core.Envelope) core.Stamp {
	st := l.stamp()
	for _, env := range envs {
		if !env.UpdatedAt.Before(st.At) {
			st.At = env.UpdatedAt.Add(time.Microsecond)
		}
	}
	return st
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// Verify recomputes every balance from the journal in one consistent snapshot and checks the
// ledger's invariants (see package audit).
func (l *Ledger) Verify(ctx context.Context) (VerifyReport, error) {
	rep, err := audit.Verify(store.ReadingHistory(ctx), l.db)
	return rep, l.classify(ctx, err)
}

// Report computes the funding report of the envelope rootID and its descendants (every tree when
// rootID is empty) as of the effective date asOf, or now when asOf is zero; see package report. A report as of
// 0001-01-01T00:00:00Z, which is the zero time, is ReportAt's.
func (l *Ledger) Report(ctx context.Context, rootID string, asOf time.Time) (Report, error) {
	if asOf.IsZero() {
		return l.ReportKnown(ctx, rootID, nil, nil)
	}
	return l.ReportKnown(ctx, rootID, &asOf, nil)
}

// ReportAt is Report as of exactly asOf, even the zero time (0001-01-01T00:00:00Z).
func (l *Ledger) ReportAt(ctx context.Context, rootID string, asOf time.Time) (Report, error) {
	return l.ReportKnown(ctx, rootID, &asOf, nil)
}

// ReportKnown is the bitemporal report: as of the effective date *asOf (nil: every entry), as the
// ledger knew it at *knownAt (nil: everything recorded). See report.Compute.
func (l *Ledger) ReportKnown(ctx context.Context, rootID string, asOf, knownAt *time.Time) (Report, error) {
	if knownAt != nil {
		if err := core.CheckTime("known_at_time", *knownAt); err != nil {
			return Report{}, err
		}
	}
	return l.report(ctx, rootID, asOf, knownAt)
}

func (l *Ledger) report(ctx context.Context, rootID string, asOf, knownAt *time.Time) (Report, error) {
	if rootID != "" {
		if err := core.CheckEnvelopeID("envelope", rootID); err != nil {
			return Report{}, err
		}
	}
	if asOf != nil {
		if err := core.CheckTime("as_of_time", *asOf); err != nil {
			return Report{}, err
		}
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	rep, err := report.Compute(store.ReadingHistory(ctx), l.db, rootID, asOf, knownAt)
	return rep, l.classify(ctx, err)
}

// Awards reads the awards of the envelope rootID and its descendants as of the effective date
// *asOf (everything when nil), with what each holds and was paid by then, in one consistent
// snapshot; see report.ComputeAwards. The open-data export (package opendata) is built on it.
func (l *Ledger) Awards(ctx context.Context, rootID string, asOf *time.Time) (Awards, error) {
	if err := core.CheckEnvelopeID("envelope", rootID); err != nil {
		return Awards{}, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	aw, err := report.ComputeAwards(store.ReadingHistory(ctx), l.db, rootID, asOf)
	return aw, l.classify(ctx, err)
}
