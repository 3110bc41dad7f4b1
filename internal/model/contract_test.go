package model

// The model alone, against the examples the documentation gives (README, docs/rules.md,
// DESIGN.md §2): if the model misread the contract, these say where.

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var testSpan = Span{From: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)}

func mustAccept(t *testing.T, what string, r *Refusal) {
	t.Helper()
	if r != nil {
		t.Fatalf("%s: refused %v", what, r)
	}
}

func mustRefuse(t *testing.T, what string, r *Refusal, want Reason) {
	t.Helper()
	if r == nil || r.Reason != want {
		t.Fatalf("%s: got %v, want %s", what, r, want)
	}
}

func i64(v int64) *int64 { return &v }

// TestModelContractFranceRelance: the second call's rules, in force at once, accept the award
// the first call's refused (README, "Rules, calls and reporting").
func TestModelContractFranceRelance(t *testing.T) {
	m := New(testSpan)
	_, r := m.CreateEnvelope(CreateEnvelope{RequestID: "c1", EnvelopeID: "fund", Allocation: 8_800_000_000})
	mustAccept(t, "fund", r)
	_, r = m.CreateEnvelope(CreateEnvelope{RequestID: "c2", EnvelopeID: "axis-1", ParentID: "fund", Allocation: 3_000_000_000})
	mustAccept(t, "axis-1", r)
	_, r = m.SetRules(SetRules{RequestID: "r1", EnvelopeID: "fund", Call: "appel-1", Rules: Rules{MaxFundingShareBPS: i64(5000)}})
	mustAccept(t, "rules appel-1", r)
	award := Commit{RequestID: "a1", EnvelopeID: "axis-1", Beneficiary: "siren:200046977", Project: "outil-70",
		Amount: 70_000_000, Policy: Policy{EligibleCost: 100_000_000}}
	_, r = m.Commit(award, "x1")
	mustRefuse(t, "award under appel-1", r, PolicyViolation)
	if r.Metadata["max_award"] != "50000000" || r.Metadata["rule"] != "max_funding_share" {
		t.Errorf("refusal metadata %v, want max_award 50000000 of rule max_funding_share", r.Metadata)
	}
	_, r = m.SetRules(SetRules{RequestID: "r2", EnvelopeID: "fund", Call: "appel-2", Rules: Rules{MaxFundingShareBPS: i64(7500)}})
	mustAccept(t, "rules appel-2", r)
	// The same request id replays the refusal; a new one is decided under the new rules.
	_, r = m.Commit(award, "x2")
	mustRefuse(t, "replay of a1", r, PolicyViolation)
	award.RequestID = "a2"
	res, r := m.Commit(award, "x3")
	mustAccept(t, "award under appel-2", r)
	if res.Envelope.Available() != 3_000_000_000-70_000_000 {
		t.Errorf("axis-1 available %d after the award", res.Envelope.Available())
	}
	// What the project holds counts: 5,000,001 more would pass 75 %.
	award.RequestID, award.Amount = "a3", 5_000_001
	_, r = m.Commit(award, "x4")
	mustRefuse(t, "award over the share with what the project holds", r, PolicyViolation)
	// A rule set on the envelope itself replaces the envelope's previous one, not the parent's.
	_, r = m.SetRules(SetRules{RequestID: "r3", EnvelopeID: "axis-1", Call: "appel-3", Rules: Rules{MinPopulation: i64(300_000)}})
	mustAccept(t, "rules appel-3", r)
	award.RequestID, award.Population = "a4", 300_000
	_, r = m.Commit(award, "x5")
	mustRefuse(t, "the fund's share still applies to axis-1", r, PolicyViolation)
}

// TestModelContractRequestIDs: invariant 5, and that INVALID_ARGUMENT records nothing.
func TestModelContractRequestIDs(t *testing.T) {
	m := New(testSpan)
	create := CreateEnvelope{RequestID: "c1", Caller: "alice", EnvelopeID: "fund", Allocation: 100}
	first, r := m.CreateEnvelope(create)
	mustAccept(t, "create", r)
	again, r := m.CreateEnvelope(create)
	mustAccept(t, "replay", r)
	if again != first {
		t.Errorf("replay %+v, first %+v", again, first)
	}
	// Request ids belong to their caller: bob's "c1" is a request of its own, decided (the
	// envelope exists already), not a reuse of alice's.
	create.Caller = "bob"
	_, r = m.CreateEnvelope(create)
	mustRefuse(t, "same id, another caller", r, EnvelopeAlreadyExists)
	_, r = m.Commit(Commit{RequestID: "c1", Caller: "alice", EnvelopeID: "fund", Amount: 1}, "x")
	mustRefuse(t, "same id, another kind of request", r, RequestIDReused)
	_, r = m.Commit(Commit{RequestID: "k1", EnvelopeID: "fund", Amount: 0}, "x")
	mustRefuse(t, "amount 0", r, InvalidArgument)
	_, r = m.Commit(Commit{RequestID: "k1", EnvelopeID: "fund", Amount: 10}, "x")
	mustAccept(t, "an id first used by an invalid request", r)
}

