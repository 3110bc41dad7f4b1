package ledger

import (
	"context"
	"errors"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Payments and closing (issue 13 §2; see core/payment.go). Each runs in the group-commit batch of
// its commitment's envelope, beside that envelope's awards and releases (core/batchops.go), or,
// when batching is disabled (and for a commitment not found), in a transaction of its own that
// locks the same envelope: either way a payment, a closing and a release of one commitment are
// decided one after the other, each on what the one before left.

// The vocabulary of payments, closing and publication (package core).
type (
	CreatePayment         = core.CreatePayment
	CreatePaymentResult   = core.CreatePaymentResult
	CloseCommitment       = core.CloseCommitment
	CloseCommitmentResult = core.CloseCommitmentResult
	Payment               = core.Payment
	Publication           = core.Publication
	GrantingBody          = core.GrantingBody
)

// Reasons and entry kinds of payments and closing.
const (
	ReasonCommitmentClosed        = core.ReasonCommitmentClosed
	ReasonPaymentExceedsRemaining = core.ReasonPaymentExceedsRemaining
	ReasonReleaseExceedsUnpaid    = core.ReasonReleaseExceedsUnpaid
	KindPaid                      = core.KindPaid
	KindCommitmentClosed          = core.KindCommitmentClosed
	PaymentsAccount               = core.PaymentsAccount
)

// Sentinels of payments and closing, for errors.Is.
var (
	ErrCommitmentClosed        = core.ErrCommitmentClosed
	ErrPaymentExceedsRemaining = core.ErrPaymentExceedsRemaining
	ErrReleaseExceedsUnpaid    = core.ErrReleaseExceedsUnpaid
	PaymentName                = core.PaymentName
)

// CreatePayment pays cmd.Amount of a commitment (an advance, an instalment, the balance): the
// money leaves the ledger for good, to PaymentsAccount. It never pays more than remains to pay.
func (l *Ledger) CreatePayment(ctx context.Context, cmd CreatePayment) (CreatePaymentResult, error) {
	var res CreatePaymentResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	if done, err := l.batchOnCommitment(ctx, cmd.CommitmentID, &core.Op{Payment: &cmd, Fingerprint: cmd.Fingerprint()}, &res); done {
		return res, err
	}
	err := l.onCommitment(ctx, cmd.Caller, cmd.RequestID, cmd.CommitmentID, cmd.Fingerprint(), &res, false,
		func(st core.Stamp, env *core.Envelope, c *core.Commitment, _ core.LatestMoves) (any, core.Effects, error) {
			return result(core.DecideCreatePayment(st, cmd, env, c))
		})
	return res, err
}

// CloseCommitment returns the unpaid rest of a commitment to its envelope, in one journal entry,
// and closes it to further payments, releases and closings.
func (l *Ledger) CloseCommitment(ctx context.Context, cmd CloseCommitment) (CloseCommitmentResult, error) {
	var res CloseCommitmentResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	if done, err := l.batchOnCommitment(ctx, cmd.CommitmentID, &core.Op{Close: &cmd, Fingerprint: cmd.Fingerprint()}, &res); done {
		return res, err
	}
	err := l.onCommitment(ctx, cmd.Caller, cmd.RequestID, cmd.CommitmentID, cmd.Fingerprint(), &res, true,
		func(st core.Stamp, env *core.Envelope, c *core.Commitment, latest core.LatestMoves) (any, core.Effects, error) {
			return result(core.DecideCloseCommitment(st, cmd, env, c, latest))
		})
	return res, err
}

// batchOnCommitment routes a payment or closing of commitment id through the group commit of the
// commitment's envelope, remembered or read first outside any transaction (commitmentHome: a
// commitment never changes envelope; the batch reads it again under the envelope's lock), as
// Release does. It reports false, having done nothing, when batching is disabled or the
// commitment was not found: the request then runs through onCommitment, which records
// COMMITMENT_NOT_FOUND after checking in its transaction that the commitment still does not
// exist.
func (l *Ledger) batchOnCommitment(ctx context.Context, id string, op *core.Op, out any) (bool, error) {
	if l.batcher == nil {
		return false, nil
	}
	envelope, err := l.commitmentHome(ctx, id)
	switch {
	case errors.Is(err, ErrCommitmentNotFound):
		return false, nil
	case err != nil:
		return true, err
	}
	return true, l.runOp(ctx, envelope, op, out)
}

// commitmentHome returns the envelope of commitment id: remembered (homes), or read outside any
// transaction (ErrCommitmentNotFound when it does not exist).
func (l *Ledger) commitmentHome(ctx context.Context, id string) (string, error) {
	if envelope, ok := l.commitmentHomes.get(id); ok {
		l.metrics.routed(routeCommitment, routeRemembered)
		return envelope, nil
	}
	l.metrics.routed(routeCommitment, routeRead)
	c, err := l.GetCommitment(ctx, id)
	if err != nil {
		return "", err
	}
	l.commitmentHomes.learn(c.ID, c.EnvelopeID)
	return c.EnvelopeID, nil
}

// onCommitment runs a decision on one commitment (through mutate): it locks the commitment's
// envelope, then reads the commitment under that lock. The envelope is learnt first, outside the
// transaction (a commitment never changes envelope); an unknown commitment is refused, and the
// refusal recorded, after checking in the transaction that it still does not exist. With
// withLatest (a closing), the latest effective times of the commitment's payments and releases
// are read too.
func (l *Ledger) onCommitment(ctx context.Context, caller, requestID, commitmentID string, fp core.Fingerprint, out any, withLatest bool,
	decide func(st core.Stamp, env *core.Envelope, c *core.Commitment, latest core.LatestMoves) (any, core.Effects, error)) error {
	envelopeID, err := l.commitmentHome(ctx, commitmentID) // "" when not found
	if err != nil && !errors.Is(err, ErrCommitmentNotFound) {
		return err
	}
	return l.mutate(ctx, caller, requestID, fp, out, func(ctx context.Context, q store.Querier) (loaded, error) {
		locked := map[string]core.Envelope{}
		if envelopeID != "" {
			var err error
			if locked, err = store.LockEnvelopes(ctx, q, l.db.ForUpdate(), []string{envelopeID}); err != nil {
				return loaded{}, err
			}
		}
		var cm *core.Commitment
		var latest core.LatestMoves
		c, err := store.LoadCommitment(ctx, q, commitmentID)
		switch {
		case err == nil:
			cm = &c
			if envelopeID == "" {
				// Made since it was looked up: not locked here, so decided on the next try.
				return loaded{}, core.Internal("commitment %s appeared during a payment or closing", commitmentID)
			}
			if withLatest {
				if latest, err = store.LatestMoves(ctx, q, commitmentID); err != nil {
					return loaded{}, err
				}
			}
		case !errors.Is(err, ErrCommitmentNotFound):
			return loaded{}, err
		}
		return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
			return decide(st, found(locked, envelopeID), cm, latest)
		}}, nil
	})
}

// ListPayments returns a commitment's payments, oldest first, and the token of the next page. An
// unknown commitment is COMMITMENT_NOT_FOUND.
func (l *Ledger) ListPayments(ctx context.Context, commitmentID string, page Page) ([]Payment, string, error) {
	if err := core.CheckCommitmentID("parent", commitmentID); err != nil {
		return nil, "", err
	}
	if _, err := l.GetCommitment(ctx, commitmentID); err != nil {
		return nil, "", err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	items, next, err := store.ListPayments(ctx, l.db.Reader(), commitmentID, page)
	return items, next, l.classify(ctx, err)
}
