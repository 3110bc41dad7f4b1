package core

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
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
	got, err := UnpackCommit(packed, row, env, r.EntryID)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(got); string(raw) != string(want) {
		t.Errorf("rebuilt\n%s\nwant\n%s", raw, want)
	}
	// Ids that are not canonical UUIDs are kept as text.
	other := packedTestResult()
	other.Commitment.ID, other.EntryID = "c-1", "E-2"
	if got, err := UnpackCommit(PackCommit(other), other.Commitment, other.Envelope, "E-2"); err != nil || got.EntryID != "E-2" {
		t.Errorf("text ids: %+v, %v", got, err)
	}

	edited := r.Commitment
	edited.Description = "edited"
	if _, err := UnpackCommit(packed, edited, r.Envelope, r.EntryID); err == nil {
		t.Error("a commitment row whose description changed was replayed")
	}
	renamed := r.Envelope
	renamed.DisplayName = "renamed"
	if _, err := UnpackCommit(packed, r.Commitment, renamed, r.EntryID); err == nil {
		t.Error("an envelope row whose name changed was replayed")
	}
}

// TestPackedCommitTakesItsEntryFromTheJournal protects invariant 5 since migration 28: a Commit's
// record no longer holds its journal entry's id, the journal gives it back, and an answer with
// another entry's id, or none, is refused rather than given.
func TestPackedCommitTakesItsEntryFromTheJournal(t *testing.T) {
	r := packedTestResult()
	packed := PackCommit(r)
	if _, entry, err := PackedCommitRefs(packed); err != nil || entry != "" {
		t.Fatalf("a record of now names entry %q (%v)", entry, err)
	}
	u, _ := parseUUID(r.EntryID)
	if strings.Contains(string(packed), string(u[:])) {
		t.Error("the record holds the entry's id")
	}
	for _, wrong := range []string{"", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d"} {
		if _, err := UnpackCommit(packed, r.Commitment, r.Envelope, wrong); err == nil {
			t.Errorf("replayed with entry %q", wrong)
		}
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

// TestParseUUIDAgreesWithItsDefinition protects the packed records' exactness (an id packed as
// 16 bytes must come back as the very text it was): parseUUID accepts exactly the strings that
// decode as hexadecimal with dashes at 8, 13, 18 and 23 and that formatUUID gives back, on
// canonical ids with each byte replaced in turn by every byte value, and on random strings over
// the hexadecimal digits of both cases and the dash.
func TestParseUUIDAgreesWithItsDefinition(t *testing.T) {
	definition := func(s string) ([16]byte, bool) {
		var u [16]byte
		if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, false
		}
		digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
		if _, err := hex.Decode(u[:], []byte(digits)); err != nil {
			return u, false
		}
		return u, formatUUID(u[:]) == s
	}
	check := func(s string) {
		u, ok := parseUUID(s)
		wu, wok := definition(s)
		if ok != wok || (ok && u != wu) {
			t.Fatalf("parseUUID(%q) = %x, %v; the definition gives %x, %v", s, u, ok, wu, wok)
		}
	}
	for _, base := range []string{"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "ffffffff-ffff-ffff-ffff-ffffffffffff",
		"00000000-0000-0000-0000-000000000000"} {
		check(base)
		for i := range len(base) {
			for c := range 256 {
				b := []byte(base)
				b[i] = byte(c)
				check(string(b))
			}
		}
	}
	rng := rand.New(rand.NewPCG(17, 1))
	const alphabet = "0123456789abcdefABCDEF-"
	for range 200_000 {
		b := make([]byte, 34+rng.IntN(4))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		for _, i := range []int{8, 13, 18, 23} {
			if i < len(b) && rng.IntN(8) != 0 {
				b[i] = '-'
			}
		}
		check(string(b))
	}
}

func packedTestBulk() *BulkCommitResult {
	r := packedTestResult()
	c1, c2 := r.Commitment, r.Commitment
	c2.ID, c2.Beneficiary, c2.Amount = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", "siren:2", 7_000
	return &BulkCommitResult{Items: []BulkItemResult{{Commitment: &c1}, {Refusal: InvalidArgument("amount", "must be positive")}, {Commitment: &c2}},
		Accepted: 2, Refused: 1, Envelope: r.Envelope}
}

// packedRecordsOfBefore reads testdata/packed-json-checksum.txt: records written before pcSum.
func packedRecordsOfBefore(t *testing.T) map[string][]byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/packed-json-checksum.txt")
	if err != nil {
		t.Fatal(err)
	}
	records := map[string][]byte{}
	for line := range strings.Lines(string(raw)) {
		name, record, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if records[name], err = hex.DecodeString(record); err != nil {
			t.Fatal(err)
		}
	}
	return records
}

