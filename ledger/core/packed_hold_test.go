package core

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func packedTestHold() *CreateHoldResult {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	env := Envelope{ID: "axis", ParentID: "prog", DisplayName: "Axis", Currency: "EUR", Allocation: 1_000_000,
		Committed: 30_000, ChildrenAllocated: 5_000, Released: 700, CommitmentCount: 3, Paid: 100, Held: 42_000,
		CreatedAt: at.Add(-time.Hour), UpdatedAt: at, EffectiveAt: at.Add(-2 * time.Hour), LatestEffectiveAt: at.Add(time.Microsecond)}
	h := Hold{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60", EnvelopeID: "axis", Beneficiary: "siren:1", Project: "p",
		Currency: "EUR", Amount: 40_000, State: HoldHeld, Description: "d",
		Policy:   Policy{EligibleCost: 80_000, EligibleCostGiven: true, Territory: "insee:69123", PopulationGiven: true},
		ExpireAt: at.Add(48 * time.Hour), EffectiveAt: at.Add(-24 * time.Hour), CreatedAt: at, UpdatedAt: at}
	return &CreateHoldResult{Hold: h, Envelope: env, EntryID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a61"}
}

func packedTestConfirm() *ConfirmHoldResult {
	created := packedTestHold()
	at := created.Hold.CreatedAt.Add(time.Hour)
	env := created.Envelope
	env.Held, env.Committed, env.CommitmentCount, env.UpdatedAt = 2_000, 60_000, 4, at
	c := Commitment{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a62", EnvelopeID: "axis", Beneficiary: "siren:1", Project: "p",
		Currency: "EUR", Amount: 30_000, Description: "d", EligibleCost: 80_000, Territory: "insee:69123",
		CreatedAt: at, UpdatedAt: at, EffectiveAt: at}
	h := created.Hold
	h.State, h.ConfirmedAmount, h.CommitmentID, h.UpdatedAt = HoldConfirmed, 30_000, c.ID, at
	return &ConfirmHoldResult{Hold: h, Commitment: c, Envelope: env, EntryID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a63"}
}

// TestPackedCreateHoldRebuildsTheSameJSON protects the request log's exactness (invariant 5) for
// a CreateHold's result kept by reference (migration 29): rebuilt from its hold's row after the
// hold ended (confirmed, cancelled or expired) and from its envelope's row after later changes,
// it is the same JSON byte for byte; a row whose kept columns changed is refused, never
// answered differently.
func TestPackedCreateHoldRebuildsTheSameJSON(t *testing.T) {
	r := packedTestHold()
	want, _ := json.Marshal(r)
	packed := PackCreateHold(r)
	if packed == nil {
		t.Fatal("a new hold was not packed")
	}
	if !IsPackedCreateHold(packed) || IsPackedConfirmHold(packed) || IsPackedCommit(packed) || IsPackedBulk(packed) || IsDeflated(packed) {
		t.Fatalf("record format %d is not told apart from the others", packed[0])
	}
	if len(packed) >= len(want)/5 {
		t.Errorf("packed %d bytes, JSON %d", len(packed), len(want))
	}
	later := r.Hold.CreatedAt.Add(time.Hour)
	env := r.Envelope
	env.Held, env.Committed, env.UpdatedAt, env.LatestEffectiveAt = 0, 99, later, later
	for name, end := range map[string]func(h *Hold){
		"as made":   func(*Hold) {},
		"confirmed": func(h *Hold) { h.State, h.ConfirmedAmount, h.CommitmentID, h.UpdatedAt = HoldConfirmed, 1, "c", later },
		"cancelled": func(h *Hold) { h.State, h.Reason, h.UpdatedAt = HoldCancelled, "withdrawn", later },
		"expired":   func(h *Hold) { h.State, h.UpdatedAt = HoldExpired, later },
	} {
		row := r.Hold
		end(&row)
		got, err := UnpackCreateHold(packed, row, env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if raw, _ := json.Marshal(got); string(raw) != string(want) {
			t.Errorf("%s: rebuilt\n%s\nwant\n%s", name, raw, want)
		}
	}
	// Ids that are not canonical UUIDs are kept as text.
	other := packedTestHold()
	other.Hold.ID, other.EntryID = "h-1", "E-2"
	if got, err := UnpackCreateHold(PackCreateHold(other), other.Hold, other.Envelope); err != nil || got.EntryID != "E-2" || got.Hold.ID != "h-1" {
		t.Errorf("text ids: %+v, %v", got, err)
	}

	for name, edit := range map[string]func(h *Hold, e *Envelope){
		"hold's amount":      func(h *Hold, _ *Envelope) { h.Amount++ },
		"hold's expiry":      func(h *Hold, _ *Envelope) { h.ExpireAt = h.ExpireAt.Add(time.Second) },
		"hold's policy":      func(h *Hold, _ *Envelope) { h.Policy.PopulationGiven = false },
		"hold's creation":    func(h *Hold, _ *Envelope) { h.CreatedAt = h.CreatedAt.Add(time.Microsecond) },
		"envelope's name":    func(_ *Hold, e *Envelope) { e.DisplayName = "renamed" },
		"another hold":       func(h *Hold, _ *Envelope) { h.ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a6f" },
		"another envelope":   func(h *Hold, e *Envelope) { h.EnvelopeID, e.ID = "side", "side" },
		"envelope's created": func(_ *Hold, e *Envelope) { e.CreatedAt = e.CreatedAt.Add(time.Second) },
	} {
		row, e := r.Hold, r.Envelope
		edit(&row, &e)
		if got, err := UnpackCreateHold(packed, row, e); err == nil {
			t.Errorf("%s changed: replayed %+v", name, got)
		}
	}
	if _, err := UnpackCreateHold(PackConfirmHold(packedTestConfirm()), r.Hold, r.Envelope); err == nil {
		t.Error("a ConfirmHold's record was read as a CreateHold's")
	}
}

// TestPackedConfirmHoldRebuildsTheSameJSON protects invariant 5 for a ConfirmHold's result kept
// by reference (migration 29): rebuilt from the hold's row (which never changes once ended), the
// row of the commitment it names after that commitment was released, paid and closed, and the
// envelope's row after later changes, it is the same JSON byte for byte; a changed kept column is
// refused.
func TestPackedConfirmHoldRebuildsTheSameJSON(t *testing.T) {
	r := packedTestConfirm()
	want, _ := json.Marshal(r)
	packed := PackConfirmHold(r)
	if packed == nil {
		t.Fatal("a confirmation was not packed")
	}
	if !IsPackedConfirmHold(packed) || IsPackedCreateHold(packed) || IsPackedCommit(packed) || IsDeflated(packed) {
		t.Fatalf("record format %d is not told apart from the others", packed[0])
	}
	if id, err := PackedHoldID(packed); err != nil || id != r.Hold.ID {
		t.Errorf("PackedHoldID: %q, %v", id, err)
	}
	if len(packed) >= len(want)/5 {
		t.Errorf("packed %d bytes, JSON %d", len(packed), len(want))
	}
	later := r.Commitment.CreatedAt.Add(time.Hour)
	c := r.Commitment
	c.Released, c.Paid, c.UpdatedAt, c.ClosedAt, c.CloseReason, c.CloseEffectiveAt = 500, 200, later, later, "done", later
	env := r.Envelope
	env.Committed, env.CommitmentCount, env.UpdatedAt, env.LatestEffectiveAt = 99, 9, later, later
	got, err := UnpackConfirmHold(packed, r.Hold, c, env)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(got); string(raw) != string(want) {
		t.Errorf("rebuilt\n%s\nwant\n%s", raw, want)
	}

	for name, edit := range map[string]func(h *Hold, c *Commitment, e *Envelope){
		"hold's confirmed amount":  func(h *Hold, _ *Commitment, _ *Envelope) { h.ConfirmedAmount++ },
		"hold's state":             func(h *Hold, _ *Commitment, _ *Envelope) { h.State = HoldCancelled },
		"hold's end":               func(h *Hold, _ *Commitment, _ *Envelope) { h.UpdatedAt = later },
		"commitment's amount":      func(_ *Hold, c *Commitment, _ *Envelope) { c.Amount++ },
		"commitment's description": func(_ *Hold, c *Commitment, _ *Envelope) { c.Description = "edited" },
		"another commitment":       func(_ *Hold, c *Commitment, _ *Envelope) { c.ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a6e" },
		"envelope's name":          func(_ *Hold, _ *Commitment, e *Envelope) { e.DisplayName = "renamed" },
	} {
		h, c, e := r.Hold, r.Commitment, r.Envelope
		edit(&h, &c, &e)
		if got, err := UnpackConfirmHold(packed, h, c, e); err == nil {
			t.Errorf("%s changed: replayed %+v", name, got)
		}
	}
}

// TestPackHoldRefusesWhatRowsCannotGiveBack protects invariant 5: a hold's result its rows would
// not give back exactly is not packed (the request log keeps its JSON, deflated).
func TestPackHoldRefusesWhatRowsCannotGiveBack(t *testing.T) {
	for name, change := range map[string]func(r *CreateHoldResult){
		"not HELD":          func(r *CreateHoldResult) { r.Hold.State = HoldCancelled },
		"confirmed amount":  func(r *CreateHoldResult) { r.Hold.ConfirmedAmount = 1 },
		"a reason":          func(r *CreateHoldResult) { r.Hold.Reason = "x" },
		"updated later":     func(r *CreateHoldResult) { r.Hold.UpdatedAt = r.Hold.CreatedAt.Add(time.Second) },
		"nanoseconds":       func(r *CreateHoldResult) { r.Hold.ExpireAt = r.Hold.ExpireAt.Add(1) },
		"not UTC":           func(r *CreateHoldResult) { r.Hold.EffectiveAt = r.Hold.EffectiveAt.In(time.FixedZone("x", 3600)) },
		"the row's zero":    func(r *CreateHoldResult) { r.Hold.ExpireAt = time.UnixMicro(0).UTC() },
		"cost not given":    func(r *CreateHoldResult) { r.Hold.Policy.EligibleCostGiven = false },
		"population not 0":  func(r *CreateHoldResult) { r.Hold.Policy.Population, r.Hold.Policy.PopulationGiven = 5, false },
		"another envelope":  func(r *CreateHoldResult) { r.Hold.EnvelopeID = "other" },
		"no entry":          func(r *CreateHoldResult) { r.EntryID = "" },
		"envelope's times":  func(r *CreateHoldResult) { r.Envelope.UpdatedAt = r.Envelope.UpdatedAt.Add(1) },
		"no effective time": func(r *CreateHoldResult) { r.Envelope.EffectiveAt = time.Time{} },
	} {
		r := packedTestHold()
		change(r)
		if PackCreateHold(r) != nil {
			t.Errorf("CreateHold, %s: packed", name)
		}
	}
	for name, change := range map[string]func(r *ConfirmHoldResult){
		"hold not CONFIRMED":   func(r *ConfirmHoldResult) { r.Hold.State = HoldHeld },
		"another commitment":   func(r *ConfirmHoldResult) { r.Hold.CommitmentID = "other" },
		"commitment released":  func(r *ConfirmHoldResult) { r.Commitment.Released = 1 },
		"commitment not UTC":   func(r *ConfirmHoldResult) { r.Commitment.CreatedAt = r.Commitment.CreatedAt.Local() },
		"hold in nanoseconds":  func(r *ConfirmHoldResult) { r.Hold.UpdatedAt = r.Hold.UpdatedAt.Add(1) },
		"commitment elsewhere": func(r *ConfirmHoldResult) { r.Commitment.EnvelopeID = "other" },
		"population not given": func(r *ConfirmHoldResult) { r.Hold.Policy.Population, r.Hold.Policy.PopulationGiven = 5, false },
		"no entry":             func(r *ConfirmHoldResult) { r.EntryID = "" },
	} {
		r := packedTestConfirm()
		change(r)
		if PackConfirmHold(r) != nil {
			t.Errorf("ConfirmHold, %s: packed", name)
		}
	}
}

// TestCanonicalCoversEveryHoldField protects the hold records' checksum: changing any field of a
// hold (its policy's included) changes it, as it changes the JSON.
func TestCanonicalCoversEveryHoldField(t *testing.T) {
	// The hold's leaf fields, its policy's in place.
	var leaves [][]int
	var walk func(typ reflect.Type, at []int)
	walk = func(typ reflect.Type, at []int) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			index := append(append([]int(nil), at...), i)
			if f.Type.Kind() == reflect.Struct && f.Type != timeType {
				walk(f.Type, index)
				continue
			}
			leaves = append(leaves, index)
		}
	}
	walk(reflect.TypeFor[Hold](), nil)
	set := func(v reflect.Value, n int64) {
		if v.Kind() == reflect.Bool {
			v.SetBool(true)
			return
		}
		setLeaf(t, v, n)
	}
	base := packedTestConfirm()
	for i, index := range leaves {
		set(reflect.ValueOf(&base.Hold).Elem().FieldByIndex(index), int64(100+i))
	}
	seen := map[uint32]string{confirmHoldSum(base): "the base"}
	for _, index := range leaves {
		for _, change := range []string{"set", "zero"} {
			r := *base
			fv := reflect.ValueOf(&r.Hold).Elem().FieldByIndex(index)
			name := reflect.TypeFor[Hold]().FieldByIndex(index).Name
			switch {
			case change == "zero":
				fv.SetZero()
			case fv.Kind() == reflect.Bool:
				continue // set already
			default:
				set(fv, 7777)
			}
			s := confirmHoldSum(&r)
			if other, dup := seen[s]; dup {
				t.Errorf("hold.%s %s: checksum as %s", name, change, other)
			}
			seen[s] = "hold." + name + " " + change
		}
	}
	if len(leaves) != len(holdPlan) {
		t.Errorf("%d leaf fields, the plan has %d", len(leaves), len(holdPlan))
	}
	r := *base
	r.EntryID += "x"
	if confirmHoldSum(&r) == confirmHoldSum(base) {
		t.Error("another entry id: same checksum")
	}
	cr := &CreateHoldResult{Hold: base.Hold, Envelope: base.Envelope, EntryID: base.EntryID}
	if createHoldSum(cr) == confirmHoldSum(base) {
		t.Error("a creation and a confirmation of the same hold: same checksum")
	}
}

// TestHoldOutcomesKeepTheirJSON protects invariant 5 for the outcomes of holds kept typed: their
// JSON (a first answer, and the request log's record when not packed) is what it was when they
// were kept as JSON.
func TestHoldOutcomesKeepTheirJSON(t *testing.T) {
	for _, result := range []any{packedTestHold(), packedTestConfirm()} {
		o, err := NewOutcome(result)
		if err != nil {
			t.Fatal(err)
		}
		if o.Result != nil || (o.CreateHold == nil && o.ConfirmHold == nil) {
			t.Errorf("%T not kept typed: %+v", result, o)
		}
		raw, _ := json.Marshal(result)
		enc, err := o.Encode()
		if err != nil || string(enc) != `{"result":`+string(raw)+`}` {
			t.Errorf("%T encoded as %s, %v", result, enc, err)
		}
		out := reflect.New(reflect.TypeOf(result).Elem())
		if err := o.Decode(out.Interface()); err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(out.Interface()); string(got) != string(raw) {
			t.Errorf("decoded %s, want %s", got, raw)
		}
		var any map[string]any
		if err := o.Decode(&any); err != nil || any["entry_id"] == nil {
			t.Errorf("decoded as a map: %v, %v", any, err)
		}
	}
}
