package clienttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestMoveWithETag: through the Go client, a move carrying the etag of the last read is made
// when nothing changed, and refused with ErrETagMismatch (once, not retried) when the source
// changed since (AIP-154).
func TestMoveWithETag(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	for _, p := range []client.CreateEnvelopeParams{{EnvelopeID: "fund", Allocation: 10 * million},
		{EnvelopeID: "axis-1", Parent: "envelopes/fund", Allocation: million}} {
		if _, err := c.CreateEnvelope(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	fund, err := c.GetEnvelope(ctx, "envelopes/fund")
	if err != nil || fund.GetEtag() == "" {
		t.Fatalf("GetEnvelope: %v, etag %q", err, fund.GetEtag())
	}
	moved, err := c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/fund", Destination: "envelopes/axis-1",
		Amount: 1, Reason: "r", ETag: fund.GetEtag()})
	if err != nil {
		t.Fatalf("a move with the current etag: %v", err)
	}
	if moved.GetSource().GetEtag() == fund.GetEtag() {
		t.Fatal("the move left the source's etag as it was")
	}
	_, err = c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/fund", Destination: "envelopes/axis-1",
		Amount: 1, Reason: "r", ETag: fund.GetEtag()})
	var ce *client.Error
	if !errors.Is(err, client.ErrETagMismatch) || !errors.As(err, &ce) || ce.Metadata["envelope"] != "envelopes/fund" {
		t.Fatalf("a move with the etag of before the last move: %v, want ErrETagMismatch on envelopes/fund", err)
	}
}

// TestBackgroundVerification: StartVerification runs VerifyLedger's verification in the
// background (AIP-151); polled to its end, it holds what VerifyLedger answers.
func TestBackgroundVerification(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: million}); err != nil {
		t.Fatal(err)
	}
	v, err := c.StartVerification(ctx, "verify-1")
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitVerification(ctx, v.GetName(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	sync, err := c.Audit().VerifyLedger(ctx, &pb.VerifyLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if done.GetState() != pb.Verification_STATE_SUCCEEDED || done.GetDoneTime() == nil ||
		done.GetResult().GetEnvelopeCount() != sync.GetEnvelopeCount() || done.GetResult().GetJournalEntryCount() != sync.GetJournalEntryCount() ||
		done.GetResult().GetDiscrepancyCount() != 0 {
		t.Fatalf("verification %v; VerifyLedger %v", done, sync)
	}
	if _, err := c.GetVerification(ctx, "verifications/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"); !errors.Is(err, client.ErrVerificationNotFound) {
		t.Fatalf("an unknown verification: %v", err)
	}
}

// TestVerificationForgottenByRestart: verifications live in the memory of the server process
// (documented in the proto and the README); after a restart on the same database, the server
// answers GetVerification with NOT_FOUND, reason VERIFICATION_NOT_FOUND, naming it.
func TestVerificationForgottenByRestart(t *testing.T) {
	t.Parallel()
	database := testdb.SQLite(t)
	first := startLedgerd(t, database, "127.0.0.1:0")
	c := dial(t, first.addr)
	ctx := context.Background()
	v, err := c.StartVerification(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitVerification(ctx, v.GetName(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	first.stop()
	second := startLedgerd(t, database, "127.0.0.1:0")
	_, err = dial(t, second.addr).GetVerification(ctx, v.GetName())
	var ce *client.Error
	if !errors.Is(err, client.ErrVerificationNotFound) || !errors.As(err, &ce) || ce.Metadata["verification"] != v.GetName() {
		t.Fatalf("a verification of before the restart: %v, want VERIFICATION_NOT_FOUND naming %s", err, v.GetName())
	}
}
