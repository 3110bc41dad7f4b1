package model_test

// Contract tests: scripted scenarios sent to the reference model and to the real ledger side by
// side, on every engine. Each step says what the contract answers (a reason, or acceptance); the
// model must answer that, and the ledger what the model answers (results, and the refusal's
// metadata that the model predicts). They pin down, one rule at a time, what the random tests
// exercise in bulk.

import (
	"fmt"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/model"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// agreement is one scenario's ledger and model.
type agreement struct {
	t     *testing.T
	l     *ledger.Ledger
	m     *model.Ledger
	span  model.Span
	steps int
	tally tally
}

func newAgreement(t *testing.T, database string) *agreement {
	l := openLedgerWith(t, database, ledger.Config{})
	t.Cleanup(func() { l.Close() })
	span := newSpan()
	return &agreement{t: t, l: l, m: model.New(span), span: span, tally: newTally()}
}

// check compares one step's outcomes: the model's must be want ("" for acceptance), and the
// ledger's the model's.
func (a *agreement) check(what string, want model.Reason, modelOut, ledgerOut callOutcome) {
	a.t.Helper()
	a.steps++
	var got model.Reason
	if modelOut.Refusal != nil {
		got = modelOut.Refusal.Reason
	}
	if got != want {
		a.t.Errorf("step %d, %s: the model answered %q (%v), the contract %q", a.steps, what, got, modelOut.Refusal, want)
	}
	diffOutcomes(a.t, a.steps, what, a.tally, modelOut, ledgerOut)
}

func (a *agreement) createEnvelope(want model.Reason, c model.CreateEnvelope) {
	a.t.Helper()
	mr, mref := a.m.CreateEnvelope(c)
	lr, err := a.l.CreateEnvelope(a.t.Context(), ledger.CreateEnvelope{RequestID: c.RequestID, Caller: c.Caller,
		EnvelopeID: c.EnvelopeID, ParentID: c.ParentID, DisplayName: c.DisplayName, Currency: c.Currency,
		Allocation: c.Allocation, Effective: c.Effective})
	a.check("CreateEnvelope "+c.EnvelopeID, want, outcome(mr.Envelope, mref), outcome(func() any { return fromEnvelope(lr.Envelope) }, err))
}

func (a *agreement) setRules(want model.Reason, c model.SetRules) {
	a.t.Helper()
	_, mref := a.m.SetRules(c)
	_, err := a.l.SetRules(a.t.Context(), ledger.SetRules{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
		Call: c.Call, EffectiveTime: c.EffectiveTime, Rules: toLedgerRules(c.Rules)})
	a.check("SetRules "+c.EnvelopeID, want, outcome(nil, mref), outcome(func() any { return nil }, err))
}

// createHold returns the new hold's id ("" when refused).
func (a *agreement) createHold(want model.Reason, c model.CreateHold) string {
	a.t.Helper()
	lr, err := a.l.CreateHold(a.t.Context(), ledger.CreateHold{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
		Beneficiary: c.Beneficiary, Project: c.Project, Amount: c.Amount, Description: c.Description,
		Policy: toLedgerPolicy(c.Policy), ExpireTime: c.ExpireTime, Effective: c.Effective})
	id := lr.Hold.ID
	if err != nil {
		id = "(none)"
	}
	mr, mref := a.m.CreateHold(c, id)
	a.check("CreateHold "+c.RequestID, want, outcome([]any{mr.Hold, mr.Envelope}, mref),
		outcome(func() any { return []any{fromHold(lr.Hold), fromEnvelope(lr.Envelope)} }, err))
	if err != nil {
		return ""
	}
	return id
}

// confirmHold returns the new commitment's id ("" when refused).
func (a *agreement) confirmHold(want model.Reason, c model.ConfirmHold) string {
	a.t.Helper()
	lr, err := a.l.ConfirmHold(a.t.Context(), ledger.ConfirmHold{RequestID: c.RequestID, Caller: c.Caller, HoldID: c.HoldID,
		Amount: c.Amount, Effective: c.Effective})
	id := lr.Commitment.ID
	if err != nil {
		id = "(none)"
	}
	mr, mref := a.m.ConfirmHold(c, id)
	a.check("ConfirmHold "+c.RequestID, want, outcome([]any{mr.Hold, mr.Commitment, mr.Envelope}, mref),
		outcome(func() any {
			return []any{fromHold(lr.Hold), fromCommitment(lr.Commitment), fromEnvelope(lr.Envelope)}
		}, err))
	if err != nil {
		return ""
	}
	return id
}

func (a *agreement) cancelHold(want model.Reason, c model.CancelHold) {
	a.t.Helper()
	lr, err := a.l.CancelHold(a.t.Context(), ledger.CancelHold{RequestID: c.RequestID, Caller: c.Caller, HoldID: c.HoldID,
		Reason: c.Reason, Effective: c.Effective})
	mr, mref := a.m.CancelHold(c)
	a.check("CancelHold "+c.RequestID, want, outcome([]any{mr.Hold, mr.Envelope}, mref),
		outcome(func() any { return []any{fromHold(lr.Hold), fromEnvelope(lr.Envelope)} }, err))
}

// commit sends an award through the harness's translation (do, expect), publication included.
func (a *agreement) commit(want model.Reason, c model.Commit) {
	a.t.Helper()
	a.send(want, op{commit: &c})
}

// bulk sends a bulk award through the harness's translation.
func (a *agreement) bulk(want model.Reason, c model.BulkCommit) {
	a.t.Helper()
	a.send(want, op{bulk: &c})
}

// send sends o to the ledger and the model (do, expect) and compares their answers.
func (a *agreement) send(want model.Reason, o op) {
	a.t.Helper()
	got, err := do(a.t.Context(), a.l, o, a.span)
	if err != nil {
		a.t.Fatal(err)
	}
	exp := expect(a.m, o, got)
	a.steps++
	var reason model.Reason
	if exp.Refusal != nil {
		reason = exp.Refusal.Reason
	}
	if reason != want {
		a.t.Errorf("step %d, %s: the model answered %q (%v), the contract %q", a.steps, o, reason, exp.Refusal, want)
	}
	if diff := diffAnswers(exp, got); diff != "" {
		a.t.Errorf("step %d, %s: the ledger differs from the model (-model +ledger):\n%s", a.steps, o, diff)
	}
	a.tally.add(o, got)
}

// compareState compares the envelopes named and every hold of the model with the ledger's.
func (a *agreement) compareState(envelopes ...string) {
	a.t.Helper()
	compareHoldState(a.t, a.l, a.m, envelopes)
}

func day(year int, month time.Month, d int) time.Time {
	return time.Date(year, month, d, 0, 0, 0, 0, time.UTC)
}

// TestModelAgreesOnHoldsEffectiveTimes: holds, confirmations and cancellations with effective times
// (docs/dates.md, rule 5). A hold reduces its envelope (not before the envelope, nor before its
// latest effective time); its confirmation and cancellation may not predate the envelope or the
// hold, but may predate the envelope's latest effective time; the commitment a confirmation makes
// takes its date; the funding rules of a hold and of a confirmation are those in force at their
// own effective times.
func TestModelAgreesOnHoldsEffectiveTimes(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		a := newAgreement(t, database)
		a.createEnvelope("", model.CreateEnvelope{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", DisplayName: "fund",
			Allocation: 1_000_000, Effective: day(2021, 3, 1)})
		hold := func(req string, amount int64, eff time.Time) model.CreateHold {
			return model.CreateHold{RequestID: req, Caller: "service:a", EnvelopeID: "fund", Beneficiary: "b", Project: "p",
				Amount: amount, Effective: eff}
		}
		a.createHold(model.EffectiveTimeBeforeEnvelope, hold("h-early", 100_000, day(2021, 2, 15)))
		h1 := a.createHold("", hold("h1", 100_000, day(2021, 4, 1)))
		a.createHold(model.EffectiveTimeBeforeLatest, hold("h-before-latest", 50_000, day(2021, 3, 15)))
		h2 := a.createHold("", hold("h2", 50_000, day(2021, 4, 2)))
		a.createHold(model.EffectiveTimeInFuture, hold("h-future", 1, timeFuture))

		a.confirmHold(model.EffectiveTimeBeforeHold, model.ConfirmHold{RequestID: "c-before-hold", Caller: "service:a", HoldID: h1,
			Effective: day(2021, 3, 31)})
		a.cancelHold(model.EffectiveTimeBeforeHold, model.CancelHold{RequestID: "x-before-hold", Caller: "service:a", HoldID: h1,
			Reason: "r", Effective: day(2021, 3, 31)})
		a.confirmHold(model.EffectiveTimeBeforeEnvelope, model.ConfirmHold{RequestID: "c-before-envelope", Caller: "service:a",
			HoldID: h1, Effective: day(2021, 2, 1)})
		// Before the envelope's latest effective time (h2's), after h1's: accepted, and the
		// commitment takes the confirmation's date.
		a.confirmHold("", model.ConfirmHold{RequestID: "c1", Caller: "service:a", HoldID: h1, Amount: 60_000,
			Effective: day(2021, 4, 1)})
		a.cancelHold("", model.CancelHold{RequestID: "x2", Caller: "service:a", HoldID: h2, Reason: "withdrawn",
			Effective: day(2021, 4, 5)})
		// A hold recorded now took effect now: a dated confirmation predates it.
		h3 := a.createHold("", hold("h3", 10_000, time.Time{}))
		a.confirmHold(model.EffectiveTimeInFuture, model.ConfirmHold{RequestID: "c3-future", Caller: "service:a", HoldID: h3,
			Effective: timeFuture})
		a.confirmHold(model.EffectiveTimeBeforeHold, model.ConfirmHold{RequestID: "c3-dated", Caller: "service:a", HoldID: h3,
			Effective: day(2021, 4, 6)})
		a.cancelHold("", model.CancelHold{RequestID: "x3", Caller: "service:a", HoldID: h3, Reason: "withdrawn"})
		// Funding rules by effective time: a rule set in force from now does not bind a hold or
		// a confirmation dated before it.
		a.createEnvelope("", model.CreateEnvelope{RequestID: "fund2", Caller: "admin", EnvelopeID: "fund2", DisplayName: "fund2",
			Allocation: 1_000_000, Effective: day(2021, 3, 1)})
		a.setRules("", model.SetRules{RequestID: "rules2", Caller: "admin", EnvelopeID: "fund2", Call: "appel-1",
			Rules: model.Rules{MaxFundingShareBPS: ptr(5000)}})
		ruled := func(req string, eff time.Time) model.CreateHold {
			return model.CreateHold{RequestID: req, Caller: "service:a", EnvelopeID: "fund2", Beneficiary: "b", Project: "p",
				Amount: 80_000, Policy: model.Policy{EligibleCost: 100_000}, Effective: eff}
		}
		h4 := a.createHold("", ruled("h4", day(2021, 4, 1)))
		a.createHold(model.PolicyViolation, ruled("h5-now", time.Time{}))
		a.confirmHold(model.PolicyViolation, model.ConfirmHold{RequestID: "c4-now", Caller: "service:a", HoldID: h4})
		a.confirmHold("", model.ConfirmHold{RequestID: "c4-dated", Caller: "service:a", HoldID: h4, Effective: day(2021, 4, 3)})
		// A request sent again with another effective time is another request.
		a.confirmHold(model.RequestIDReused, model.ConfirmHold{RequestID: "c4-dated", Caller: "service:a", HoldID: h4,
			Effective: day(2021, 4, 4)})
		a.compareState("fund", "fund2")
		verify(t, a.l, "")
		t.Logf("outcomes:%s", a.tally)
	})
}

