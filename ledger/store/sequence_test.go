package store

import (
	"slices"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// Invariant 9's order, whoever writes the positions: on SQLite InsertEntries writes them with the
// entries (the writer runs alone), on PostgreSQL the sequencer's AssignSequences writes them after
// the commit. Both must give the same journal: any entry left without a position first, then the
// new entries in (created_at, id) order — not in the order they were handed over — from 1 with no
// gap, and the head at the last. On SQLite nothing may be left for AssignSequences: that is the
// point of positioning at insert, and a path that stopped doing it would show here.
func TestInsertedEntriesTakeTheSequencersPositions(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		inline := db.InlineSequence()
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
		leftForSequencer := -1
		if err := db.ReadWrite(ctx, func(q Querier) error {
			if err := InsertEntries(ctx, q, handed); err != nil {
				return err
			}
			if !inline {
				return nil
			}
			n, _, err := AssignSequences(ctx, q, "", MaxSequenceBatch)
			leftForSequencer = n
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if inline && leftForSequencer != 0 {
			t.Fatalf("SQLite: %d entries left for the sequencer's UPDATE, want 0 (positioned at insert)", leftForSequencer)
		}
		if !inline {
			// Two runs, the first bounded: each continues from the head the last one left.
			for _, run := range []struct {
				limit, want int
				last        int64
			}{{3, 3, 3}, {MaxSequenceBatch, 1, 4}, {MaxSequenceBatch, 0, 4}} {
				if err := db.Sequencing(ctx, func(q Querier) error {
					n, last, err := AssignSequences(ctx, q, db.ForUpdate(), run.limit)
					if err == nil && (n != run.want || last != run.last) {
						t.Errorf("AssignSequences(limit %d) = %d, last %d; want %d, last %d", run.limit, n, last, run.want, run.last)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		var ids []string
		var seqs []int64
		rs, err := db.Reader().Query(ctx, "SELECT id, seq FROM journal_entries ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var id string
			var seq *int64
			if err := rs.Scan(&id, &seq); err != nil {
				t.Fatal(err)
			}
			if seq == nil {
				t.Fatalf("entry %s has no position after the transaction and the sequencer", id)
			}
			ids, seqs = append(ids, id), append(seqs, *seq)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		if want := []string{"e-left", "e-z", "e-a", "e-b"}; !slices.Equal(ids, want) {
			t.Fatalf("journal order %v, want %v (the leftover first, then (created_at, id))", ids, want)
		}
		if want := []int64{1, 2, 3, 4}; !slices.Equal(seqs, want) {
			t.Fatalf("positions %v, want %v", seqs, want)
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
