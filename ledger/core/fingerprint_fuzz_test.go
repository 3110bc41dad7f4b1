package core

import (
	"math"
	"strings"
	"testing"
)

// FuzzCommitFingerprint protects invariant 5: a request id names one operation, recognised by the
// fingerprint of its payload. Two Commit commands have the same fingerprint exactly when they
// carry the same payload (caller and every field but the request id, which names the operation
// rather than describing it): a retry is recognised, and another payload under a used request id
// can never pass for the first one, however its fields are cut (length prefixes keep "ab"+"c"
// apart from "a"+"bc"). A Release or a one-item BulkCommit made of the same strings never
// shares a Commit's fingerprint. The same holds of the legacy fingerprints of these commands
// (without policy fields, the legacy encoding is unambiguous too), and a canonical fingerprint
// never equals a legacy one.
func FuzzCommitFingerprint(f *testing.F) {
	f.Add("svc", "axis-1", "siren:1", "p", int64(100), "", "svc", "axis-1", "siren:1", "p", int64(100), "")
	f.Add("svc", "axis-1", "ab", "c", int64(100), "", "svc", "axis-1", "a", "bc", int64(100), "")
	f.Add("svc", "axis-1", "b", "p", int64(1), "", "svc", "axis-1", "b", "p", int64(2), "")
	f.Add("", "", "", "", int64(0), "", "", "", "", "", int64(0), "\x00")
	f.Add("a", "", "", "", int64(0), "", "", "a", "", "", int64(0), "")
	f.Add("svc", "axis-1", "b", "p", int64(math.MinInt64), "d", "svc", "axis-1", "b", "p", int64(math.MaxInt64), "d")
	f.Add("svc", "axis-1", "b\x01", "p", int64(-1), "d", "svc", "axis-1", "b", "\x01p", int64(-1), "d")
	f.Fuzz(func(t *testing.T, caller1, env1, ben1, proj1 string, amount1 int64, desc1 string,
		caller2, env2, ben2, proj2 string, amount2 int64, desc2 string) {
		a := Commit{RequestID: "r1", Caller: caller1, EnvelopeID: env1, Beneficiary: ben1, Project: proj1, Amount: amount1, Description: desc1}
		b := Commit{RequestID: "r2", Caller: caller2, EnvelopeID: env2, Beneficiary: ben2, Project: proj2, Amount: amount2, Description: desc2}
		samePayload := a.Caller == b.Caller && a.EnvelopeID == b.EnvelopeID && a.Beneficiary == b.Beneficiary &&
			a.Project == b.Project && a.Amount == b.Amount && a.Description == b.Description
		if same := a.Fingerprint().Current == b.Fingerprint().Current; same != samePayload {
			t.Fatalf("fingerprints equal = %v, payloads equal = %v:\n%+v\n%+v", same, samePayload, a, b)
		}
		if same := a.Fingerprint().Legacy == b.Fingerprint().Legacy; same != samePayload {
			t.Fatalf("legacy fingerprints equal = %v, payloads equal = %v:\n%+v\n%+v", same, samePayload, a, b)
		}
		if a.Fingerprint().Matches(b.Fingerprint().Legacy) != samePayload || a.Fingerprint().Matches(b.Fingerprint().Current) != samePayload {
			t.Fatalf("Matches disagrees with the payloads (equal = %v):\n%+v\n%+v", samePayload, a, b)
		}
		if a.Fingerprint() != a.Fingerprint() {
			t.Fatal("the fingerprint of one command changes from call to call")
		}
		// Other operations never share a Commit's fingerprint, even with the same strings.
		r := Release{RequestID: "r1", Caller: caller1, CommitmentID: env1, Amount: amount1, Reason: ben1}
		bulk := BulkCommit{RequestID: "r1", Caller: caller1, EnvelopeID: env1,
			Items: []BulkItem{{Beneficiary: ben1, Project: proj1, Amount: amount1, Description: desc1}}}
		for name, fp := range map[string]Fingerprint{"Release": r.Fingerprint(), "BulkCommit": bulk.Fingerprint()} {
			if fp.Current == a.Fingerprint().Current || fp.Current == b.Fingerprint().Current ||
				fp.Legacy == a.Fingerprint().Legacy || fp.Legacy == b.Fingerprint().Legacy {
				t.Fatalf("a %s shares the fingerprint of a Commit: %+v", name, a)
			}
		}
	})
}

