package ledger

import (
	"context"
	"errors"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Commit awards cmd.Amount from an envelope to one project of one beneficiary.
func (l *Ledger) Commit(ctx context.Context, cmd Commit) (CommitResult, error) {
	var res CommitResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	op := &core.Op{Commit: &cmd, Fingerprint: cmd.Fingerprint()}
	if err := l.run(ctx, &core.Unit{EnvelopeID: cmd.EnvelopeID, Ops: []*core.Op{op}}); err != nil {
		return res, err
	}
	return res, op.Decode(&res)
}

// Release returns cmd.Amount of a commitment's remaining amount to its envelope.
func (l *Ledger) Release(ctx context.Context, cmd Release) (ReleaseResult, error) {
	var res ReleaseResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	// Route the release to its envelope's batch; a commitment never changes envelope, so this
	// read needs no transaction, and its answer can be remembered (commitmentHome).
	envelope, err := l.commitmentHome(ctx, cmd.CommitmentID)
	if errors.Is(err, ErrCommitmentNotFound) {
		// Record the refusal under the request id, checking in the transaction that the
		// commitment still does not exist.
		err = l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
			func(ctx context.Context, q store.Querier) (loaded, error) {
				_, err := store.LoadCommitment(ctx, q, cmd.CommitmentID)
				return loaded{decide: func(core.Stamp) (any, core.Effects, error) {
					if err != nil {
						return nil, core.Effects{}, err // COMMITMENT_NOT_FOUND, recorded
					}
					return nil, core.Effects{}, core.Internal("commitment %s appeared during a release", cmd.CommitmentID)
				}}, nil
			})
		return res, err
	} else if err != nil {
		return res, err
	}
	op := &core.Op{Release: &cmd, Fingerprint: cmd.Fingerprint()}
	if err := l.run(ctx, &core.Unit{EnvelopeID: envelope, Ops: []*core.Op{op}}); err != nil {
		return res, err
	}
	return res, op.Decode(&res)
}

// runOp decides one op on envelopeID through its group commit and decodes its outcome into out.
func (l *Ledger) runOp(ctx context.Context, envelopeID string, op *core.Op, out any) error {
	if err := l.run(ctx, &core.Unit{EnvelopeID: envelopeID, Ops: []*core.Op{op}}); err != nil {
		return err
	}
	return op.Decode(out)
}

// BulkCommit makes every award of cmd on one envelope in one transaction. A retry with the same
// request id and items returns the first outcome, item by item.
func (l *Ledger) BulkCommit(ctx context.Context, cmd BulkCommit) (BulkCommitResult, error) {
	if err := cmd.Validate(); err != nil {
		return BulkCommitResult{}, err
	}
	u := cmd.Unit()
	if err := l.run(ctx, u); err != nil {
		return BulkCommitResult{}, err
	}
	res, found, err := cmd.BulkResult(u)
	if err != nil || found {
		return res, err
	}
	env, err := l.GetEnvelope(ctx, cmd.EnvelopeID)
	if err != nil {
		return BulkCommitResult{}, err
	}
	res.Envelope = env
	return res, nil
}
