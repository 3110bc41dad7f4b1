package clienttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestPaymentMethods runs the typed methods of payments and closing against a live ledgerd, as
// the README's recipe does (advance → balance payment → close), and their typed errors.
// Invariant 10: paid money never returns (a release beyond what remains to pay is refused); a
// closed commitment takes nothing more. Invariant 4: the ledger verifies clean.
func TestPaymentMethods(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: 88 * million,
		GrantingBodyName: "Agence nationale de la cohésion des territoires", GrantingBodySIRET: "13001853500042",
		EffectiveTime: time.Date(2021, 1, 15, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	award, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/fund", Beneficiary: "siren:216901231", Project: "guichet",
		Amount: 50_000_00, BeneficiarySIRET: "21690123100011", Purpose: "Guichet numérique",
		EffectiveTime: time.Date(2021, 12, 15, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	name := award.GetCommitment().GetName()
	if award.GetCommitment().GetBeneficiarySiret() != "21690123100011" || award.GetEnvelope().GetGrantingBodySiret() != "13001853500042" {
		t.Errorf("publication fields not returned: %v", award)
	}
	// An advance dated before its award is refused: a payment may not predate its commitment.
	if _, err := c.CreatePayment(ctx, client.PaymentParams{Commitment: name, Amount: 15_000_00,
		EffectiveTime: time.Date(2021, 12, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, client.ErrEffectiveTimeBeforeCommitment) {
		t.Errorf("an advance before its award: %v", err)
	}
	if _, err := c.CreatePayment(ctx, client.PaymentParams{Commitment: name, Amount: 15_000_00,
		EffectiveTime: time.Date(2022, 2, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatalf("advance: %v", err)
	}
	_, err = c.Release(ctx, client.ReleaseParams{Commitment: name, Amount: 40_000_00, Reason: "too much"})
	var e *client.Error
	if !errors.Is(err, client.ErrReleaseExceedsUnpaid) || !errors.As(err, &e) || e.Metadata["remaining_to_pay"] != "3500000" {
		t.Errorf("release of what was paid: %v", err)
	}
	if _, err := c.CreatePayment(ctx, client.PaymentParams{Commitment: name, Amount: 35_000_01}); !errors.Is(err, client.ErrPaymentExceedsRemaining) {
		t.Errorf("paying too much: %v", err)
	}
	if _, err := c.CreatePayment(ctx, client.PaymentParams{Commitment: name, Amount: 30_000_00}); err != nil {
		t.Fatalf("balance: %v", err)
	}
	closed, err := c.CloseCommitment(ctx, client.CloseParams{Commitment: name, Reason: "completed for less"})
	if err != nil {
		t.Fatal(err)
	}
	if closed.GetReturned() != 5_000_00 || closed.GetCommitment().GetPaid() != 45_000_00 || closed.GetEnvelope().GetRemainingToPay() != 0 {
		t.Errorf("closing = %v", closed)
	}
	if _, err := c.CloseCommitment(ctx, client.CloseParams{Commitment: name, Reason: "again"}); !errors.Is(err, client.ErrCommitmentClosed) {
		t.Errorf("closing twice: %v", err)
	}
	payments := collect(t, c.ListPayments(ctx, name, 1))
	if len(payments) != 2 || payments[0].GetAmount() != 15_000_00 || payments[0].GetEffectiveTime() == nil {
		t.Errorf("ListPayments = %v", payments)
	}
	d.verify(t)
}
