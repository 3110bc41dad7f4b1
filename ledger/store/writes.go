package store

import (
	"context"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// WriteBatch writes what a group-commit batch decided (core.DecideBatch), in its transaction.
func WriteBatch(ctx context.Context, q Querier, w *core.Writes, at time.Time) error {
	if err := UpdateEnvelopes(ctx, q, w.Envelopes); err != nil {
		return err
	}
	// Holds made and ended, in WriteHolds' order.
	if len(w.NewHolds) > 0 {
		if err := InsertHolds(ctx, q, w.NewHolds); err != nil {
			return err
		}
	}
	if err := EndHolds(ctx, q, w.EndedHolds); err != nil {
		return err
	}
	if err := InsertCommitments(ctx, q, w.NewCommitments); err != nil {
		return err
	}
	if err := WriteTotals(ctx, q, w.Deltas, at); err != nil {
		return err
	}
	if err := UpdateCommitments(ctx, q, w.Changed); err != nil {
		return err
	}
	if len(w.Payments) > 0 {
		if err := InsertPayments(ctx, q, w.Payments); err != nil {
			return err
		}
	}
	if err := InsertEntries(ctx, q, w.Entries); err != nil {
		return err
	}
	return InsertRequests(ctx, q, at, w.Requests)
}

// WriteEffects writes what a decision on envelopes or rules decided (core.Decide*), in its
// transaction.
func WriteEffects(ctx context.Context, q Querier, eff core.Effects, at time.Time) error {
	for i := range eff.Updated {
		if err := UpdateEnvelope(ctx, q, &eff.Updated[i]); err != nil {
			return err
		}
	}
	if eff.Created != nil {
		if err := InsertEnvelope(ctx, q, eff.Created); err != nil {
			return err
		}
	}
	if err := WriteHolds(ctx, q, eff.Holds, at); err != nil {
		return err
	}
	if eff.RuleSet != nil {
		if err := InsertRuleSet(ctx, q, eff.RuleSet); err != nil {
			return err
		}
	}
	if err := writePaymentEffects(ctx, q, eff); err != nil {
		return err
	}
	return InsertEntries(ctx, q, eff.Entries)
}
