package core

import (
	"errors"
	"testing"
	"time"
)

// TestDecideBatchHoldsAndPaymentsInOrder protects the contract of holds, payments and closings in
// a group-commit batch: each is decided on what the ops before it left (a hold confirmed earlier
// in the batch cannot be cancelled; a payment leaves less to pay and to close), the loaded state
// is left as it was given (a transaction retry decides again from it), and an op that cannot be
// decided fails alone: nothing of it is written or recorded, and the ops after it are decided as
// if it had not been sent.
func TestDecideBatchHoldsAndPaymentsInOrder(t *testing.T) {
	st := testStamp()
	e := env("axis-1", "", 10_000, 1000)
	e.Held = 500
	h := Hold{ID: "00000000-0000-7000-8000-000000000098", EnvelopeID: "axis-1", Project: "p", Currency: "EUR",
		Amount: 500, State: HoldHeld}
	c := Commitment{ID: "00000000-0000-7000-8000-000000000099", EnvelopeID: "axis-1", Amount: 1000, Project: "q"}
	in := Loaded{Envelopes: map[string]Envelope{"axis-1": e}, Holds: map[string]*Hold{h.ID: &h},
		Commitments: map[string]*Commitment{c.ID: &c}}
	op := func(o *Op, fp Fingerprint) *Unit {
		o.Fingerprint = fp
		return &Unit{EnvelopeID: "axis-1", Ops: []*Op{o}}
	}
	// The rules at this effective time were not loaded: the op cannot be decided.
	undecidable := &ConfirmHold{RequestID: "r0", Caller: "svc", HoldID: h.ID, Amount: 300, Effective: st.At.Add(-time.Hour)}
	confirm := &ConfirmHold{RequestID: "r1", Caller: "svc", HoldID: h.ID, Amount: 300}
	cancel := &CancelHold{RequestID: "r2", Caller: "svc", HoldID: h.ID, Reason: "late"}
	pay := &CreatePayment{RequestID: "r3", Caller: "svc", CommitmentID: c.ID, Amount: 400}
	payTooMuch := &CreatePayment{RequestID: "r4", Caller: "svc", CommitmentID: c.ID, Amount: 700}
	closing := &CloseCommitment{RequestID: "r5", Caller: "svc", CommitmentID: c.ID, Reason: "done"}
	units := []*Unit{
		op(&Op{ConfirmHold: undecidable}, undecidable.Fingerprint()),
		op(&Op{ConfirmHold: confirm}, confirm.Fingerprint()),
		op(&Op{CancelHold: cancel}, cancel.Fingerprint()),
		op(&Op{Payment: pay}, pay.Fingerprint()),
		op(&Op{Payment: payTooMuch}, payTooMuch.Fingerprint()),
		op(&Op{Close: closing}, closing.Fingerprint()),
	}
	w, err := DecideBatch(st, units, in)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := AsError(units[0].Err); !ok || e.Reason != ReasonInternal {
		t.Errorf("the undecidable confirmation: %v, want an internal error", units[0].Err)
	}
	var confirmed ConfirmHoldResult
	if err := units[1].Ops[0].Decode(&confirmed); err != nil || confirmed.Commitment.Amount != 300 || confirmed.Envelope.Held != 0 {
		t.Errorf("confirmation: %+v, %v", confirmed, err)
	}
	if !errors.Is(units[2].Ops[0].Outcome.Refusal, ErrHoldNotHeld) {
		t.Errorf("cancelling the hold confirmed before it: %+v, want HOLD_NOT_HELD", units[2].Ops[0].Outcome)
	}
	if !errors.Is(units[4].Ops[0].Outcome.Refusal, ErrPaymentExceedsRemaining) {
		t.Errorf("paying 700 after 400 of 1000: %+v, want PAYMENT_EXCEEDS_REMAINING", units[4].Ops[0].Outcome)
	}
	var closed CloseCommitmentResult
	if err := units[5].Ops[0].Decode(&closed); err != nil || closed.Returned != 600 || closed.Commitment.Paid != 400 {
		t.Errorf("closing: %+v, %v", closed, err)
	}
	// Writes: the confirmation's commitment and ended hold, the payment, one row per commitment
	// changed, three entries, and a request row for every op but the undecidable one.
	if len(w.NewCommitments) != 1 || len(w.EndedHolds) != 1 || w.EndedHolds[0].State != HoldConfirmed ||
		len(w.Payments) != 1 || len(w.Changed) != 1 || len(w.Entries) != 3 || len(w.Requests) != 5 {
		t.Errorf("writes: %d commitments, ended %+v, %d payments, %d changed, %d entries, %d requests", len(w.NewCommitments),
			w.EndedHolds, len(w.Payments), len(w.Changed), len(w.Entries), len(w.Requests))
	}
	for _, r := range w.Requests {
		if r.Key == units[0].Ops[0].Key() {
			t.Errorf("the undecidable op was recorded: %+v", r)
		}
	}
	if got := w.Envelopes[0]; got.Held != 0 || got.Committed != 1000+300-600 || got.Paid != 400 {
		t.Errorf("envelope after the batch: %+v", got)
	}
	if h.State != HoldHeld || c.Paid != 0 || c.Released != 0 || in.Envelopes["axis-1"].Held != 500 {
		t.Errorf("DecideBatch changed its inputs: hold %+v, commitment %+v", h, c)
	}
}

