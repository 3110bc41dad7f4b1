package ledger

import (
	"context"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// CreateEnvelope creates a root envelope funded from outside the ledger, or a child envelope whose
// allocation is taken from its parent's available amount.
func (l *Ledger) CreateEnvelope(ctx context.Context, cmd CreateEnvelope) (CreateEnvelopeResult, error) {
	var res CreateEnvelopeResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
		func(ctx context.Context, q store.Querier) (loaded, error) {
			existing, err := store.FindEnvelope(ctx, q, cmd.EnvelopeID, "")
			if err != nil {
				return loaded{}, err
			}
			locked := map[string]core.Envelope{}
			level := 0
			if cmd.ParentID != "" && existing == nil {
				if locked, err = store.LockEnvelopes(ctx, q, l.db.ForUpdate(), []string{cmd.ParentID}); err != nil {
					return loaded{}, err
				}
				if parent, ok := locked[cmd.ParentID]; ok {
					chain, err := l.parents.Chain(ctx, q, parent)
					if err != nil {
						return loaded{}, err
					}
					level = len(chain)
				}
			}
			return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
				return result(core.DecideCreateEnvelope(st, cmd, existing, found(locked, cmd.ParentID), level))
			}}, nil
		})
	return res, err
}

// MoveAllocation moves allocation from a parent to one of its children, from a child to its
// parent, or between two envelopes with the same parent (two roots included).
func (l *Ledger) MoveAllocation(ctx context.Context, cmd MoveAllocation) (MoveAllocationResult, error) {
	var res MoveAllocationResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
		func(ctx context.Context, q store.Querier) (loaded, error) {
			// Lock both rows in id order, so that two opposite moves cannot deadlock.
			locked, err := store.LockEnvelopes(ctx, q, l.db.ForUpdate(), []string{cmd.SourceID, cmd.DestinationID})
			if err != nil {
				return loaded{}, err
			}
			if err := checkMoveETags(cmd, locked); err != nil {
				return loaded{}, err
			}
			return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
				return result(core.DecideMoveAllocation(st, cmd, found(locked, cmd.SourceID), found(locked, cmd.DestinationID)))
			}}, nil
		})
	return res, err
}

// found returns the envelope id of m, or nil.
func found(m map[string]core.Envelope, id string) *core.Envelope {
	if env, ok := m[id]; ok {
		return &env
	}
	return nil
}

// result adapts a core decision's typed result to a decision's.
func result[R any](res *R, eff core.Effects, err error) (any, core.Effects, error) {
	if err != nil {
		return nil, eff, err
	}
	return res, eff, nil
}
