package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/ledger/audit"
)

// day is midnight UTC of a date.
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// wantReason fails the test unless err is a refusal with reason.
func wantReason(t *testing.T, what string, err error, reason Reason) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Reason != reason {
		t.Fatalf("%s: got %v, want %s", what, err, reason)
	}
}

// verifyClean fails the test unless Verify finds nothing broken.
func verifyClean(t *testing.T, l *Ledger) {
	t.Helper()
	rep, err := l.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify: %v", rep.Discrepancies)
	}
}

// TestEffectiveTimesBackdatingRule protects invariant 10's part on dates (available ≥ 0 at every
// effective instant): every refusal of the backdating rule (core.CheckEffective) — an effective
// time in the future, before an envelope took effect, a reduction before the latest effective
// time recorded on its envelope, a release before its commitment — posts nothing and is replayed
// to a retry, while what the rule allows (a release backdated before later awards, a time equal
// to the latest) is recorded with both times, and the verifier finds the journal ≥ 0 at every
// effective instant.
func TestEffectiveTimesBackdatingRule(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		fund, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "fund", EnvelopeID: "fund", Allocation: 100_000,
			Effective: day(2021, 1, 15)})
		if err != nil {
			t.Fatal(err)
		}
		if got := fund.Envelope.EffectiveAt; !got.Equal(day(2021, 1, 15)) || fund.Envelope.CreatedAt.Before(day(2026, 1, 1)) {
			t.Fatalf("fund effective %v, recorded %v", got, fund.Envelope.CreatedAt)
		}
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "axis-early", EnvelopeID: "axis-1", ParentID: "fund",
			Allocation: 60_000, Effective: day(2021, 1, 10)})
		wantReason(t, "a child before its parent", err, ReasonEffectiveTimeBeforeEnvelope)
		if _, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "axis-1", EnvelopeID: "axis-1", ParentID: "fund",
			Allocation: 60_000, Effective: day(2021, 2, 1)}); err != nil {
			t.Fatal(err)
		}
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "axis-2-early", EnvelopeID: "axis-2", ParentID: "fund",
			Allocation: 40_000, Effective: day(2021, 1, 20)})
		wantReason(t, "a child's allocation before the parent's latest effective time", err, ReasonEffectiveTimeBeforeLatest)
		// Equal to the latest is allowed: the new reduction counts everything already there.
		if _, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "axis-2", EnvelopeID: "axis-2", ParentID: "fund",
			Allocation: 40_000, Effective: day(2021, 2, 1)}); err != nil {
			t.Fatal(err)
		}

		future := Commit{RequestID: "future", EnvelopeID: "axis-1", Beneficiary: "b", Project: "p0", Amount: 1,
			Effective: time.Now().Add(time.Hour)}
		_, err = l.Commit(ctx, future)
		wantReason(t, "an award in the future", err, ReasonEffectiveTimeInFuture)
		_, err = l.Commit(ctx, future)
		wantReason(t, "the same award sent again (the refusal is replayed)", err, ReasonEffectiveTimeInFuture)

		c1, err := l.Commit(ctx, Commit{RequestID: "c1", EnvelopeID: "axis-1", Beneficiary: "b1", Project: "p1",
			Amount: 30_000, Effective: day(2021, 6, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if !c1.Commitment.EffectiveAt.Equal(day(2021, 6, 1)) || !c1.Envelope.LatestEffectiveAt.Equal(day(2021, 6, 1)) {
			t.Fatalf("commitment effective %v, envelope latest %v", c1.Commitment.EffectiveAt, c1.Envelope.LatestEffectiveAt)
		}
		_, err = l.Commit(ctx, Commit{RequestID: "c-early", EnvelopeID: "axis-1", Beneficiary: "b", Project: "p",
			Amount: 1, Effective: day(2021, 5, 1)})
		wantReason(t, "an award before the envelope's latest effective time", err, ReasonEffectiveTimeBeforeLatest)
		_, err = l.Release(ctx, Release{RequestID: "r-early", CommitmentID: c1.Commitment.ID, Amount: 1, Reason: "r",
			Effective: day(2021, 5, 15)})
		wantReason(t, "a release before its commitment", err, ReasonEffectiveTimeBeforeCommitment)
		_, err = l.MoveAllocation(ctx, MoveAllocation{RequestID: "m-early", SourceID: "axis-1", DestinationID: "axis-2",
			Amount: 1, Reason: "r", Effective: day(2021, 3, 1)})
		wantReason(t, "a move out of an envelope before its latest effective time", err, ReasonEffectiveTimeBeforeLatest)

		if _, err := l.Commit(ctx, Commit{RequestID: "c2", EnvelopeID: "axis-1", Beneficiary: "b2", Project: "p2",
			Amount: 30_000, Effective: day(2021, 9, 1)}); err != nil {
			t.Fatal(err)
		}
		// axis-1 is now empty. A release backdated to July (after its commitment, before the
		// September award) only adds: allowed.
		rel, err := l.Release(ctx, Release{RequestID: "r1", CommitmentID: c1.Commitment.ID, Amount: 10_000,
			Reason: "cost lower", Effective: day(2021, 7, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if !rel.EffectiveTime.Equal(day(2021, 7, 1)) || !rel.Envelope.LatestEffectiveAt.Equal(day(2021, 9, 1)) {
			t.Fatalf("release effective %v, envelope latest %v", rel.EffectiveTime, rel.Envelope.LatestEffectiveAt)
		}
		// Without an effective time, an operation takes effect when recorded: never refused.
		if _, err := l.Commit(ctx, Commit{RequestID: "c3", EnvelopeID: "axis-1", Beneficiary: "b3", Project: "p3",
			Amount: 10_000}); err != nil {
			t.Fatal(err)
		}
		_, err = l.Commit(ctx, Commit{RequestID: "c-2021", EnvelopeID: "axis-1", Beneficiary: "b", Project: "p",
			Amount: 1, Effective: day(2021, 12, 1)})
		wantReason(t, "a backdated award after one recorded now", err, ReasonEffectiveTimeBeforeLatest)

		// The journal keeps both times of every entry.
		entries, _, err := l.ListEntries(ctx, EntryFilter{EnvelopeID: "axis-1"}, Page{Size: 100})
		if err != nil {
			t.Fatal(err)
		}
		effective := map[string]time.Time{}
		for _, e := range entries {
			if e.EffectiveAt.After(e.CreatedAt) || e.EffectiveAt.IsZero() {
				t.Errorf("entry %s: effective %v, recorded %v", e.ID, e.EffectiveAt, e.CreatedAt)
			}
			effective[e.RequestID] = e.EffectiveAt
		}
		for rid, want := range map[string]time.Time{"axis-1": day(2021, 2, 1), "c1": day(2021, 6, 1), "c2": day(2021, 9, 1), "r1": day(2021, 7, 1)} {
			if !effective[rid].Equal(want) {
				t.Errorf("entry of %s took effect %v, want %v", rid, effective[rid], want)
			}
		}
		verifyClean(t, l)
	})
}

// TestReportsByEffectiveDate protects the bitemporal report: as of an effective date it counts
// what took effect by then, even when recorded later (a backdated release); known at a recorded
// time it counts only what had been recorded; an envelope that had not taken effect is
// ENVELOPE_NOT_FOUND.
func TestReportsByEffectiveDate(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustDo := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "fund", EnvelopeID: "fund", Allocation: 100_000, Effective: day(2021, 1, 15)})
		mustDo(err)
		c1, err := l.Commit(ctx, Commit{RequestID: "c1", EnvelopeID: "fund", Beneficiary: "b1", Project: "p1", Amount: 30_000, Effective: day(2021, 6, 1)})
		mustDo(err)
		_, err = l.Commit(ctx, Commit{RequestID: "c2", EnvelopeID: "fund", Beneficiary: "b2", Project: "p2", Amount: 20_000, Effective: day(2021, 9, 1)})
		mustDo(err)
		before, err := l.Report(ctx, "fund", time.Time{})
		mustDo(err)
		_, err = l.Release(ctx, Release{RequestID: "r1", CommitmentID: c1.Commitment.ID, Amount: 5_000, Reason: "lower cost", Effective: day(2021, 7, 1)})
		mustDo(err)

		type fig struct{ awarded, committed, released, available, count int64 }
		at := func(asOf, knownAt *time.Time) fig {
			t.Helper()
			rep, err := l.ReportKnown(ctx, "fund", asOf, knownAt)
			mustDo(err)
			f := rep.Lines[0].Total
			return fig{f.Awarded, f.Committed, f.Released, f.Available, f.AwardCount}
		}
		ptr := func(t time.Time) *time.Time { return &t }
		for _, c := range []struct {
			name          string
			asOf, knownAt *time.Time
			want          fig
		}{
			{"31 May 2021", ptr(day(2021, 5, 31)), nil, fig{0, 0, 0, 100_000, 0}},
			{"30 June 2021", ptr(day(2021, 6, 30)), nil, fig{30_000, 30_000, 0, 70_000, 1}},
			{"31 July 2021: the backdated release counts", ptr(day(2021, 7, 31)), nil, fig{30_000, 25_000, 5_000, 75_000, 1}},
			{"31 December 2021", ptr(day(2021, 12, 31)), nil, fig{50_000, 45_000, 5_000, 55_000, 2}},
			{"31 July 2021 as known before the release was recorded", ptr(day(2021, 7, 31)), ptr(before.KnownAt), fig{30_000, 30_000, 0, 70_000, 1}},
			{"now as known before the release", nil, ptr(before.KnownAt), fig{50_000, 50_000, 0, 50_000, 2}},
		} {
			if got := at(c.asOf, c.knownAt); got != c.want {
				t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			}
		}
		_, err = l.ReportAt(ctx, "fund", day(2020, 12, 31))
		wantReason(t, "the fund before it took effect", err, ReasonEnvelopeNotFound)
		rep, err := l.Report(ctx, "fund", time.Time{})
		mustDo(err)
		if !rep.AsOf.Equal(day(2021, 9, 1)) {
			t.Errorf("a current report is as of %v, want the latest effective time 2021-09-01", rep.AsOf)
		}
		verifyClean(t, l)
	})
}

