package client

import (
	"context"
	"iter"
	"time"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// PaymentParams is a payment out of a commitment (see Client.CreatePayment).
type PaymentParams struct {
	Commitment string // resource name, "commitments/{id}"
	Amount     int64  // minor units, at most what remains to pay
	// EffectiveTime is when the payment took effect; zero means when it is recorded.
	EffectiveTime time.Time
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
}

// CreatePayment pays part of a commitment (an advance, an instalment, the balance): the money
// leaves the ledger for good and can no longer be released. It fails with ErrCommitmentNotFound,
// ErrPaymentExceedsRemaining (Error.Metadata["remaining_to_pay"]), ErrCommitmentClosed,
// ErrAmountOverflow, an effective time's refusal (ErrEffectiveTimeInFuture,
// ErrEffectiveTimeBeforeEnvelope, ErrEffectiveTimeBeforeCommitment) or ErrRequestIDReused.
func (c *Client) CreatePayment(ctx context.Context, p PaymentParams) (*pb.CreatePaymentResponse, error) {
	return c.commitments.CreatePayment(ctx, &pb.CreatePaymentRequest{
		Parent:        p.Commitment,
		Amount:        p.Amount,
		EffectiveTime: timestamp(p.EffectiveTime),
		RequestId:     requestID(p.RequestID),
	})
}

// CloseParams is the closing of a commitment (see Client.CloseCommitment).
type CloseParams struct {
	Commitment string // resource name, "commitments/{id}"
	Reason     string // why, kept in the journal
	// EffectiveTime is when the closing took effect; zero means when it is recorded.
	EffectiveTime time.Time
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
}

// CloseCommitment returns what remains to pay on a commitment to its envelope, in one journal
// entry, and closes it to payments and releases. It fails with ErrCommitmentNotFound,
// ErrCommitmentClosed, ErrAmountOverflow, an effective time's refusal (ErrEffectiveTimeInFuture,
// ErrEffectiveTimeBeforeEnvelope, ErrEffectiveTimeBeforeCommitment) or ErrRequestIDReused.
func (c *Client) CloseCommitment(ctx context.Context, p CloseParams) (*pb.CloseCommitmentResponse, error) {
	return c.commitments.CloseCommitment(ctx, &pb.CloseCommitmentRequest{
		Commitment:    p.Commitment,
		Reason:        p.Reason,
		EffectiveTime: timestamp(p.EffectiveTime),
		RequestId:     requestID(p.RequestID),
	})
}

// ListPayments yields a commitment's payments oldest first, fetching pages of pageSize (0: the
// server's default, 50) as the loop needs them. An error ends the sequence: it is yielded once,
// with a nil payment.
func (c *Client) ListPayments(ctx context.Context, commitment string, pageSize int32) iter.Seq2[*pb.Payment, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*pb.Payment, string, error) {
		resp, err := c.commitments.ListPayments(ctx, &pb.ListPaymentsRequest{Parent: commitment, PageSize: pageSize, PageToken: token})
		return resp.GetPayments(), resp.GetNextPageToken(), err
	})
}
