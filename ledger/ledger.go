// Package ledger is the budget ledger's domain and storage: envelopes, commitments and a
// double-entry journal, kept exact under serializable transactions on SQLite, PostgreSQL or
// CockroachDB. It knows nothing of gRPC.
//
// Every mutation names itself with a request id. The first outcome of a request (its result, or a
// business refusal such as INSUFFICIENT_FUNDS) is recorded in the same transaction as its postings
// and replayed to every retry with the same id and payload; a different payload under a used id is
// refused with REQUEST_ID_REUSED. Validation failures (INVALID_ARGUMENT) and transient failures
// (STORE_UNAVAILABLE, TRANSACTION_CONFLICT, a deadline) record nothing, so the same request may be
// sent again.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes a Ledger. The zero value is usable.
type Config struct {
	// TxTimeout bounds every database transaction, retries included (default 5s): no request
	// waits on the database longer than this.
	TxTimeout time.Duration
	// MaxConns caps the connection pool (PostgreSQL/CockroachDB default: pool_max_conns in the
	// URL, else 16; SQLite: 8).
	MaxConns int
	// DisableBatching runs one transaction per Commit or Release instead of group commit per
	// envelope; for comparison and diagnosis.
	DisableBatching bool
	// MaxBatch caps how many operations one group-commit transaction decides (default 1000).
	MaxBatch int
	// BatchQueues is how many group-commit queues (and so concurrent batch transactions) the
	// envelopes are spread over (default 4). One envelope always goes to the same queue.
	BatchQueues int
	// Registerer receives the ledger's Prometheus metrics (default: none are registered).
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.TxTimeout <= 0 {
		c.TxTimeout = 5 * time.Second
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.BatchQueues <= 0 {
		c.BatchQueues = 4
	}
	return c
}

// Ledger is the budget ledger over one database. It is safe for concurrent use, and several
// processes may share one PostgreSQL or CockroachDB database: the database transaction, not the
// process, enforces every invariant.
type Ledger struct {
	eng     engine
	cfg     Config
	batcher *batcher // nil when batching is disabled
	metrics *metrics

	// parents caches envelopes' parents (they never change), for the funding rules' inheritance.
	parents parentCache
	// shareRuled holds the ids of envelopes that had a funding-share rule in force at their last
	// batch here: their project totals are read ahead, outside the transaction.
	shareRuled sync.Map
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
	var eng engine
	if strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://") {
		eng, err = openPostgres(ctx, database, cfg, m)
	} else {
		eng, err = openSQLite(ctx, sqlitePath(database), cfg, m)
	}
	if err != nil {
		return nil, err
	}
	l := &Ledger{eng: eng, cfg: cfg, metrics: m}
	if !cfg.DisableBatching {
		l.batcher = newBatcher(l, cfg.BatchQueues, cfg.MaxBatch)
	}
	return l, nil
}

// Engine names the database engine: "sqlite", "postgres" or "cockroachdb".
func (l *Ledger) Engine() string { return l.eng.name() }

// Close finishes the operations already queued, then releases the database connections.
// Operations submitted meanwhile are refused with STORE_UNAVAILABLE.
func (l *Ledger) Close() {
	if l.batcher != nil {
		l.batcher.close()
	}
	l.eng.close()
}

