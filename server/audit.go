package server

import (
	"context"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// auditService implements pb.AuditServiceServer over a ledger.
type auditService struct {
	pb.UnimplementedAuditServiceServer
	ledger *ledger.Ledger
}

func (s *auditService) VerifyLedger(ctx context.Context, _ *pb.VerifyLedgerRequest) (*pb.VerifyLedgerResponse, error) {
	rep, err := s.ledger.Verify(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return verifyReportPB(rep), nil
}

// maxDiscrepancies bounds the discrepancies of one VerifyLedger answer, documented in the proto: a
// ledger broken everywhere would otherwise make an answer larger than any client accepts.
const maxDiscrepancies = 1000

func verifyReportPB(rep ledger.VerifyReport) *pb.VerifyLedgerResponse {
	found := rep.Discrepancies[:min(len(rep.Discrepancies), maxDiscrepancies)]
	out := &pb.VerifyLedgerResponse{
		EnvelopeCount:     int64(rep.Envelopes),
		CommitmentCount:   int64(rep.Commitments),
		JournalEntryCount: int64(rep.Entries),
		Discrepancies:     make([]*pb.Discrepancy, len(found)),
		DiscrepancyCount:  int64(len(rep.Discrepancies)),
	}
	for i, d := range found {
		out.Discrepancies[i] = &pb.Discrepancy{Invariant: int32(d.Invariant), BrokenInvariant: pb.Invariant(d.Invariant),
			Subject: d.Subject, Detail: d.Detail}
	}
	return out
}
