package core

import (
	"fmt"
	"strconv"
	"time"
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
	// Effective is when the awards took effect (the committee's decision; zero: not given),
	// the same for every item; see CheckEffective.
	Effective time.Time
}

// BulkItem is one award of a BulkCommit.
type BulkItem struct {
	Beneficiary string
	Project     string
	Amount      int64
	Description string
	Policy
	Publication
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
	// Envelope is the envelope after the last accepted item, or as the call found it when none
	// was accepted; a replay answers it as first answered (a call recorded before migration 18,
	// a row per item, that accepted no item answers the envelope as it is now).
	Envelope Envelope
}

func (c *BulkCommit) Validate() error {
	if err := FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckEnvelopeID("envelope", c.EnvelopeID),
		checkEffectiveRange(c.Effective)); err != nil {
		return err
	}
	if len(c.Items) == 0 || len(c.Items) > MaxBulkItems {
		return InvalidArgument("items", "must hold 1 to %d awards", MaxBulkItems)
	}
	for i, it := range c.Items {
		field := fmt.Sprintf("items[%d].", i)
		if err := FirstError(CheckField(field+"beneficiary", "beneficiary", it.Beneficiary),
			CheckField(field+"project", "project", it.Project), checkAmount(field+"amount", it.Amount),
			CheckField(field+"description", "description", it.Description), it.Policy.validate(field), it.Publication.validate(field)); err != nil {
			return err
		}
	}
	return nil
}

// Unit builds the group-commit unit of a bulk call. Each item is recorded in the request log
// under "<request id> <index>" (scoped to the caller like any request id; see RequestKey): a
// space never appears in a caller's request id, so these cannot collide with another request. Every item carries the fingerprint of the whole call, so changing
// any item changes them all.
func (c *BulkCommit) Unit() *Unit {
	callFingerprint := c.Fingerprint()
	u := &Unit{EnvelopeID: c.EnvelopeID, AllOrNothing: c.AllOrNothing, CallID: c.RequestID,
		CallCaller: c.Caller, CallFingerprint: callFingerprint}
	for i, it := range c.Items {
		u.Ops = append(u.Ops, &Op{
			Commit: &Commit{RequestID: c.RequestID + " " + strconv.Itoa(i), Caller: c.Caller,
				EnvelopeID: c.EnvelopeID, Beneficiary: it.Beneficiary, Project: it.Project,
				Amount: it.Amount, Description: it.Description, Policy: it.Policy, Effective: c.Effective,
				Publication: it.Publication},
			Fingerprint: itemFingerprint(callFingerprint, i),
		})
	}
	return u
}

// BulkResult assembles the result of a decided bulk unit. found is false when the envelope is
// to be read afresh (no item was accepted and the unit did not find it: a replay of a call
// recorded one row per item, before migration 18).
func (c *BulkCommit) BulkResult(u *Unit) (res BulkCommitResult, found bool, err error) {
	if u.Err != nil {
		return BulkCommitResult{}, true, u.Err
	}
	if r := u.Replayed; r != nil {
		// A call recorded as one row: its outcome, as first answered.
		if r.Refusal != nil {
			return BulkCommitResult{}, true, r.Refusal
		}
		if r.Bulk != nil {
			return *r.Bulk, true, nil
		}
	}
	return bulkOutcome(c.AllOrNothing, u.Ops, u.Envelope)
}

// bulkOutcome assembles a bulk call's result from its ops' outcomes and the envelope as the call
// left it (nil: not found), or returns the refusal of the call as a whole.
func bulkOutcome(allOrNothing bool, ops []*Op, envelope *Envelope) (res BulkCommitResult, found bool, err error) {
	res.Items = make([]BulkItemResult, len(ops))
	var last *Envelope
	for i, op := range ops {
		if op.Outcome.Refusal != nil {
			if allOrNothing || op.Outcome.Refusal.Reason == ReasonRequestIDReused ||
				op.Outcome.Refusal.Reason == ReasonEnvelopeNotFound {
				// The call as a whole was refused.
				return BulkCommitResult{}, true, op.Outcome.Refusal
			}
			res.Items[i].Refusal = op.Outcome.Refusal
			res.Refused++
			continue
		}
		var cr CommitResult
		if err := op.Decode(&cr); err != nil {
			return BulkCommitResult{}, true, Internal("bulk item %d: %w", i, err)
		}
		res.Items[i].Commitment = &cr.Commitment
		res.Accepted++
		last = &cr.Envelope
	}
	switch {
	case last != nil:
		res.Envelope = *last
	case envelope != nil:
		res.Envelope = *envelope
	default:
		return res, false, nil
	}
	return res, true, nil
}