// TestPackedRecordsOfBeforeReplay protects invariant 5 across the change of checksum: a Commit's
// or a bulk call's record written before pcSum (its checksum over the result's JSON) replays
// forever as it was first answered, and still refuses a row changed since.
func TestPackedRecordsOfBeforeReplay(t *testing.T) {
	records := packedRecordsOfBefore(t)
	r := packedTestResult()
	got, err := UnpackCommit(records["commit"], r.Commitment, r.Envelope, "")
	if err != nil || !jsonEqual(t, got, r) {
		t.Errorf("a Commit's record of before: %+v, %v", got, err)
	}
	edited := r.Commitment
	edited.Purpose = "edited"
	if _, err := UnpackCommit(records["commit"], edited, r.Envelope, ""); err == nil {
		t.Error("a Commit's record of before replayed on an edited commitment")
	}

	want := packedTestBulk()
	refs, err := UnpackBulkRefs(records["bulk"])
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]*Commitment{}
	for _, it := range want.Items {
		if it.Commitment != nil {
			rows[it.Commitment.ID] = it.Commitment
		}
	}
	bulk, err := refs.Rebuild(rows, want.Envelope)
	if err != nil || !jsonEqual(t, bulk, want) {
		t.Errorf("a bulk call's record of before: %+v, %v", bulk, err)
	}
	c := *rows[refs.Commitments[1]]
	c.Amount++
	rows[c.ID] = &c
	if _, err := refs.Rebuild(rows, want.Envelope); err == nil {
		t.Error("a bulk call's record of before replayed on an edited commitment")
	}
	// Both checksums, or one twice, is no record.
	for _, extra := range []protowire.Number{pcSum, pcChecksum} {
		record := protowire.AppendFixed32(protowire.AppendTag(slices.Clone(records["commit"]), extra, protowire.Fixed32Type), 7)
		if _, err := UnpackCommit(record, r.Commitment, r.Envelope, ""); err == nil {
			t.Errorf("a record with a second checksum (field %d) replayed", extra)
		}
	}
}

// TestPackedBulkRebuildsTheSameJSON: a bulk call's result packed now (pcSum) rebuilds to the
// same JSON, and refuses a changed commitment, envelope or refusal.
func TestPackedBulkRebuildsTheSameJSON(t *testing.T) {
	want := packedTestBulk()
	record, err := PackBulk(want)
	if err != nil || record == nil {
		t.Fatalf("packed %x, %v", record, err)
	}
	refs, err := UnpackBulkRefs(record)
	if err != nil || refs.balance.sumKind != pcSum {
		t.Fatalf("refs %+v, %v", refs, err)
	}
	rows := map[string]*Commitment{}
	for _, it := range want.Items {
		if it.Commitment != nil {
			c := *it.Commitment
			c.Released, c.UpdatedAt = 10, c.UpdatedAt.Add(time.Hour) // updated since: not used
			rows[c.ID] = &c
		}
	}
	got, err := refs.Rebuild(rows, want.Envelope)
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("rebuilt %+v, %v", got, err)
	}
	env := want.Envelope
	env.GrantingBodyName = "another"
	if _, err := refs.Rebuild(rows, env); err == nil {
		t.Error("replayed on an envelope whose granting body changed")
	}
	refs.items[1].refusal.Message = "another"
	if _, err := refs.Rebuild(rows, want.Envelope); err == nil {
		t.Error("replayed another refusal")
	}
}

