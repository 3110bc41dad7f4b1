package client

import (
	"context"
	"time"

	"github.com/google/uuid"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// NewRequestID returns a fresh request id, a UUIDv7. Make one yourself and keep it (with the
// request) when the outcome must be recoverable after your own process restarts: sending the same
// request with the same id later returns the first outcome.
func NewRequestID() string { return uuid.Must(uuid.NewV7()).String() }

// requestID is id, or a new one when id is empty. It is called once per logical call, before the
// first attempt: every retry then carries the same id.
func requestID(id string) string {
	if id != "" {
		return id
	}
	return NewRequestID()
}

// CommitParams is an award (see Client.Commit).
type CommitParams struct {
	Envelope    string // resource name, "envelopes/{id}"
	Beneficiary string // e.g. "siren:217500016"
	Project     string
	Amount      int64 // minor units of the envelope's currency
	Description string
	// Publication fields, all optional (the SCDL "subventions" data of the award): the decision
	// or agreement's reference, the beneficiary's legal name, SIRET (14 digits, key checked) and
	// RNA number ("W" and 9 digits), and the purpose (at most 256 characters).
	DecisionReference    string
	BeneficiaryLegalName string
	BeneficiarySIRET     string
	BeneficiaryRNA       string
	Purpose              string
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
	// EffectiveTime is when the act took effect (the decision, the agreement); zero: when the
	// ledger records it. It may not be in the future nor before the envelope (see
	// ErrEffectiveTimeInFuture and the others).
	EffectiveTime time.Time
}

// Commit awards an amount from an envelope to one project of one beneficiary. It fails with
// ErrInsufficientFunds when the envelope's available amount does not cover it (read the figures
// with errors.As and Error.Available), ErrEnvelopeNotFound, or ErrRequestIDReused.
func (c *Client) Commit(ctx context.Context, p CommitParams) (*pb.CommitResponse, error) {
	return c.commitments.Commit(ctx, &pb.CommitRequest{
		Envelope:      p.Envelope,
		Beneficiary:   p.Beneficiary,
		Project:       p.Project,
		Amount:        p.Amount,
		Description:   p.Description,
		RequestId:     requestID(p.RequestID),
		EffectiveTime: timestamp(p.EffectiveTime),

		DecisionReference:    p.DecisionReference,
		BeneficiaryLegalName: p.BeneficiaryLegalName,
		BeneficiarySiret:     p.BeneficiarySIRET,
		BeneficiaryRna:       p.BeneficiaryRNA,
		Purpose:              p.Purpose,
	})
}

// BatchCommitParams is a committee's list of awards on one envelope (see Client.BatchCommit).
type BatchCommitParams struct {
	Envelope string // resource name, "envelopes/{id}"
	Items    []*pb.BatchCommitItem
	// AllOrNothing makes the call fail whole, with the first item's refusal, if any item is refused.
	AllOrNothing bool
	// RequestID is the idempotency key of the whole call; empty makes a new UUIDv7 for this call
	// and its retries.
	RequestID string
	// EffectiveTime is when the act took effect (the decision, the agreement); zero: when the
	// ledger records it. It may not be in the future nor before the envelope (see
	// ErrEffectiveTimeInFuture and the others).
	EffectiveTime time.Time
}

// BatchCommit makes up to 10,000 awards on one envelope in one call. Each item is accepted or
// refused on its own (its refusal is in the response), unless AllOrNothing is set: then the call
// fails with the first item's refusal (Error.Metadata["item"] names it) and no award is made.
func (c *Client) BatchCommit(ctx context.Context, p BatchCommitParams) (*pb.BatchCommitResponse, error) {
	return c.commitments.BatchCommit(ctx, &pb.BatchCommitRequest{
		Envelope:      p.Envelope,
		Items:         p.Items,
		AllOrNothing:  p.AllOrNothing,
		RequestId:     requestID(p.RequestID),
		EffectiveTime: timestamp(p.EffectiveTime),
	})
}

// ReleaseParams is a release of part or all of a commitment (see Client.Release).
type ReleaseParams struct {
	Commitment string // resource name, "commitments/{id}"
	Amount     int64  // minor units, at most the commitment's remaining amount
	Reason     string // why, kept in the journal
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
	// EffectiveTime is when the act took effect (the decision, the agreement); zero: when the
	// ledger records it. It may not be in the future nor before the envelope (see
	// ErrEffectiveTimeInFuture and the others).
	EffectiveTime time.Time
}

// Release returns part or all of a commitment's remaining amount to its envelope. It fails with
// ErrCommitmentNotFound, ErrReleaseExceedsRemaining (see Error.Remaining), ErrReleaseExceedsUnpaid
// (what was paid cannot be released), ErrCommitmentClosed, ErrAmountOverflow, an effective time's
// refusal (ErrEffectiveTimeInFuture, ErrEffectiveTimeBeforeEnvelope,
// ErrEffectiveTimeBeforeCommitment) or ErrRequestIDReused.
func (c *Client) Release(ctx context.Context, p ReleaseParams) (*pb.ReleaseResponse, error) {
	return c.commitments.Release(ctx, &pb.ReleaseRequest{
		Commitment:    p.Commitment,
		Amount:        p.Amount,
		Reason:        p.Reason,
		RequestId:     requestID(p.RequestID),
		EffectiveTime: timestamp(p.EffectiveTime),
	})
}

// CreateEnvelopeParams is a new envelope (see Client.CreateEnvelope).
type CreateEnvelopeParams struct {
	EnvelopeID   string // becomes "envelopes/{EnvelopeID}"
	Parent       string // resource name of the parent; empty for a root envelope
	DisplayName  string
	Allocation   int64  // minor units; taken from the parent's available amount
	CurrencyCode string // ISO 4217; empty: "EUR" for a root, the parent's for a child
	// GrantingBodyName and GrantingBodySIRET name the body granting a root envelope's money
	// (publication); a child envelope gives neither.
	GrantingBodyName  string
	GrantingBodySIRET string
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
	// EffectiveTime is when the act took effect (the decision, the agreement); zero: when the
	// ledger records it. It may not be in the future nor before the envelope (see
	// ErrEffectiveTimeInFuture and the others).
	EffectiveTime time.Time
}

// CreateEnvelope creates a root envelope funded from outside the ledger, or a child envelope whose
// allocation is taken from its parent. It fails with ErrEnvelopeAlreadyExists,
// ErrEnvelopeNotFound (the parent), ErrInsufficientFunds (the parent), ErrCurrencyMismatch or
// ErrRequestIDReused.
func (c *Client) CreateEnvelope(ctx context.Context, p CreateEnvelopeParams) (*pb.CreateEnvelopeResponse, error) {
	return c.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{
		EnvelopeId:    p.EnvelopeID,
		Parent:        p.Parent,
		DisplayName:   p.DisplayName,
		Allocation:    p.Allocation,
		CurrencyCode:  p.CurrencyCode,
		RequestId:     requestID(p.RequestID),
		EffectiveTime: timestamp(p.EffectiveTime),

		GrantingBodyName:  p.GrantingBodyName,
		GrantingBodySiret: p.GrantingBodySIRET,
	})
}