// Ping reports whether the database answers, within the transaction timeout.
func (l *Ledger) Ping(ctx context.Context) error {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	if err := l.eng.ping(ctx); err != nil {
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
	if _, ok := asError(err); ok {
		return err
	}
	if errors.Is(err, errCommitOutcomeUnknown) {
		return &Error{Reason: ReasonStoreUnavailable,
			Message: "the database connection broke during COMMIT and the database could not be reached again to check the outcome; retry with the same request_id to learn it", cause: err}
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if errors.Is(context.Cause(ctx), errTxTimeout) {
			// Our own deadline, not the caller's: the database is too slow or unreachable.
			return &Error{Reason: ReasonStoreUnavailable,
				Message: "the database did not answer within the transaction timeout; nothing was recorded; retry with the same request_id", cause: err}
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
	}
	switch {
	case errors.Is(err, errRequestRecorded) || pgRetryable(err) || sqliteBusy(err):
		return &Error{Reason: ReasonTransactionConflict,
			Message: "the transaction kept conflicting with concurrent ones; nothing was recorded; retry", cause: err}
	case pgUnavailable(err) || sqliteFatal(err):
		return &Error{Reason: ReasonStoreUnavailable,
			Message: "the database cannot be reached; nothing was recorded; retry", cause: err}
	}
	return &Error{Reason: ReasonInternal, Message: "internal error", cause: err}
}

// outcome is what the request log keeps of a decided request: a JSON result, or a refusal.
type outcome struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Refusal *Error          `json:"refusal,omitempty"`
}

// encode is json.Marshal(o) without re-validating the result, which is JSON this process made.
func (o outcome) encode() ([]byte, error) {
	if o.Refusal != nil {
		return json.Marshal(o)
	}
	raw := make([]byte, 0, len(o.Result)+12)
	raw = append(raw, `{"result":`...)
	raw = append(raw, o.Result...)
	return append(raw, '}'), nil
}

func (o outcome) decode(out any) error {
	if o.Refusal != nil {
		return o.Refusal
	}
	return json.Unmarshal(o.Result, out)
}

// priorRequest is a row of the request log.
type priorRequest struct {
	fingerprint string
	outcome     outcome
}

func requestIDReused(id string) *Error {
	return &Error{
		Reason:   ReasonRequestIDReused,
		Message:  fmt.Sprintf("request id %q was already used for a different request; use a new request id", id),
		Metadata: map[string]string{"request_id": id},
	}
}

// isRefusal reports whether err is a business decision to record as the request's outcome.
func isRefusal(err error) (*Error, bool) {
	e, ok := asError(err)
	if !ok || e.Retryable() || e.Reason == ReasonInternal || e.Reason == ReasonRequestIDReused {
		return nil, false
	}
	return e, true
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// mutate runs one request that is not routed through an envelope batch (envelope creation, moves,
// refusals of unknown commitments): look up its request id, decide with apply, record the
// outcome, all in one serializable transaction. apply must decide before it writes: a refusal is
// recorded in the same transaction, so nothing may have been written when it refuses.
func (l *Ledger) mutate(ctx context.Context, requestID, fingerprint string, out any,
	apply func(ctx context.Context, q querier, at time.Time) (any, error)) error {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	var decided outcome
	err := l.withRequestLog(ctx, []string{requestID}, func(priors map[string]priorRequest) error {
		if prior, ok := priors[requestID]; ok {
			decided = prior.outcome
			if prior.fingerprint != fingerprint {
				decided = outcome{Refusal: requestIDReused(requestID)}
			}
			return nil
		}
		return l.eng.readWrite(ctx, func(q querier) error {
			decided = outcome{}
			return l.decideOne(ctx, q, requestID, fingerprint, &decided, apply)
		})
	})
	if err != nil {
		return l.classify(ctx, err)
	}
	return decided.decode(out)
}

// withRequestLog looks up request ids in the request log, outside any transaction (its rows never
// change, and a lookup inside a SERIALIZABLE transaction would take predicate locks that make
// batches on unrelated envelopes abort each other), then runs decide with what it found. When
// another transaction recorded one of the ids meanwhile, decide fails with errRequestRecorded and
// runs again with a fresh lookup, so that the recorded outcome is replayed.
func (l *Ledger) withRequestLog(ctx context.Context, ids []string, decide func(map[string]priorRequest) error) error {
	unknown := false // an earlier attempt lost its connection during COMMIT
	for attempt := 1; ; attempt++ {
		priors, err := loadRequests(ctx, l.eng.reader(), ids)
		if err == nil {
			err = decide(priors)
		}
		if errors.Is(err, errCommitOutcomeUnknown) {
			unknown = true
		}
		switch {
		case err == nil:
			return nil
		case unknown && !errors.Is(err, errCommitOutcomeUnknown) && (pgUnavailable(err) || ctx.Err() != nil):
			// The database is still away: the first COMMIT may or may not have landed.
			return fmt.Errorf("%w: %w", errCommitOutcomeUnknown, err)
		case (errors.Is(err, errRequestRecorded) || errors.Is(err, errCommitOutcomeUnknown)) && attempt < 3:
			// Look again: a recorded request is replayed; one that is not recorded is decided
			// anew, and the request log's primary key stops a second decision if the lost
			// COMMIT did land after all.
			continue
		}
		return err
	}
}

// decideOne decides a request that was not in the request log and records its outcome.
func (l *Ledger) decideOne(ctx context.Context, q querier, requestID, fingerprint string, decided *outcome,
	apply func(ctx context.Context, q querier, at time.Time) (any, error)) error {
	at := now()
	result, err := apply(ctx, q, at)
	if refusal, ok := isRefusal(err); ok {
		*decided = outcome{Refusal: refusal}
	} else if err != nil {
		return err
	} else if decided.Result, err = json.Marshal(result); err != nil {
		return err
	}
	return insertRequests(ctx, q, at, []requestRow{{requestID, fingerprint, *decided}})
}

// CreateEnvelope creates a root envelope funded from outside the ledger, or a child envelope whose
// allocation is taken from its parent's available amount.
func (l *Ledger) CreateEnvelope(ctx context.Context, cmd CreateEnvelope) (CreateEnvelopeResult, error) {
	var res CreateEnvelopeResult
	if err := cmd.validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.RequestID, cmd.fingerprint(), &res,
		func(ctx context.Context, q querier, at time.Time) (any, error) {
			return l.createEnvelope(ctx, q, at, cmd)
		})
	return res, err
}

func (l *Ledger) createEnvelope(ctx context.Context, q querier, at time.Time, cmd CreateEnvelope) (*CreateEnvelopeResult, error) {
	if _, err := l.loadEnvelope(ctx, q, cmd.EnvelopeID, false); err == nil {
		return nil, &Error{Reason: ReasonEnvelopeAlreadyExists,
			Message:  fmt.Sprintf("envelope %q already exists", EnvelopeName(cmd.EnvelopeID)),
			Metadata: map[string]string{"envelope": EnvelopeName(cmd.EnvelopeID)}}
	} else if !errors.Is(err, ErrEnvelopeNotFound) {
		return nil, err
	}
	env := Envelope{ID: cmd.EnvelopeID, ParentID: cmd.ParentID, DisplayName: cmd.DisplayName,
		Currency: cmd.Currency, Allocation: cmd.Allocation, CreatedAt: at, UpdatedAt: at}
	res := &CreateEnvelopeResult{EntryID: newID()}
	entry := Entry{ID: res.EntryID, Caller: cmd.Caller, RequestID: cmd.RequestID, Memo: cmd.DisplayName, CreatedAt: at}
	if cmd.ParentID == "" {
		if env.Currency == "" {
			env.Currency = "EUR"
		}
		entry.Kind = KindEnvelopeFunded
		entry.Postings = []Posting{{FundingAccount, -cmd.Allocation}, {EnvelopeName(env.ID), cmd.Allocation}}
	} else {
		parent, err := l.loadEnvelope(ctx, q, cmd.ParentID, true)
		if err != nil {
			return nil, err
		}
		if env.Currency == "" {
			env.Currency = parent.Currency
		}
		if env.Currency != parent.Currency {
			return nil, currencyMismatch(parent, env.Currency)
		}
		if parent.Available() < cmd.Allocation {
			return nil, insufficientFunds(&parent, cmd.Allocation)
		}
		if parent.ChildrenAllocated, err = addAmount("the parent's allocation to children", parent.ChildrenAllocated, cmd.Allocation); err != nil {
			return nil, err
		}
		parent.UpdatedAt = at
		if err := updateEnvelope(ctx, q, &parent); err != nil {
			return nil, err
		}
		res.Parent = &parent
		entry.Kind = KindEnvelopeAllocated
		entry.Postings = []Posting{{EnvelopeName(parent.ID), -cmd.Allocation}, {EnvelopeName(env.ID), cmd.Allocation}}
	}
	entry.Currency = env.Currency
	if err := insertEnvelope(ctx, q, &env); err != nil {
		return nil, err
	}
	if err := insertEntries(ctx, q, []Entry{entry}); err != nil {
		return nil, err
	}
	res.Envelope = env
	return res, nil
}

func currencyMismatch(env Envelope, other string) *Error {
	return &Error{Reason: ReasonCurrencyMismatch,
		Message: fmt.Sprintf("envelope %q holds %s, not %s", EnvelopeName(env.ID), env.Currency, other),
		Metadata: map[string]string{"envelope": EnvelopeName(env.ID), "envelope_currency": env.Currency,
			"requested_currency": other}}
}

// MoveAllocation moves allocation from a parent to one of its children, from a child to its
// parent, or between two envelopes with the same parent (two roots included).
func (l *Ledger) MoveAllocation(ctx context.Context, cmd MoveAllocation) (MoveAllocationResult, error) {
	var res MoveAllocationResult
	if err := cmd.validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.RequestID, cmd.fingerprint(), &res,
		func(ctx context.Context, q querier, at time.Time) (any, error) {
			return l.moveAllocation(ctx, q, at, cmd)
		})
	return res, err
}