// TestAwardsCheckedAgainstRulesAtTheirEffectiveTime protects invariant 8 by effective date: an
// award backdated before a rule change is decided under the rules then in force, one after it
// under the new ones; a rule set backdated after everything recorded on its subtree keeps its
// date, one that would govern what is already recorded takes effect at once.
func TestAwardsCheckedAgainstRulesAtTheirEffectiveTime(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustDo := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		_, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "fund", EnvelopeID: "fund", Allocation: 1_000_000, Effective: day(2021, 1, 15)})
		mustDo(err)
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "axis-1", EnvelopeID: "axis-1", ParentID: "fund", Allocation: 500_000, Effective: day(2021, 1, 15)})
		mustDo(err)
		share := func(bps int64) Rules { return Rules{MaxFundingShareBPS: &bps} }
		r1, err := l.SetRules(ctx, SetRules{RequestID: "appel-1", EnvelopeID: "fund", Call: "appel-1", Rules: share(5000), EffectiveTime: day(2021, 1, 16)})
		mustDo(err)
		if !r1.RuleSet.EffectiveFrom.Equal(day(2021, 1, 16)) {
			t.Fatalf("appel-1 in force from %v, want its date", r1.RuleSet.EffectiveFrom)
		}
		award := func(rid string, effective time.Time, amount int64) error {
			_, err := l.Commit(ctx, Commit{RequestID: rid, EnvelopeID: "axis-1", Beneficiary: "b-" + rid, Project: rid,
				Amount: amount, Policy: Policy{EligibleCost: 100_000}, Effective: effective})
			return err
		}
		mustDo(award("june-50", day(2021, 6, 1), 50_000))
		r2, err := l.SetRules(ctx, SetRules{RequestID: "appel-2", EnvelopeID: "fund", Call: "appel-2", Rules: share(7500), EffectiveTime: day(2021, 9, 20)})
		mustDo(err)
		if !r2.RuleSet.EffectiveFrom.Equal(day(2021, 9, 20)) {
			t.Fatalf("appel-2 in force from %v, want 2021-09-20", r2.RuleSet.EffectiveFrom)
		}
		wantReason(t, "70 % on 10 September 2021, under the first call", award("sept-10-70", day(2021, 9, 10), 70_000), ReasonPolicyViolation)
		mustDo(award("sept-21-70", day(2021, 9, 21), 70_000))
		r3, err := l.SetRules(ctx, SetRules{RequestID: "appel-3", EnvelopeID: "fund", Call: "appel-3", Rules: share(1000), EffectiveTime: day(2021, 9, 15)})
		mustDo(err)
		if r3.RuleSet.EffectiveFrom.Before(r3.RuleSet.CreatedAt) {
			t.Fatalf("a rule set that would govern recorded awards is in force from %v, before it was recorded (%v)",
				r3.RuleSet.EffectiveFrom, r3.RuleSet.CreatedAt)
		}
		verifyClean(t, l)
	})
}

