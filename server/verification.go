package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// This file serves the background verifications (AuditService.StartVerification and
// GetVerification, AIP-151); the ledger runs them (ledger/verification.go).

func (s *auditService) StartVerification(ctx context.Context, req *pb.StartVerificationRequest) (*pb.StartVerificationResponse, error) {
	v, err := s.ledger.StartVerification(ctx, callerFrom(ctx), req.GetRequestId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.StartVerificationResponse{Verification: verificationPB(&v)}, nil
}

func (s *auditService) GetVerification(ctx context.Context, req *pb.GetVerificationRequest) (*pb.GetVerificationResponse, error) {
	v, err := s.ledger.GetVerification(ctx, id(req.GetName(), "verifications"))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetVerificationResponse{Verification: verificationPB(&v)}, nil
}

var verificationStates = map[ledger.VerificationState]pb.Verification_State{
	ledger.VerificationRunning:   pb.Verification_STATE_RUNNING,
	ledger.VerificationSucceeded: pb.Verification_STATE_SUCCEEDED,
	ledger.VerificationFailed:    pb.Verification_STATE_FAILED,
	ledger.VerificationCancelled: pb.Verification_STATE_CANCELLED,
}

func verificationPB(v *ledger.Verification) *pb.Verification {
	out := &pb.Verification{
		Name:       ledger.VerificationName(v.ID),
		State:      verificationStates[v.State],
		CreateTime: timestamppb.New(v.CreatedAt),
		Caller:     v.Caller,
	}
	if !v.DoneAt.IsZero() {
		out.DoneTime = timestamppb.New(v.DoneAt)
	}
	if v.State == ledger.VerificationSucceeded {
		out.Result = verifyReportPB(v.Report)
	}
	if v.Err != nil {
		out.ErrorMessage = v.Err.Message
		if v.State == ledger.VerificationFailed {
			out.ErrorReason = pb.ErrorReason(pb.ErrorReason_value["ERROR_REASON_"+string(v.Err.Reason)])
		}
	}
	return out
}
