package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestSeveralEnvelopesLockedAndUpdatedByTheirKey protects what a batch on several envelopes
// writes and how it reads them (LockEnvelopes, UpdateEnvelopes; on PostgreSQL one statement
// each for all the envelopes):
//   - the envelopes named are locked and read as stored, a missing id is absent;
//   - each envelope updated gets exactly its own balances, the others none;
//   - the database still refuses, in that statement, a balance that breaks invariant 2 (more
//     committed than allocated), and the whole transaction writes nothing;
//   - on PostgreSQL, neither statement reads the table by a sequential scan, whose predicate
//     lock on the whole table would make every other batch's envelope update conflict with this
//     transaction (pg_stat_xact_user_tables, read before and after in the transaction), and
//     sequential scans are allowed again after them.
func TestSeveralEnvelopesLockedAndUpdatedByTheirKey(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)
		stored := map[string]core.Envelope{}
		err := db.ReadWrite(ctx, func(q Querier) error {
			for i := range 40 {
				e := core.Envelope{ID: fmt.Sprintf("env-%02d", i), DisplayName: "Envelope", Currency: "EUR",
					Allocation: 1_000 + int64(i), CreatedAt: at, UpdatedAt: at}
				if err := InsertEnvelope(ctx, q, &e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.ReadWrite(ctx, func(q Querier) error {
			for i := range 40 {
				e, err := LoadEnvelope(ctx, q, fmt.Sprintf("env-%02d", i), "")
				stored[e.ID] = e
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		postgres := db.Name() == "postgres"
		scans := func(q Querier) (seq, idx int64, err error) {
			if !postgres {
				return 0, 0, nil
			}
			err = q.QueryRow(ctx, `SELECT COALESCE(sum(seq_scan), 0), COALESCE(sum(idx_scan), 0)
				FROM pg_stat_xact_user_tables WHERE relname = 'envelopes'`).Scan(&seq, &idx)
			return seq, idx, err
		}
		named := []string{"env-29", "env-03", "nope", "env-17"}
		later := at.Add(time.Hour)
		changed := map[string]core.Envelope{}
		var seqScans, idxScans int64
		err = db.ReadWrite(ctx, func(q Querier) error {
			seq0, idx0, err := scans(q)
			if err != nil {
				return err
			}
			locked, err := LockEnvelopes(ctx, q, db.ForUpdate(), named)
			if err != nil {
				return err
			}
			if len(locked) != 3 {
				return fmt.Errorf("LockEnvelopes(%v) found %d envelopes; want the 3 that exist", named, len(locked))
			}
			var envs []*core.Envelope
			for i, id := range []string{"env-03", "env-17", "env-29"} {
				e := locked[id]
				if e != stored[id] {
					return fmt.Errorf("LockEnvelopes read %s as %+v; it is stored as %+v", id, e, stored[id])
				}
				n := int64(i + 1)
				e.Committed, e.ChildrenAllocated, e.Released, e.CommitmentCount = 100*n, 10*n, 5*n, n
				e.Paid, e.Held, e.UpdatedAt, e.LatestEffectiveAt = 3*n, 7*n, later, later.Add(-time.Duration(n)*time.Minute)
				changed[id] = e
				envs = append(envs, &e)
			}
			if err := UpdateEnvelopes(ctx, q, envs); err != nil {
				return err
			}
			seq1, idx1, err := scans(q) // sends the held-back update first
			seqScans, idxScans = seq1-seq0, idx1-idx0
			if err != nil || !postgres {
				return err
			}
			var setting string
			if err := q.QueryRow(ctx, "SELECT current_setting('enable_seqscan')").Scan(&setting); err != nil {
				return err
			}
			if setting != "on" {
				return fmt.Errorf("enable_seqscan is %q after the envelopes' statements; want it back on", setting)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if postgres && (seqScans != 0 || idxScans == 0) {
			t.Fatalf("locking and updating 3 of 40 envelopes made %d sequential scans and %d index scans of the table; "+
				"want them read by their key only", seqScans, idxScans)
		}
		check := func(when string) {
			t.Helper()
			for id, want := range stored {
				if c, ok := changed[id]; ok {
					want = c
				}
				got, err := LoadEnvelope(ctx, db.Reader(), id, "")
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("%s: envelope %s reads %+v; want %+v", when, id, got, want)
				}
			}
		}
		check("after the update")

		// More committed than allocated on one of two envelopes: refused by the table's CHECK,
		// nothing written, the other envelope's update included.
		err = db.ReadWrite(ctx, func(q Querier) error {
			locked, err := LockEnvelopes(ctx, q, db.ForUpdate(), []string{"env-05", "env-06"})
			if err != nil {
				return err
			}
			a, b := locked["env-05"], locked["env-06"]
			a.Committed = 10
			b.Committed = b.Allocation + 1
			return UpdateEnvelopes(ctx, q, []*core.Envelope{&a, &b})
		})
		if !isCheckViolation(err) {
			t.Fatalf("an update committing more than an envelope's allocation gave %v; want the table's check refusing it", err)
		}
		check("after the refused update")
	})
}

// isCheckViolation reports a CHECK constraint's refusal, on either engine.
func isCheckViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23514"
	}
	return err != nil && strings.Contains(err.Error(), "CHECK constraint failed") // SQLite
}

// TestSeveralCommitmentsAndHoldsUpdatedByTheirKey protects what a batch writes of the
// commitments it released from, paid or closed (UpdateCommitments) and of the holds it ended
// (EndHolds), on PostgreSQL one statement for all of them:
//   - each row gets exactly its own figures (a release, a payment, a closing with its reason and
//     times, a confirmation with its commitment, a cancellation with its reason), the others none;
//   - a hold already ended is never ended again: it keeps its first end, the call reports the
//     conflict, and the transaction writes nothing (the hold ended beside it stays HELD; on
//     PostgreSQL the row count is judged by the server, before the COMMIT sent with it);
//   - on PostgreSQL, no sequential scan of either table (whose predicate lock would make every
//     other batch's write to the table conflict with this transaction).
func TestSeveralCommitmentsAndHoldsUpdatedByTheirKey(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC)
		var commitments []*core.Commitment
		var holds []core.Hold
		for i := range 5 {
			commitments = append(commitments, &core.Commitment{ID: testID(fmt.Sprintf("c-%d", i)), EnvelopeID: "env", Beneficiary: "b",
				Project: "p", Currency: "EUR", Amount: 1_000, CreatedAt: at, UpdatedAt: at, EffectiveAt: at})
			holds = append(holds, core.Hold{ID: fmt.Sprintf("h-%d", i), EnvelopeID: "env", Beneficiary: "b", Project: "p",
				Currency: "EUR", Amount: 500, State: core.HoldHeld, CreatedAt: at, UpdatedAt: at, EffectiveAt: at})
		}
		if err := db.ReadWrite(ctx, func(q Querier) error {
			if err := InsertCommitments(ctx, q, commitments); err != nil {
				return err
			}
			return InsertHolds(ctx, q, holds)
		}); err != nil {
			t.Fatal(err)
		}
		ids := func(prefix string) []string {
			return []string{prefix + "-0", prefix + "-1", prefix + "-2", prefix + "-3", prefix + "-4"}
		}
		stored := func() (map[string]*core.Commitment, map[string]*core.Hold) {
			t.Helper()
			var cids []string
			for _, id := range ids("c") {
				cids = append(cids, testID(id))
			}
			cs, err := LoadCommitments(ctx, db.Reader(), cids)
			if err != nil {
				t.Fatal(err)
			}
			hs, err := LoadHolds(ctx, db.Reader(), ids("h"))
			if err != nil {
				t.Fatal(err)
			}
			return cs, hs
		}
		wantCommitments, wantHolds := stored()
		postgres := db.Name() == "postgres"
		scans := func(q Querier) (seq int64, err error) {
			if !postgres {
				return 0, nil
			}
			err = q.QueryRow(ctx, `SELECT COALESCE(sum(seq_scan), 0) FROM pg_stat_xact_user_tables
				WHERE relname IN ('commitments', 'holds')`).Scan(&seq)
			return seq, err
		}
		later := at.Add(time.Hour)
		released, paid, closed := *wantCommitments[testID("c-1")], *wantCommitments[testID("c-2")], *wantCommitments[testID("c-4")]
		released.Released, released.UpdatedAt = 300, later
		paid.Paid, paid.Released, paid.UpdatedAt = 400, 100, later
		closed.Paid, closed.Released, closed.UpdatedAt = 250, 750, later
		closed.ClosedAt, closed.CloseReason, closed.CloseEffectiveAt = later, "project finished", later.Add(-time.Hour)
		confirmed, cancelled := *wantHolds["h-0"], *wantHolds["h-3"]
		confirmed.State, confirmed.ConfirmedAmount, confirmed.CommitmentID, confirmed.UpdatedAt = core.HoldConfirmed, 400, "c-9", later
		cancelled.State, cancelled.Reason, cancelled.UpdatedAt = core.HoldCancelled, "withdrawn", later
		var seqScans int64
		err := db.ReadWrite(ctx, func(q Querier) error {
			seq0, err := scans(q)
			if err != nil {
				return err
			}
			if err := UpdateCommitments(ctx, q, []*core.Commitment{&released, &paid, &closed}); err != nil {
				return err
			}
			if err := EndHolds(ctx, q, []core.Hold{confirmed, cancelled}); err != nil {
				return err
			}
			seq1, err := scans(q) // sends the held-back updates first
			seqScans = seq1 - seq0
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if seqScans != 0 {
			t.Fatalf("updating 3 commitments and ending 2 holds made %d sequential scans; want them read by their key only", seqScans)
		}
		for _, c := range []*core.Commitment{&released, &paid, &closed} {
			wantCommitments[c.ID] = c
		}
		wantHolds["h-0"], wantHolds["h-3"] = &confirmed, &cancelled
		check := func(when string) {
			t.Helper()
			cs, hs := stored()
			if !reflect.DeepEqual(cs, wantCommitments) {
				t.Fatalf("%s: the commitments read\n%+v\nwant\n%+v", when, cs, wantCommitments)
			}
			if !reflect.DeepEqual(hs, wantHolds) {
				t.Fatalf("%s: the holds read\n%+v\nwant\n%+v", when, hs, wantHolds)
			}
		}
		check("after the updates")

		again, other := cancelled, *wantHolds["h-1"]
		again.State, again.Reason = core.HoldCancelled, "twice"
		other.State, other.Reason, other.UpdatedAt = core.HoldCancelled, "withdrawn", later
		err = db.ReadWrite(ctx, func(q Querier) error { return EndHolds(ctx, q, []core.Hold{other, again}) })
		if !errors.Is(err, errHoldEnded) {
			t.Fatalf("ending a hold already ended gave %v; want %v", err, errHoldEnded)
		}
		_, hs := stored()
		if got := hs["h-3"]; !reflect.DeepEqual(got, &cancelled) {
			t.Fatalf("hold h-3, cancelled, then ended again, reads %+v; want its first end %+v", got, cancelled)
		}
		if got := hs["h-1"]; !reflect.DeepEqual(got, wantHolds["h-1"]) {
			t.Fatalf("hold h-1, ended in the transaction that failed, reads %+v; want it untouched %+v", got, wantHolds["h-1"])
		}
	})
}
