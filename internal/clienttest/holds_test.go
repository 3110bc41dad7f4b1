package clienttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestHoldMethods: the Go client's typed methods of holds against a real ledgerd on every engine:
// a hold confirmed at a lower amount (the rest back in available at once), a cancelled one, the
// refusals matched with errors.Is, and a retry of the same call replaying its first outcome
// (invariants 5 and 10).
func TestHoldMethods(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		d := startLedgerd(t, database, "127.0.0.1:0")
		c := dial(t, d.addr)
		ctx := context.Background()
		if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "axis-3", Allocation: 34 * million}); err != nil {
			t.Fatal(err)
		}
		params := client.CreateHoldParams{Envelope: "envelopes/axis-3", Beneficiary: "commune:29019", Project: "ecole-numerique",
			Amount: 2_500_000, ExpireTime: time.Now().Add(24 * time.Hour), RequestID: "file-0042"}
		held, err := c.CreateHold(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := c.CreateHold(ctx, params); err != nil || again.GetHold().GetName() != held.GetHold().GetName() {
			t.Fatalf("CreateHold replayed: %v, %v; want %s", again.GetHold(), err, held.GetHold().GetName())
		}
		if got := held.GetEnvelope(); got.GetHeld() != 2_500_000 || got.GetAvailable() != 34*million-2_500_000 {
			t.Errorf("envelope after the hold: %v", got)
		}
		_, err = c.ConfirmHold(ctx, client.ConfirmHoldParams{Hold: held.GetHold().GetName(), Amount: 2_500_001})
		var e *client.Error
		if !errors.Is(err, client.ErrConfirmExceedsHeld) || !errors.As(err, &e) {
			t.Fatalf("ConfirmHold above the held amount: %v, want CONFIRM_EXCEEDS_HELD", err)
		}
		if v, ok := e.Int64("held"); !ok || v != 2_500_000 {
			t.Errorf("CONFIRM_EXCEEDS_HELD metadata held = %d, %v", v, ok)
		}
		confirmed, err := c.ConfirmHold(ctx, client.ConfirmHoldParams{Hold: held.GetHold().GetName(), Amount: 1_950_000})
		if err != nil {
			t.Fatal(err)
		}
		if env := confirmed.GetEnvelope(); env.GetHeld() != 0 || env.GetCommitted() != 1_950_000 || env.GetAvailable() != 34*million-1_950_000 {
			t.Errorf("envelope after the confirmation: %v", env)
		}
		if _, err := c.CancelHold(ctx, client.CancelHoldParams{Hold: held.GetHold().GetName(), Reason: "late"}); !errors.Is(err, client.ErrHoldNotHeld) {
			t.Errorf("CancelHold of a confirmed hold: %v, want HOLD_NOT_HELD", err)
		}
		other, err := c.CreateHold(ctx, client.CreateHoldParams{Envelope: "envelopes/axis-3", Beneficiary: "b", Project: "p", Amount: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CancelHold(ctx, client.CancelHoldParams{Hold: other.GetHold().GetName(), Reason: "withdrawn"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetHold(ctx, "holds/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"); !errors.Is(err, client.ErrHoldNotFound) {
			t.Errorf("GetHold of an unknown hold: %v, want HOLD_NOT_FOUND", err)
		}
		holds, next, err := c.ListHolds(ctx, "envelopes/axis-3", pb.HoldState_HOLD_STATE_CANCELLED, 10, "")
		if err != nil || next != "" || len(holds) != 1 || holds[0].GetCancelReason() != "withdrawn" {
			t.Errorf("ListHolds(CANCELLED) = %v, %q, %v", holds, next, err)
		}
		d.verify(t)
	})
}
