package server_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// tamper runs a statement on database behind the ledger's back, through a connection of its own.
func tamper(t *testing.T, database, query string, args ...any) {
	t.Helper()
	ctx := context.Background()
	if strings.HasPrefix(database, "postgres://") {
		conn, err := pgx.Connect(ctx, database)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, query, args...); err != nil {
			t.Fatalf("tampering with %q: %v", query, err)
		}
		return
	}
	db, err := sql.Open("sqlite", "file:"+database+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("tampering with %q: %v", query, err)
	}
}

// TestVerifyLedger protects the auditor's RPC: on a healthy ledger it reports what it checked and
// no discrepancy; after a balance is edited behind the ledger's back (invariant 4) it reports that
// discrepancy, with its invariant, subject and figures.
func TestVerifyLedger(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		h.buildFund(t)
		ctx := context.Background()
		if _, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
			Project: "guichet-numerique", Amount: 30_000_000, RequestId: "award-1"}); err != nil {
			t.Fatal(err)
		}
		audit := pb.NewAuditServiceClient(h.conn)
		resp, err := audit.VerifyLedger(ctx, &pb.VerifyLedgerRequest{})
		if err != nil {
			t.Fatalf("VerifyLedger: %v", err)
		}
		if resp.GetEnvelopeCount() != 4 || resp.GetCommitmentCount() != 1 || resp.GetJournalEntryCount() != 5 ||
			len(resp.GetDiscrepancies()) != 0 {
			t.Fatalf("healthy ledger: got %v, want 4 envelopes, 1 commitment, 5 entries, no discrepancy", resp)
		}

		tamper(t, database, "UPDATE envelopes SET committed = committed + 1 WHERE id = $1", "axis-3")
		resp, err = audit.VerifyLedger(ctx, &pb.VerifyLedgerRequest{})
		if err != nil {
			t.Fatalf("VerifyLedger: %v", err)
		}
		var found []string
		for _, d := range resp.GetDiscrepancies() {
			if d.GetInvariant() != 4 || d.GetSubject() != "envelopes/axis-3" || d.GetDetail() == "" {
				t.Errorf("unexpected discrepancy %v", d)
			}
			found = append(found, d.GetDetail())
		}
		want := []string{"stores 3399999999 available, the journal says 3400000000", "stores 1 committed, its commitments hold 0"}
		if strings.Join(found, "|") != strings.Join(want, "|") {
			t.Errorf("after tampering: discrepancies %q, want %q", found, want)
		}
	})
}