// TestDecideBatchPaysOnABrokenTree: a payment reads no funding rule, so an envelope whose chain of
// parents cannot be read whole does not fail it in a batch, as it does not in a transaction of
// its own; an award on it fails.
func TestDecideBatchPaysOnABrokenTree(t *testing.T) {
	c := Commitment{ID: "00000000-0000-7000-8000-000000000099", EnvelopeID: "axis-1", Amount: 1000, Project: "q"}
	in := Loaded{Envelopes: map[string]Envelope{"axis-1": env("axis-1", "", 10_000, 1000)},
		Commitments: map[string]*Commitment{c.ID: &c}, Broken: map[string]error{"axis-1": Internal("broken chain")}}
	pay := &CreatePayment{RequestID: "r1", Caller: "svc", CommitmentID: c.ID, Amount: 400}
	payment := &Unit{EnvelopeID: "axis-1", Ops: []*Op{{Payment: pay, Fingerprint: pay.Fingerprint()}}}
	award := &Unit{EnvelopeID: "axis-1", Ops: []*Op{commitOp("r2", 10)}}
	if _, err := DecideBatch(testStamp(), []*Unit{payment, award}, in); err != nil {
		t.Fatal(err)
	}
	if payment.Err != nil || payment.Ops[0].Outcome.Refusal != nil {
		t.Errorf("payment: %v %+v", payment.Err, payment.Ops[0].Outcome)
	}
	if award.Err == nil {
		t.Errorf("the award on a broken tree was decided")
	}
}

