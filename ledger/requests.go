package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// decision is one request decided outside group commit, in two phases: it loads what it reads,
// locking the envelopes it changes (store), and returns the decide phase (core) to run with a
// stamp taken after those locks (stampAfter).
type decision func(ctx context.Context, q store.Querier) (loaded, error)

// loaded is a decision's state once loaded: the envelopes it locked, and its decide phase.
type loaded struct {
	locked map[string]core.Envelope
	decide func(st core.Stamp) (result any, eff core.Effects, err error)
}

// mutate runs one request that is not routed through an envelope batch (envelope creation, moves,
// rule changes, refusals of unknown commitments or holds; holds, payments and closings when
// batching is disabled): look up its request id, decide, write the
// effects and record the outcome, all in one serializable transaction. A refusal is recorded with
// nothing written.
func (l *Ledger) mutate(ctx context.Context, caller, requestID string, fingerprint core.Fingerprint, out any, decide decision) (err error) {
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	attempts := 0
	ctx, span := l.tracer.Start(ctx, "ledger.mutation")
	defer func() { endSpan(span, attempts, err) }()
	var (
		decided core.Outcome
		changed []core.Envelope
		wrote   bool
	)
	err = l.withRequestLog(ctx, core.LookupKeys(caller, requestID), func(priors map[string]core.Prior) error {
		if prior, ok := core.FindPrior(priors, caller, requestID); ok {
			if prior.Err != nil {
				return prior.Err
			}
			decided = prior.Replay(requestID, fingerprint)
			return nil
		}
		return l.db.ReadWrite(ctx, func(q store.Querier) error {
			attempts++
			in, err := decide(ctx, q)
			if err != nil {
				return err
			}
			st := l.stampAfter(in.locked)
			result, eff, err := in.decide(st)
			if decided, err = core.Settle(result, err); err != nil {
				return err
			}
			changed, wrote = nil, decided.Refusal == nil
			if wrote {
				if err := store.WriteEffects(ctx, q, eff, st.At); err != nil {
					return err
				}
				changed = eff.Envelopes()
				if err := l.sequenceInline(ctx, q); err != nil {
					return err
				}
			}
			if err := store.InsertRequests(ctx, q, st.At, []core.RequestRow{{Key: core.RequestKey(caller, requestID), Fingerprint: fingerprint.Current, Outcome: decided}}); err != nil {
				return err
			}
			if l.beforeCommit != nil {
				l.beforeCommit()
			}
			return nil
		})
	})
	if err != nil {
		return l.classify(ctx, err)
	}
	l.metrics.envelopes(changed)
	if wrote {
		l.poke()
	}
	return decided.Decode(out)
}

// loadPriors reads the request log's rows for keys (store.LoadRequests). When one of their recorded
// answers cannot be given back (an INTERNAL error), the keys are looked up again in halves, down
// to the keys that fail: each gets the error as its prior's Err, so that only its retry fails and
// the other requests of the batch are answered or decided as usual (a few more lookups, in a
// ledger whose rows were changed behind its back only).
func loadPriors(ctx context.Context, q store.Querier, keys []string) (map[string]core.Prior, error) {
	priors, err := store.LoadRequests(ctx, q, keys)
	if err == nil || !core.IsInternal(err) || len(keys) < 2 {
		return priors, err
	}
	priors = map[string]core.Prior{}
	var apart func(keys []string) error
	apart = func(keys []string) error {
		got, err := store.LoadRequests(ctx, q, keys)
		switch {
		case err == nil:
			maps.Copy(priors, got)
			return nil
		case !core.IsInternal(err):
			return err
		case len(keys) == 1:
			priors[keys[0]] = core.Prior{Err: err}
			return nil
		}
		if err := apart(keys[:len(keys)/2]); err != nil {
			return err
		}
		return apart(keys[len(keys)/2:])
	}
	return priors, apart(keys)
}

// withRequestLog looks up request keys (core.LookupKeys) in the request log, outside any transaction (its rows never
// change, and a lookup inside a SERIALIZABLE transaction would take predicate locks that make
// batches on unrelated envelopes abort each other), then runs decide with what it found. When
// another transaction recorded one of the keys meanwhile, decide fails with ErrRequestRecorded and
// runs again with a fresh lookup, so that the recorded outcome is replayed.
func (l *Ledger) withRequestLog(ctx context.Context, keys []string, decide func(map[string]core.Prior) error) error {
	unknown := false // an earlier attempt lost its connection during COMMIT
	for attempt := 1; ; attempt++ {
		priors, err := loadPriors(ctx, l.db.Reader(), keys)
		if err == nil {
			err = decide(priors)
		}
		if errors.Is(err, store.ErrCommitOutcomeUnknown) {
			unknown = true
		}
		switch {
		case err == nil:
			return nil
		case unknown && !errors.Is(err, store.ErrCommitOutcomeUnknown) && (store.Unavailable(err) || ctx.Err() != nil):
			// The database is still away: the first COMMIT may or may not have landed.
			return fmt.Errorf("%w: %w", store.ErrCommitOutcomeUnknown, err)
		case (errors.Is(err, store.ErrRequestRecorded) || errors.Is(err, store.ErrCommitOutcomeUnknown)) && attempt < 3:
			// Look again: a recorded request is replayed; one that is not recorded is decided
			// anew, and the request log's primary key stops a second decision if the lost
			// COMMIT did land after all.
			continue
		}
		return err
	}
}
