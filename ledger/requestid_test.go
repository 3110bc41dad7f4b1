package ledger

import (
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/google/go-cmp/cmp"
)

// TestRequestIDsBelongToTheirCaller protects invariant 5 as scoped per principal: a request id
// names one operation of one caller. Two principals using the same request id each get an
// operation of their own (a Commit, a bulk call, an envelope creation), a principal's retry
// replays its own first outcome, another payload under its id is refused, and Verify counts
// each principal's request once.
func TestRequestIDsBelongToTheirCaller(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		rid := newRequestID()

		alice := Commit{RequestID: rid, Caller: "alice", EnvelopeID: "fund", Beneficiary: "siren:1", Project: "p1", Amount: 100}
		bob := Commit{RequestID: rid, Caller: "bob", EnvelopeID: "fund", Beneficiary: "siren:2", Project: "p2", Amount: 200}
		first, err := l.Commit(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		second, err := l.Commit(ctx, bob)
		if err != nil {
			t.Fatalf("another principal's first use of a used request id: %v, want its own award", err)
		}
		if first.Commitment.ID == second.Commitment.ID || second.Commitment.Amount != 200 {
			t.Errorf("bob got %+v, want an award of his own", second.Commitment)
		}
		again, err := l.Commit(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("alice's retry (-first +retry):\n%s", diff)
		}
		changed := alice
		changed.Amount++
		_, err = l.Commit(ctx, changed)
		requireError(t, err, ErrRequestIDReused)

		// Bulk calls record their items under "<request id> <index>": scoped too.
		bulk := func(caller string) BulkCommit {
			return BulkCommit{RequestID: "bulk-" + rid, Caller: caller, EnvelopeID: "fund",
				Items: []BulkItem{{Beneficiary: "siren:3", Project: "p3", Amount: 10}, {Beneficiary: "siren:4", Project: "p4", Amount: 20}}}
		}
		for _, caller := range []string{"alice", "bob"} {
			res, err := l.BulkCommit(ctx, bulk(caller))
			if err != nil || res.Accepted != 2 {
				t.Fatalf("%s's bulk call: %+v, %v; want 2 awards", caller, res, err)
			}
		}
		// Envelope creation goes through the request log outside group commit.
		for _, caller := range []string{"alice", "bob"} {
			_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "create-" + rid, Caller: caller,
				EnvelopeID: "line-" + caller, ParentID: "fund", Allocation: 1000})
			if err != nil {
				t.Fatalf("%s's creation: %v", caller, err)
			}
		}
		if env := mustGetEnvelope(t, l, "fund"); env.CommitmentCount != 6 || env.Committed != 360 || env.ChildrenAllocated != 2000 {
			t.Errorf("fund %+v, want 6 awards of 360 in all and 2 children of 1000", balancesOf(env))
		}
		requireVerifyOK(t, l)
	})
}

// TestLegacyRequestRowsReplay protects invariant 5 across the upgrade that scoped request ids
// per caller and made fingerprints canonical: a row recorded before it (keyed by the bare request
// id, with a legacy fingerprint) still replays its first outcome to its own caller's retry and
// posts nothing; another payload under that id is still refused, and so is another caller's use
// of it (a legacy row's caller is known only through its fingerprint).
func TestLegacyRequestRowsReplay(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		// A request decided before the upgrade: its award, and its row as the old code wrote it.
		old := Commit{RequestID: newRequestID(), Caller: "alice", EnvelopeID: "fund", Beneficiary: "siren:1", Project: "p1", Amount: 100,
			Policy: Policy{EligibleCost: 400, Territory: "insee:69123"}}
		first, err := l.Commit(ctx, Commit{RequestID: newRequestID(), Caller: old.Caller, EnvelopeID: old.EnvelopeID,
			Beneficiary: old.Beneficiary, Project: old.Project, Amount: old.Amount, Policy: old.Policy})
		if err != nil {
			t.Fatal(err)
		}
		outcome, err := core.Settle(&first, nil)
		if err != nil {
			t.Fatal(err)
		}
		legacy := core.RequestRow{Key: old.RequestID, Fingerprint: old.Fingerprint().Legacy, Outcome: outcome}
		if strings.HasPrefix(legacy.Fingerprint, "v2:") {
			t.Fatalf("legacy fingerprint %q carries the new version tag", legacy.Fingerprint)
		}
		if err := l.db.ReadWrite(ctx, func(q store.Querier) error {
			return store.InsertRequests(ctx, q, stamp().At, []core.RequestRow{legacy})
		}); err != nil {
			t.Fatal(err)
		}
		entries := entryCount(t, l)

		again, err := l.Commit(ctx, old)
		if err != nil {
			t.Fatalf("retry of a request recorded before the upgrade: %v", err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("retry of a legacy request (-first +retry):\n%s", diff)
		}
		changed := old
		changed.Policy.Population = 1000
		_, err = l.Commit(ctx, changed)
		requireError(t, err, ErrRequestIDReused)
		other := old
		other.Caller = "bob"
		_, err = l.Commit(ctx, other)
		requireError(t, err, ErrRequestIDReused)
		if got := entryCount(t, l); got != entries {
			t.Errorf("replays of a legacy request posted %d entries", got-entries)
		}
	})
}