// TestModelContractBalances: releases return funds; moves, overflow, all-or-nothing.
func TestModelContractBalances(t *testing.T) {
	m := New(testSpan)
	for _, c := range []CreateEnvelope{
		{RequestID: "1", EnvelopeID: "a", Allocation: math.MaxInt64},
		{RequestID: "2", EnvelopeID: "b", Allocation: math.MaxInt64},
		{RequestID: "3", EnvelopeID: "a1", ParentID: "a", Allocation: 10},
		{RequestID: "4", EnvelopeID: "u", Currency: "USD", Allocation: 5},
	} {
		_, r := m.CreateEnvelope(c)
		mustAccept(t, c.EnvelopeID, r)
	}
	_, r := m.MoveAllocation(MoveAllocation{RequestID: "m1", SourceID: "a", DestinationID: "b", Amount: 1})
	mustRefuse(t, "move overflowing b", r, AmountOverflow)
	_, r = m.MoveAllocation(MoveAllocation{RequestID: "m2", SourceID: "a", DestinationID: "u", Amount: 1})
	mustRefuse(t, "EUR to USD", r, CurrencyMismatch)
	_, r = m.MoveAllocation(MoveAllocation{RequestID: "m3", SourceID: "a1", DestinationID: "b", Amount: 1})
	mustRefuse(t, "a child to its parent's sibling", r, EnvelopesNotRelated)
	_, r = m.MoveAllocation(MoveAllocation{RequestID: "m4", SourceID: "a1", DestinationID: "a", Amount: 4})
	mustAccept(t, "child to parent", r)
	c, r := m.Commit(Commit{RequestID: "k1", EnvelopeID: "a1", Amount: 6}, "00000000-0000-7000-8000-000000000001")
	mustAccept(t, "award all of a1", r)
	_, r = m.Commit(Commit{RequestID: "k2", EnvelopeID: "a1", Amount: 1}, "x2")
	mustRefuse(t, "award on an empty envelope", r, InsufficientFunds)
	_, r = m.Release(Release{RequestID: "r1", CommitmentID: c.Commitment.ID, Amount: 7})
	mustRefuse(t, "release over the remaining", r, ReleaseExceedsRemaining)
	rel, r := m.Release(Release{RequestID: "r2", CommitmentID: c.Commitment.ID, Amount: 2})
	mustAccept(t, "release", r)
	if rel.Envelope.Available() != 2 || rel.Commitment.Remaining() != 4 {
		t.Errorf("after the release: %+v", rel)
	}
	bulk := BulkCommit{RequestID: "b1", EnvelopeID: "a1", AllOrNothing: true,
		Items: []BulkItem{{Project: "p", Amount: 1}, {Project: "q", Amount: 2}}}
	_, r = m.BulkCommit(bulk, []string{"y1", "y2"})
	mustRefuse(t, "all or nothing", r, InsufficientFunds)
	if r.Metadata["item"] != "1" {
		t.Errorf("the refusal names item %q, want 1", r.Metadata["item"])
	}
	if e, _ := m.Envelope("a1"); e.Available() != 2 {
		t.Errorf("an all-or-nothing refusal changed the envelope: %+v", e)
	}
	bulk.RequestID, bulk.AllOrNothing = "b2", false
	res, r := m.BulkCommit(bulk, []string{"y1", "y2"})
	mustAccept(t, "item by item", r)
	if res.Accepted != 1 || res.Refused != 1 || res.Items[1].Refusal.Reason != InsufficientFunds {
		t.Errorf("item by item: %+v", res)
	}
}

