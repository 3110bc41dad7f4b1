package clienttest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestBatchCommit checks the typed bulk call: per-item outcomes, the same answer for the same
// request id (invariant 5), and an all-or-nothing refusal that names the item and posts nothing.
func TestBatchCommit(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-3", Allocation: 250}); err != nil {
		t.Fatal(err)
	}
	items := []*pb.BatchCommitItem{
		{Beneficiary: "commune:29019", Project: "ecole", Amount: 100},
		{Beneficiary: "commune:35238", Project: "portail", Amount: 100},
		{Beneficiary: "commune:56121", Project: "wifi", Amount: 100},
	}
	p := client.BatchCommitParams{Envelope: "envelopes/axis-3", Items: items, RequestID: client.NewRequestID()}
	first, err := c.BatchCommit(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetAcceptedCount() != 2 || first.GetResults()[2].GetRefusal().GetReason() != string(client.ReasonInsufficientFunds) {
		t.Errorf("BatchCommit = %v; want 2 accepted and the third refused for funds", first)
	}
	again, err := c.BatchCommit(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again, protocmp.Transform()); diff != "" {
		t.Errorf("the same request id got another answer (-first +again):\n%s", diff)
	}

	_, err = c.BatchCommit(ctx, client.BatchCommitParams{Envelope: "envelopes/axis-3", Items: items[:1], AllOrNothing: true})
	var e *client.Error
	if !errors.Is(err, client.ErrInsufficientFunds) || !errors.As(err, &e) || e.Metadata["item"] != "0" {
		t.Fatalf("all-or-nothing over the budget: %v, want INSUFFICIENT_FUNDS naming item 0", err)
	}
	env, err := c.GetEnvelope(ctx, "envelopes/axis-3")
	if err != nil {
		t.Fatal(err)
	}
	if env.GetCommitmentCount() != 2 || env.GetAvailable() != 50 {
		t.Errorf("envelope %v after a refused all-or-nothing call; want the 2 first awards only", env)
	}
}
