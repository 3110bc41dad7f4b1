package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/google/go-cmp/cmp"
)

// TestVerifyDetectsMissingRequestsAndPostedRefusals protects invariants 6 and 7 as far as the
// auditor can see them: a journal entry whose request is missing from the request log (a log row
// was removed, or the entry was slipped in behind the ledger's back) and an entry posted under a
// request recorded as refused are each reported. The entries slipped in balance and leave every
// balance as it was, so that nothing else gives them away.
func TestVerifyDetectsMissingRequestsAndPostedRefusals(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		mustCommit(t, l, "axis-1", "commune", 1_000)
		refused := commitCmd("axis-1", "greedy", axis1Cents+1)
		if _, err := l.Commit(ctx, refused); !errors.Is(err, ErrInsufficientFunds) {
			t.Fatalf("Commit above the envelope: %v, want INSUFFICIENT_FUNDS", err)
		}
		requireVerifyOK(t, l)

		slip := func(entryID, caller, requestID string) {
			t.Helper()
			stmts := []struct {
				query string
				args  []any
			}{
				{"INSERT INTO journal_entries (id, kind, currency, caller, request_id, memo, created_at) VALUES ($1, 'COMMITTED', 'EUR', $2, $3, '', $4)",
					// Recorded now, after the envelope took effect (an entry before it would
					// break invariant 40 too).
					[]any{entryID, caller, requestID, time.Now().UnixMicro()}},
				{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 0, 'envelopes/axis-1', -7)", []any{entryID}},
				{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 1, 'envelopes/axis-1', 7)", []any{entryID}},
			}
			for _, s := range stmts {
				if err := rawExec(ctx, l, s.query, s.args...); err != nil {
					t.Fatalf("tampering with %q: %v", s.query, err)
				}
			}
		}
		slip("00000000-0000-7000-8000-000000000001", "mallory", "never-recorded")
		// The refused request's own caller: request ids belong to their caller, and another
		// caller's entry under the same id would be missing from the log (invariant 6) instead.
		slip("00000000-0000-7000-8000-000000000002", refused.Caller, refused.RequestID)

		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		type finding struct {
			Invariant int
			Subject   string
		}
		var got []finding
		for _, d := range rep.Discrepancies {
			got = append(got, finding{d.Invariant, d.Subject})
		}
		slices.SortFunc(got, func(a, b finding) int { return a.Invariant - b.Invariant })
		want := []finding{
			{6, EntryName("00000000-0000-7000-8000-000000000001")},
			{7, EntryName("00000000-0000-7000-8000-000000000002")},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("discrepancies (-want +got):\n%s\nreport: %v", diff, rep.Discrepancies)
		}
	})
}

// TestVerifyFindsOrphanPostingsAndRequestsPostedTwice protects invariants 1 and 5 as the auditor
// sees them without a map of every entry: postings whose entry does not exist (their entry ids
// sort before and after every real entry, so both ends of the auditor's merge of postings into
// entries are crossed) and a request that posted two journal entries are each reported, once.
// What is slipped in balances and moves no stored balance, so that nothing else gives it away.
func TestVerifyFindsOrphanPostingsAndRequestsPostedTwice(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		c := mustCommit(t, l, "axis-1", "commune", 1_000)
		mustCommit(t, l, "axis-2", "region", 2_000)
		requireVerifyOK(t, l)

		var requestID, caller string
		if err := l.db.ReadOnly(ctx, func(q store.Querier) error {
			return q.QueryRow(ctx, "SELECT request_id, caller FROM journal_entries WHERE id = $1", c.EntryID).Scan(&requestID, &caller)
		}); err != nil {
			t.Fatal(err)
		}
		const before, after = "00000000-0000-7000-8000-00000000000a", "ffffffff-ffff-7fff-bfff-ffffffffffff"
		tampers := []struct {
			query string
			args  []any
		}{
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 0, 'envelopes/axis-1', -3)", []any{before}},
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 1, 'envelopes/axis-1', 3)", []any{before}},
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 0, 'envelopes/axis-2', -4)", []any{after}},
			{"INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 1, 'envelopes/axis-2', 4)", []any{after}},
			// A second entry under the commitment's request, moving nothing (a closing with
			// nothing left to pay has no postings).
			{"INSERT INTO journal_entries (id, kind, currency, caller, request_id, memo, created_at) VALUES ($1, 'COMMITMENT_CLOSED', 'EUR', $2, $3, '', $4)",
				[]any{"00000000-0000-7000-8000-00000000000b", caller, requestID, time.Now().UnixMicro()}},
		}
		for _, tamper := range tampers {
			if err := rawExec(ctx, l, tamper.query, tamper.args...); err != nil {
				t.Fatalf("tampering with %q: %v", tamper.query, err)
			}
		}

		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		type finding struct {
			Invariant int
			Subject   string
		}
		var got []finding
		for _, d := range rep.Discrepancies {
			got = append(got, finding{d.Invariant, d.Subject})
		}
		want := []finding{
			{1, EntryName(before)}, // has postings but no journal entry
			{1, EntryName(after)},
			{5, "request " + requestID + " of " + caller}, // posted 2 journal entries
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("discrepancies (-want +got):\n%s\nreport: %v", diff, rep.Discrepancies)
		}
	})
}