// TestModelAgreesOnPublicationIdentifiers: an award's SIRET and RNA number (DESIGN.md §6), checked as
// the ledger checks them, before the request log: a SIRET is 14 ASCII digits that pass the Luhn
// check or, under La Poste's SIREN only, whose digits sum to a multiple of 5; an RNA number is
// "W" and 9 digits. The SIRET is checked before the RNA number, both after the policy; a refusal
// names the field (items[i]. in a bulk call) and records nothing; both are part of the request.
func TestModelAgreesOnPublicationIdentifiers(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		a := newAgreement(t, database)
		a.createEnvelope("", model.CreateEnvelope{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", DisplayName: "fund",
			Allocation: 1_000_000})
		n := 0
		award := func(siret, rna string) model.Commit {
			n++
			return model.Commit{RequestID: fmt.Sprintf("a%d", n), Caller: "service:a", EnvelopeID: "fund", Beneficiary: "b",
				Project: "p", Amount: 10, Publication: model.Publication{BeneficiarySIRET: siret, BeneficiaryRNA: rna}}
		}
		for _, c := range []struct {
			siret, rna string
			want       model.Reason
			field      string
		}{
			{"21690123100011", "", "", ""},                                      // the city of Lyon: Luhn
			{"35600000000048", "", "", ""},                                      // La Poste's head office: Luhn
			{"35600000000001", "", "", ""},                                      // La Poste: not Luhn, digits sum to 15
			{"35600000000000", "", model.InvalidArgument, "beneficiary_siret"},  // La Poste: neither
			{"21690123100014", "", model.InvalidArgument, "beneficiary_siret"},  // sum of 15, not La Poste's
			{"21690123100012", "", model.InvalidArgument, "beneficiary_siret"},  // a wrong check digit
			{"2169012310001", "", model.InvalidArgument, "beneficiary_siret"},   // 13 digits
			{"216901231000110", "", model.InvalidArgument, "beneficiary_siret"}, // 15 digits
			{"2169012310001A", "", model.InvalidArgument, "beneficiary_siret"},
			{"21690123100011\n", "", model.InvalidArgument, "beneficiary_siret"},
			{"2169012310001１", "", model.InvalidArgument, "beneficiary_siret"}, // a full-width digit
			{"", "W691234567", "", ""},
			{"", "w691234567", model.InvalidArgument, "beneficiary_rna"},
			{"", "W69123456", model.InvalidArgument, "beneficiary_rna"},
			{"", "W6912345678", model.InvalidArgument, "beneficiary_rna"},
			{"", "691234567", model.InvalidArgument, "beneficiary_rna"},
			{"21690123100011", "W691234567", "", ""},
			{"21690123100012", "W69123456", model.InvalidArgument, "beneficiary_siret"}, // the SIRET first
		} {
			c0 := award(c.siret, c.rna)
			a.commit(c.want, c0)
			if c.field != "" {
				if _, r := a.m.Commit(c0, "x"); r == nil || r.Metadata["field"] != c.field {
					t.Errorf("SIRET %q, RNA %q: the model refused %v, want the field %s", c.siret, c.rna, r, c.field)
				}
			}
		}
		// An invalid SIRET records nothing: the request id, sent again with a valid one, is
		// decided. Then the SIRET is part of the request: another one is another request.
		c := award("21690123100012", "")
		a.commit(model.InvalidArgument, c)
		c.BeneficiarySIRET = "21690123100011"
		a.commit("", c)
		a.commit("", c)
		c.BeneficiarySIRET = "35600000000048"
		a.commit(model.RequestIDReused, c)
		c.BeneficiarySIRET, c.BeneficiaryRNA = "21690123100011", "W691234567"
		a.commit(model.RequestIDReused, c)
		// A bulk call is refused as a whole, naming the item.
		bulk := model.BulkCommit{RequestID: "bulk", Caller: "service:a", EnvelopeID: "fund", Items: []model.BulkItem{
			{Beneficiary: "b", Project: "p", Amount: 1, Publication: model.Publication{BeneficiarySIRET: "35600000000048"}},
			{Beneficiary: "b", Project: "q", Amount: 1, Publication: model.Publication{BeneficiaryRNA: "W12345678"}}}}
		a.bulk(model.InvalidArgument, bulk)
		if _, r := a.m.BulkCommit(bulk, nil); r == nil || r.Metadata["field"] != "items[1].beneficiary_rna" {
			t.Errorf("the bulk call: the model refused %v, want the field items[1].beneficiary_rna", r)
		}
		bulk.Items[1].BeneficiaryRNA = "W123456789"
		a.bulk("", bulk)
		bulk.Items[0].BeneficiarySIRET = "21690123100011"
		a.bulk(model.RequestIDReused, bulk)
		t.Logf("outcomes:%s", a.tally)
	})
}