// TestVerifyReportsBareRowsNotLookedUp protects invariant 5 through invariant 6's check: a row
// under a bare request id is looked up only where requests_bare_keys has its row (migration 19).
// A bare row written behind the ledger's back, without that row, would not be found by a retry,
// which would be decided again: Verify reports it, and no longer once the row is there.
func TestVerifyReportsBareRowsNotLookedUp(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		requireVerifyOK(t, l)
		if err := rawExec(ctx, l, `INSERT INTO requests (request_id, operation, fingerprint, outcome, created_at)
			VALUES ('r-bare', 'NOT_FOUND', 'f', '{"refusal":{"reason":"NOT_FOUND","message":"m"}}', 1)`); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Discrepancies) != 1 || rep.Discrepancies[0].Invariant != 6 || rep.Discrepancies[0].Subject != "request r-bare" {
			t.Fatalf("Verify = %v; want one discrepancy of invariant 6 on request r-bare", rep.Discrepancies)
		}
		if err := rawExec(ctx, l, "INSERT INTO requests_bare_keys (id) VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		requireVerifyOK(t, l)
	})
}

// TestBulkFingerprintCollision protects invariant 5 ("the same id with another payload is
// refused"): two different bulk calls that the legacy fingerprint could not tell apart (the
// first call's first item carries policy fields, which the legacy encoding appended only when
// given; the second call's second item spells them) are told apart: the second, under the first
// one's request id, is refused with REQUEST_ID_REUSED instead of receiving the first outcome.
func TestBulkFingerprintCollision(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "axis-1", "", 1_000_000)
		territory := strings.Repeat("t", 33)   // length prefix 33 = '!'
		const population = 17                  // zigzag varint 34 = '"'
		beneficiary := strings.Repeat("b", 35) // length prefix 35 = '#'
		project := strings.Repeat("p", 36)     // length prefix 36 = '$'
		spelled := "!" + territory + `"` + "#" + beneficiary + "$" + project
		const eligibleCost = 54 // zigzag varint 108 = the length of spelled
		rid := newRequestID()
		one := BulkCommit{RequestID: rid, Caller: "svc", EnvelopeID: "axis-1", Items: []BulkItem{
			{Beneficiary: "siren:1", Project: "first", Amount: 100, Description: "d",
				Policy: Policy{EligibleCost: eligibleCost, Territory: territory, Population: population}},
			{Beneficiary: beneficiary, Project: project, Amount: 200, Description: "e"}}}
		other := BulkCommit{RequestID: rid, Caller: "svc", EnvelopeID: "axis-1", Items: []BulkItem{
			{Beneficiary: "siren:1", Project: "first", Amount: 100, Description: "d"},
			{Beneficiary: "policy", Project: spelled, Amount: 200, Description: "e"}}}
		if _, err := l.BulkCommit(ctx, one); err != nil {
			t.Fatal(err)
		}
		res, err := l.BulkCommit(ctx, other)
		if err == nil {
			t.Fatalf("another bulk call under a used request id got the first outcome: %+v", res)
		}
		requireError(t, err, ErrRequestIDReused)
		if env := mustGetEnvelope(t, l, "axis-1"); env.CommitmentCount != 2 {
			t.Errorf("%d awards, want the first call's 2", env.CommitmentCount)
		}
		requireVerifyOK(t, l)
	})
}
