package core

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"
)

// TestDeflatedOutcomesRoundTrip protects "retries are answered exactly as the first time" for the
// outcomes the request log keeps deflated: each comes back byte for byte, a hold's confirmation
// takes well under half its JSON, and a damaged record is an error, never another answer (the
// record's checksum: deflate has none).
func TestDeflatedOutcomesRoundTrip(t *testing.T) {
	confirm := confirmationOutcome(t)
	refusal := Outcome{Refusal: &Error{Reason: ReasonHoldExpired, Message: `hold "holds/01a232d3-0dcc-768e-acd5-74997b954724" expired`,
		Metadata: map[string]string{"hold": "holds/01a232d3-0dcc-768e-acd5-74997b954724"}}}
	for name, o := range map[string]Outcome{"confirmation": confirm, "refusal": refusal} {
		raw, err := o.Encode()
		if err != nil {
			t.Fatal(err)
		}
		record := DeflateOutcome(raw)
		if record == nil {
			t.Fatalf("%s: not deflated (%d bytes of JSON)", name, len(raw))
		}
		got, err := InflateOutcome(record)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%s: inflated %q, %v; want %q", name, got, err, raw)
		}
		t.Logf("%s: %d bytes of JSON, %d deflated", name, len(raw), len(record))
		if name == "confirmation" && len(record) > len(raw)*2/5 {
			t.Errorf("a hold's confirmation deflated to %d bytes of %d: the dictionary no longer fits the outcomes", len(record), len(raw))
		}
		var back Outcome
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		// A damaged record: an error, or (a flip in the last byte's padding bits) the same JSON.
		for i := 1; i < len(record); i++ {
			for _, flip := range []byte{0x01, 0x10, 0x80} {
				bad := bytes.Clone(record)
				bad[i] ^= flip
				if out, err := InflateOutcome(bad); err == nil && !bytes.Equal(out, raw) {
					t.Fatalf("%s: a record damaged at byte %d gave another answer: %q", name, i, out)
				}
			}
		}
		if _, err := InflateOutcome(record[:len(record)-1]); err == nil {
			t.Errorf("%s: a record cut short was inflated", name)
		}
	}
	if DeflateOutcome([]byte(`{}`)) != nil {
		t.Error("a two-byte outcome was deflated, though deflate cannot make it shorter")
	}
	if _, err := InflateOutcome([]byte{packedCommit, 1, 2}); err == nil {
		t.Error("a packed Commit record was inflated as a deflated outcome")
	}
}

// confirmationOutcome is the outcome of a hold's confirmation with every field set.
func confirmationOutcome(t testing.TB) Outcome {
	at := time.Date(2026, 12, 1, 18, 17, 2, 282230000, time.UTC)
	env := Envelope{ID: "axis-1", ParentID: "relance", DisplayName: "Axe 1", Currency: "EUR", Allocation: 3_000_000_000,
		Committed: 133_000_000, CommitmentCount: 44, CreatedAt: at, UpdatedAt: at.Add(time.Hour), EffectiveAt: at,
		LatestEffectiveAt: at.Add(time.Hour), Paid: 1000, Held: 5000}
	h := Hold{ID: "01a232d3-0dcc-768e-acd5-74997b954724", EnvelopeID: "axis-1", Beneficiary: "commune-lyon", Project: "p-42",
		Currency: "EUR", Amount: 125000, State: HoldConfirmed, Description: "dossier", ExpireAt: at.Add(time.Minute),
		ConfirmedAmount: 100000, CommitmentID: "01a232d3-0dcd-768e-acd5-74997b954725", CreatedAt: at, UpdatedAt: at.Add(time.Hour)}
	c := Commitment{ID: h.CommitmentID, EnvelopeID: "axis-1", Beneficiary: "commune-lyon", Project: "p-42", Currency: "EUR",
		Amount: 100000, Description: "dossier", EligibleCost: 200000, Territory: "insee:69123", Population: 500000,
		CreatedAt: at.Add(time.Hour), UpdatedAt: at.Add(time.Hour), EffectiveAt: at.Add(time.Hour)}
	confirm, err := NewOutcome(&ConfirmHoldResult{Hold: h, Commitment: c, Envelope: env, EntryID: "01a232d3-0dce-768e-acd5-74997b954726"})
	if err != nil {
		t.Fatal(err)
	}
	return confirm
}

// BenchmarkDeflateOutcome measures what deflating a hold's confirmation costs each request that
// records one (go test ./ledger/core -run '^$' -bench DeflateOutcome).
func BenchmarkDeflateOutcome(b *testing.B) {
	raw, err := confirmationOutcome(b).Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(DeflateOutcome(raw))
	}
	b.ReportMetric(float64(len(raw)), "json-bytes")
	b.ReportMetric(float64(n), "record-bytes")
}

// BenchmarkInflateOutcome is what a retry of a hold's confirmation, and the verifier for each such
// answer, pay to read it back.
func BenchmarkInflateOutcome(b *testing.B) {
	raw, err := confirmationOutcome(b).Encode()
	if err != nil {
		b.Fatal(err)
	}
	record := DeflateOutcome(raw)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InflateOutcome(record); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeflatedRecordsOfTodayInflateForever protects the request log's rows already written: a
// record deflated on 2026-12-01 still inflates to its JSON. It fails if the preset dictionary is
// edited (the record would inflate to other bytes, which its checksum refuses): a new dictionary
// needs a new tag byte, and the old one kept for the rows written with it.
func TestDeflatedRecordsOfTodayInflateForever(t *testing.T) {
	const (
		record = "03a3a41837304c3432364a31d63548494ed63537b348d54d4c4e31d53537b1b4344fb23435313732412deac18e3534d235300c31b4b03234b73230d233b23032328e22b2124029f921d9195a8ae3361abd7c27c6d94ab5b5b500aa5be6ed"
		want   = `{"refusal":{"reason":"HOLD_EXPIRED","message":"hold \"holds/01a232d3-0dcc-768e-acd5-74997b954724\" expired at 2026-12-01T18:17:02.28223Z; its amount returns to the envelope","metadata":{"expire_time":"2026-12-01T18:17:02.28223Z","hold":"holds/01a232d3-0dcc-768e-acd5-74997b954724"}}}`
	)
	b, err := hex.DecodeString(record)
	if err != nil {
		t.Fatal(err)
	}
	got, err := InflateOutcome(b)
	if err != nil || string(got) != want {
		t.Fatalf("a record of 2026-12-01 inflated to %q, %v; want %q", got, err, want)
	}
}
