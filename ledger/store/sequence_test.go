package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// Invariant 9's order, whoever writes the positions. A write transaction that positions its own
// entries (SQLite's always; PostgreSQL's when no other positioner is at work) gives them the next
// positions, in (created_at, id) order — not in the order they were handed over — and SQLite's
// first positions any entry left without one (its writer runs alone). Entries left to the
// sequencer (CockroachDB's; PostgreSQL's when another positioner holds sequencerLock) are
// positioned after the commit by AssignSequences: the leftover first, then (created_at, id). Either
// way positions run from 1 with no gap, the head at the last, and an entry that its transaction
// positioned is positioned when the transaction commits, with nothing left for the sequencer's
// UPDATE: that is the point of positioning at insert, and a path that stopped doing it shows here.
func TestInsertedEntriesTakeTheSequencersPositions(t *testing.T) {
	t.Parallel()
	testdb.EachFresh(t, func(t *testing.T, fresh func() string) {
		t.Parallel()
		// The transaction begins with what it sends first, and every way of sending it must try
		// the positioners' lock with its BEGIN: a write (InsertEntries itself), a read, a pipeline
		// of reads (QueryEach, as a batch of awards does).
		cases := []struct {
			name            string
			otherPositioner bool
			first           string
		}{{"alone", false, ""}, {"alone-read-first", false, "QueryRow"}, {"alone-reads-first", false, "QueryEach"},
			{"another-positioner-at-work", true, ""}}
		var databases []string // here: an engine that is not there skips this test, not a subtest
		for range cases {
			databases = append(databases, fresh())
		}
		for k, tc := range cases {
			otherPositioner := tc.otherPositioner
			t.Run(tc.name, func(t *testing.T) {
				database := databases[k]
				ctx := t.Context()
				db := openEngine(t, database)
				release := func() {}
				if otherPositioner {
					if db.Name() != "postgres" {
						t.Skipf("%s has no advisory lock to steer positioners", db.Name())
					}
					// Another session holds the positioners' lock, as a sequencer would, until
					// the sequencer below runs.
					other, err := pgx.Connect(ctx, database)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { other.Close(context.Background()) })
					if _, err := other.Exec(ctx, "SELECT pg_advisory_lock($1)", sequencerLock); err != nil {
						t.Fatal(err)
					}
					release = func() {
						if _, err := other.Exec(ctx, "SELECT pg_advisory_unlock($1)", sequencerLock); err != nil {
							t.Fatal(err)
						}
					}
				}
				// Whether the write transaction positions its own entries.
				own := db.Name() == "sqlite" || (db.Name() == "postgres" && !otherPositioner)
				at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
				entry := func(id string, at time.Time) core.Entry {
					return core.Entry{ID: id, Kind: core.KindRulesChanged, Currency: "EUR", Caller: "test",
						RequestID: "r-" + id, CreatedAt: at}
				}
				// An entry written earlier without a position, as before the journal had positions.
				if err := db.ReadWrite(ctx, func(q Querier) error {
					_, err := q.Exec(ctx, `INSERT INTO journal_entries (id, kind, currency, caller, request_id, memo, created_at)
						VALUES ('e-left', 'RULES_CHANGED', 'EUR', 'test', 'r-left', '', $1)`, micros(at.Add(-time.Hour)))
					return err
				}); err != nil {
					t.Fatal(err)
				}
				// Handed over out of order; the same microsecond for two of them, told apart by id.
				handed := []core.Entry{entry("e-b", at.Add(2*time.Microsecond)), entry("e-z", at.Add(time.Microsecond)),
					entry("e-a", at.Add(2*time.Microsecond))}
				if err := db.ReadWrite(ctx, func(q Querier) error {
					var n int64
					switch tc.first {
					case "QueryRow":
						if err := q.QueryRow(ctx, "SELECT count(*) FROM journal_head WHERE id = $1", 1).Scan(&n); err != nil {
							return err
						}
					case "QueryEach":
						if err := q.QueryEach(ctx, "SELECT count(*) FROM journal_head WHERE id = $1", [][]any{{1}, {2}},
							func(r Scanner) error { return r.Scan(&n) }); err != nil {
							return err
						}
					}
					if err := InsertEntries(ctx, q, handed); err != nil {
						return err
					}
					if !db.InlineSequence() {
						return nil
					}
					// SQLite: what the ledger runs before commit must find nothing left.
					if n, _, err := AssignSequences(ctx, q, "", MaxSequenceBatch); err != nil || n != 0 {
						return fmt.Errorf("SQLite: %d entries left for the sequencer's UPDATE (%v), want 0 (positioned at insert)", n, err)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				journal := func() (ids []string, seqs []*int64) {
					t.Helper()
					rs, err := db.Reader().Query(ctx, "SELECT id, seq FROM journal_entries ORDER BY seq, id")
					if err != nil {
						t.Fatal(err)
					}
					defer rs.Close()
					for rs.Next() {
						var id string
						var seq *int64
						if err := rs.Scan(&id, &seq); err != nil {
							t.Fatal(err)
						}
						ids, seqs = append(ids, id), append(seqs, seq)
					}
					if err := rs.Err(); err != nil {
						t.Fatal(err)
					}
					return ids, seqs
				}
				// After the commit, before any sequencer: the transaction's own entries are
				// positioned, or none of them is.
				ids, seqs := journal()
				for i, id := range ids {
					if id != "e-left" && (seqs[i] != nil) != own {
						t.Fatalf("after the commit, entry %s has position %v; the transaction positions its own: %v", id, seqs[i], own)
					}
				}
				release()
				if err := db.Sequencing(ctx, func(q Querier) error {
					_, _, err := AssignSequences(ctx, q, db.ForUpdate(), MaxSequenceBatch)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				want := []string{"e-left", "e-z", "e-a", "e-b"}
				if db.Name() == "postgres" && own {
					// Its entries took the positions from 1; the leftover, another transaction's,
					// was positioned by the sequencer after them.
					want = []string{"e-z", "e-a", "e-b", "e-left"}
				}
				ids, seqs = journal()
				var got []int64
				for i, id := range ids {
					if seqs[i] == nil {
						t.Fatalf("entry %s has no position after the transaction and the sequencer", id)
					}
					got = append(got, *seqs[i])
				}
				if !slices.Equal(ids, want) {
					t.Fatalf("journal order %v, want %v", ids, want)
				}
				if want := []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
					t.Fatalf("positions %v, want %v", got, want)
				}
				var head int64
				if err := db.Reader().QueryRow(ctx, "SELECT last_seq FROM journal_head WHERE id = 1").Scan(&head); err != nil {
					t.Fatal(err)
				}
				if head != 4 {
					t.Fatalf("journal head at %d, want 4", head)
				}
			})
		}
	})
}

// The same with more entries than copyThreshold, which PostgreSQL copies in (COPY) after moving
// the head in a statement of its own: all of them positioned by their transaction, from 1, in
// (created_at, id) order, where the engine positions at insert.
func TestManyInsertedEntriesTakeTheirPositions(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
		var handed []core.Entry
		for i := range copyThreshold + 50 {
			// Handed over in reverse order of time.
			handed = append(handed, core.Entry{ID: fmt.Sprintf("e-%03d", i), Kind: core.KindRulesChanged, Currency: "EUR",
				Caller: "test", RequestID: fmt.Sprintf("r-%03d", i), CreatedAt: at.Add(-time.Duration(i) * time.Microsecond)})
		}
		if err := db.ReadWrite(ctx, func(q Querier) error { return InsertEntries(ctx, q, handed) }); err != nil {
			t.Fatal(err)
		}
		own := db.Name() != "cockroachdb"
		if !own {
			if err := db.Sequencing(ctx, func(q Querier) error {
				_, _, err := AssignSequences(ctx, q, db.ForUpdate(), MaxSequenceBatch)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		rs, err := db.Reader().Query(ctx, "SELECT id, seq FROM journal_entries ORDER BY id DESC")
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		k := int64(0)
		for rs.Next() {
			var id string
			var seq *int64
			if err := rs.Scan(&id, &seq); err != nil {
				t.Fatal(err)
			}
			if k++; seq == nil || *seq != k {
				t.Fatalf("entry %s (the %d-th in time) has position %v, want %d", id, k, seq, k)
			}
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		if k != int64(len(handed)) {
			t.Fatalf("%d entries in the journal, want %d", k, len(handed))
		}
	})
}
