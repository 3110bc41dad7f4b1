package ledger

import (
	"context"
	"fmt"
	"strconv"
)

// MaxBulkItems caps the awards of one BulkCommit.
const MaxBulkItems = 10000

// BulkCommit is a committee's list of awards on one envelope, sent in one call with one request
// id. Each item is accepted or refused on its own, or, with AllOrNothing, all are accepted or all
// are refused.
type BulkCommit struct {
	RequestID    string
	Caller       string
	EnvelopeID   string
	Items        []BulkItem
	AllOrNothing bool
}

// BulkItem is one award of a BulkCommit.
type BulkItem struct {
	Beneficiary string
	Project     string
	Amount      int64
	Description string
	Policy
}

// BulkItemResult is the outcome of one item: its commitment, or its refusal.
type BulkItemResult struct {
	Commitment *Commitment
	Refusal    *Error
}

// BulkCommitResult is the outcome of a BulkCommit.
type BulkCommitResult struct {
	// Items holds one result per item, in order.
	Items []BulkItemResult
	// Accepted and Refused count the items.
	Accepted, Refused int
	// Envelope is the envelope after the last accepted item (after the call when it is first
	// decided; on a replay, as the last accepted award left it), or as found when none was accepted.
	Envelope Envelope
}

func (c *BulkCommit) validate() error {
	if err := firstError(checkRequestID(c.RequestID), checkEnvelopeID("envelope", c.EnvelopeID)); err != nil {
		return err
	}
	if len(c.Items) == 0 || len(c.Items) > MaxBulkItems {
		return invalidArgument("items", "must hold 1 to %d awards", MaxBulkItems)
	}
	for i, it := range c.Items {
		field := fmt.Sprintf("items[%d].", i)
		if err := firstError(checkText(field+"beneficiary", it.Beneficiary, 1, 200),
			checkText(field+"project", it.Project, 1, 200), checkAmount(field+"amount", it.Amount),
			checkText(field+"description", it.Description, 0, 500), it.Policy.validate(field)); err != nil {
			return err
		}
	}
	return nil
}

func (c *BulkCommit) fingerprint() string {
	f := &fingerprinter{}
	f.str("BulkCommit").str(c.Caller).str(c.EnvelopeID).num(int64(len(c.Items)))
	if c.AllOrNothing {
		f.num(1)
	} else {
		f.num(0)
	}
	for _, it := range c.Items {
		f.str(it.Beneficiary).str(it.Project).num(it.Amount).str(it.Description)
		it.Policy.add(f)
	}
	return f.sum()
}

// BulkCommit makes every award of cmd on one envelope in one transaction. A retry with the same
// request id and items returns the first outcome, item by item.
func (l *Ledger) BulkCommit(ctx context.Context, cmd BulkCommit) (BulkCommitResult, error) {
	var res BulkCommitResult
	if err := cmd.validate(); err != nil {
		return res, err
	}
	// Each item is recorded in the request log under "<request id> <index>": a space never
	// appears in a caller's request id, so these cannot collide with another request. Every item
	// carries the fingerprint of the whole call, so changing any item changes them all.
	callFingerprint := cmd.fingerprint()
	u := &unit{envelopeID: cmd.EnvelopeID, allOrNothing: cmd.AllOrNothing, callID: cmd.RequestID,
		callFingerprint: callFingerprint}
	for i, it := range cmd.Items {
		f := &fingerprinter{}
		u.ops = append(u.ops, &envelopeOp{
			commit: &Commit{RequestID: cmd.RequestID + " " + strconv.Itoa(i), Caller: cmd.Caller,
				EnvelopeID: cmd.EnvelopeID, Beneficiary: it.Beneficiary, Project: it.Project,
				Amount: it.Amount, Description: it.Description, Policy: it.Policy},
			fingerprint: f.str(callFingerprint).num(int64(i)).sum(),
		})
	}
	if err := l.run(ctx, u); err != nil {
		return res, err
	}
	res.Items = make([]BulkItemResult, len(u.ops))
	var last *Envelope
	for i, op := range u.ops {
		if op.outcome.Refusal != nil {
			if cmd.AllOrNothing || op.outcome.Refusal.Reason == ReasonRequestIDReused ||
				op.outcome.Refusal.Reason == ReasonEnvelopeNotFound {
				// The call as a whole was refused.
				return BulkCommitResult{}, op.outcome.Refusal
			}
			res.Items[i].Refusal = op.outcome.Refusal
			res.Refused++
			continue
		}
		var cr CommitResult
		if err := op.decode(&cr); err != nil {
			return BulkCommitResult{}, internal("bulk item %d: %w", i, err)
		}
		res.Items[i].Commitment = &cr.Commitment
		res.Accepted++
		last = &cr.Envelope
	}
	switch {
	case last != nil:
		res.Envelope = *last
	case u.envelope != nil:
		res.Envelope = *u.envelope
	default:
		env, err := l.GetEnvelope(ctx, cmd.EnvelopeID)
		if err != nil {
			return BulkCommitResult{}, err
		}
		res.Envelope = env
	}
	return res, nil
}
