package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Etags (AIP-154): a request that carries the etag of its last read is decided only if what the
// etag guards has not changed since; otherwise it is refused with ETAG_MISMATCH and changes
// nothing, not even the request log.

func rulesETag(t *testing.T, l *Ledger, id string) string {
	t.Helper()
	r, err := l.GetRules(t.Context(), id, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return r.ETag
}

// TestEnvelopeETagFollowsEveryChange: the envelope's etag changes with every change of the
// envelope (an award, a release, a move, a child's creation, a rule change on an ancestor) and
// with nothing else (a refusal, a replay, a read); the etag a mutation returns is the one a later
// read gives.
func TestEnvelopeETagFollowsEveryChange(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-1", "fund", 400_000)
		mustCreateEnvelope(t, l, "axis-2", "fund", 400_000)
		seen := map[string]string{}
		etag := func(step string) string {
			t.Helper()
			e := EnvelopeETag(mustGetEnvelope(t, l, "axis-1"))
			if prior, ok := seen[e]; ok {
				t.Fatalf("after %s, axis-1 has the etag it had after %s", step, prior)
			}
			seen[e] = step
			return e
		}
		same := func(step, want string) {
			t.Helper()
			if got := EnvelopeETag(mustGetEnvelope(t, l, "axis-1")); got != want {
				t.Fatalf("%s changed axis-1's etag", step)
			}
		}
		e := etag("creation")
		com, err := l.Commit(ctx, Commit{RequestID: "award-1", Caller: testCaller, EnvelopeID: "axis-1", Beneficiary: "b", Project: "p", Amount: 1_000})
		if err != nil {
			t.Fatal(err)
		}
		if got := EnvelopeETag(com.Envelope); got != etag("an award") {
			t.Fatalf("the award's envelope has etag %s, a read gives another", got)
		}
		e = EnvelopeETag(com.Envelope)
		if _, err := l.Commit(ctx, Commit{RequestID: "award-2", Caller: testCaller, EnvelopeID: "axis-1", Beneficiary: "b", Project: "p", Amount: 10_000_000}); !errors.Is(err, ErrInsufficientFunds) {
			t.Fatalf("award above the funds: %v", err)
		}
		same("a refused award", e)
		if _, err := l.Commit(ctx, Commit{RequestID: "award-1", Caller: testCaller, EnvelopeID: "axis-1", Beneficiary: "b", Project: "p", Amount: 1_000}); err != nil {
			t.Fatal(err)
		}
		same("a replayed award", e)
		if _, err := l.Release(ctx, Release{RequestID: "release-1", Caller: testCaller, CommitmentID: com.Commitment.ID, Amount: 1, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
		e = etag("a release")
		mv, err := l.MoveAllocation(ctx, MoveAllocation{RequestID: "move-1", Caller: testCaller, SourceID: "axis-2", DestinationID: "axis-1", Amount: 5, Reason: "r", DestinationETag: e})
		if err != nil {
			t.Fatal(err)
		}
		if got := EnvelopeETag(mv.Destination); got != etag("a move") {
			t.Fatalf("the move's destination has etag %s, a read gives another", got)
		}
		mustCreateEnvelope(t, l, "line-1", "axis-1", 10)
		e = etag("a child's creation")
		if err := setShare(ctx, l, "fund", 5_000); err != nil {
			t.Fatal(err)
		}
		e = etag("a rule change on the parent")
		mustCreateEnvelope(t, l, "line-2", "axis-2", 10)
		same("a change of a sibling", e)
	})
}

// TestRulesETagFollowsRuleSets: the rules' etag changes when a rule set is added to the envelope,
// not when its balances or its ancestors' rules change; SetRules answers the etag a later read
// gives.
func TestRulesETagFollowsRuleSets(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-1", "fund", 400_000)
		e0 := rulesETag(t, l, "axis-1")
		if _, err := l.Commit(ctx, Commit{RequestID: "award-1", Caller: testCaller, EnvelopeID: "axis-1", Beneficiary: "b", Project: "p", Amount: 1_000}); err != nil {
			t.Fatal(err)
		}
		if err := setShare(ctx, l, "fund", 5_000); err != nil {
			t.Fatal(err)
		}
		if got := rulesETag(t, l, "axis-1"); got != e0 {
			t.Fatal("an award or an ancestor's rule change changed the envelope's rules etag")
		}
		bps := int64(7_500)
		res, err := l.SetRules(ctx, SetRules{RequestID: "rules-1", Caller: testCaller, EnvelopeID: "axis-1", Call: "appel-2",
			Rules: Rules{MaxFundingShareBPS: &bps}, ETag: e0})
		if err != nil {
			t.Fatal(err)
		}
		e1 := rulesETag(t, l, "axis-1")
		if e1 == e0 || res.ETag != e1 {
			t.Fatalf("after a rule set: etag %s (before %s), SetRules answered %s", e1, e0, res.ETag)
		}
	})
}

