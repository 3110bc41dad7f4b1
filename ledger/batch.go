package ledger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/groupcommit"
	"github.com/budgetledger/budgetledger/ledger/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// run decides one unit: through group commit, or in a transaction of its own when batching is
// disabled.
func (l *Ledger) run(ctx context.Context, u *core.Unit) error {
	if l.batcher != nil {
		err := l.batcher.Submit(ctx, u.EnvelopeID, u)
		if errors.Is(err, groupcommit.ErrPanic) {
			// The batch's transaction was abandoned, so nothing of it was recorded; the
			// panic's value is for the server's log, never for the caller.
			return core.Wrap(ReasonInternal, "internal error", err)
		}
		return err
	}
	return l.applyBatch(ctx, []*core.Unit{u})
}

// applyBatch decides a batch of units in one serializable transaction, in three phases: load (the
// envelopes they name, locked once each in id order, the commitments released from, paid or
// closed, the holds confirmed or cancelled, the funding
// rules and project totals), decide (core.DecideBatch, in memory: each operation accepted or
// refused on its own, in order), write (entries in bulk, each balance once). The returned error
// is a failure of the whole batch (nothing recorded); otherwise every op has its outcome.
func (l *Ledger) applyBatch(ctx context.Context, units []*core.Unit) (err error) {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	n := 0
	for _, u := range units {
		n += len(u.Ops)
	}
	attempts := 0
	ctx, span := l.tracer.Start(ctx, "ledger.batch", trace.WithAttributes(
		attribute.Int("ledger.batch.units", len(units)), attribute.Int("ledger.batch.operations", n)))
	defer func() { endSpan(span, attempts, err) }()
	var (
		w      *core.Writes
		phases = batchPhases{start: time.Now()}
	)
	peek := l.peekRows(ctx, units)
	err = l.withRequestLog(ctx, core.RequestKeys(units), func(priors map[string]core.Prior) error {
		pre := l.peekTotals(ctx, units)
		rows := peek()
		return l.db.ReadWrite(ctx, func(q store.Querier) error {
			attempts++
			phases.loading = time.Now()
			in, st, err := l.loadBatch(ctx, q, units, priors, pre, rows)
			if err != nil {
				return err
			}
			phases.deciding = time.Now()
			if w, err = core.DecideBatch(st, units, in); err != nil {
				return err
			}
			phases.writing = time.Now()
			if err := store.WriteBatch(ctx, q, w, st.At); err != nil {
				return err
			}
			return l.sequenceInline(ctx, q)
		})
	})
	if attempts > 1 {
		l.retriedAt.Store(time.Now().UnixNano())
	}
	if err == nil {
		for _, c := range w.NewCommitments {
			l.commitmentHomes.learn(c.ID, c.EnvelopeID)
		}
		for i := range w.NewHolds {
			l.holdHomes.learn(w.NewHolds[i].ID, holdHome(&w.NewHolds[i]))
		}
		l.metrics.batchDecided(n, w.Touched, phases, time.Now())
		if len(w.Entries) > 0 {
			l.poke()
		}
	}
	return l.classify(ctx, err)
}

// loadBatch loads, inside the batch's transaction, what its decisions read: the envelopes (locked),
// the commitments released from, the effective rules of every envelope found at the batch's
// time, and the totals of the projects a funding-share rule will be checked for (those read ahead
// by peekTotals whose envelope kept its version, the others by primary key here); the commitments
// and holds at the addresses peeked before the transaction (rows). It returns the
// batch's stamp, taken once the envelopes are locked (stampAfter), at which the rules are read.
func (l *Ledger) loadBatch(ctx context.Context, q store.Querier, units []*core.Unit, priors map[string]core.Prior,
	pre map[core.ProjectKey]store.ProjectTotal, rows peeked) (core.Loaded, core.Stamp, error) {
	in := core.Loaded{Priors: priors, Totals: map[core.ProjectKey]int64{}}
	envelopeIDs := core.EnvelopeIDs(units)
	var err error
	if in.Envelopes, err = store.LockEnvelopes(ctx, q, l.db.ForUpdate(), envelopeIDs); err != nil {
		return in, core.Stamp{}, err
	}
	st := l.stampAfter(in.Envelopes)
	if in.Commitments, err = store.LoadCommitmentsAt(ctx, q, core.CommitmentIDs(units), rows.commitments); err != nil {
		return in, st, err
	}
	for _, id := range core.ClosedCommitmentIDs(units) {
		if _, ok := in.Commitments[id]; !ok {
			continue
		}
		latest, err := store.LatestMoves(ctx, q, id)
		if err != nil {
			return in, st, err
		}
		if in.Latest == nil {
			in.Latest = map[string]core.LatestMoves{}
		}
		in.Latest[id] = latest
	}
	if ids := core.HoldIDs(units); len(ids) > 0 {
		if in.Holds, err = store.LoadHoldsAt(ctx, q, ids, rows.holds); err != nil {
			return in, st, err
		}
	}
	// An envelope whose chain of parents cannot be read whole (one created deeper than the
	// depth limit before there was one, or a broken tree) fails only the units on it.
	var found []core.Envelope
	for _, id := range envelopeIDs {
		env, ok := in.Envelopes[id]
		if !ok {
			continue
		}
		if _, err := l.parents.Chain(ctx, q, env); err != nil {
			e, ok := core.AsError(err)
			if !ok {
				return in, st, err
			}
			if in.Broken == nil {
				in.Broken = map[string]error{}
			}
			in.Broken[id] = e
			continue
		}
		found = append(found, env)
	}
	if in.Rules, err = l.parents.EffectiveRules(ctx, q, found, st.At); err != nil {
		return in, st, err
	}
	// Awards that give an effective time are checked against the rules in force then.
	for _, k := range core.RulesKeys(units, st.At) {
		env, ok := in.Envelopes[k.EnvelopeID]
		if !ok || in.Broken[k.EnvelopeID] != nil {
			continue
		}
		at, err := l.parents.EffectiveRules(ctx, q, []core.Envelope{env}, time.UnixMicro(k.At).UTC())
		if err != nil {
			return in, st, err
		}
		if in.RulesAt == nil {
			in.RulesAt = map[core.RulesKey]*core.EffectiveRules{}
		}
		in.RulesAt[k] = at[k.EnvelopeID]
	}
	for id, r := range in.Rules {
		l.shareRuled.set(id, r.NeedsProjectTotal())
	}
	var missing []core.ProjectKey
	needsTotals := func(id string) bool {
		if in.Rules[id].NeedsProjectTotal() {
			return true
		}
		for k, r := range in.RulesAt {
			if k.EnvelopeID == id && r.NeedsProjectTotal() {
				return true
			}
		}
		return false
	}
	for _, k := range projectsToCheck(units, needsTotals) {
		env := in.Envelopes[k.EnvelopeID]
		if t, ok := pre[k]; ok && t.Count == env.CommitmentCount && t.Released == env.Released {
			in.Totals[k] = t.Awarded
			continue
		}
		missing = append(missing, k)
	}
	totals, err := store.LoadTotals(ctx, q, missing)
	for k, v := range totals {
		in.Totals[k] = v
	}
	return in, st, err
}

