package store

import (
	"errors"
	"fmt"
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
