package core

import (
	"encoding/json"
	"testing"
	"time"
)

func packedTestResult() *CommitResult {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	env := Envelope{ID: "axis", ParentID: "prog", DisplayName: "Axis", Currency: "EUR", Allocation: 1_000_000,
		Committed: 30_000, ChildrenAllocated: 5_000, Released: 700, CommitmentCount: 3, Paid: 100, Held: 2_000,
		CreatedAt: at.Add(-time.Hour), UpdatedAt: at, EffectiveAt: at.Add(-2 * time.Hour), LatestEffectiveAt: at.Add(time.Microsecond)}
	c := Commitment{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", EnvelopeID: "axis", Beneficiary: "siren:1", Project: "p",
		Currency: "EUR", Amount: 10_000, Description: "d", EligibleCost: 20_000, Territory: "insee:69123",
		CreatedAt: at, UpdatedAt: at, EffectiveAt: at.Add(-24 * time.Hour), Publication: Publication{Purpose: "x"}}
	return &CommitResult{Commitment: c, Envelope: env, EntryID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"}
}

// TestPackedCommitRebuildsTheSameJSON protects the request log's exactness (invariant 5): a
// Commit's result packed by reference and rebuilt from its commitment's and envelope's rows,
// as they read after later changes to their updated columns, is the same JSON byte for byte; a
// row whose kept columns changed is refused, never answered differently.
func TestPackedCommitRebuildsTheSameJSON(t *testing.T) {
	r := packedTestResult()
	want, _ := json.Marshal(r)
	packed := PackCommit(r)
	if packed == nil {
		t.Fatal("a fresh award was not packed")
	}
	if len(packed) >= len(want)/5 {
		t.Errorf("packed %d bytes, JSON %d", len(packed), len(want))
	}
	// The rows as they read later: the commitment released, paid and closed; the envelope
	// awarded from.
	row := r.Commitment
	row.Released, row.Paid, row.UpdatedAt, row.ClosedAt, row.CloseReason = 500, 200, row.UpdatedAt.Add(time.Hour), row.UpdatedAt.Add(time.Hour), "done"
	env := r.Envelope
	env.Committed, env.CommitmentCount, env.UpdatedAt = 99, 9, env.UpdatedAt.Add(time.Hour)
	got, err := UnpackCommit(packed, row, env)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(got); string(raw) != string(want) {
		t.Errorf("rebuilt\n%s\nwant\n%s", raw, want)
	}
	// Ids that are not canonical UUIDs are kept as text.
	other := packedTestResult()
	other.Commitment.ID, other.EntryID = "c-1", "E-2"
	if got, err := UnpackCommit(PackCommit(other), other.Commitment, other.Envelope); err != nil || got.EntryID != "E-2" {
		t.Errorf("text ids: %+v, %v", got, err)
	}

	edited := r.Commitment
	edited.Description = "edited"
	if _, err := UnpackCommit(packed, edited, r.Envelope); err == nil {
		t.Error("a commitment row whose description changed was replayed")
	}
	renamed := r.Envelope
	renamed.DisplayName = "renamed"
	if _, err := UnpackCommit(packed, r.Commitment, renamed); err == nil {
		t.Error("an envelope row whose name changed was replayed")
	}
}

// TestPackCommitRefusesWhatRowsCannotGiveBack: a result its rows would not give back exactly is
// not packed (the request log keeps its JSON).
func TestPackCommitRefusesWhatRowsCannotGiveBack(t *testing.T) {
	for name, change := range map[string]func(r *CommitResult){
		"released":      func(r *CommitResult) { r.Commitment.Released = 1 },
		"paid":          func(r *CommitResult) { r.Commitment.Paid = 1 },
		"closed":        func(r *CommitResult) { r.Commitment.ClosedAt = r.Commitment.CreatedAt },
		"updated later": func(r *CommitResult) { r.Commitment.UpdatedAt = r.Commitment.CreatedAt.Add(time.Second) },
		"nanoseconds":   func(r *CommitResult) { r.Envelope.UpdatedAt = r.Envelope.UpdatedAt.Add(1) },
		"not UTC": func(r *CommitResult) {
			r.Commitment.EffectiveAt = r.Commitment.EffectiveAt.In(time.FixedZone("x", 3600))
		},
		"no effective time": func(r *CommitResult) { r.Envelope.EffectiveAt = time.Time{} },
		"another envelope":  func(r *CommitResult) { r.Commitment.EnvelopeID = "other" },
	} {
		r := packedTestResult()
		change(r)
		if PackCommit(r) != nil {
			t.Errorf("%s: packed", name)
		}
	}
}

func TestFingerprintDigest(t *testing.T) {
	fp := (&Commit{Caller: "c", EnvelopeID: "e"}).Fingerprint().Current
	d := FingerprintDigest(fp)
	if len(d) != 32 || FingerprintFromDigest(d) != fp {
		t.Errorf("digest of %s: %x", fp, d)
	}
	for _, other := range []string{"f", "v2:" + "AB" + fp[5:], fp[3:], fp + "0"} {
		if FingerprintDigest(other) != nil {
			t.Errorf("%q has a digest", other)
		}
	}
}

// TestBulkCallIsOneRequestRow protects invariant 5 with one request-log row per bulk call
// (migration 18): a call decided now records one row under the call's key (its items none), a
// retry in the same batch gets the first answer, and a retry that finds the row gets it whole,
// without deciding any item again.
func TestBulkCallIsOneRequestRow(t *testing.T) {
	call := &BulkCommit{RequestID: "b1", Caller: "svc", EnvelopeID: "e1", Items: []BulkItem{
		{Beneficiary: "siren:1", Project: "p", Amount: 100}, {Beneficiary: "siren:2", Project: "p", Amount: 1_000_000}}}
	e1 := env("e1", "", 1000, 0)
	e1.CreatedAt = time.Date(2021, 10, 1, 0, 0, 0, 0, time.UTC)
	e1.UpdatedAt, e1.EffectiveAt, e1.LatestEffectiveAt = e1.CreatedAt, e1.CreatedAt, e1.CreatedAt
	in := Loaded{Envelopes: map[string]Envelope{"e1": e1}}
	first, again := call.Unit(), call.Unit()
	w, err := DecideBatch(testStamp(), []*Unit{first, again}, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Requests) != 1 || w.Requests[0].Key != RequestKey("svc", "b1") || w.Requests[0].Outcome.Bulk == nil {
		t.Fatalf("recorded %+v, want one row for the call", w.Requests)
	}
	want, _, err := call.BulkResult(first)
	if err != nil || want.Accepted != 1 || want.Refused != 1 {
		t.Fatalf("first answer %+v, %v", want, err)
	}
	got, _, err := call.BulkResult(again)
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("retry in the same batch: %+v, %v", got, err)
	}
	in.Priors = map[string]Prior{RequestKey("svc", "b1"): {Fingerprint: w.Requests[0].Fingerprint, Outcome: w.Requests[0].Outcome}}
	retry := call.Unit()
	w, err = DecideBatch(testStamp(), []*Unit{retry}, in)
	if err != nil || len(w.Requests) != 0 || len(w.Entries) != 0 {
		t.Fatalf("retry wrote %+v, %v", w, err)
	}
	got, _, err = call.BulkResult(retry)
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("retry: %+v, %v", got, err)
	}

	// A result its rows cannot give back (an envelope without times) is recorded as before
	// migration 18: a row for the call and one per item.
	in = Loaded{Envelopes: map[string]Envelope{"e1": env("e1", "", 1000, 0)}}
	w, err = DecideBatch(testStamp(), []*Unit{call.Unit()}, in)
	if err != nil || len(w.Requests) != 3 {
		t.Errorf("unpackable call recorded %d rows, %v; want 3", len(w.Requests), err)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestParseUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b":   true,
		"0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B":   false, // not canonical: would not come back as sent
		"{0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}": false,
		"0193a1b2c3d47e5f8a9b0c1d2e3f4a5b":       false,
		"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g":   false,
		"c-1":                                    false,
	} {
		if u, ok := parseUUID(s); ok != want || (ok && formatUUID(u[:]) != s) {
			t.Errorf("parseUUID(%q) = %x, %v", s, u, ok)
		}
	}
}