func (l *Ledger) moveAllocation(ctx context.Context, q querier, at time.Time, cmd MoveAllocation) (*MoveAllocationResult, error) {
	// Lock both rows in id order, so that two opposite moves cannot deadlock.
	first, second := cmd.SourceID, cmd.DestinationID
	if second < first {
		first, second = second, first
	}
	locked := map[string]Envelope{}
	for _, id := range []string{first, second} {
		env, err := l.loadEnvelope(ctx, q, id, true)
		if err != nil {
			return nil, err
		}
		locked[id] = env
	}
	src, dst := locked[cmd.SourceID], locked[cmd.DestinationID]
	if src.Currency != dst.Currency {
		return nil, currencyMismatch(dst, src.Currency)
	}
	if src.Available() < cmd.Amount {
		return nil, insufficientFunds(&src, cmd.Amount)
	}
	var err error
	switch {
	case dst.ParentID == src.ID: // parent to child
		if src.ChildrenAllocated, err = addAmount("the source's allocation to children", src.ChildrenAllocated, cmd.Amount); err == nil {
			dst.Allocation, err = addAmount("the destination's allocation", dst.Allocation, cmd.Amount)
		}
	case src.ParentID == dst.ID: // child to parent: the parent's share in its children shrinks
		src.Allocation -= cmd.Amount
		dst.ChildrenAllocated -= cmd.Amount
	case src.ParentID == dst.ParentID: // siblings, or two roots
		src.Allocation -= cmd.Amount
		dst.Allocation, err = addAmount("the destination's allocation", dst.Allocation, cmd.Amount)
	default:
		return nil, &Error{Reason: ReasonEnvelopesNotRelated,
			Message: fmt.Sprintf("allocation moves only between a parent and its child or between siblings; %q and %q are neither",
				EnvelopeName(src.ID), EnvelopeName(dst.ID)),
			Metadata: map[string]string{"source": EnvelopeName(src.ID), "destination": EnvelopeName(dst.ID)}}
	}
	if err != nil {
		return nil, err
	}
	src.UpdatedAt, dst.UpdatedAt = at, at
	for _, env := range []*Envelope{&src, &dst} {
		if err := updateEnvelope(ctx, q, env); err != nil {
			return nil, err
		}
	}
	res := &MoveAllocationResult{Source: src, Destination: dst, EntryID: newID()}
	entry := Entry{ID: res.EntryID, Kind: KindAllocationMoved, Currency: src.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Reason, CreatedAt: at,
		Postings: []Posting{{EnvelopeName(src.ID), -cmd.Amount}, {EnvelopeName(dst.ID), cmd.Amount}}}
	return res, insertEntries(ctx, q, []Entry{entry})
}