// TestCanonicalCoversEveryField protects the packed records' checksum (canonical.go): changing
// any field of a Commit's result — every exported field of the commitment and the envelope,
// embedded ones included, and the entry's id — changes its checksum, so a rebuilt result that
// differs in anything is refused. A field added to Commitment or Envelope is covered without a
// word, or, of a kind the encoding does not know, makes this test (and the program) stop.
func TestCanonicalCoversEveryField(t *testing.T) {
	base := packedTestResult()
	fill(t, reflect.ValueOf(&base.Commitment).Elem(), 1)
	fill(t, reflect.ValueOf(&base.Envelope).Elem(), 1000)
	sum := commitSum(base)
	seen := map[uint32]string{sum: "the base"}
	fields := 0
	for _, part := range []struct {
		name string
		of   func(*CommitResult) reflect.Value
	}{
		{"commitment", func(r *CommitResult) reflect.Value { return reflect.ValueOf(&r.Commitment).Elem() }},
		{"envelope", func(r *CommitResult) reflect.Value { return reflect.ValueOf(&r.Envelope).Elem() }},
	} {
		for _, f := range reflect.VisibleFields(part.of(base).Type()) {
			if !f.IsExported() || (f.Anonymous && f.Type.Kind() == reflect.Struct) {
				continue
			}
			for _, change := range []string{"set", "zero"} {
				r := *base
				v := part.of(&r).FieldByIndex(f.Index)
				if change == "set" {
					setLeaf(t, v, 7777)
				} else {
					v.SetZero()
				}
				s := commitSum(&r)
				if other, dup := seen[s]; dup {
					t.Errorf("%s.%s %s: checksum %08x, as %s", part.name, f.Name, change, s, other)
				}
				seen[s] = part.name + "." + f.Name + " " + change
			}
			fields++
		}
	}
	r := *base
	r.EntryID += "x"
	if commitSum(&r) == sum {
		t.Error("another entry id: same checksum")
	}
	if want := len(commitmentPlan) + len(envelopePlan); fields != want {
		t.Errorf("changed %d fields, the plans have %d", fields, want)
	}
	// A time is told apart by its offset, as JSON tells it.
	r = *base
	r.Commitment.CreatedAt = r.Commitment.CreatedAt.In(time.FixedZone("x", 3600))
	if commitSum(&r) == sum {
		t.Error("a time in another offset: same checksum")
	}
}

// fill sets every leaf field of struct v to a distinct value that is not zero.
func fill(t *testing.T, v reflect.Value, seed int64) {
	t.Helper()
	for _, f := range reflect.VisibleFields(v.Type()) {
		if f.IsExported() && !(f.Anonymous && f.Type.Kind() == reflect.Struct) {
			setLeaf(t, v.FieldByIndex(f.Index), seed+int64(f.Index[len(f.Index)-1])+int64(10*len(f.Index)))
		}
	}
}

func setLeaf(t *testing.T, v reflect.Value, n int64) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)))
	case v.Kind() == reflect.String:
		v.SetString(fmt.Sprintf("v%d", n))
	case v.CanInt():
		v.SetInt(n)
	default:
		t.Fatalf("no test value for %s", v.Type())
	}
}

func BenchmarkPackCommit(b *testing.B) {
	r := packedTestResult()
	for b.Loop() {
		PackCommit(r)
	}
}

func BenchmarkUnpackCommit(b *testing.B) {
	r := packedTestResult()
	packed := PackCommit(r)
	for b.Loop() {
		if _, err := UnpackCommit(packed, r.Commitment, r.Envelope, r.EntryID); err != nil {
			b.Fatal(err)
		}
	}
}
