package client

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Reasons of holds.
const (
	ReasonHoldNotFound       Reason = "HOLD_NOT_FOUND"
	ReasonHoldExpired        Reason = "HOLD_EXPIRED"
	ReasonHoldNotHeld        Reason = "HOLD_NOT_HELD"
	ReasonConfirmExceedsHeld Reason = "CONFIRM_EXCEEDS_HELD"
)

// Sentinel errors of holds, for errors.Is.
var (
	ErrHoldNotFound       error = &sentinel{reason: ReasonHoldNotFound}
	ErrHoldExpired        error = &sentinel{reason: ReasonHoldExpired}
	ErrHoldNotHeld        error = &sentinel{reason: ReasonHoldNotHeld}
	ErrConfirmExceedsHeld error = &sentinel{reason: ReasonConfirmExceedsHeld}
)

// CreateHoldParams is a hold of credit for an application under review (see Client.CreateHold).
type CreateHoldParams struct {
	Envelope    string // resource name, "envelopes/{id}"
	Beneficiary string // e.g. "siren:217500016"
	Project     string
	Amount      int64 // minor units of the envelope's currency
	Description string
	// EligibleCost and Population are the project's eligible cost and the beneficiary's
	// territory's population, for the funding rules; nil: not given.
	EligibleCost, Population *int64
	Territory                string
	// ExpireTime is when the hold expires; zero: never.
	ExpireTime time.Time
	// EffectiveTime is when the hold took effect; zero: when recorded.
	EffectiveTime time.Time
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// CreateHold holds an amount of an envelope. It fails with ErrInsufficientFunds,
// ErrEnvelopeNotFound, ErrInvalidArgument (an expire time not later than now), a funding rule's
// POLICY_VIOLATION, or ErrRequestIDReused.
func (c *Client) CreateHold(ctx context.Context, p CreateHoldParams) (*pb.CreateHoldResponse, error) {
	return c.commitments.CreateHold(ctx, &pb.CreateHoldRequest{
		Envelope:      p.Envelope,
		Beneficiary:   p.Beneficiary,
		Project:       p.Project,
		Amount:        p.Amount,
		Description:   p.Description,
		EligibleCost:  p.EligibleCost,
		Territory:     p.Territory,
		Population:    p.Population,
		ExpireTime:    timestamp(p.ExpireTime),
		EffectiveTime: timestamp(p.EffectiveTime),
		RequestId:     requestID(p.RequestID),
	})
}

// ConfirmHoldParams is the confirmation of a hold (see Client.ConfirmHold).
type ConfirmHoldParams struct {
	Hold string // resource name, "holds/{id}"
	// Amount is the amount to commit, at most the held amount; 0: the whole hold.
	Amount        int64
	EffectiveTime time.Time
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
}

// ConfirmHold turns a hold into a commitment of p.Amount; the rest returns to the envelope. It
// fails with ErrHoldNotFound, ErrHoldExpired, ErrHoldNotHeld, ErrConfirmExceedsHeld, a funding
// rule's POLICY_VIOLATION, or ErrRequestIDReused.
func (c *Client) ConfirmHold(ctx context.Context, p ConfirmHoldParams) (*pb.ConfirmHoldResponse, error) {
	return c.commitments.ConfirmHold(ctx, &pb.ConfirmHoldRequest{
		Hold:          p.Hold,
		Amount:        p.Amount,
		EffectiveTime: timestamp(p.EffectiveTime),
		RequestId:     requestID(p.RequestID),
	})
}

// CancelHoldParams is the cancellation of a hold (see Client.CancelHold).
type CancelHoldParams struct {
	Hold          string // resource name, "holds/{id}"
	Reason        string // why, kept in the journal
	EffectiveTime time.Time
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
}

// CancelHold returns a hold's whole amount to its envelope. It fails with ErrHoldNotFound,
// ErrHoldExpired, ErrHoldNotHeld or ErrRequestIDReused.
func (c *Client) CancelHold(ctx context.Context, p CancelHoldParams) (*pb.CancelHoldResponse, error) {
	return c.commitments.CancelHold(ctx, &pb.CancelHoldRequest{
		Hold:          p.Hold,
		Reason:        p.Reason,
		EffectiveTime: timestamp(p.EffectiveTime),
		RequestId:     requestID(p.RequestID),
	})
}

// GetHold returns the hold name ("holds/{id}"), or ErrHoldNotFound.
func (c *Client) GetHold(ctx context.Context, name string) (*pb.Hold, error) {
	resp, err := c.commitments.GetHold(ctx, &pb.GetHoldRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetHold(), nil
}

// ListHolds returns one page of holds of an envelope (empty: every envelope) in a state
// (HOLD_STATE_UNSPECIFIED: every state), oldest first, and the token of the next page ("" at the
// end).
func (c *Client) ListHolds(ctx context.Context, envelope string, state pb.HoldState, pageSize int32, pageToken string) ([]*pb.Hold, string, error) {
	resp, err := c.commitments.ListHolds(ctx, &pb.ListHoldsRequest{Envelope: envelope, State: state,
		PageSize: pageSize, PageToken: pageToken})
	if err != nil {
		return nil, "", err
	}
	return resp.GetHolds(), resp.GetNextPageToken(), nil
}