// TestDecideBatchClosesAfterTheLastPayment protects the rule that a commitment is closed after its
// last payment and its last release (docs/dates.md) in a batch: a closing dated before a payment
// or release recorded earlier (Loaded.Latest) or decided earlier in the same batch is refused
// EFFECTIVE_TIME_BEFORE_PAYMENT or EFFECTIVE_TIME_BEFORE_RELEASE; one dated after all is made.
func TestDecideBatchClosesAfterTheLastPayment(t *testing.T) {
	st := testStamp()
	day := func(month int) time.Time { return time.Date(2021, time.Month(month), 1, 0, 0, 0, 0, time.UTC) }
	c := Commitment{ID: "00000000-0000-7000-8000-000000000099", EnvelopeID: "axis-1", Amount: 1000, Project: "q", EffectiveAt: day(1)}
	e := env("axis-1", "", 10_000, 1000)
	e.EffectiveAt = day(1)
	for _, tc := range []struct {
		name      string
		recorded  LatestMoves // the latest payment and release recorded before the batch
		paidHere  time.Time   // a payment decided in the batch before the closing (zero: none)
		released  time.Time   // a release decided in the batch before the closing (zero: none)
		closingAt time.Time
		refused   Reason // "": made
	}{
		{"before a recorded payment", LatestMoves{Paid: day(7)}, time.Time{}, time.Time{}, day(6), ReasonEffectiveTimeBeforePayment},
		{"before a payment of the same batch", LatestMoves{}, day(7), time.Time{}, day(6), ReasonEffectiveTimeBeforePayment},
		{"before the later of the two", LatestMoves{Paid: day(5)}, day(7), time.Time{}, day(6), ReasonEffectiveTimeBeforePayment},
		{"after both", LatestMoves{Paid: day(5)}, day(7), time.Time{}, day(8), ""},
		{"on the day of the last payment", LatestMoves{Paid: day(7)}, time.Time{}, time.Time{}, day(7), ""},
		// An outside probe found a closing dated before a release: a report as of a date between
		// them showed the closed commitment still owing the released amount.
		{"before a recorded release", LatestMoves{Released: day(9)}, time.Time{}, time.Time{}, day(7), ReasonEffectiveTimeBeforeRelease},
		{"before a release of the same batch", LatestMoves{}, time.Time{}, day(9), day(7), ReasonEffectiveTimeBeforeRelease},
		{"after the payments, before a release", LatestMoves{Paid: day(5), Released: day(9)}, day(6), time.Time{}, day(8), ReasonEffectiveTimeBeforeRelease},
		{"on the day of the last release", LatestMoves{Paid: day(5)}, time.Time{}, day(9), day(9), ""},
	} {
		cm := c
		in := Loaded{Envelopes: map[string]Envelope{"axis-1": e}, Commitments: map[string]*Commitment{c.ID: &cm}}
		if tc.recorded != (LatestMoves{}) {
			in.Latest = map[string]LatestMoves{c.ID: tc.recorded}
		}
		var units []*Unit
		if !tc.paidHere.IsZero() {
			pay := &CreatePayment{RequestID: "p", Caller: "svc", CommitmentID: c.ID, Amount: 100, Effective: tc.paidHere}
			units = append(units, &Unit{EnvelopeID: "axis-1", Ops: []*Op{{Payment: pay, Fingerprint: pay.Fingerprint()}}})
		}
		if !tc.released.IsZero() {
			rel := &Release{RequestID: "r", Caller: "svc", CommitmentID: c.ID, Amount: 100, Reason: "less", Effective: tc.released}
			units = append(units, &Unit{EnvelopeID: "axis-1", Ops: []*Op{{Release: rel, Fingerprint: rel.Fingerprint()}}})
		}
		closing := &CloseCommitment{RequestID: "c", Caller: "svc", CommitmentID: c.ID, Reason: "done", Effective: tc.closingAt}
		closeOp := &Op{Close: closing, Fingerprint: closing.Fingerprint()}
		units = append(units, &Unit{EnvelopeID: "axis-1", Ops: []*Op{closeOp}})
		if _, err := DecideBatch(st, units, in); err != nil {
			t.Fatal(err)
		}
		for _, u := range units[:len(units)-1] {
			if r := u.Ops[0].Outcome.Refusal; r != nil {
				t.Fatalf("%s: the payment or release before the closing was refused: %v", tc.name, r)
			}
		}
		got := closeOp.Outcome.Refusal
		if tc.refused != "" && (got == nil || got.Reason != tc.refused || got.Metadata["commitment"] != CommitmentName(c.ID)) {
			t.Errorf("%s: %+v, want %s naming the commitment", tc.name, got, tc.refused)
		}
		if tc.refused == "" && got != nil {
			t.Errorf("%s: refused %v, want made", tc.name, got)
		}
	}
}