// Commit awards cmd.Amount from an envelope to one project of one beneficiary.
func (l *Ledger) Commit(ctx context.Context, cmd Commit) (CommitResult, error) {
	var res CommitResult
	if err := cmd.validate(); err != nil {
		return res, err
	}
	op := &envelopeOp{commit: &cmd, fingerprint: cmd.fingerprint()}
	if err := l.run(ctx, &unit{envelopeID: cmd.EnvelopeID, ops: []*envelopeOp{op}}); err != nil {
		return res, err
	}
	return res, op.decode(&res)
}

// Release returns cmd.Amount of a commitment's remaining amount to its envelope.
func (l *Ledger) Release(ctx context.Context, cmd Release) (ReleaseResult, error) {
	var res ReleaseResult
	if err := cmd.validate(); err != nil {
		return res, err
	}
	// Route the release to its envelope's batch; a commitment never changes envelope, so this
	// read needs no transaction.
	c, err := l.GetCommitment(ctx, cmd.CommitmentID)
	if errors.Is(err, ErrCommitmentNotFound) {
		err = l.mutate(ctx, cmd.RequestID, cmd.fingerprint(), &res,
			func(ctx context.Context, q querier, _ time.Time) (any, error) {
				if _, err := loadCommitments(ctx, q, []string{cmd.CommitmentID}); err != nil {
					return nil, err
				}
				return nil, internal("commitment %s appeared during a release", cmd.CommitmentID)
			})
		return res, err
	} else if err != nil {
		return res, err
	}
	op := &envelopeOp{release: &cmd, fingerprint: cmd.fingerprint()}
	if err := l.run(ctx, &unit{envelopeID: c.EnvelopeID, ops: []*envelopeOp{op}}); err != nil {
		return res, err
	}
	return res, op.decode(&res)
}

