package core

import (
	"math"
	"testing"
)

// FuzzCommitFingerprint protects invariant 5: a request id names one operation, recognised by the
// fingerprint of its payload. Two Commit commands have the same fingerprint exactly when they
// carry the same payload (caller and every field but the request id, which names the operation
// rather than describing it): a retry is recognised, and another payload under a used request id
// can never pass for the first one, however its fields are cut (length prefixes keep "ab"+"c"
// apart from "a"+"bc"). A Release or a one-item BulkCommit made of the same strings never
// shares a Commit's fingerprint.
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
		if same := a.Fingerprint() == b.Fingerprint(); same != samePayload {
			t.Fatalf("fingerprints equal = %v, payloads equal = %v:\n%+v\n%+v", same, samePayload, a, b)
		}
		if a.Fingerprint() != a.Fingerprint() {
			t.Fatal("the fingerprint of one command changes from call to call")
		}
		// Other operations never share a Commit's fingerprint, even with the same strings.
		r := Release{RequestID: "r1", Caller: caller1, CommitmentID: env1, Amount: amount1, Reason: ben1}
		bulk := BulkCommit{RequestID: "r1", Caller: caller1, EnvelopeID: env1,
			Items: []BulkItem{{Beneficiary: ben1, Project: proj1, Amount: amount1, Description: desc1}}}
		for name, fp := range map[string]string{"Release": r.Fingerprint(), "BulkCommit": bulk.Fingerprint()} {
			if fp == a.Fingerprint() || fp == b.Fingerprint() {
				t.Fatalf("a %s shares the fingerprint of a Commit: %+v", name, a)
			}
		}
	})
}