// FuzzBulkCommitFingerprint protects invariant 5 for bulk calls, whose items carry optional
// policy fields: two calls of two items have the same fingerprint exactly when every field of
// every item is the same, whether the policy fields are given or not. The legacy encoding, which
// appended the policy fields only when given, failed this (see TestLegacyBulkFingerprintCollision).
func FuzzBulkCommitFingerprint(f *testing.F) {
	// The legacy collision: the second call's second item begins where the first call's first
	// policy began.
	one, other := legacyCollision()
	add := func(a, b BulkCommit) {
		f.Add(a.Items[0].Beneficiary, a.Items[0].Project, a.Items[0].EligibleCost, a.Items[0].Territory, a.Items[0].Population,
			a.Items[1].Beneficiary, a.Items[1].Project, a.Items[1].EligibleCost, a.Items[1].Territory, a.Items[1].Population,
			b.Items[0].Beneficiary, b.Items[0].Project, b.Items[0].EligibleCost, b.Items[0].Territory, b.Items[0].Population,
			b.Items[1].Beneficiary, b.Items[1].Project, b.Items[1].EligibleCost, b.Items[1].Territory, b.Items[1].Population)
	}
	add(one, other)
	add(one, one)
	add(other, other)
	f.Add("b", "p", int64(0), "", int64(0), "b", "p", int64(0), "", int64(0),
		"b", "p", int64(0), "", int64(0), "b", "p", int64(0), "", int64(1))
	f.Add("b", "p", int64(1), "", int64(0), "b", "p", int64(0), "", int64(0),
		"b", "p", int64(0), "", int64(0), "b", "p", int64(1), "", int64(0))
	f.Fuzz(func(t *testing.T, b1, p1 string, e1 int64, t1 string, n1 int64, b2, p2 string, e2 int64, t2 string, n2 int64,
		b3, p3 string, e3 int64, t3 string, n3 int64, b4, p4 string, e4 int64, t4 string, n4 int64) {
		call := func(items ...BulkItem) BulkCommit {
			return BulkCommit{RequestID: "r", Caller: "svc", EnvelopeID: "axis-1", Items: items}
		}
		item := func(b, p string, e int64, terr string, n int64) BulkItem {
			return BulkItem{Beneficiary: b, Project: p, Amount: 100, Description: "d",
				Policy: Policy{EligibleCost: e, Territory: terr, Population: n}}
		}
		a := call(item(b1, p1, e1, t1, n1), item(b2, p2, e2, t2, n2))
		b := call(item(b3, p3, e3, t3, n3), item(b4, p4, e4, t4, n4))
		samePayload := a.Items[0] == b.Items[0] && a.Items[1] == b.Items[1]
		if same := a.Fingerprint().Current == b.Fingerprint().Current; same != samePayload {
			t.Fatalf("fingerprints equal = %v, payloads equal = %v:\n%+v\n%+v", same, samePayload, a, b)
		}
		if same := a.Fingerprint().Matches(b.Fingerprint().Current); same != samePayload {
			t.Fatalf("Matches = %v, payloads equal = %v:\n%+v\n%+v", same, samePayload, a, b)
		}
		// Each item's fingerprint follows the call's: another call under the same request id
		// never replays an item of the first.
		ua, ub := a.Unit(), b.Unit()
		for i := range ua.Ops {
			if same := ua.Ops[i].Fingerprint.Current == ub.Ops[i].Fingerprint.Current; same != samePayload {
				t.Fatalf("item %d: fingerprints equal = %v, payloads equal = %v", i, same, samePayload)
			}
		}
	})
}