// TestVerifyFindsAnswersARetryCannotGet protects what idempotency rests on (invariant 6's request
// log): every answer the log keeps can be given back to a retry as it was given the first time.
// A deflated answer with a damaged byte (its checksum no longer matches), an award and its
// payment whose commitment row and a hold whose row were rewritten behind the ledger's back
// (their answers, kept by reference, no longer rebuild to what was answered) are each reported,
// naming the request; the untouched requests are not.
func TestVerifyFindsAnswersARetryCannotGet(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		award := commitCmd("axis-1", "commune", 1_000)
		res, err := l.Commit(ctx, award)
		if err != nil {
			t.Fatal(err)
		}
		// A payment's answer is kept by reference (migration 30): it shows the award's commitment.
		payment := CreatePayment{RequestID: newRequestID(), Caller: testCaller, CommitmentID: res.Commitment.ID, Amount: 400}
		if _, err := l.CreatePayment(ctx, payment); err != nil {
			t.Fatal(err)
		}
		cancelled := mustHold(t, l, holdCmd("axis-1", "ville", 2_000))
		hold := CancelHold{RequestID: newRequestID(), Caller: testCaller, HoldID: cancelled.Hold.ID, Reason: "withdrawn"}
		if _, err := l.CancelHold(ctx, hold); err != nil {
			t.Fatal(err)
		}
		// A hold's creation is kept by reference (migration 29), like an award.
		rewritten := holdCmd("axis-1", "village", 500)
		held := mustHold(t, l, rewritten)
		mustCommit(t, l, "axis-1", "untouched", 3_000)
		mustHold(t, l, holdCmd("axis-1", "untouched", 4_000))
		requireVerifyOK(t, l)

		drop := "DROP TRIGGER requests_append_only"
		if l.Engine() != "sqlite" {
			drop += " ON requests"
		}
		if err := rawExec(ctx, l, drop); err != nil {
			t.Fatal(err)
		}
		key := core.RequestKey(hold.Caller, hold.RequestID)
		var packed []byte
		if err := l.db.Reader().QueryRow(ctx, "SELECT packed FROM requests WHERE request_id = $1", key).Scan(&packed); err != nil {
			t.Fatal(err)
		}
		if !core.IsDeflated(packed) {
			t.Fatalf("the cancellation's answer is not stored deflated: %x", packed)
		}
		packed[len(packed)/2] ^= 0x40
		if err := rawExec(ctx, l, "UPDATE requests SET packed = $1 WHERE request_id = $2", packed, key); err != nil {
			t.Fatal(err)
		}
		// The commitments table is updated by releases and payments, so no trigger guards it;
		// a beneficiary changed by hand is found by nothing else.
		if err := rawExec(ctx, l, "UPDATE commitments SET beneficiary = 'someone else' WHERE id = $1", res.Commitment.ID); err != nil {
			t.Fatal(err)
		}
		// Nor is a HELD hold's row guarded but by its state.
		if err := rawExec(ctx, l, "UPDATE holds SET beneficiary = 'someone else' WHERE id = $1", held.Hold.ID); err != nil {
			t.Fatal(err)
		}

		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		var got []string
		for _, d := range rep.Discrepancies {
			got = append(got, fmt.Sprintf("%d %s", d.Invariant, d.Subject))
		}
		slices.Sort(got)
		want := []string{
			fmt.Sprintf("6 request %s of %s", award.RequestID, award.Caller),
			fmt.Sprintf("6 request %s of %s", payment.RequestID, payment.Caller),
			fmt.Sprintf("6 request %s of %s", hold.RequestID, hold.Caller),
			fmt.Sprintf("6 request %s of %s", rewritten.RequestID, rewritten.Caller),
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("discrepancies (-want +got):\n%s\nreport: %v", diff, rep.Discrepancies)
		}
	})
}

// TestVerifyHoldsCommitmentsToTheEntryThatMadeThem protects invariant 6 for commitments: a
// commitment's amount and dates are those of the journal entry that made it. An award made by
// confirming a hold whose effective time is moved back, and a Commit's award whose recording time
// is moved, change no balance, and change what the open data publishes (dateConvention) and when
// reports as of a date count the award: verify found neither (an outside audit moved the first).
func TestVerifyHoldsCommitmentsToTheEntryThatMadeThem(t *testing.T) {
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 10_000)
		h := mustHold(t, l, holdCmd("fund", "ecole", 2_000))
		confirmed, err := l.ConfirmHold(ctx, ConfirmHold{RequestID: newRequestID(), Caller: "service:test", HoldID: h.Hold.ID, Amount: 1_500})
		if err != nil {
			t.Fatal(err)
		}
		direct := mustCommit(t, l, "fund", "mairie", 1_000).Commitment
		requireVerifyOK(t, l)

		if err := rawExec(ctx, l, "UPDATE commitments SET effective_at = COALESCE(effective_at, created_at) - 1728000000000 WHERE id = $1", confirmed.Commitment.ID); err != nil {
			t.Fatal(err)
		}
		if err := rawExec(ctx, l, "UPDATE commitments SET created_at = created_at - 1, updated_at = COALESCE(updated_at, created_at) - 1 WHERE id = $1", direct.ID); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reported := detailsOf(rep, 6)
		if d := reported[CommitmentName(confirmed.Commitment.ID)]; !strings.Contains(d, "took effect at") || !strings.Contains(d, "made it") {
			t.Errorf("the confirmed award moved 20 days back is not reported under invariant 6: %q (all: %v)", d, rep.Discrepancies)
		}
		if d := reported[CommitmentName(direct.ID)]; !strings.Contains(d, "recorded at") {
			t.Errorf("the award whose recording time moved is not reported under invariant 6: %q (all: %v)", d, rep.Discrepancies)
		}
	})
}

// detailsOf is what rep says of each subject under invariant inv, its details run together.
func detailsOf(rep VerifyReport, inv int) map[string]string {
	out := map[string]string{}
	for _, d := range rep.Discrepancies {
		if d.Invariant == inv {
			out[d.Subject] += d.Detail
		}
	}
	return out
}
