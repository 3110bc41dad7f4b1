package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Payments and closing (issue 13 §2), on commitmentService.

func (s *commitmentService) CreatePayment(ctx context.Context, req *pb.CreatePaymentRequest) (*pb.CreatePaymentResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.CreatePayment(ctx, ledger.CreatePayment{
		RequestID:    req.GetRequestId(),
		Caller:       callerFrom(ctx),
		CommitmentID: id(req.GetParent(), "commitments"),
		Amount:       req.GetAmount(),
		Effective:    effective,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CreatePaymentResponse{Payment: paymentPB(&res.Payment), Commitment: commitmentPB(&res.Commitment),
		Envelope: envelopePB(&res.Envelope), JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func (s *commitmentService) ListPayments(ctx context.Context, req *pb.ListPaymentsRequest) (*pb.ListPaymentsResponse, error) {
	ps, next, err := s.ledger.ListPayments(ctx, id(req.GetParent(), "commitments"),
		ledger.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListPaymentsResponse{NextPageToken: next}
	for i := range ps {
		out.Payments = append(out.Payments, paymentPB(&ps[i]))
	}
	return out, nil
}

func (s *commitmentService) CloseCommitment(ctx context.Context, req *pb.CloseCommitmentRequest) (*pb.CloseCommitmentResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.CloseCommitment(ctx, ledger.CloseCommitment{
		RequestID:    req.GetRequestId(),
		Caller:       callerFrom(ctx),
		CommitmentID: id(req.GetCommitment(), "commitments"),
		Reason:       req.GetReason(),
		Effective:    effective,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CloseCommitmentResponse{Commitment: commitmentPB(&res.Commitment), Envelope: envelopePB(&res.Envelope),
		Returned: res.Returned, JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func paymentPB(p *ledger.Payment) *pb.Payment {
	out := &pb.Payment{
		Name:         ledger.PaymentName(p.CommitmentID, p.ID),
		Envelope:     ledger.EnvelopeName(p.EnvelopeID),
		CurrencyCode: p.Currency,
		Amount:       p.Amount,
		CreateTime:   timestamppb.New(p.CreatedAt),
		JournalEntry: ledger.EntryName(p.EntryID),
		Caller:       p.Caller,
	}
	if !p.EffectiveAt.IsZero() {
		out.EffectiveTime = timestamppb.New(p.EffectiveAt)
	}
	return out
}

// publicationOf is what an award (CommitRequest or BatchCommitItem) says for publication.
func publicationOf(req interface {
	GetDecisionReference() string
	GetBeneficiaryLegalName() string
	GetBeneficiarySiret() string
	GetBeneficiaryRna() string
	GetPurpose() string
}) ledger.Publication {
	return ledger.Publication{DecisionReference: req.GetDecisionReference(), BeneficiaryLegalName: req.GetBeneficiaryLegalName(),
		BeneficiarySIRET: req.GetBeneficiarySiret(), BeneficiaryRNA: req.GetBeneficiaryRna(), Purpose: req.GetPurpose()}
}

// paymentFieldsPB adds what payments, closing and publication give a commitment.
func paymentFieldsPB(c *ledger.Commitment, out *pb.Commitment) {
	out.Paid, out.RemainingToPay = c.Paid, c.RemainingToPay()
	out.State = pb.CommitmentState_COMMITMENT_STATE_OPEN
	if c.Closed() {
		out.State, out.CloseTime, out.CloseReason = pb.CommitmentState_COMMITMENT_STATE_CLOSED, timestamppb.New(c.ClosedAt), c.CloseReason
	}
	out.DecisionReference, out.BeneficiaryLegalName, out.BeneficiarySiret = c.DecisionReference, c.BeneficiaryLegalName, c.BeneficiarySIRET
	out.BeneficiaryRna, out.Purpose = c.BeneficiaryRNA, c.Purpose
}

// envelopePaymentFieldsPB adds what payments and publication give an envelope.
func envelopePaymentFieldsPB(e *ledger.Envelope, out *pb.Envelope) {
	out.Paid, out.RemainingToPay = e.Paid, e.RemainingToPay()
	out.GrantingBodyName, out.GrantingBodySiret = e.GrantingBodyName, e.GrantingBodySIRET
}
