package ledger

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestLedgerRefusesWhatTheDatabaseCannotHold protects issue 12 item 7 below the gRPC boundary:
// the ledger's own validation (core) refuses, with the field named, filters and times the
// database cannot hold or the report cannot express, whoever calls it (a tool, a benchmark), and
// refuses a report figure beyond int64 rather than wrapping it.
func TestLedgerRefusesWhatTheDatabaseCannotHold(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		year10000 := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		invalid := func(name, field string, err error) {
			t.Helper()
			if e := requireError(t, err, ErrInvalidArgument); e.Field != field {
				t.Errorf("%s: refused on field %q, want %q", name, e.Field, field)
			}
		}
		for _, b := range []string{"siren:\x00", "siren:\xff", "a\nb"} {
			_, _, err := l.ListCommitments(ctx, CommitmentFilter{Beneficiary: b}, Page{})
			invalid("ListCommitments beneficiary "+b, "beneficiary", err)
		}
		// Commitment ids are native UUIDs on PostgreSQL and CockroachDB: an id of 36 hex digits
		// and dashes that is no canonical UUID reached PostgreSQL's parser (INTERNAL).
		for _, id := range []string{"------------------------------------", "0123456789abcdef0123456789abcdef0123",
			"01234567-89ab-cdef-0123-456789abcdeF", "0123456789ab-cdef-0123-456789abcdef-"} {
			_, err := l.GetCommitment(ctx, id)
			invalid("GetCommitment "+id, "name", err)
			_, err = l.Release(ctx, releaseCmd(id, 1))
			invalid("Release of "+id, "commitment", err)
			_, _, err = l.ListPayments(ctx, id, Page{})
			invalid("ListPayments of "+id, "parent", err)
		}
		// The caller is stored with every entry: a NUL in it reached PostgreSQL (INTERNAL).
		nulCaller := commitCmd("axis-1", "b", 1)
		nulCaller.Caller = "service:\x00"
		_, err := l.Commit(ctx, nulCaller)
		invalid("Commit by a caller with a NUL", "caller", err)
		_, err = l.SetRules(ctx, SetRules{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "axis-1",
			Call: "appel-1", Rules: Rules{AwardWindow: &Window{End: year10000}}})
		invalid("SetRules window ending in year 10000", "rules.award_window.end_time", err)
		_, err = l.Report(ctx, "fund", year10000)
		invalid("Report as of year 10000", "as_of_time", err)
		_, err = l.ReportAt(ctx, "fund", time.Unix(1e13, 0))
		invalid("Report as of 10^13 s", "as_of_time", err)
		_, err = l.GetRules(ctx, "fund", year10000)
		invalid("GetRules at year 10000", "time", err)
		// Effective times and the recorded horizon: years 0001 to 9999 too.
		dated := commitCmd("axis-1", "b", 1)
		dated.Effective = year10000
		_, err = l.Commit(ctx, dated)
		invalid("Commit effective in year 10000", "effective_time", err)
		_, err = l.CreateEnvelope(ctx, CreateEnvelope{RequestID: newRequestID(), Caller: testCaller, EnvelopeID: "dated",
			Allocation: 1, Effective: time.Unix(1e13, 0)})
		invalid("CreateEnvelope effective at 10^13 s", "effective_time", err)
		_, err = l.ReportKnown(ctx, "fund", nil, &year10000)
		invalid("Report known at year 10000", "known_at_time", err)
		// The zero time is a time: the fund did not exist in year 1.
		if _, err := l.ReportAt(ctx, "fund", time.Time{}); !errors.Is(err, ErrEnvelopeNotFound) {
			t.Errorf("ReportAt(0001-01-01): %v, want ENVELOPE_NOT_FOUND", err)
		}
		if rep, err := l.ReportAt(ctx, "", time.Time{}); err != nil || len(rep.Lines) != 0 {
			t.Errorf("ReportAt(0001-01-01) of every tree: %d lines, %v; want none", len(rep.Lines), err)
		}

		// Awarded: nearly the largest amount, released, awarded again.
		mustCreateEnvelope(t, l, "big", "", math.MaxInt64-10)
		c := mustCommit(t, l, "big", "b", math.MaxInt64-10)
		if _, err := l.Release(ctx, releaseCmd(c.Commitment.ID, math.MaxInt64-10)); err != nil {
			t.Fatal(err)
		}
		if rep, err := l.Report(ctx, "big", time.Time{}); err != nil || rep.Lines[0].Own.Awarded != math.MaxInt64-10 ||
			rep.Lines[0].Own.Released != math.MaxInt64-10 || rep.Lines[0].Own.Available != math.MaxInt64-10 {
			t.Fatalf("report after one award and its release: %+v, %v", rep.Lines, err)
		}
		mustCommit(t, l, "big", "b", math.MaxInt64-10)
		e := requireError(t, reportErr(ctx, l, "big"), ErrAmountOverflow)
		if e.Metadata["envelope"] != "envelopes/big" || e.Metadata["figure"] != "awarded" {
			t.Errorf("AMOUNT_OVERFLOW metadata %v, want envelopes/big's awarded", e.Metadata)
		}
		requireError(t, reportErr(ctx, l, ""), ErrAmountOverflow)
		// The fund's report, which does not add the big envelope in, is still exact.
		if rep, err := l.Report(ctx, "fund", time.Time{}); err != nil || rep.Lines[0].Total.Allocation != fundCents {
			t.Errorf("the fund's report beside an overflowing tree: %+v, %v", rep.Lines, err)
		}
		requireVerifyOK(t, l)
	})
}

// reportErr is the error of the current report of root.
func reportErr(ctx context.Context, l *Ledger, root string) error {
	_, err := l.Report(ctx, root, time.Time{})
	return err
}