// TestModelAgreesOnEffectiveTimeRefusals: the refusals of the backdating rule name what bound the
// effective time, and that bound's time (docs/dates.md; ErrorInfo metadata): the envelope and its
// effective or latest effective time, the commitment and its effective time, or its latest
// payment's or release's, beside the effective time asked. A bound that is a time of the run (an
// operation recorded now) is not predicted; the subject still is.
func TestModelAgreesOnEffectiveTimeRefusals(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		a := newAgreement(t, database)
		a.send("", op{create: &model.CreateEnvelope{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", DisplayName: "fund",
			Allocation: 1_000_000, Effective: day(2021, 3, 1)}})
		a.send(model.EffectiveTimeBeforeEnvelope, op{create: &model.CreateEnvelope{RequestID: "axis-early", Caller: "admin",
			EnvelopeID: "axis", ParentID: "fund", DisplayName: "axis", Allocation: 1_000, Effective: day(2021, 2, 1)}})
		a.send("", op{create: &model.CreateEnvelope{RequestID: "axis", Caller: "admin", EnvelopeID: "axis", ParentID: "fund",
			DisplayName: "axis", Allocation: 100_000, Effective: day(2021, 3, 10)}})
		a.send(model.EffectiveTimeBeforeLatest, op{commit: &model.Commit{RequestID: "award-early", Caller: "service:a",
			EnvelopeID: "fund", Beneficiary: "b", Project: "p", Amount: 10, Effective: day(2021, 3, 5)}})
		// A move names the envelope that bound it: here the destination (two roots are siblings).
		a.send("", op{create: &model.CreateEnvelope{RequestID: "fund2", Caller: "admin", EnvelopeID: "fund2", DisplayName: "fund2",
			Allocation: 1_000, Effective: day(2021, 3, 20)}})
		a.send(model.EffectiveTimeBeforeEnvelope, op{move: &model.MoveAllocation{RequestID: "move-early", Caller: "admin",
			SourceID: "fund", DestinationID: "fund2", Amount: 1, Reason: "r", Effective: day(2021, 3, 20).Add(-time.Microsecond)}})
		a.send("", op{commit: &model.Commit{RequestID: "award", Caller: "service:a", EnvelopeID: "axis", Beneficiary: "b",
			Project: "p", Amount: 10_000, Effective: day(2021, 4, 1)}})
		ids := a.m.CommitmentIDs()
		if len(ids) != 1 {
			t.Fatalf("commitments %v", ids)
		}
		com := ids[0]
		pay := func(req string, eff time.Time) op {
			return op{pay: &model.CreatePayment{RequestID: req, Caller: "service:a", CommitmentID: com, Amount: 1_000, Effective: eff}}
		}
		closing := func(req string, eff time.Time) op {
			return op{close: &model.CloseCommitment{RequestID: req, Caller: "service:a", CommitmentID: com, Reason: "done", Effective: eff}}
		}
		a.send(model.EffectiveTimeBeforeCommitment, pay("pay-early", day(2021, 3, 15)))
		a.send("", pay("pay", day(2021, 5, 1)))
		a.send(model.EffectiveTimeBeforeCommitment, op{release: &model.Release{RequestID: "release-early", Caller: "service:a",
			CommitmentID: com, Amount: 1_000, Reason: "r", Effective: day(2021, 3, 31)}})
		a.send("", op{release: &model.Release{RequestID: "release", Caller: "service:a", CommitmentID: com, Amount: 1_000,
			Reason: "r", Effective: day(2021, 5, 10)}})
		a.send(model.EffectiveTimeBeforePayment, closing("close-before-payment", day(2021, 4, 20)))
		a.send(model.EffectiveTimeBeforeRelease, closing("close-before-release", day(2021, 5, 5)))
		a.send(model.EffectiveTimeInFuture, closing("close-future", timeFuture))
		a.send("", closing("close", day(2021, 5, 10)))
		// Recorded now, the envelope's latest effective time is a time of the run.
		a.send("", op{commit: &model.Commit{RequestID: "award-now", Caller: "service:a", EnvelopeID: "axis", Beneficiary: "b",
			Project: "p", Amount: 10}})
		a.send(model.EffectiveTimeBeforeLatest, op{commit: &model.Commit{RequestID: "award-late", Caller: "service:a",
			EnvelopeID: "axis", Beneficiary: "b", Project: "p", Amount: 10, Effective: day(2021, 6, 1)}})
		t.Logf("outcomes:%s", a.tally)
	})
}

