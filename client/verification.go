package client

import (
	"context"
	"time"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Audit is the generated client of AuditService (see Envelopes).
func (c *Client) Audit() pb.AuditServiceClient { return c.audit }

// StartVerification starts a verification of the whole ledger in the background (AIP-151) and
// returns it, running; poll it with GetVerification or WaitVerification. id, its request id,
// makes a retry return the verification the first call started; empty, a fresh one is made, so
// that the client's own retries of this call start one verification. It fails with
// ErrVerificationRunning while another runs on the server (its name is the error's metadata
// "verification").
func (c *Client) StartVerification(ctx context.Context, id string) (*pb.Verification, error) {
	res, err := c.audit.StartVerification(ctx, &pb.StartVerificationRequest{RequestId: requestID(id)})
	if err != nil {
		return nil, err
	}
	return res.GetVerification(), nil
}

// GetVerification returns a verification ("verifications/{id}") as it is now. It fails with
// ErrVerificationNotFound when the server does not know it: verifications live in the memory of
// the server process that runs them, and a restart forgets them.
func (c *Client) GetVerification(ctx context.Context, name string) (*pb.Verification, error) {
	res, err := c.audit.GetVerification(ctx, &pb.GetVerificationRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return res.GetVerification(), nil
}

// WaitVerification polls a verification every interval (a second when 0) until it is no longer
// running, and returns it; its Result holds what it found when its state is STATE_SUCCEEDED.
func (c *Client) WaitVerification(ctx context.Context, name string, interval time.Duration) (*pb.Verification, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		v, err := c.GetVerification(ctx, name)
		if err != nil || v.GetState() != pb.Verification_STATE_RUNNING {
			return v, err
		}
		select {
		case <-ctx.Done():
			return nil, contextError(ctx)
		case <-t.C:
		}
	}
}