// legacyCollision builds two different bulk calls that the legacy encoding gave one fingerprint:
// the first call's first item has policy fields, which the legacy encoding appended after its
// description; the second call's first item has none, and its second item's beneficiary is
// "policy" and its project spells the first call's policy fields and second item's beneficiary
// and project, length prefixes included. Every field is printable, so the API accepts both calls.
func legacyCollision() (one, other BulkCommit) {
	territory := strings.Repeat("t", 33)   // length prefix 33 = '!'
	const population = 17                  // zigzag varint 34 = '"'
	beneficiary := strings.Repeat("b", 35) // length prefix 35 = '#'
	project := strings.Repeat("p", 36)     // length prefix 36 = '$'
	spelled := "!" + territory + `"` + "#" + beneficiary + "$" + project
	// The first policy's eligible cost, as a zigzag varint (2×54 = 108), is the length prefix of
	// the spelled project (108 bytes).
	const eligibleCost = 54
	first := BulkItem{Beneficiary: "siren:1", Project: "first", Amount: 100, Description: "d"}
	withPolicy := first
	withPolicy.Policy = Policy{EligibleCost: eligibleCost, Territory: territory, Population: population}
	one = BulkCommit{RequestID: "r", Caller: "svc", EnvelopeID: "axis-1", Items: []BulkItem{
		withPolicy, {Beneficiary: beneficiary, Project: project, Amount: 200, Description: "e"}}}
	other = BulkCommit{RequestID: "r", Caller: "svc", EnvelopeID: "axis-1", Items: []BulkItem{
		first, {Beneficiary: "policy", Project: spelled, Amount: 200, Description: "e"}}}
	return one, other
}

// TestLegacyBulkFingerprintCollision protects invariant 5 ("the same id with another payload is
// refused"): two different bulk calls that the legacy encoding could not tell apart get different
// fingerprints, so the second, under the first one's request id, is refused with
// REQUEST_ID_REUSED; a row recorded with the legacy fingerprint still replays to a retry of its
// own call.
func TestLegacyBulkFingerprintCollision(t *testing.T) {
	one, other := legacyCollision()
	if err := one.Validate(); err != nil {
		t.Fatalf("the first call is invalid: %v", err)
	}
	if err := other.Validate(); err != nil {
		t.Fatalf("the second call is invalid: %v", err)
	}
	if one.Fingerprint().Legacy != other.Fingerprint().Legacy {
		t.Fatal("the two calls no longer collide under the legacy encoding: the test lost its point")
	}
	if one.Fingerprint().Current == other.Fingerprint().Current {
		t.Error("two different bulk calls share a fingerprint")
	}
	if !strings.HasPrefix(one.Fingerprint().Current, "v2:") {
		t.Errorf("canonical fingerprint %q has no version tag", one.Fingerprint().Current)
	}
	recorded := Prior{Fingerprint: one.Fingerprint().Current, Outcome: Outcome{Result: []byte(`{"items":2}`)}}
	if got := recorded.Replay("r", other.Fingerprint()); !hasReason(got.Refusal, ReasonRequestIDReused) {
		t.Errorf("the second call under the first one's request id got %+v, want REQUEST_ID_REUSED", got)
	}
	if got := recorded.Replay("r", one.Fingerprint()); got.Refusal != nil {
		t.Errorf("a retry of the first call got %+v, want its outcome", got)
	}
	legacy := Prior{Fingerprint: one.Fingerprint().Legacy, Outcome: Outcome{Result: []byte(`{"items":2}`)}}
	if got := legacy.Replay("r", one.Fingerprint()); got.Refusal != nil {
		t.Errorf("a retry of a call recorded with the legacy fingerprint got %+v, want its outcome", got)
	}
	for _, c := range []BulkCommit{one, other} {
		u := c.Unit()
		in := Loaded{Envelopes: map[string]Envelope{"axis-1": env("axis-1", "", 1000, 0)},
			Priors: map[string]Prior{RequestKey("svc", "r"): {Fingerprint: one.Fingerprint().Current, Outcome: Outcome{Result: []byte(`{"items":2}`)}}}}
		if _, err := DecideBatch(testStamp(), []*Unit{u}, in); err != nil {
			t.Fatal(err)
		}
		reused := hasReason(u.Ops[0].Outcome.Refusal, ReasonRequestIDReused)
		if want := c.Items[1].Beneficiary == "policy"; reused != want {
			t.Errorf("call with second beneficiary %.10q: refused as reused = %v, want %v", c.Items[1].Beneficiary, reused, want)
		}
	}
}

// hasReason reports whether e is a refusal with reason r (e may be nil).
func hasReason(e *Error, r Reason) bool { return e != nil && e.Reason == r }