// peeked are the addresses of a batch's commitments and holds, read before its transaction
// (store.PeekCommitments, store.PeekHolds): the transaction reads the rows there.
type peeked struct{ commitments, holds store.RowAddresses }

// peekRows reads the addresses of the commitments and holds units name, outside any transaction,
// on another connection while the request log is looked up (so that it adds no round trip to the
// batch's chain), when peeking says it is worth it; the function it returns waits for them.
func (l *Ledger) peekRows(ctx context.Context, units []*core.Unit) func() peeked {
	commitments, holds := core.CommitmentIDs(units), core.HoldIDs(units)
	if len(commitments) == 0 && len(holds) == 0 || !l.peeking(time.Now()) {
		return func() peeked { return peeked{} }
	}
	done := make(chan peeked, 1)
	go func() {
		done <- peeked{commitments: store.PeekCommitments(ctx, l.db.Reader(), commitments),
			holds: store.PeekHolds(ctx, l.db.Reader(), holds)}
	}()
	return sync.OnceValue(func() peeked { return <-done })
}

// peekAfterRetry is how long, after a batch's transaction was retried, a ledger with one
// group-commit queue keeps peeking at rows' addresses (peeking).
const peekAfterRetry = time.Minute

// peeking reports whether a batch reads its commitments' and holds' addresses before its
// transaction (peekRows). Read at their addresses, the rows leave no predicate lock on their
// primary key's last leaf page, where every concurrent award inserts (store.PeekCommitments):
// that saves the retries of batches written beside one another (with four queues, from a third
// of all batches to a twentieth, docs/benchmarks.md), and costs one statement per batch where no
// batch is written beside it (7–22 % of the awards per second of a release run with one queue).
// So: with more than one queue, always; with one, for peekAfterRetry after a batch retried,
// which is how another process writing the same database shows.
func (l *Ledger) peeking(now time.Time) bool {
	return l.cfg.BatchQueues > 1 || now.UnixNano()-l.retriedAt.Load() < int64(peekAfterRetry)
}

// peekTotals reads, outside any transaction, the totals of the projects that a funding-share rule
// will be checked for, each with its envelope's version. Inside the transaction, a total whose
// envelope still has that version under its lock is used as is; others are read again there.
// Reading them outside keeps the predicate locks of these lookups out of the serializable
// transaction, where an index page shared with other envelopes' projects would make batches on
// unrelated envelopes abort each other.
func (l *Ledger) peekTotals(ctx context.Context, units []*core.Unit) map[core.ProjectKey]store.ProjectTotal {
	keys := projectsToCheck(units, l.shareRuled.has)
	out, err := store.PeekTotals(ctx, l.db.Reader(), keys)
	if err != nil {
		return nil // read them in the transaction instead
	}
	return out
}

// projectsToCheck lists the projects of the awards, new holds and confirmations in units on
// envelopes for which ruled is true and that give an eligible cost, each once.
func projectsToCheck(units []*core.Unit, ruled func(envelopeID string) bool) []core.ProjectKey {
	var keys []core.ProjectKey
	seen := map[core.ProjectKey]bool{}
	for _, u := range units {
		if !ruled(u.EnvelopeID) {
			continue
		}
		for _, op := range u.Ops {
			project, ok := op.ProjectChecked()
			if !ok {
				continue
			}
			k := core.ProjectKey{EnvelopeID: u.EnvelopeID, Project: project}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// shareRuled remembers which envelopes had a funding-share rule in force at their last batch.
type shareRuled struct{ m sync.Map }

func (s *shareRuled) has(id string) bool { _, ok := s.m.Load(id); return ok }

func (s *shareRuled) set(id string, ruled bool) {
	if ruled {
		s.m.Store(id, true)
	} else {
		s.m.Delete(id)
	}
}

// endSpan closes a transaction's span with its attempts (retries + 1) and outcome.
func endSpan(span trace.Span, attempts int, err error) {
	span.SetAttributes(attribute.Int("ledger.transaction.attempts", attempts),
		attribute.Int("ledger.transaction.retries", max(0, attempts-1)))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "the batch failed")
	}
	span.End()
}
