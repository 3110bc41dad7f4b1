package core

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func packedTestPayment() *CreatePaymentResult {
	at := time.Date(2026, 12, 4, 10, 0, 0, 654321000, time.UTC)
	made := at.Add(-3 * time.Hour)
	env := Envelope{ID: "axis", ParentID: "prog", DisplayName: "Axis", Currency: "EUR", Allocation: 1_000_000,
		Committed: 30_000, ChildrenAllocated: 5_000, Released: 700, CommitmentCount: 3, Paid: 12_100, Held: 42_000,
		CreatedAt: made.Add(-time.Hour), UpdatedAt: at, EffectiveAt: made.Add(-2 * time.Hour), LatestEffectiveAt: made.Add(time.Minute),
		GrantingBody: GrantingBody{GrantingBodyName: "Région", GrantingBodySIRET: "12345678901234"}}
	c := Commitment{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a70", EnvelopeID: "axis", Beneficiary: "siren:1", Project: "p",
		Currency: "EUR", Amount: 20_000, Released: 1_000, Description: "d", EligibleCost: 80_000, Territory: "insee:69123",
		CreatedAt: made, UpdatedAt: at, EffectiveAt: made.Add(-time.Hour), Paid: 12_000,
		Publication: Publication{DecisionReference: "D-1", Purpose: "roofs"}}
	p := Payment{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a71", CommitmentID: c.ID, EnvelopeID: "axis", Currency: "EUR",
		Amount: 7_000, EffectiveAt: at.Add(-time.Minute), Caller: "user:alice", RequestID: "req-1",
		EntryID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a72", CreatedAt: at}
	return &CreatePaymentResult{Payment: p, Commitment: c, Envelope: env, EntryID: p.EntryID}
}

// TestPackedPaymentRebuildsTheSameJSON protects the request log's exactness (invariant 5) for a
// CreatePayment's result kept by reference (migration 30): rebuilt from its payment's row, from
// its commitment's row after the commitment was paid again, released and closed, and from its
// envelope's row after later changes, it is the same JSON byte for byte; a row whose kept columns
// changed is refused, never answered differently.
func TestPackedPaymentRebuildsTheSameJSON(t *testing.T) {
	r := packedTestPayment()
	want, _ := json.Marshal(r)
	packed := PackPayment(r)
	if packed == nil {
		t.Fatal("a payment was not packed")
	}
	if !IsPackedPayment(packed) || IsPackedConfirmHold(packed) || IsPackedCreateHold(packed) || IsPackedCommit(packed) ||
		IsPackedBulk(packed) || IsDeflated(packed) {
		t.Fatalf("record format %d is not told apart from the others", packed[0])
	}
	if c, p, err := PackedPaymentRefs(packed); err != nil || c != r.Commitment.ID || p != r.Payment.ID {
		t.Errorf("PackedPaymentRefs: %q, %q, %v", c, p, err)
	}
	if len(packed) >= len(want)/6 {
		t.Errorf("packed %d bytes, JSON %d", len(packed), len(want))
	}
	later := r.Payment.CreatedAt.Add(time.Hour)
	env := r.Envelope
	env.Paid, env.Committed, env.Released, env.UpdatedAt, env.LatestEffectiveAt = 19_000, 22_000, 9_700, later, later
	for name, change := range map[string]func(c *Commitment){
		"as paid":    func(*Commitment) {},
		"paid again": func(c *Commitment) { c.Paid, c.UpdatedAt = 19_000, later },
		"released":   func(c *Commitment) { c.Released, c.UpdatedAt = 2_000, later },
		"closed": func(c *Commitment) {
			c.Released, c.ClosedAt, c.CloseReason, c.CloseEffectiveAt, c.UpdatedAt = 8_000, later, "done", later, later
		},
		"closed flat": func(c *Commitment) { c.ClosedAt, c.CloseReason, c.UpdatedAt = later, "done", later },
	} {
		row := r.Commitment
		change(&row)
		got, err := UnpackPayment(packed, r.Payment, row, env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if raw, _ := json.Marshal(got); string(raw) != string(want) {
			t.Errorf("%s: rebuilt\n%s\nwant\n%s", name, raw, want)
		}
	}

	// Ids that are not canonical UUIDs are kept as text; a commitment updated at another time
	// than the payment's, an envelope's times of their own, nothing released, an effective time
	// not given, an entry id that is not the payment's: all given back.
	other := packedTestPayment()
	other.Payment.ID, other.Commitment.ID, other.Payment.CommitmentID = "pay-1", "c-1", "c-1"
	other.Commitment.Released, other.Payment.EffectiveAt = 0, time.Time{}
	other.Commitment.UpdatedAt = other.Payment.CreatedAt.Add(-time.Second)
	other.Envelope.UpdatedAt, other.Envelope.LatestEffectiveAt = other.Commitment.EffectiveAt, other.Commitment.EffectiveAt
	other.EntryID = "E-2"
	wantOther, _ := json.Marshal(other)
	got, err := UnpackPayment(PackPayment(other), other.Payment, other.Commitment, other.Envelope)
	if raw, _ := json.Marshal(got); err != nil || string(raw) != string(wantOther) {
		t.Errorf("text ids and other times: %s, %v", raw, err)
	}

	for name, edit := range map[string]func(p *Payment, c *Commitment, e *Envelope){
		"payment's amount":       func(p *Payment, _ *Commitment, _ *Envelope) { p.Amount++ },
		"payment's caller":       func(p *Payment, _ *Commitment, _ *Envelope) { p.Caller = "user:bob" },
		"payment's effective":    func(p *Payment, _ *Commitment, _ *Envelope) { p.EffectiveAt = time.Time{} },
		"payment's creation":     func(p *Payment, _ *Commitment, _ *Envelope) { p.CreatedAt = p.CreatedAt.Add(time.Microsecond) },
		"payment's entry":        func(p *Payment, _ *Commitment, _ *Envelope) { p.EntryID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a7f" },
		"another payment":        func(p *Payment, _ *Commitment, _ *Envelope) { p.ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a7e" },
		"commitment's amount":    func(_ *Payment, c *Commitment, _ *Envelope) { c.Amount++ },
		"commitment's purpose":   func(_ *Payment, c *Commitment, _ *Envelope) { c.Purpose = "edited" },
		"commitment's effective": func(_ *Payment, c *Commitment, _ *Envelope) { c.EffectiveAt = c.EffectiveAt.Add(time.Second) },
		"another commitment": func(p *Payment, c *Commitment, _ *Envelope) {
			c.ID, p.CommitmentID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a7d", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a7d"
		},
		"envelope's name": func(_ *Payment, _ *Commitment, e *Envelope) { e.DisplayName = "renamed" },
		"envelope's body": func(_ *Payment, _ *Commitment, e *Envelope) { e.GrantingBodyName = "other" },
		"another envelope": func(p *Payment, c *Commitment, e *Envelope) {
			p.EnvelopeID, c.EnvelopeID, e.ID = "side", "side", "side"
		},
		"envelope's created": func(_ *Payment, _ *Commitment, e *Envelope) { e.CreatedAt = e.CreatedAt.Add(time.Second) },
	} {
		p, c, e := r.Payment, r.Commitment, r.Envelope
		edit(&p, &c, &e)
		if got, err := UnpackPayment(packed, p, c, e); err == nil {
			t.Errorf("%s changed: replayed %+v", name, got)
		}
	}
	if _, err := UnpackPayment(PackConfirmHold(packedTestConfirm()), r.Payment, r.Commitment, r.Envelope); err == nil {
		t.Error("a ConfirmHold's record was read as a payment's")
	}
	// A payment's own fields are no field of another format's.
	for _, field := range [][]byte{
		protowire.AppendVarint(protowire.AppendTag(nil, ppPaid, protowire.VarintType), 5),
		appendID(nil, ppPaymentUUID, ppPaymentID, r.Payment.ID),
	} {
		if _, _, err := PackedCommitRefs(append(PackCommit(packedTestResult()), field...)); err == nil {
			t.Errorf("a Commit's record with a payment's field %x was read", field)
		}
	}
	t.Logf("a payment's record: %d bytes, its JSON %d", len(packed), len(want))
}

// TestPackPaymentRefusesWhatRowsCannotGiveBack protects invariant 5: a payment's result its rows
// would not give back exactly is not packed (the request log keeps its JSON, deflated).
func TestPackPaymentRefusesWhatRowsCannotGiveBack(t *testing.T) {
	for name, change := range map[string]func(r *CreatePaymentResult){
		"payment in nanoseconds": func(r *CreatePaymentResult) { r.Payment.CreatedAt = r.Payment.CreatedAt.Add(1) },
		"effective not UTC": func(r *CreatePaymentResult) {
			r.Payment.EffectiveAt = r.Payment.EffectiveAt.In(time.FixedZone("x", 3600))
		},
		"effective in nanoseconds": func(r *CreatePaymentResult) { r.Payment.EffectiveAt = r.Payment.EffectiveAt.Add(1) },
		"no payment id":            func(r *CreatePaymentResult) { r.Payment.ID = "" },
		"no payment entry":         func(r *CreatePaymentResult) { r.Payment.EntryID = "" },
		"payment elsewhere":        func(r *CreatePaymentResult) { r.Payment.EnvelopeID = "other" },
		"another commitment's":     func(r *CreatePaymentResult) { r.Payment.CommitmentID = "other" },
		"commitment elsewhere":     func(r *CreatePaymentResult) { r.Commitment.EnvelopeID = "other" },
		"commitment closed":        func(r *CreatePaymentResult) { r.Commitment.ClosedAt = r.Payment.CreatedAt },
		"a close reason":           func(r *CreatePaymentResult) { r.Commitment.CloseReason = "x" },
		"close effective":          func(r *CreatePaymentResult) { r.Commitment.CloseEffectiveAt = r.Payment.CreatedAt },
		"commitment not UTC":       func(r *CreatePaymentResult) { r.Commitment.CreatedAt = r.Commitment.CreatedAt.Local() },
		"updated in nanoseconds":   func(r *CreatePaymentResult) { r.Commitment.UpdatedAt = r.Commitment.UpdatedAt.Add(1) },
		"no effective time":        func(r *CreatePaymentResult) { r.Commitment.EffectiveAt = time.Time{} },
		"no entry":                 func(r *CreatePaymentResult) { r.EntryID = "" },
		"envelope's times":         func(r *CreatePaymentResult) { r.Envelope.UpdatedAt = r.Envelope.UpdatedAt.Add(1) },
		"envelope's effective":     func(r *CreatePaymentResult) { r.Envelope.EffectiveAt = time.Time{} },
	} {
		r := packedTestPayment()
		change(r)
		if PackPayment(r) != nil {
			t.Errorf("%s: packed", name)
		}
	}
}

// TestCanonicalCoversEveryPaymentField protects the payment records' checksum: changing any field
// of the payment changes it, as it changes the JSON, and so do the commitment's figures a record
// keeps and the entry's id.
func TestCanonicalCoversEveryPaymentField(t *testing.T) {
	typ := reflect.TypeFor[Payment]()
	if typ.NumField() != len(paymentPlan) {
		t.Errorf("%d fields, the plan has %d", typ.NumField(), len(paymentPlan))
	}
	base := packedTestPayment()
	seen := map[uint32]string{paymentSum(base): "the base"}
	for i := range typ.NumField() {
		for _, change := range []string{"set", "zero"} {
			r := *base
			fv := reflect.ValueOf(&r.Payment).Elem().Field(i)
			if change == "zero" {
				fv.SetZero()
			} else {
				setLeaf(t, fv, 7777)
			}
			s := paymentSum(&r)
			if other, dup := seen[s]; dup {
				t.Errorf("payment.%s %s: checksum as %s", typ.Field(i).Name, change, other)
			}
			seen[s] = "payment." + typ.Field(i).Name + " " + change
		}
	}
	for name, change := range map[string]func(r *CreatePaymentResult){
		"entry id":               func(r *CreatePaymentResult) { r.EntryID += "x" },
		"commitment's paid":      func(r *CreatePaymentResult) { r.Commitment.Paid++ },
		"commitment's released":  func(r *CreatePaymentResult) { r.Commitment.Released++ },
		"commitment's update":    func(r *CreatePaymentResult) { r.Commitment.UpdatedAt = r.Commitment.UpdatedAt.Add(time.Microsecond) },
		"envelope's paid":        func(r *CreatePaymentResult) { r.Envelope.Paid++ },
		"envelope's latest time": func(r *CreatePaymentResult) { r.Envelope.LatestEffectiveAt = time.Time{} },
	} {
		r := *base
		change(&r)
		if paymentSum(&r) == paymentSum(base) {
			t.Errorf("%s: same checksum", name)
		}
	}
}

// TestPaymentOutcomeKeepsItsJSON protects invariant 5 for a payment's outcome kept typed: its JSON
// (a first answer, and the request log's record when not packed) is what it was when it was kept
// as JSON.
func TestPaymentOutcomeKeepsItsJSON(t *testing.T) {
	result := packedTestPayment()
	o, err := NewOutcome(result)
	if err != nil {
		t.Fatal(err)
	}
	if o.Result != nil || o.CreatePayment == nil || o.CreatePayment == result {
		t.Errorf("not kept typed, or not copied: %+v", o)
	}
	raw, _ := json.Marshal(result)
	enc, err := o.Encode()
	if err != nil || string(enc) != `{"result":`+string(raw)+`}` {
		t.Errorf("encoded as %s, %v", enc, err)
	}
	var out CreatePaymentResult
	if err := o.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(&out); string(got) != string(raw) {
		t.Errorf("decoded %s, want %s", got, raw)
	}
	var m map[string]any
	if err := o.Decode(&m); err != nil || m["entry_id"] == nil {
		t.Errorf("decoded as a map: %v, %v", m, err)
	}
}