// envelopeOp is one Commit or Release on one envelope, and its outcome once decided.
type envelopeOp struct {
	commit      *Commit
	release     *Release
	fingerprint string

	outcome outcome
	// result is the typed result of an op decided by this process (*CommitResult or
	// *ReleaseResult), so that it need not be decoded from outcome again; nil for a replay.
	result any
}

// decode returns the op's outcome into out (a *CommitResult or *ReleaseResult).
func (op *envelopeOp) decode(out any) error {
	if op.outcome.Refusal == nil && op.result != nil {
		switch r := op.result.(type) {
		case *CommitResult:
			*out.(*CommitResult) = *r
			return nil
		case *ReleaseResult:
			*out.(*ReleaseResult) = *r
			return nil
		}
	}
	return op.outcome.decode(out)
}

func (op *envelopeOp) requestID() string {
	if op.commit != nil {
		return op.commit.RequestID
	}
	return op.release.RequestID
}

// unit is what one caller submits: one Commit or Release, or the items of one bulk award, all on
// one envelope. A unit is decided whole in one transaction; an all-or-nothing unit is accepted
// entirely or refused entirely.
type unit struct {
	envelopeID   string
	ops          []*envelopeOp
	allOrNothing bool
	// callID and callFingerprint name a bulk call as a whole: the request log holds a row for the
	// call beside its items', so that the same request id with other items (more of them, say)
	// is refused before any item is decided.
	callID, callFingerprint string
	// envelope is the envelope as this unit left it, once decided (nil if it does not exist).
	envelope *Envelope

	opState
}

// run decides one unit: through group commit, or in a transaction of its own when batching is
// disabled.
func (l *Ledger) run(ctx context.Context, u *unit) error {
	if l.batcher != nil {
		return l.batcher.submit(ctx, u)
	}
	return l.applyBatch(ctx, []*unit{u})
}