// TestModelContractConcurrentAdmins: AIP-154 as the model states it. Two administrators read the
// fund's etags; the first to change it wins, the second is ETAG_MISMATCH, recorded nowhere, and
// wins once it has read again (same request id). A change elsewhere in the tree leaves the rules'
// etag alone, but a rule change on the parent changes the child's envelope etag.
func TestModelContractConcurrentAdmins(t *testing.T) {
	m := New(testSpan)
	_, r := m.CreateEnvelope(CreateEnvelope{RequestID: "c1", EnvelopeID: "fund", Allocation: 1_000})
	mustAccept(t, "fund", r)
	_, r = m.CreateEnvelope(CreateEnvelope{RequestID: "c2", EnvelopeID: "axis-1", ParentID: "fund", Allocation: 100})
	mustAccept(t, "axis-1", r)
	rulesRead, envRead, childRead := m.RulesETag("fund"), m.ETag("fund"), m.ETag("axis-1")
	_, r = m.SetRules(SetRules{RequestID: "alice", Caller: "admin:alice", EnvelopeID: "fund", Call: "appel-1", Rules: Rules{MaxFundingShareBPS: i64(5000)}, ETag: rulesRead})
	mustAccept(t, "alice's rules", r)
	bob := SetRules{RequestID: "bob", Caller: "admin:bob", EnvelopeID: "fund", Call: "appel-1", Rules: Rules{MaxFundingShareBPS: i64(7500)}, ETag: rulesRead}
	_, r = m.SetRules(bob)
	mustRefuse(t, "bob's rules, same etag", r, ETagMismatch)
	if m.Requested("admin:bob", "bob") {
		t.Fatal("a stale etag was recorded under its request id")
	}
	bob.ETag = m.RulesETag("fund")
	_, r = m.SetRules(bob)
	mustAccept(t, "bob's rules, read again", r)
	if m.ETag("axis-1") == childRead {
		t.Error("a rule change on the parent left the child's envelope etag as it was")
	}
	_, r = m.MoveAllocation(MoveAllocation{RequestID: "m1", Caller: "admin:alice", SourceID: "fund", DestinationID: "axis-1", Amount: 1, Reason: "r", ETag: envRead})
	mustRefuse(t, "a move with the fund's etag of before the rule changes", r, ETagMismatch)
	_, r = m.MoveAllocation(MoveAllocation{RequestID: "m1", Caller: "admin:alice", SourceID: "fund", DestinationID: "axis-1", Amount: 1, Reason: "r", ETag: m.ETag("fund")})
	mustAccept(t, "the move, read again", r)
}

// TestModelContractDepth: an envelope tree has at most MaxEnvelopeDepth levels (the ledger's
// ENVELOPE_TOO_DEEP, which the model lacked: found by a review of the model); a refused child
// is recorded under its request id like any refusal, and changes nothing.
func TestModelContractDepth(t *testing.T) {
	m := New(testSpan)
	parent := ""
	for level := 1; level <= MaxEnvelopeDepth; level++ {
		id := fmt.Sprintf("level-%d", level)
		_, r := m.CreateEnvelope(CreateEnvelope{RequestID: id, EnvelopeID: id, ParentID: parent, Allocation: int64(1000 - level)})
		mustAccept(t, id, r)
		parent = id
	}
	deep := CreateEnvelope{RequestID: "too-deep", EnvelopeID: "too-deep", ParentID: parent, Allocation: 1}
	_, r := m.CreateEnvelope(deep)
	mustRefuse(t, "a child below the last level", r, EnvelopeTooDeep)
	if r.Metadata["parent_level"] != fmt.Sprint(MaxEnvelopeDepth) {
		t.Errorf("refusal metadata %v, want parent_level %d", r.Metadata, MaxEnvelopeDepth)
	}
	if e, _ := m.Envelope(parent); e.ChildrenAllocated != 0 {
		t.Errorf("the refused child took %d from its parent", e.ChildrenAllocated)
	}
	_, r = m.CreateEnvelope(deep)
	mustRefuse(t, "the refusal replayed", r, EnvelopeTooDeep)
}

// TestModelContractPublicationIsPartOfTheRequest: an award sent again under its request id with
// other publication fields (its purpose, say) is another request, REQUEST_ID_REUSED, as the
// ledger's fingerprint says; the model's payloads left them out (found by a review of the model).
func TestModelContractPublicationIsPartOfTheRequest(t *testing.T) {
	m := New(testSpan)
	_, r := m.CreateEnvelope(CreateEnvelope{RequestID: "fund", EnvelopeID: "fund", Allocation: 1_000})
	mustAccept(t, "fund", r)
	award := Commit{RequestID: "a1", EnvelopeID: "fund", Beneficiary: "b", Project: "p", Amount: 10,
		Publication: Publication{Purpose: "Guichet numérique"}}
	_, r = m.Commit(award, "x1")
	mustAccept(t, "award", r)
	_, r = m.Commit(award, "x2")
	mustAccept(t, "the same award again: a replay", r)
	award.Purpose = "Tiers-lieu"
	_, r = m.Commit(award, "x3")
	mustRefuse(t, "the same id, another purpose", r, RequestIDReused)
}