// MoveAllocationParams is a move of allocation between related envelopes (see
// Client.MoveAllocation).
type MoveAllocationParams struct {
	Source      string // resource name of the envelope giving allocation
	Destination string // resource name of the envelope receiving it
	Amount      int64  // minor units; must be available in Source
	Reason      string // why, kept in the journal
	// RequestID is the idempotency key; empty makes a new UUIDv7 for this call and its retries.
	RequestID string
	// EffectiveTime is when the act took effect (the decision, the agreement); zero: when the
	// ledger records it. It may not be in the future nor before the envelope (see
	// ErrEffectiveTimeInFuture and the others).
	EffectiveTime time.Time
	// ETag and DestinationETag, when set, are the envelopes' etags (pb.Envelope's Etag) from the
	// last read: the move happens only if neither changed since (AIP-154), else ErrETagMismatch.
	ETag, DestinationETag string
}

// MoveAllocation moves allocation between a parent and its child (either way) or between two
// siblings. It fails with ErrEnvelopeNotFound, ErrETagMismatch, ErrInsufficientFunds,
// ErrEnvelopesNotRelated, ErrCurrencyMismatch or ErrRequestIDReused.
func (c *Client) MoveAllocation(ctx context.Context, p MoveAllocationParams) (*pb.MoveAllocationResponse, error) {
	return c.envelopes.MoveAllocation(ctx, &pb.MoveAllocationRequest{
		Source:          p.Source,
		Destination:     p.Destination,
		Amount:          p.Amount,
		Reason:          p.Reason,
		RequestId:       requestID(p.RequestID),
		EffectiveTime:   timestamp(p.EffectiveTime),
		Etag:            p.ETag,
		DestinationEtag: p.DestinationETag,
	})
}

// GetEnvelope returns the envelope name ("envelopes/{id}") with its current balances, or
// ErrEnvelopeNotFound.
func (c *Client) GetEnvelope(ctx context.Context, name string) (*pb.Envelope, error) {
	resp, err := c.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetEnvelope(), nil
}

// GetCommitment returns the commitment name ("commitments/{id}"), or ErrCommitmentNotFound.
func (c *Client) GetCommitment(ctx context.Context, name string) (*pb.Commitment, error) {
	resp, err := c.commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetCommitment(), nil
}