// applyBatch decides a batch of units in one serializable transaction: the envelopes they name are
// locked once each, in id order; each operation is accepted or refused on its own, in order (an
// all-or-nothing unit as a whole); the entries are written in bulk and each balance once. The
// returned error is a failure of the whole batch (nothing recorded); otherwise every op has its
// outcome.
func (l *Ledger) applyBatch(ctx context.Context, units []*unit) error {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	var ids []string
	n := 0
	for _, u := range units {
		n += len(u.ops)
		if u.callID != "" {
			ids = append(ids, u.callID)
		}
		for _, op := range u.ops {
			ids = append(ids, op.requestID())
		}
	}
	var envs map[string]*envState
	err := l.withRequestLog(ctx, ids, func(priors map[string]priorRequest) error {
		pre := l.preloadTotals(ctx, units)
		return l.eng.readWrite(ctx, func(q querier) error {
			var err error
			envs, err = l.decideBatch(ctx, q, units, priors, pre)
			return err
		})
	})
	if err == nil {
		l.metrics.batchDecided(n, envs)
	}
	return l.classify(ctx, err)
}

// envState is one envelope of a batch, as the batch has changed it so far in memory.
type envState struct {
	env      Envelope
	found    bool
	accepted int
}

// batchState is what a batch has decided so far, written at the end of the transaction.
type batchState struct {
	envs           map[string]*envState
	entries        []Entry
	newCommitments []*Commitment
	changed        map[string]*Commitment
	recorded       []requestRow
	decidedHere    map[string]*envelopeOp
	// callsHere are the bulk calls decided in this batch, by request id, with their fingerprint.
	callsHere map[string]string

	// rules are the effective funding rules of each envelope found.
	rules map[string]*EffectiveRules
	// totals are the current totals of the projects a funding-share rule is checked for.
	totals map[projectKey]int64
	// deltas are the changes to project totals made by accepted awards and releases, in order.
	deltas []projectDelta
}

// mark and reset let an all-or-nothing unit undo what its items did in memory.
type batchMark struct {
	env                                      Envelope
	accepted, entries, newC, recordN, deltaN int
}

func (b *batchState) mark(s *envState) batchMark {
	return batchMark{s.env, s.accepted, len(b.entries), len(b.newCommitments), len(b.recorded), len(b.deltas)}
}

func (b *batchState) reset(s *envState, m batchMark) {
	for _, r := range b.recorded[m.recordN:] {
		delete(b.decidedHere, r.id)
	}
	for _, d := range b.deltas[m.deltaN:] {
		if _, ok := b.totals[d.key]; ok {
			b.totals[d.key] -= d.amount
		}
	}
	b.deltas = b.deltas[:m.deltaN]
	s.env, s.accepted = m.env, m.accepted
	b.entries, b.newCommitments, b.recorded = b.entries[:m.entries], b.newCommitments[:m.newC], b.recorded[:m.recordN]
}