// TestModelAgreesOnRuleSetsByDate: funding rules by effective date (docs/dates.md, docs/rules.md).
// A rule set given a past time keeps it when that time is after the latest effective time of the
// envelope and of every descendant, else it is in force at once; an award, a hold or a
// confirmation is judged by the rule set in force at its effective time on each envelope of its
// chain (the one in force from the latest time at or before it; of two from the same time, the
// one given last), its award window included; one in force at once never judges a dated one.
// Awards are sent on both sides of each date, singly, in bulk (the batch's path) and as holds.
func TestModelAgreesOnRuleSetsByDate(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		a := newAgreement(t, database)
		rules := func(req, envelope string, eff time.Time, r model.Rules) op {
			return op{rules: &model.SetRules{RequestID: req, Caller: "admin", EnvelopeID: envelope, Call: req, EffectiveTime: eff,
				Rules: r}}
		}
		award := func(req, envelope string, amount int64, p model.Policy, eff time.Time) op {
			return op{commit: &model.Commit{RequestID: req, Caller: "service:a", EnvelopeID: envelope, Beneficiary: "b",
				Project: "p-" + req, Amount: amount, Policy: p, Effective: eff}}
		}
		populated := model.Policy{Population: 400_000, Territory: "insee:69123"}
		costed := model.Policy{EligibleCost: 100_000}

		a.send("", op{create: &model.CreateEnvelope{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", DisplayName: "fund",
			Allocation: 10_000_000, Effective: day(2021, 3, 1)}})
		a.send("", op{create: &model.CreateEnvelope{RequestID: "axis", Caller: "admin", EnvelopeID: "axis", ParentID: "fund",
			DisplayName: "axis", Allocation: 5_000_000, Effective: day(2021, 3, 1)}})
		a.send("", award("a-0401", "axis", 1_000, model.Policy{}, day(2021, 4, 1)))
		// After the fund's own latest effective time but not after its child's: at once.
		a.send("", rules("r-0315", "fund", day(2021, 3, 15), model.Rules{MaxFundingShareBPS: ptr(5000)}))
		// In force from now on: it judges no award dated before now.
		a.send("", award("a-0410", "axis", 80_000, model.Policy{}, day(2021, 4, 10)))
		// After the subtree's latest effective time (10 April): kept, in force from 1 May.
		a.send("", rules("r-0501", "fund", day(2021, 5, 1), model.Rules{MinPopulation: ptr(300_000),
			AwardWindow: &model.Window{Start: day(2021, 5, 1), End: day(2021, 6, 1)}}))
		a.send("", award("a-0420", "axis", 1_000, model.Policy{}, day(2021, 4, 20)))                         // before it: no rule
		a.send(model.PolicyViolation, award("a-0502-nopop", "axis", 1_000, model.Policy{}, day(2021, 5, 2))) // min_population
		a.send("", award("a-0502", "axis", 1_000, populated, day(2021, 5, 2)))
		a.send(model.PolicyViolation, award("a-0602", "axis", 1_000, populated, day(2021, 6, 2))) // outside the window
		a.send("", op{bulk: &model.BulkCommit{RequestID: "bulk-0503", Caller: "service:a", EnvelopeID: "axis",
			Effective: day(2021, 5, 3), Items: []model.BulkItem{
				{Beneficiary: "b", Project: "bulk-1", Amount: 1_000, Policy: populated},
				{Beneficiary: "b", Project: "bulk-2", Amount: 1_000}, // min_population
			}}})
		a.send(model.PolicyViolation, op{bulk: &model.BulkCommit{RequestID: "bulk-0504", Caller: "service:a", EnvelopeID: "axis",
			Effective: day(2021, 5, 4), AllOrNothing: true, Items: []model.BulkItem{
				{Beneficiary: "b", Project: "bulk-3", Amount: 1_000, Policy: populated},
				{Beneficiary: "b", Project: "bulk-4", Amount: 1_000, Policy: model.Policy{Population: 1}},
			}}})
		// Now, the rule set in force is the one given at once (in force from a time within the
		// run, later than 1 May), though the one kept at 1 May was given after it.
		a.send(model.PolicyViolation, award("a-now-nocost", "axis", 1_000, model.Policy{}, time.Time{}))
		a.send("", award("a-now", "axis", 1_000, costed, time.Time{}))
		// The subtree's latest effective time is now a time of the run: a past time is at once.
		a.send("", rules("r-0601", "fund", day(2021, 6, 1), model.Rules{MaxFundingShareBPS: ptr(10000)}))
		a.send("", award("a-now-2", "axis", 1_000, model.Policy{}, time.Time{}))

		a.send("", op{create: &model.CreateEnvelope{RequestID: "fund2", Caller: "admin", EnvelopeID: "fund2", DisplayName: "fund2",
			Allocation: 1_000_000, Effective: day(2021, 3, 1)}})
		// Two kept at the same date: the one given last is in force from it. One kept at an
		// earlier date, given after them, is in force only until theirs.
		a.send("", rules("r2-0701-a", "fund2", day(2021, 7, 1), model.Rules{MinPopulation: ptr(300_000)}))
		a.send("", rules("r2-0701-b", "fund2", day(2021, 7, 1), model.Rules{MinPopulation: ptr(0)}))
		a.send("", rules("r2-0601", "fund2", day(2021, 6, 1), model.Rules{MaxFundingShareBPS: ptr(1)}))
		dated := func(req string, eff time.Time, p model.Policy) model.CreateHold {
			return model.CreateHold{RequestID: req, Caller: "service:a", EnvelopeID: "fund2", Beneficiary: "b", Project: "p",
				Amount: 50_000, Policy: p, Effective: eff}
		}
		a.createHold(model.PolicyViolation, dated("h2-0615", day(2021, 6, 15), costed)) // 1 bps
		a.send(model.PolicyViolation, award("a2-0620", "fund2", 1_000, model.Policy{}, day(2021, 6, 20)))
		a.send("", award("a2-0702", "fund2", 1_000, model.Policy{}, day(2021, 7, 2)))
		h := a.createHold("", dated("h2-0703", day(2021, 7, 3), model.Policy{}))
		// At the latest effective time (3 July), not after it: at once.
		a.send("", rules("r2-0703", "fund2", day(2021, 7, 3), model.Rules{MinPopulation: ptr(500_000)}))
		a.confirmHold("", model.ConfirmHold{RequestID: "c2-0704", Caller: "service:a", HoldID: h, Effective: day(2021, 7, 4)})
		h = a.createHold("", dated("h2-0705", day(2021, 7, 5), model.Policy{}))
		a.confirmHold(model.PolicyViolation, model.ConfirmHold{RequestID: "c2-now", Caller: "service:a", HoldID: h})
		a.createHold(model.PolicyViolation, dated("h2-now", time.Time{}, model.Policy{}))
		// A rule set in force after the run never judges an award of the run.
		a.send("", rules("r2-future", "fund2", timeFuture, model.Rules{MinPopulation: ptr(0)}))
		a.send(model.PolicyViolation, award("a2-now", "fund2", 1_000, model.Policy{}, time.Time{}))
		a.compareState("fund", "axis", "fund2")
		verify(t, a.l, "")
		t.Logf("outcomes:%s", a.tally)
	})
}
