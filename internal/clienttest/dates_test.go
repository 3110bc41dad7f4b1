package clienttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestEffectiveTimeOption: the typed methods carry EffectiveTime (zero: not sent), the server
// records it on the envelope, the commitment and the release, and the backdating rule's
// refusals come back as the client's sentinels (invariant 10 on dates: nothing dated in the
// future or before the envelope is recorded).
func TestEffectiveTimeOption(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	jan := time.Date(2021, 1, 15, 0, 0, 0, 0, time.UTC)
	fund, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: 88 * million, EffectiveTime: jan})
	if err != nil {
		t.Fatal(err)
	}
	if got := fund.GetEnvelope().GetEffectiveTime().AsTime(); !got.Equal(jan) {
		t.Fatalf("the fund took effect %v, want %v", got, jan)
	}
	march := time.Date(2021, 3, 11, 0, 0, 0, 0, time.UTC)
	award, err := c.Commit(ctx, client.CommitParams{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p",
		Amount: 1_000, EffectiveTime: march})
	if err != nil {
		t.Fatal(err)
	}
	if got := award.GetCommitment().GetEffectiveTime().AsTime(); !got.Equal(march) {
		t.Fatalf("the award took effect %v, want %v", got, march)
	}
	rel, err := c.Release(ctx, client.ReleaseParams{Commitment: award.GetCommitment().GetName(), Amount: 10, Reason: "r",
		EffectiveTime: march.Add(24 * time.Hour)})
	if err != nil || !rel.GetEffectiveTime().AsTime().Equal(march.Add(24*time.Hour)) {
		t.Fatalf("a dated release: %v, %v", rel, err)
	}
	_, err = c.Commit(ctx, client.CommitParams{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p2", Amount: 1,
		EffectiveTime: time.Now().Add(time.Hour)})
	if !errors.Is(err, client.ErrEffectiveTimeInFuture) {
		t.Errorf("an award in the future: %v, want ErrEffectiveTimeInFuture", err)
	}
	_, err = c.Commit(ctx, client.CommitParams{Envelope: "envelopes/fund", Beneficiary: "b", Project: "p3", Amount: 1,
		EffectiveTime: march.Add(-time.Hour)})
	if !errors.Is(err, client.ErrEffectiveTimeBeforeLatest) {
		t.Errorf("an award before the latest: %v, want ErrEffectiveTimeBeforeLatest", err)
	}
	_, err = c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/fund", Destination: "envelopes/other",
		Amount: 1, Reason: "r", EffectiveTime: jan})
	if err == nil {
		t.Errorf("a move to an envelope that does not exist was accepted")
	}
	d.verify(t)
}