// decideBatch decides every unit and writes the outcome; it returns the envelopes as the batch
// left them.
func (l *Ledger) decideBatch(ctx context.Context, q querier, units []*unit,
	priors map[string]priorRequest, pre map[projectKey]projectTotal) (map[string]*envState, error) {
	at := now()
	var commitmentIDs, envelopeIDs []string
	b := &batchState{envs: map[string]*envState{}, changed: map[string]*Commitment{},
		decidedHere: map[string]*envelopeOp{}, callsHere: map[string]string{}}
	for _, u := range units {
		u.envelope = nil
		if _, ok := b.envs[u.envelopeID]; !ok {
			b.envs[u.envelopeID] = &envState{}
			envelopeIDs = append(envelopeIDs, u.envelopeID)
		}
		for _, op := range u.ops {
			op.outcome, op.result = outcome{}, nil // the transaction may be a retry
			if op.release != nil {
				commitmentIDs = append(commitmentIDs, op.release.CommitmentID)
			}
		}
	}
	locked, err := l.lockEnvelopes(ctx, q, envelopeIDs)
	if err != nil {
		return nil, err
	}
	for id, env := range locked {
		b.envs[id].env, b.envs[id].found = env, true
	}
	commitments, err := loadCommitments(ctx, q, commitmentIDs)
	if err != nil && !errors.Is(err, ErrCommitmentNotFound) {
		return nil, err
	}
	if err := l.loadPolicyState(ctx, q, b, units, envelopeIDs, pre, at); err != nil {
		return nil, err
	}

	for _, u := range units {
		s := b.envs[u.envelopeID]
		if u.callID != "" {
			fp, seen := b.callsHere[u.callID]
			if prior, ok := priors[u.callID]; ok {
				fp, seen = prior.fingerprint, true
			}
			if seen && fp != u.callFingerprint {
				// The request id was used for another request: refuse the call whole, record nothing.
				for _, op := range u.ops {
					op.outcome = outcome{Refusal: requestIDReused(u.callID)}
				}
				continue
			}
			if !seen {
				b.callsHere[u.callID] = u.callFingerprint
				b.recorded = append(b.recorded, requestRow{u.callID, u.callFingerprint,
					outcome{Result: json.RawMessage(fmt.Sprintf(`{"items":%d}`, len(u.ops)))}})
			}
		}
		m := b.mark(s)
		var failed *Error
		failedAt := -1
		for i, op := range u.ops {
			refusal, err := b.decide(op, u.envelopeID, priors, commitments, at)
			if err != nil {
				return nil, err
			}
			if refusal != nil && failed == nil {
				failed, failedAt = refusal, i
			}
		}
		if u.allOrNothing && failed != nil {
			// Undo the unit's items and refuse them all with the first refusal, naming the item.
			b.reset(s, m)
			whole := &Error{Reason: failed.Reason, Field: failed.Field,
				Message:  fmt.Sprintf("item %d: %s; no award of this call was made", failedAt, failed.Message),
				Metadata: map[string]string{"item": fmt.Sprint(failedAt)}}
			for k, v := range failed.Metadata {
				whole.Metadata[k] = v
			}
			for _, op := range u.ops {
				op.outcome = outcome{Refusal: whole}
				b.decidedHere[op.requestID()] = op
				b.recorded = append(b.recorded, requestRow{op.requestID(), op.fingerprint, op.outcome})
			}
		}
		if s.found {
			snapshot := s.env
			u.envelope = &snapshot
		}
	}

	for _, id := range envelopeIDs {
		if s := b.envs[id]; s.accepted > 0 {
			if err := updateEnvelope(ctx, q, &s.env); err != nil {
				return nil, err
			}
		}
	}
	if err := insertCommitments(ctx, q, b.newCommitments); err != nil {
		return nil, err
	}
	if err := writeTotals(ctx, q, b.deltas, at); err != nil {
		return nil, err
	}
	for _, c := range b.changed {
		if err := updateCommitment(ctx, q, c); err != nil {
			return nil, err
		}
	}
	if err := insertEntries(ctx, q, b.entries); err != nil {
		return nil, err
	}
	if err := insertRequests(ctx, q, at, b.recorded); err != nil {
		return nil, err
	}
	return b.envs, nil
}

// decide decides one op in memory. It returns the refusal it recorded for a new decision (nil if
// accepted or replayed), or an error that fails the whole batch.
func (b *batchState) decide(op *envelopeOp, envelopeID string, priors map[string]priorRequest,
	commitments map[string]*Commitment, at time.Time) (*Error, error) {
	s := b.envs[envelopeID]
	rid := op.requestID()
	if prior, ok := priors[rid]; ok {
		op.outcome = prior.outcome
		if prior.fingerprint != op.fingerprint {
			op.outcome = outcome{Refusal: requestIDReused(rid)}
		}
		return nil, nil
	}
	if first, ok := b.decidedHere[rid]; ok {
		op.outcome = first.outcome
		if first.fingerprint != op.fingerprint {
			op.outcome = outcome{Refusal: requestIDReused(rid)}
		}
		return nil, nil
	}
	var (
		result  any
		refusal error
	)
	switch {
	case !s.found:
		refusal = envelopeNotFound(envelopeID)
	case op.commit != nil:
		key := projectKey{envelopeID, op.commit.Project}
		if violation := checkRules(b.rules[envelopeID], &s.env, op.commit, b.totals[key], at); violation != nil {
			refusal = violation
			break
		}
		var r *CommitResult
		if r, refusal = applyCommit(&s.env, op.commit, at); refusal == nil {
			result = r
			b.newCommitments = append(b.newCommitments, &r.Commitment)
			b.entries = append(b.entries, commitEntry(op.commit, r, at))
			b.addDelta(projectDelta{key, op.commit.Amount, 1})
		}
	default:
		c, ok := commitments[op.release.CommitmentID]
		if !ok || c.EnvelopeID != s.env.ID {
			refusal = commitmentNotFound(op.release.CommitmentID)
			break
		}
		var r *ReleaseResult
		if r, refusal = applyRelease(&s.env, c, op.release, at); refusal == nil {
			result = r
			b.changed[c.ID] = c
			b.entries = append(b.entries, releaseEntry(op.release, r, at))
			b.addDelta(projectDelta{projectKey{c.EnvelopeID, c.Project}, -op.release.Amount, 0})
		}
	}
	var refused *Error
	if refusal != nil {
		e, ok := isRefusal(refusal)
		if !ok {
			return nil, refusal
		}
		op.outcome, refused = outcome{Refusal: e}, e
	} else {
		s.accepted++
		raw, err := json.Marshal(result)
		if err != nil {
			return nil, err
		}
		op.outcome, op.result = outcome{Result: raw}, result
	}
	b.decidedHere[rid] = op
	b.recorded = append(b.recorded, requestRow{rid, op.fingerprint, op.outcome})
	return refused, nil
}

