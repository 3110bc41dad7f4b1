package server

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

func envelopePB(e *ledger.Envelope) *pb.Envelope {
	if e == nil {
		return nil
	}
	parent := ""
	if e.ParentID != "" {
		parent = ledger.EnvelopeName(e.ParentID)
	}
	out := &pb.Envelope{
		Name:                ledger.EnvelopeName(e.ID),
		DisplayName:         e.DisplayName,
		Parent:              parent,
		CurrencyCode:        e.Currency,
		Allocation:          e.Allocation,
		Committed:           e.Committed,
		AllocatedToChildren: e.ChildrenAllocated,
		Available:           e.Available(),
		CommitmentCount:     e.CommitmentCount,
		Released:            e.Released,
		CreateTime:          timestamppb.New(e.CreatedAt),
		UpdateTime:          timestamppb.New(e.UpdatedAt),
		EffectiveTime:       timestamppb.New(orTime(e.EffectiveAt, e.CreatedAt)),
		LatestEffectiveTime: timestamppb.New(orTime(e.LatestEffectiveAt, e.UpdatedAt)),
		Etag:                ledger.EnvelopeETag(*e),
		Held:                e.Held,
	}
	envelopePaymentFieldsPB(e, out)
	return out
}

// orTime is t, or else when t is zero (an outcome recorded before effective times existed, in
// which everything took effect when it was recorded).
func orTime(t, orElse time.Time) time.Time {
	if t.IsZero() {
		return orElse
	}
	return t
}

// timeOrNil is t as a Timestamp, nil when it is zero (not known).
func timeOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func commitmentPB(c *ledger.Commitment) *pb.Commitment {
	out := &pb.Commitment{
		Name:          ledger.CommitmentName(c.ID),
		Envelope:      ledger.EnvelopeName(c.EnvelopeID),
		Beneficiary:   c.Beneficiary,
		Project:       c.Project,
		CurrencyCode:  c.Currency,
		Amount:        c.Amount,
		Released:      c.Released,
		Remaining:     c.Remaining(),
		Description:   c.Description,
		CreateTime:    timestamppb.New(c.CreatedAt),
		UpdateTime:    timestamppb.New(c.UpdatedAt),
		EligibleCost:  c.EligibleCost,
		Territory:     c.Territory,
		Population:    c.Population,
		EffectiveTime: timestamppb.New(orTime(c.EffectiveAt, c.CreatedAt)),
	}
	paymentFieldsPB(c, out)
	return out
}

var entryKinds = map[ledger.EntryKind]pb.EntryKind{
	ledger.KindEnvelopeFunded:    pb.EntryKind_ENTRY_KIND_ENVELOPE_FUNDED,
	ledger.KindEnvelopeAllocated: pb.EntryKind_ENTRY_KIND_ENVELOPE_ALLOCATED,
	ledger.KindAllocationMoved:   pb.EntryKind_ENTRY_KIND_ALLOCATION_MOVED,
	ledger.KindCommitted:         pb.EntryKind_ENTRY_KIND_COMMITTED,
	ledger.KindReleased:          pb.EntryKind_ENTRY_KIND_RELEASED,
	ledger.KindRulesChanged:      pb.EntryKind_ENTRY_KIND_RULES_CHANGED,
	ledger.KindPaid:              pb.EntryKind_ENTRY_KIND_PAID,
	ledger.KindCommitmentClosed:  pb.EntryKind_ENTRY_KIND_COMMITMENT_CLOSED,
	ledger.KindHoldCreated:       pb.EntryKind_ENTRY_KIND_HOLD_CREATED,
	ledger.KindHoldConfirmed:     pb.EntryKind_ENTRY_KIND_HOLD_CONFIRMED,
	ledger.KindHoldCancelled:     pb.EntryKind_ENTRY_KIND_HOLD_CANCELLED,
	ledger.KindHoldExpired:       pb.EntryKind_ENTRY_KIND_HOLD_EXPIRED,
}

func entryPB(e *ledger.Entry) *pb.JournalEntry {
	postings := make([]*pb.Posting, len(e.Postings))
	for i, p := range e.Postings {
		postings[i] = &pb.Posting{Account: p.Account, Amount: p.Amount}
	}
	return &pb.JournalEntry{
		Name:          ledger.EntryName(e.ID),
		Kind:          entryKinds[e.Kind],
		Postings:      postings,
		CurrencyCode:  e.Currency,
		Caller:        e.Caller,
		RequestId:     e.RequestID,
		Memo:          e.Memo,
		CreateTime:    timestamppb.New(e.CreatedAt),
		Sequence:      e.Sequence,
		EffectiveTime: timestamppb.New(orTime(e.EffectiveAt, e.CreatedAt)),
	}
}

// timeOf converts the Timestamp given in field (a path such as rules.award_window.end_time); nil
// gives the zero time. A Timestamp the ledger cannot hold — outside 0001-01-01 … 9999-12-31, or
// with nanos out of range — is refused here with the field named: converted, it would overflow
// the stored microseconds or fail to encode (issue 12 item 7).
func timeOf(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, &ledger.Error{Reason: ledger.ReasonInvalidArgument, Field: field,
			Message: field + ": must be a valid timestamp between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z"}
	}
	return ts.AsTime(), nil
}

// effectiveOf converts a request's effective_time (nil: not given, the zero time).
func effectiveOf(ts *timestamppb.Timestamp) (time.Time, error) {
	return givenTimeOf("effective_time", "to mean now", ts)
}

// givenTimeOf is timeOf for a field whose zero time, 0001-01-01T00:00:00Z, the ledger cannot tell
// from "not given" (an effective time: now; an expire time: never; a bound of an award window:
// none): given, it is refused here, rather than read as the opposite of what was sent, or as
// the same request as one without it. unset says what leaving the field out means.
func givenTimeOf(field, unset string, ts *timestamppb.Timestamp) (time.Time, error) {
	t, err := timeOf(field, ts)
	if err == nil && ts != nil && t.IsZero() {
		err = &ledger.Error{Reason: ledger.ReasonInvalidArgument, Field: field,
			Message: field + ": must be later than 0001-01-01T00:00:00Z (leave it unset " + unset + ")"}
	}
	return t, err
}

// id returns the id part of a resource name ("envelopes/axis-1" → "axis-1"). Names are checked by
// protovalidate before a handler runs; an empty name gives "".
func id(name, collection string) string {
	return strings.TrimPrefix(name, collection+"/")
}
