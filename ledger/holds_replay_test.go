package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestHoldAnswersReplayUnbatchedBackdatedRuled protects invariant 5 for the holds' answers kept
// by reference (migration 29), in the cases TestEveryAnswerReplaysAfterRestartAndCopy does not
// take: batching on and off (mutate's path records typed outcomes too); a hold on a
// child envelope with a funding-share rule, an eligible cost given as 0 and a population given,
// an expire time and a backdated effective time; a partial confirmation backdated (commitment
// effective != created, envelope's latest effective time from the record); the commitment then
// released, paid and closed; retried in the same process and after reopening.
func TestHoldAnswersReplayUnbatchedBackdatedRuled(t *testing.T) {
	t.Parallel()
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			forEachDatabase(t, func(t *testing.T, db testDB) {
				ctx := t.Context()
				clock := newTestClock()
				cfg := Config{TxTimeout: testdb.TxTimeout, Clock: clock.Now, HoldSweepInterval: -1, DisableBatching: !batching}
				l, err := Open(ctx, db.dsn, cfg)
				if err != nil {
					t.Fatal(err)
				}
				start := clock.Now().Add(-24 * time.Hour)
				if _, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "root",
					Allocation: 10_000_000, Effective: start}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "kid",
					ParentID: "root", Allocation: 1_000_000, Effective: start}); err != nil {
					t.Fatal(err)
				}
				share := int64(8000)
				if _, err := l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "kid",
					Call: "c1", EffectiveTime: start, Rules: Rules{MaxFundingShareBPS: &share}}); err != nil {
					t.Fatal(err)
				}
				clock.Advance(time.Minute)
				var calls []replayCall
				answers := map[string]string{}
				do := func(c replayCall) any {
					t.Helper()
					res, err := c.send(ctx, l)
					if err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
					answers[c.name] = answerBytes(t, res, err)
					calls = append(calls, c)
					clock.Advance(time.Minute)
					return res
				}
				h := holdCmd("kid", "siren:r1", 40_000)
				h.Policy = Policy{EligibleCost: 60_000, EligibleCostGiven: true, Territory: "insee:1", Population: 0, PopulationGiven: true}
				h.ExpireTime = clock.Now().Add(2 * time.Hour)
				h.Effective = clock.Now().Add(-30 * time.Second)
				held := do(call("CreateHold", (*Ledger).CreateHold, h)).(CreateHoldResult)
				confirmed := do(call("ConfirmHold backdated part", (*Ledger).ConfirmHold, ConfirmHold{RequestID: newRequestID(),
					Caller: testCaller, HoldID: held.Hold.ID, Amount: 25_000, Effective: clock.Now().Add(-20 * time.Second)})).(ConfirmHoldResult)
				zero := holdCmd("root", "siren:r2", 1_000)
				zero.Policy = Policy{EligibleCostGiven: true}
				do(call("CreateHold cost 0 given", (*Ledger).CreateHold, zero))
				exp := holdCmd("root", "siren:r3", 2_000)
				exp.ExpireTime = clock.Now().Add(5 * time.Minute)
				do(call("CreateHold to expire", (*Ledger).CreateHold, exp))
				clock.Advance(time.Hour)
				if n, err := l.SweepExpiredHolds(ctx); err != nil || n != 1 {
					t.Fatalf("sweep: %d, %v", n, err)
				}
				if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: confirmed.Commitment.ID,
					Amount: 1_000, Reason: "r"}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.CreatePayment(ctx, CreatePayment{RequestID: newRequestID(), Caller: testCaller,
					CommitmentID: confirmed.Commitment.ID, Amount: 2_000}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.CloseCommitment(ctx, CloseCommitment{RequestID: newRequestID(), Caller: testCaller,
					CommitmentID: confirmed.Commitment.ID, Reason: "done"}); err != nil {
					t.Fatal(err)
				}
				var packed int
				if err := l.db.Reader().QueryRow(ctx, "SELECT count(*) FROM requests WHERE packed IS NOT NULL AND (substr(packed, 1, 1) = $1 OR substr(packed, 1, 1) = $2)",
					[]byte{4}, []byte{5}).Scan(&packed); err != nil {
					t.Fatal(err)
				}
				if packed != 4 {
					t.Errorf("%d hold records by reference, want 4", packed)
				}
				replay := func(what string, l *Ledger) {
					for _, c := range calls {
						res, err := c.send(ctx, l)
						if got := answerBytes(t, res, err); got != answers[c.name] {
							t.Errorf("%s, %s:\n got %s\nwant %s", what, c.name, got, answers[c.name])
						}
					}
				}
				replay("same process", l)
				l.Close()
				re, err := Open(ctx, db.dsn, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer re.Close()
				replay("reopened", re)
			})
		})
	}
}