// TestStaleETagRecordsNothing: a stale etag is ETAG_MISMATCH with the envelope named, posts
// nothing and records nothing under the request id, so the same request id sent again with a
// fresh etag is decided; a retry after that replays its outcome whatever etag it carries.
func TestStaleETagRecordsNothing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-1", "fund", 400_000)
		stale := EnvelopeETag(mustGetEnvelope(t, l, "fund"))
		mustCreateEnvelope(t, l, "axis-2", "fund", 100_000)
		before := mustGetEnvelope(t, l, "fund")
		move := MoveAllocation{RequestID: "move-1", Caller: testCaller, SourceID: "fund", DestinationID: "axis-1", Amount: 50, Reason: "r", ETag: stale}
		_, err := l.MoveAllocation(ctx, move)
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonETagMismatch || e.Metadata["envelope"] != "envelopes/fund" {
			t.Fatalf("move with a stale etag: %v, want ETAG_MISMATCH on envelopes/fund", err)
		}
		if after := mustGetEnvelope(t, l, "fund"); after != before {
			t.Fatalf("a refused move changed the source: %+v, was %+v", after, before)
		}
		requireVerifyOK(t, l)
		move.ETag = EnvelopeETag(before)
		res, err := l.MoveAllocation(ctx, move)
		if err != nil {
			t.Fatalf("the same request id with a fresh etag: %v", err)
		}
		move.ETag = stale
		again, err := l.MoveAllocation(ctx, move)
		if err != nil || again.EntryID != res.EntryID {
			t.Fatalf("a retry with the stale etag: %v, entry %s; want the first outcome, entry %s", err, again.EntryID, res.EntryID)
		}
		rs := SetRules{RequestID: "rules-1", Caller: testCaller, EnvelopeID: "axis-1", Call: "appel-1", ETag: "stale"}
		if _, err := l.SetRules(ctx, rs); !errors.Is(err, ErrETagMismatch) {
			t.Fatalf("SetRules with a stale etag: %v", err)
		}
		if r, err := l.GetRules(ctx, "axis-1", time.Time{}); err != nil || len(r.RuleSets) != 0 {
			t.Fatalf("a refused SetRules left %d rule sets (%v)", len(r.RuleSets), err)
		}
		rs.ETag = rulesETag(t, l, "axis-1")
		if _, err := l.SetRules(ctx, rs); err != nil {
			t.Fatalf("the same request id with a fresh etag: %v", err)
		}
		requireVerifyOK(t, l)
	})
}

// TestConcurrentAdminsOneWins is AIP-154's race: administrators read the same etag and send
// their changes with it at once, through one ledger or two on the same database; exactly one
// change is made, and every other is ETAG_MISMATCH and changed nothing.
func TestConcurrentAdminsOneWins(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ledgers := []*Ledger{db.open(t)}
		if db.engine != "sqlite" {
			ledgers = append(ledgers, db.open(t)) // a second process
		}
		l := ledgers[0]
		mustCreateEnvelope(t, l, "fund", "", 1_000_000_000)
		for i := range 4 {
			mustCreateEnvelope(t, l, fmt.Sprintf("axis-%d", i), "fund", 1_000)
		}
		const admins, rounds = 6, 5
		race := func(send func(admin int, l *Ledger) error) (won int) {
			start := make(chan struct{})
			errs := make([]error, admins)
			var wg sync.WaitGroup
			for a := range admins {
				wg.Go(func() {
					<-start
					errs[a] = send(a, ledgers[a%len(ledgers)])
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ErrETagMismatch):
					t.Fatalf("an admin's change failed with %v, want ETAG_MISMATCH or success", err)
				}
			}
			return won
		}
		for round := range rounds {
			etag := rulesETag(t, l, "fund")
			won := race(func(a int, l *Ledger) error {
				bps := int64(1_000 + a)
				_, err := l.SetRules(context.Background(), SetRules{RequestID: fmt.Sprintf("rules-%d-%d", round, a), Caller: fmt.Sprintf("admin:%d", a),
					EnvelopeID: "fund", Call: "appel", Rules: Rules{MaxFundingShareBPS: &bps}, ETag: etag})
				return err
			})
			if won != 1 {
				t.Fatalf("round %d: %d of %d rule changes with the same etag were made, want exactly 1", round, won, admins)
			}
			src := mustGetEnvelope(t, l, "fund")
			won = race(func(a int, l *Ledger) error {
				_, err := l.MoveAllocation(context.Background(), MoveAllocation{RequestID: fmt.Sprintf("move-%d-%d", round, a), Caller: fmt.Sprintf("admin:%d", a),
					SourceID: "fund", DestinationID: fmt.Sprintf("axis-%d", a%4), Amount: 100, Reason: "r", ETag: EnvelopeETag(src)})
				return err
			})
			if won != 1 {
				t.Fatalf("round %d: %d of %d moves with the same etag were made, want exactly 1", round, won, admins)
			}
		}
		if r, err := l.GetRules(t.Context(), "fund", time.Time{}); err != nil || len(r.RuleSets) != rounds {
			t.Fatalf("%d rule sets (%v), want %d: one per round", len(r.RuleSets), err, rounds)
		}
		if got := mustGetEnvelope(t, l, "fund").ChildrenAllocated; got != 4*1_000+rounds*100 {
			t.Fatalf("fund allocated %d to children, want %d: one move per round", got, 4*1_000+rounds*100)
		}
		requireVerifyOK(t, l)
	})
}
