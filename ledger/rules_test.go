package ledger

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

func ptr(v int64) *int64 { return &v }

// TestRulesInheritanceWindowAndBatchTotals protects the funding rules inside group commit:
// a rule inherited from the fund and overridden on a child; the award window; several awards to
// one project in one all-or-nothing batch counting each other, and undone with the batch; the
// project totals equal to the commitments afterwards (Verify, invariant 4).
func TestRulesInheritanceWindowAndBatchTotals(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		set := func(env string, r Rules) {
			t.Helper()
			if _, err := l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: env,
				Call: "appel-1", Rules: r}); err != nil {
				t.Fatal(err)
			}
		}
		set("fund", Rules{MaxFundingShareBPS: ptr(5000)})
		set("axis-3", Rules{MaxFundingShareBPS: ptr(10000)}) // lifts the share on axis 3
		award := func(env, project string, amount, cost int64) error {
			c := commitCmd(env, "b-"+project, amount)
			c.Project, c.EligibleCost = project, cost
			_, err := l.Commit(ctx, c)
			return err
		}
		if err := award("axis-1", "p", 600, 1000); !errors.Is(err, ErrPolicyViolation) {
			t.Errorf("60 %% on axis-1 (inherited 50 %%): %v, want POLICY_VIOLATION", err)
		}
		if err := award("axis-3", "p", 1000, 1000); err != nil {
			t.Errorf("100 %% on axis-3 (overridden): %v", err)
		}
		// One batch: 300 + 200 fit 50 % of 1000, a third 1 does not; all-or-nothing undoes all.
		items := []BulkItem{{Beneficiary: "b", Project: "q", Amount: 300, Policy: Policy{EligibleCost: 1000}},
			{Beneficiary: "b", Project: "q", Amount: 200, Policy: Policy{EligibleCost: 1000}},
			{Beneficiary: "b", Project: "q", Amount: 1, Policy: Policy{EligibleCost: 1000}}}
		_, err := l.BulkCommit(ctx, BulkCommit{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis-1",
			Items: items, AllOrNothing: true})
		if e, ok := core.AsError(err); !ok || e.Reason != ReasonPolicyViolation || e.Metadata["item"] != "2" ||
			e.Metadata["already_awarded"] != "500" {
			t.Fatalf("all-or-nothing batch: %v, want POLICY_VIOLATION on item 2 with 500 already awarded", err)
		}
		res, err := l.BulkCommit(ctx, BulkCommit{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis-1",
			Items: items})
		if err != nil || res.Accepted != 2 || res.Refused != 1 {
			t.Fatalf("item-by-item batch: %+v, %v; want 2 accepted, 1 refused", res, err)
		}
		// The award window: closed in the past on axis 2.
		set("axis-2", Rules{AwardWindow: &Window{End: time.Now().Add(-time.Hour)}})
		if err := award("axis-2", "late", 1, 1000); !errors.Is(err, ErrPolicyViolation) {
			t.Errorf("award after the window: %v, want POLICY_VIOLATION", err)
		}
		rules, err := l.GetRules(ctx, "axis-2", time.Time{})
		if err != nil || rules.Effective.MaxFundingShareBPS != 5000 || rules.Effective.AwardWindow == nil ||
			rules.Effective.MaxFundingShareSet.EnvelopeID != "fund" {
			t.Errorf("effective rules of axis-2: %+v, %v", rules.Effective, err)
		}
		rep, err := l.Verify(ctx)
		if err != nil || !rep.OK() {
			t.Errorf("Verify: %v %v", rep.Discrepancies, err)
		}
	})
}

// TestRuleChangeMemoNamesEnvelopeAndDate protects what the journal (and the log's leaf) says of a
// rule change, which has no postings: its memo names the envelope and the time the rule set is in
// force from, a date ahead included (its entry took effect when recorded). Verify holds the rule
// set to it, and accepts the memo of entries written before it named them (the call and the rules
// only), as long as that memo holds the rule set's call and rules.
func TestRuleChangeMemoNamesEnvelopeAndDate(t *testing.T) {
	t.Parallel()
	l := newSQLiteDB(t).open(t)
	ctx := t.Context()
	mustCreateEnvelope(t, l, "fund", "", 1_000_000)
	bps := int64(5000)
	ahead := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Microsecond)
	res, err := l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "fund", Call: "appel-2",
		Rules: Rules{MaxFundingShareBPS: &bps}, EffectiveTime: ahead})
	if err != nil {
		t.Fatal(err)
	}
	entries := allEntries(t, l, EntryFilter{})
	memo := entries[len(entries)-1].Memo
	want := `envelope envelopes/fund from ` + ahead.Format(time.RFC3339Nano) + `, call appel-2: {"max_funding_share_bps":5000}`
	if memo != want {
		t.Fatalf("the rule change's memo %q, want %q", memo, want)
	}
	requireVerifyOK(t, l)
	for _, tc := range []struct {
		memo string
		ok   bool
	}{
		{`call appel-2: {"max_funding_share_bps":5000}`, true},   // written before the memo named the envelope
		{`call appel-2: {"max_funding_share_bps":10000}`, false}, // ... but not these rules
		{`envelope envelopes/fund from 2021-01-01T00:00:00Z, call appel-2: {"max_funding_share_bps":5000}`, false},
	} {
		for _, stmt := range []string{"DROP TRIGGER IF EXISTS journal_entries_append_only",
			"UPDATE journal_entries SET memo = '" + strings.ReplaceAll(tc.memo, "'", "''") + "' WHERE id = '" + res.EntryID + "'"} {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := l.Verify(ctx)
		if err != nil || rep.OK() != tc.ok {
			t.Errorf("memo %q: Verify %v, %v; want OK %v", tc.memo, rep.Discrepancies, err, tc.ok)
		}
	}
}

// TestRuleSetRequestKnownByWhatWasSent protects the retry of a SetRules recorded before award-window
// bounds were kept to the microsecond: the request is recorded under the fingerprint of the rules
// as sent (a bound at .0000005 s, in the sender's zone), as earlier releases recorded it, so that
// their retry is still the same request; what is stored and decided is the rules as kept. A first
// version fingerprinted the kept rules, and a retry of a request an earlier release recorded was
// refused REQUEST_ID_REUSED (found by a review).
func TestRuleSetRequestKnownByWhatWasSent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000)
		paris := time.FixedZone("Paris", 2*3600)
		cmd := SetRules{RequestID: "window", Caller: "service:test", EnvelopeID: "fund", Call: "appel-1",
			Rules: Rules{AwardWindow: &Window{Start: time.Date(2030, 7, 1, 2, 0, 0, 500, paris)}}}
		sent := cmd.Fingerprint() // what an earlier release recorded
		res, err := l.SetRules(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.RuleSet.Rules.AwardWindow.Start, time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("the window opens at %s, want %s (kept: UTC, to the microsecond)", got, want)
		}
		var digest []byte
		if err := l.db.Reader().QueryRow(ctx, "SELECT digest FROM requests WHERE request_id = $1",
			core.RequestKey(cmd.Caller, cmd.RequestID)).Scan(&digest); err != nil {
			t.Fatal(err)
		}
		if got := core.FingerprintFromDigest(digest); got != sent.Current {
			t.Errorf("recorded under %s, want the fingerprint of the rules as sent, %s", got, sent.Current)
		}
		again, err := l.SetRules(ctx, cmd)
		if err != nil || again.RuleSet.ID != res.RuleSet.ID {
			t.Errorf("the retry: %+v, %v; want the first answer", again.RuleSet, err)
		}
	})
}
