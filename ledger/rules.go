package ledger

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// SetRules records a new rule set for an envelope, and a RULES_CHANGED journal entry.
func (l *Ledger) SetRules(ctx context.Context, cmd SetRules) (SetRulesResult, error) {
	var res SetRulesResult
	// The fingerprint is of the rules as sent, as it always was: a request recorded with a
	// window bound finer than the microsecond (or in another zone) is the same request on a
	// retry. What is checked, decided and stored is the rules as kept: first, so that a window
	// that ends when it starts once kept is refused.
	fp := cmd.Fingerprint()
	cmd.Rules = cmd.Rules.Kept()
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, fp, &res,
		func(ctx context.Context, q store.Querier) (loaded, error) {
			// Lock the envelope and every descendant, the envelopes whose awards the rules govern,
			// and change them: an award decided on any of them is then ordered before or after
			// this rule change by its lock, on every engine and across processes, and its time
			// (stampAfter) falls on the same side of the rule's effective time.
			subtree, err := store.Subtree(ctx, q, cmd.EnvelopeID)
			if err != nil {
				return loaded{}, err
			}
			locked, err := store.LockEnvelopes(ctx, q, l.db.ForUpdate(), subtree)
			if err != nil {
				return loaded{}, err
			}
			count, err := l.checkRulesETag(ctx, q, cmd, locked)
			if err != nil {
				return loaded{}, err
			}
			return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
				res, eff, err := core.DecideSetRules(st, cmd, found(locked, cmd.EnvelopeID), subtreeOf(locked))
				if err == nil {
					res.ETag = core.RulesETag(cmd.EnvelopeID, count+1)
				}
				return result(res, eff, err)
			}}, nil
		})
	return res, err
}

// GetRules returns an envelope's rule sets and the rules in force on it at time at (now if zero).
func (l *Ledger) GetRules(ctx context.Context, envelopeID string, at time.Time) (EnvelopeRules, error) {
	if at.IsZero() {
		at = l.now()
	}
	return l.GetRulesAt(ctx, envelopeID, at)
}

// GetRulesAt is GetRules at exactly time at, even the zero time (0001-01-01T00:00:00Z).
func (l *Ledger) GetRulesAt(ctx context.Context, envelopeID string, at time.Time) (EnvelopeRules, error) {
	var out EnvelopeRules
	if err := core.FirstError(core.CheckEnvelopeID("envelope", envelopeID), core.CheckTime("time", at)); err != nil {
		return out, err
	}
	out.At = at.UTC()
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	err := l.db.ReadOnly(ctx, func(q store.Querier) error {
		env, err := store.LoadEnvelope(ctx, q, envelopeID, "")
		if err != nil {
			return err
		}
		if out.RuleSets, err = store.ListRuleSets(ctx, q, envelopeID); err != nil {
			return err
		}
		rules, err := l.parents.EffectiveRules(ctx, q, []core.Envelope{env}, at)
		if err != nil {
			return err
		}
		out.Effective = *rules[envelopeID]
		out.ETag = core.RulesETag(envelopeID, int64(len(out.RuleSets)))
		return nil
	})
	return out, l.classify(ctx, err)
}

// subtreeOf lists the envelopes of a locked subtree, in id order.
func subtreeOf(locked map[string]core.Envelope) []core.Envelope {
	envs := make([]core.Envelope, 0, len(locked))
	for _, id := range slices.Sorted(maps.Keys(locked)) {
		envs = append(envs, locked[id])
	}
	return envs
}
