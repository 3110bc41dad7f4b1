package core

import (
	"errors"
	"testing"
	"time"
)

// TestValidSIRET: what publication needs (issue 13 §4). A SIRET is 14 digits whose Luhn sum is a
// multiple of 10; La Poste's establishments (SIREN 356000000) are numbered beyond what that key
// allows, and their digits' plain sum is a multiple of 5 instead.
func TestValidSIRET(t *testing.T) {
	for s, want := range map[string]bool{
		"21690123100011":  true,  // Luhn
		"13001853500042":  true,  // Luhn
		"21690123100012":  false, // one digit off
		"35600000000048":  true,  // La Poste's head office: Luhn
		"35600000049837":  true,  // a La Poste establishment: digits sum to 50
		"35600000049838":  false, // neither rule
		"2169012310001":   false, // 13 digits
		"216901231000110": false,
		"2169012310001a":  false,
		"":                false,
	} {
		if got := ValidSIRET(s); got != want {
			t.Errorf("ValidSIRET(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestPublicationValidation: each publication field is refused precisely when malformed, naming
// the field (with the item's prefix in a bulk call).
func TestPublicationValidation(t *testing.T) {
	ok := Publication{DecisionReference: "CONV-2021-118", BeneficiaryLegalName: "Commune de Lyon",
		BeneficiarySIRET: "21690123100011", BeneficiaryRNA: "W691234567", Purpose: "Guichet numérique"}
	if err := ok.validate(""); err != nil {
		t.Fatalf("a valid publication is refused: %v", err)
	}
	long := make([]rune, 257)
	for i := range long {
		long[i] = 'é'
	}
	for field, p := range map[string]Publication{
		"items[2].beneficiary_siret":      {BeneficiarySIRET: "21690123100012"},
		"items[2].beneficiary_rna":        {BeneficiaryRNA: "w691234567"},
		"items[2].purpose":                {Purpose: string(long)},
		"items[2].decision_reference":     {DecisionReference: "a\x00b"},
		"items[2].beneficiary_legal_name": {BeneficiaryLegalName: "\xff"},
	} {
		err := p.validate("items[2].")
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonInvalidArgument || e.Field != field {
			t.Errorf("%+v: %v, want INVALID_ARGUMENT on %s", p, err, field)
		}
	}
}

// TestPublicationFingerprints protects invariant 5 across the upgrade: a request without the new
// fields keeps the fingerprint it had (a retry recorded before still replays), one with them
// differs from it, and never matches a legacy row.
func TestPublicationFingerprints(t *testing.T) {
	base := Commit{RequestID: "r", Caller: "c", EnvelopeID: "axis-1", Beneficiary: "b", Project: "p", Amount: 10}
	plain := base.Fingerprint()
	if want := canonical("Commit").str("c").str("axis-1").str("b").str("p").num(10).str("").policy(Policy{}).sumV2(); plain.Current != want {
		t.Errorf("a Commit without publication fields changed fingerprint: %s, want %s", plain.Current, want)
	}
	with := base
	with.Purpose = "objet"
	fp := with.Fingerprint()
	if fp.Current == plain.Current || fp.Matches(plain.Legacy) || fp.Matches(plain.Current) {
		t.Errorf("a Commit with a purpose matches the one without: %+v vs %+v", fp, plain)
	}
	bulk := BulkCommit{RequestID: "r", Caller: "c", EnvelopeID: "axis-1", Items: []BulkItem{{Beneficiary: "b", Project: "p", Amount: 1}, {Beneficiary: "b", Project: "p", Amount: 1}}}
	b1 := bulk.Fingerprint()
	bulk.Items[1].BeneficiaryRNA = "W691234567"
	b2 := bulk.Fingerprint()
	bulk.Items[1].BeneficiaryRNA, bulk.Items[0].BeneficiaryRNA = "", "W691234567"
	b3 := bulk.Fingerprint()
	if b1.Current == b2.Current || b2.Current == b3.Current || b2.Matches(b1.Legacy) {
		t.Errorf("bulk fingerprints do not tell the items' publication fields apart: %v %v %v", b1, b2, b3)
	}
	env := CreateEnvelope{RequestID: "r", Caller: "c", EnvelopeID: "fund", Allocation: 1}
	e1 := env.Fingerprint()
	env.GrantingBodyName = "ANCT"
	if e2 := env.Fingerprint(); e2.Current == e1.Current || e2.Matches(e1.Legacy) {
		t.Errorf("a granting body does not change the envelope's fingerprint")
	}
}

// TestDecidePayment: invariant 10, decided in memory. A payment takes at most what remains to
// pay, keeps the envelope's committed and available, and a closing returns the rest once.
func TestDecidePayment(t *testing.T) {
	n := 0
	st := Stamp{At: time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC), NewID: func() string { n++; return "id-" + string(rune('a'+n)) }}
	env := Envelope{ID: "axis-3", Currency: "EUR", Allocation: 1000, Committed: 100, CommitmentCount: 1}
	c := Commitment{ID: "c1", EnvelopeID: "axis-3", Project: "p", Currency: "EUR", Amount: 100, Released: 10}
	if _, _, err := DecideCreatePayment(st, CreatePayment{CommitmentID: "c1", Amount: 91}, &env, &c); !errors.Is(err, ErrPaymentExceedsRemaining) {
		t.Errorf("paying 91 of 90: %v", err)
	}
	res, eff, err := DecideCreatePayment(st, CreatePayment{CommitmentID: "c1", Amount: 90}, &env, &c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commitment.RemainingToPay() != 0 || res.Envelope.Committed != 100 || res.Envelope.Paid != 90 || res.Envelope.Available() != 900 ||
		len(eff.Payments) != 1 || eff.Entries[0].Postings[1].Account != PaymentsAccount {
		t.Errorf("payment: %+v, effects %+v", res, eff)
	}
	if c.Paid != 0 || env.Paid != 0 {
		t.Errorf("the decision changed its inputs")
	}
	closed, eff, err := DecideCloseCommitment(st, CloseCommitment{CommitmentID: "c1", Reason: "done"}, &res.Envelope, &res.Commitment, LatestMoves{})
	if err != nil || closed.Returned != 0 || !closed.Commitment.Closed() || len(eff.Entries[0].Postings) != 0 || len(eff.Deltas) != 0 {
		t.Errorf("closing a fully paid commitment: %+v %+v %v", closed, eff, err)
	}
	if refusal := releaseRefusal(&closed.Commitment, 1); refusal == nil || refusal.Reason != ReasonCommitmentClosed {
		t.Errorf("release of a closed commitment: %v", refusal)
	}
	if _, _, err := DecideCreatePayment(st, CreatePayment{CommitmentID: "c1", Amount: 1}, &closed.Envelope, &closed.Commitment); !errors.Is(err, ErrCommitmentClosed) {
		t.Errorf("payment of a closed commitment: %v", err)
	}
}
