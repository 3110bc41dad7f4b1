package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestEveryOperationOnOneConnection runs every operation on a pool of a single connection. A
// transaction that needed a second connection from the pool while holding its first (a nested
// read, a statement prepared on the pool) would wait for itself: with one connection that
// deadlock is certain and shows as a timeout here, where with a larger pool it shows only under
// load, as every caller timing out at once. It has happened twice in this code base.
func TestEveryOperationOnOneConnection(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		l, err := Open(t.Context(), db.dsn, Config{MaxConns: 1, TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		ctx := t.Context()

		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-1", "fund", 400_000)
		mustCreateEnvelope(t, l, "axis-2", "fund", 400_000)
		if _, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: newRequestID(), Caller: testCaller,
			SourceID: "axis-2", DestinationID: "axis-1", Amount: 1_000, Reason: "rebalancing"}); err != nil {
			t.Fatalf("MoveAllocation: %v", err)
		}
		share := int64(7_500)
		if _, err := l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "fund",
			Call: "appel-2", Rules: Rules{MaxFundingShareBPS: &share}}); err != nil {
			t.Fatalf("SetRules: %v", err)
		}
		award := commitCmd("axis-1", "commune:29019", 7_500)
		award.EligibleCost = 10_000
		c, err := l.Commit(ctx, award)
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		// Twice: the second time is decided again for the project total read ahead.
		again := commitCmd("axis-1", "commune:29019", 100)
		again.Project, again.EligibleCost = award.Project, 10_000
		if _, err := l.Commit(ctx, again); !errors.Is(err, ErrPolicyViolation) {
			t.Fatalf("a second award over the share: %v, want POLICY_VIOLATION", err)
		}
		if _, err := l.Release(ctx, releaseCmd(c.Commitment.ID, 500)); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if _, err := l.BulkCommit(ctx, BulkCommit{RequestID: newRequestID(), Caller: "service:test", EnvelopeID: "axis-2",
			Items: []BulkItem{{Beneficiary: "b1", Project: "p1", Amount: 10, Policy: Policy{EligibleCost: 100}},
				{Beneficiary: "b2", Project: "p2", Amount: 20, Policy: Policy{EligibleCost: 100}}}}); err != nil {
			t.Fatalf("BulkCommit: %v", err)
		}
		if _, err := l.Report(ctx, "fund", time.Time{}); err != nil {
			t.Fatalf("Report: %v", err)
		}
		if _, _, err := l.ListEntries(ctx, EntryFilter{EnvelopeID: "axis-1"}, Page{}); err != nil {
			t.Fatalf("ListEntries: %v", err)
		}
		requireVerifyOK(t, l)
	})
}
