package ledger

import (
	"context"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// SetRules records a new rule set for an envelope, and a RULES_CHANGED journal entry.
func (l *Ledger) SetRules(ctx context.Context, cmd SetRules) (SetRulesResult, error) {
	var res SetRulesResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
		func(ctx context.Context, q store.Querier, st core.Stamp) (any, core.Effects, error) {
			env, err := store.FindEnvelope(ctx, q, cmd.EnvelopeID, "")
			if err != nil {
				return nil, core.Effects{}, err
			}
			return result(core.DecideSetRules(st, cmd, env))
		})
	return res, err
}

// GetRules returns an envelope's rule sets and the rules in force on it at time at (now if zero).
func (l *Ledger) GetRules(ctx context.Context, envelopeID string, at time.Time) (EnvelopeRules, error) {
	var out EnvelopeRules
	if err := core.CheckEnvelopeID("envelope", envelopeID); err != nil {
		return out, err
	}
	if at.IsZero() {
		at = stamp().At
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
		return nil
	})
	return out, l.classify(ctx, err)
}