// TestVerifyFindsANegativeEffectiveInstant: invariant 40. Two entries that cancel out leave every
// stored balance right, but one took effect before the other and left axis-1 below zero
// between them: the verifier, replaying the journal in effective order, finds it.
func TestVerifyFindsANegativeEffectiveInstant(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		if _, err := l.CreateEnvelope(ctx, CreateEnvelope{RequestID: "axis-1", EnvelopeID: "axis-1", Allocation: 1_000,
			Effective: day(2021, 1, 15)}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMicro()
		for _, e := range []struct {
			id        string
			effective time.Time
			amount    int64
		}{{"00000000-0000-7000-8000-0000000000a1", day(2021, 2, 1), -2_000}, {"00000000-0000-7000-8000-0000000000a2", day(2021, 4, 1), 2_000}} {
			for _, s := range []struct {
				query string
				args  []any
			}{
				{"INSERT INTO journal_entries (id, kind, currency, caller, request_id, memo, created_at, effective_at) VALUES ($1, 'ALLOCATION_MOVED', 'EUR', 'mallory', $2, '', $3, $4)",
					[]any{e.id, e.id, now, e.effective.UnixMicro()}},
				{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 0, 'envelopes/axis-1', $2)", []any{e.id, e.amount}},
				{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 1, 'external/funding', $2)", []any{e.id, -e.amount}},
			} {
				if err := rawExec(ctx, l, s.query, s.args...); err != nil {
					t.Fatalf("tampering: %v", err)
				}
			}
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range rep.Discrepancies {
			if d.Invariant == audit.InvariantEffective {
				found = d.Subject == "envelopes/axis-1"
				if !found {
					t.Errorf("unexpected invariant-40 discrepancy %v", d)
				}
			}
			if d.Invariant == 4 || d.Invariant == 2 {
				t.Errorf("the tampering was meant to leave the stored balances right: %v", d)
			}
		}
		if !found {
			t.Fatalf("Verify did not find axis-1 below zero on 1 February 2021: %v", rep.Discrepancies)
		}
	})
}
