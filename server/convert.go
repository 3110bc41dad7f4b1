package server

import (
	"strings"

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
	return &pb.Envelope{
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
	}
}

func commitmentPB(c *ledger.Commitment) *pb.Commitment {
	return &pb.Commitment{
		Name:         ledger.CommitmentName(c.ID),
		Envelope:     ledger.EnvelopeName(c.EnvelopeID),
		Beneficiary:  c.Beneficiary,
		Project:      c.Project,
		CurrencyCode: c.Currency,
		Amount:       c.Amount,
		Released:     c.Released,
		Remaining:    c.Remaining(),
		Description:  c.Description,
		CreateTime:   timestamppb.New(c.CreatedAt),
		UpdateTime:   timestamppb.New(c.UpdatedAt),
		EligibleCost: c.EligibleCost,
		Territory:    c.Territory,
		Population:   c.Population,
	}
}

var entryKinds = map[ledger.EntryKind]pb.EntryKind{
	ledger.KindEnvelopeFunded:    pb.EntryKind_ENTRY_KIND_ENVELOPE_FUNDED,
	ledger.KindEnvelopeAllocated: pb.EntryKind_ENTRY_KIND_ENVELOPE_ALLOCATED,
	ledger.KindAllocationMoved:   pb.EntryKind_ENTRY_KIND_ALLOCATION_MOVED,
	ledger.KindCommitted:         pb.EntryKind_ENTRY_KIND_COMMITTED,
	ledger.KindReleased:          pb.EntryKind_ENTRY_KIND_RELEASED,
	ledger.KindRulesChanged:      pb.EntryKind_ENTRY_KIND_RULES_CHANGED,
}

func entryPB(e *ledger.Entry) *pb.JournalEntry {
	postings := make([]*pb.Posting, len(e.Postings))
	for i, p := range e.Postings {
		postings[i] = &pb.Posting{Account: p.Account, Amount: p.Amount}
	}
	return &pb.JournalEntry{
		Name:         ledger.EntryName(e.ID),
		Kind:         entryKinds[e.Kind],
		Postings:     postings,
		CurrencyCode: e.Currency,
		Caller:       e.Caller,
		RequestId:    e.RequestID,
		Memo:         e.Memo,
		CreateTime:   timestamppb.New(e.CreatedAt),
		Sequence:     e.Sequence,
	}
}

// id returns the id part of a resource name ("envelopes/axis-1" → "axis-1"). Names are checked by
// protovalidate before a handler runs; an empty name gives "".
func id(name, collection string) string {
	return strings.TrimPrefix(name, collection+"/")
}