// applyCommit decides one award against the envelope's in-memory balances.
func applyCommit(env *Envelope, cmd *Commit, at time.Time) (*CommitResult, error) {
	if env.Available() < cmd.Amount {
		return nil, insufficientFunds(env, cmd.Amount)
	}
	committed, err := addAmount("the envelope's committed amount", env.Committed, cmd.Amount)
	if err != nil {
		return nil, err
	}
	env.Committed = committed
	env.CommitmentCount++
	env.UpdatedAt = at
	c := Commitment{ID: newID(), EnvelopeID: env.ID, Beneficiary: cmd.Beneficiary, Project: cmd.Project,
		Currency: env.Currency, Amount: cmd.Amount, Description: cmd.Description, CreatedAt: at, UpdatedAt: at,
		EligibleCost: cmd.EligibleCost, Territory: cmd.Territory, Population: cmd.Population}
	return &CommitResult{Commitment: c, Envelope: *env, EntryID: newID()}, nil
}

// applyRelease decides one release against the in-memory commitment and envelope.
func applyRelease(env *Envelope, c *Commitment, cmd *Release, at time.Time) (*ReleaseResult, error) {
	if c.Remaining() < cmd.Amount {
		return nil, &Error{Reason: ReasonReleaseExceedsRemaining,
			Message: fmt.Sprintf("commitment %q holds %d, %d requested", CommitmentName(c.ID), c.Remaining(), cmd.Amount),
			Metadata: map[string]string{"commitment": CommitmentName(c.ID),
				"remaining": fmt.Sprint(c.Remaining()), "requested": fmt.Sprint(cmd.Amount)}}
	}
	released, err := addAmount("the envelope's released amount", env.Released, cmd.Amount)
	if err != nil {
		return nil, err
	}
	c.Released += cmd.Amount
	c.UpdatedAt = at
	env.Committed -= cmd.Amount
	env.Released = released
	env.UpdatedAt = at
	return &ReleaseResult{Commitment: *c, Envelope: *env, EntryID: newID()}, nil
}

func commitEntry(cmd *Commit, r *CommitResult, at time.Time) Entry {
	return Entry{ID: r.EntryID, Kind: KindCommitted, Currency: r.Commitment.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Description, CreatedAt: at,
		Postings: []Posting{{EnvelopeName(r.Envelope.ID), -cmd.Amount}, {CommitmentName(r.Commitment.ID), cmd.Amount}}}
}

func releaseEntry(cmd *Release, r *ReleaseResult, at time.Time) Entry {
	return Entry{ID: r.EntryID, Kind: KindReleased, Currency: r.Commitment.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Reason, CreatedAt: at,
		Postings: []Posting{{CommitmentName(r.Commitment.ID), -cmd.Amount}, {EnvelopeName(r.Envelope.ID), cmd.Amount}}}
}
