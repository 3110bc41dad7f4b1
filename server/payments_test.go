package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestPaymentLifeOverGRPC follows an award through the API as the README's recipe does: an
// advance, the balance, the closing, on every engine. It protects invariant 10 (paid money never
// returns: paid + released ≤ amount, a closed commitment takes nothing more), invariant 5 (a
// retried payment replays its first answer, with the same payment name) and invariant 4 (the
// envelope, the commitment and the report agree with the journal: VerifyLedger is clean).
func TestPaymentLifeOverGRPC(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		h := start(t, database)
		h.buildFund(t)
		ctx := context.Background()
		award, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-3", Beneficiary: "siren:216901231",
			Project: "guichet", Amount: 40_000_00, RequestId: "award", DecisionReference: "CONV-2021-118",
			BeneficiaryLegalName: "Commune de Lyon", BeneficiarySiret: "21690123100011", Purpose: "Guichet numérique"})
		if err != nil {
			t.Fatal(err)
		}
		c := award.GetCommitment()
		if c.GetBeneficiarySiret() != "21690123100011" || c.GetState() != pb.CommitmentState_COMMITMENT_STATE_OPEN ||
			c.GetRemainingToPay() != 40_000_00 {
			t.Fatalf("commitment = %v", c)
		}
		advanceReq := &pb.CreatePaymentRequest{Parent: c.GetName(), Amount: 12_000_00, RequestId: "advance"}
		advance, err := h.commitments.CreatePayment(ctx, advanceReq)
		if err != nil {
			t.Fatal(err)
		}
		if got := advance.GetCommitment(); got.GetPaid() != 12_000_00 || got.GetRemainingToPay() != 28_000_00 || got.GetRemaining() != 40_000_00 {
			t.Errorf("after the advance: commitment %v", got)
		}
		if env := advance.GetEnvelope(); env.GetPaid() != 12_000_00 || env.GetRemainingToPay() != 28_000_00 || env.GetCommitted() != 40_000_00 {
			t.Errorf("after the advance: envelope %v", env)
		}
		p := advance.GetPayment()
		if p.GetName() == "" || p.GetAmount() != 12_000_00 || !p.GetEffectiveTime().AsTime().Equal(p.GetCreateTime().AsTime()) ||
			p.GetJournalEntry() != advance.GetJournalEntry() {
			t.Errorf("payment = %v", p)
		}
		again, err := h.commitments.CreatePayment(ctx, advanceReq)
		if err != nil || !proto.Equal(again, advance) {
			t.Errorf("retry = %v, %v; want the first answer %v", again, err, advance)
		}

		// The balance on a lower final cost: 25,000 of the 28,000 left, then the closing.
		if _, err := h.commitments.CreatePayment(ctx, &pb.CreatePaymentRequest{Parent: c.GetName(), Amount: 25_000_00, RequestId: "balance"}); err != nil {
			t.Fatal(err)
		}
		_, err = h.commitments.CreatePayment(ctx, &pb.CreatePaymentRequest{Parent: c.GetName(), Amount: 3_000_01, RequestId: "too-much"})
		if code, info := errorInfo(t, err); code != codes.FailedPrecondition || info.GetReason() != "PAYMENT_EXCEEDS_REMAINING" ||
			info.GetMetadata()["remaining_to_pay"] != "300000" {
			t.Errorf("paying too much: %v %v", code, info)
		}
		closed, err := h.commitments.CloseCommitment(ctx, &pb.CloseCommitmentRequest{Commitment: c.GetName(), Reason: "project completed", RequestId: "close"})
		if err != nil {
			t.Fatal(err)
		}
		if got := closed.GetCommitment(); closed.GetReturned() != 3_000_00 || got.GetState() != pb.CommitmentState_COMMITMENT_STATE_CLOSED ||
			got.GetCloseTime() == nil || got.GetPaid() != 37_000_00 || got.GetRemainingToPay() != 0 || got.GetReleased() != 3_000_00 {
			t.Errorf("closing = %v", closed)
		}
		if env := closed.GetEnvelope(); env.GetCommitted() != 37_000_00 || env.GetPaid() != 37_000_00 || env.GetAvailable() != 34*million-37_000_00 {
			t.Errorf("after the closing: envelope %v", env)
		}
		_, err = h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: c.GetName(), Amount: 1, Reason: "late", RequestId: "late-release"})
		if code, info := errorInfo(t, err); code != codes.FailedPrecondition || info.GetReason() != "COMMITMENT_CLOSED" {
			t.Errorf("release after closing: %v %v", code, info)
		}

		list, err := h.commitments.ListPayments(ctx, &pb.ListPaymentsRequest{Parent: c.GetName(), PageSize: 5000})
		if err != nil || len(list.GetPayments()) != 2 || !proto.Equal(list.GetPayments()[0], p) {
			t.Errorf("ListPayments = %v, %v", list, err)
		}
		got, err := h.commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: c.GetName()})
		if err != nil || got.GetCommitment().GetPurpose() != "Guichet numérique" || got.GetCommitment().GetCloseReason() != "project completed" {
			t.Errorf("GetCommitment = %v, %v", got, err)
		}
		rep, err := pb.NewReportServiceClient(h.conn).GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund"})
		if err != nil {
			t.Fatal(err)
		}
		if total := rep.GetEnvelopes()[0].GetTotal(); total.GetCommitted() != 37_000_00 || total.GetPaid() != 37_000_00 || total.GetRemainingToPay() != 0 {
			t.Errorf("report total = %v", total)
		}
		kinds := map[pb.EntryKind]int{}
		entries, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{Commitment: c.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries.GetJournalEntries() {
			kinds[e.GetKind()]++
		}
		if kinds[pb.EntryKind_ENTRY_KIND_PAID] != 2 || kinds[pb.EntryKind_ENTRY_KIND_COMMITMENT_CLOSED] != 1 {
			t.Errorf("entry kinds = %v", kinds)
		}
		h.verify(t)
	})
}
