package store

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
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
				VALUES ($1, 'RULES_CHANGED', 'EUR', 'test', 'r-left', '', $2)`, testID("e-left"), micros(at.Add(-time.Hour)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Handed over out of order; the same microsecond for two of them, told apart by id.
		handed := []core.Entry{entry(testID("e-b"), at.Add(2*time.Microsecond)), entry(testID("e-z"), at.Add(time.Microsecond)),
			entry(testID("e-a"), at.Add(2*time.Microsecond))}
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
		if want := []string{testID("e-left"), testID("e-z"), testID("e-a"), testID("e-b")}; !slices.Equal(ids, want) {
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

// TestSequencerReadsTheUnpositionedEntriesAlone (PostgreSQL) protects the sequencer's cost, which
// every award pays: its search for entries without a position reads them through
// journal_entries_unsequenced and finds each one to update by its primary key. It never reads the
// key on seq, where every entry left an unpositioned version behind until the next VACUUM: with
// statistics that say few entries lack a position (ANALYZE after they were positioned), the
// planner took that key and read each old version, 200 ms for a run of a hundred entries. The
// counts of index entries read come from pg_stat_get_xact_tuples_returned, read before and after
// the sequencer's statement in its own transaction (the backend's counts not yet flushed).
func TestSequencerReadsTheUnpositionedEntriesAlone(t *testing.T) {
	t.Parallel()
	db := openOneConnection(t)
	ctx := t.Context()
	type reads struct{ bySeq, unsequenced, byKey int64 }
	position := func() (n int, r reads) {
		t.Helper()
		count := func(q Querier) (c reads, err error) {
			err = q.QueryRow(ctx, `SELECT pg_stat_get_xact_tuples_returned('journal_entries_by_seq'::regclass),
				pg_stat_get_xact_tuples_returned('journal_entries_unsequenced'::regclass),
				pg_stat_get_xact_tuples_returned('journal_entries_pkey'::regclass)`).Scan(&c.bySeq, &c.unsequenced, &c.byKey)
			return c, err
		}
		if err := db.Sequencing(ctx, func(q Querier) error {
			before, err := count(q)
			if err != nil {
				return err
			}
			if n, _, err = AssignSequences(ctx, q, db.ForUpdate(), MaxSequenceBatch); err != nil {
				return err
			}
			after, err := count(q)
			r = reads{after.bySeq - before.bySeq, after.unsequenced - before.unsequenced, after.byKey - before.byKey}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n, r
	}
	// Old versions: 2,000 entries positioned, no VACUUM since, then statistics that count none
	// of them unpositioned.
	if _, err := db.Reader().Exec(ctx, "ALTER TABLE journal_entries SET (autovacuum_enabled = off)"); err != nil {
		t.Fatal(err)
	}
	insertRuleEntries(t, db, 0, 2000)
	if n, _ := position(); n != 2000 {
		t.Fatalf("positioned %d entries, want 2000", n)
	}
	if _, err := db.Reader().Exec(ctx, "ANALYZE journal_entries"); err != nil {
		t.Fatal(err)
	}
	insertRuleEntries(t, db, 2000, 40)
	n, r := position()
	if n != 40 {
		t.Fatalf("positioned %d entries, want 40", n)
	}
	t.Logf("reads %+v", r)
	if r.bySeq != 0 {
		t.Errorf("the sequencer read %d entries of the key on seq, want 0 (the old versions of positioned entries)", r.bySeq)
	}
	if r.byKey != 40 {
		t.Errorf("the sequencer found %d entries by their primary key, want 40 (one per entry positioned)", r.byKey)
	}
	if r.unsequenced < 40 {
		t.Errorf("the sequencer read %d entries of journal_entries_unsequenced, want at least the 40 it positioned", r.unsequenced)
	}
}

// TestUnsequencedReadsNoWholeJournal (PostgreSQL) protects every journal read, which first asks
// whether an entry waits for its position (Unsequenced): the question is answered from
// journal_entries_unsequenced, never by reading the journal from its start. Statistics taken
// while many entries waited (a bulk load: ANALYZE then sees a column of NULLs) made a sequential
// scan look as cheap as one row, and the waiting entries are the journal's last.
func TestUnsequencedReadsNoWholeJournal(t *testing.T) {
	t.Parallel()
	db := openOneConnection(t)
	ctx := t.Context()
	insertRuleEntries(t, db, 0, 3000)
	if _, err := db.Reader().Exec(ctx, "ANALYZE journal_entries"); err != nil {
		t.Fatal(err)
	}
	if err := db.Sequencing(ctx, func(q Querier) error {
		_, _, err := AssignSequences(ctx, q, db.ForUpdate(), MaxSequenceBatch)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	insertRuleEntries(t, db, 3000, 1)
	// In one transaction, the backend's count of sequential scans before and after.
	var waiting bool
	var before, after int64
	if err := db.Sequencing(ctx, func(q Querier) error {
		if err := q.QueryRow(ctx, "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'journal_entries'").Scan(&before); err != nil {
			return err
		}
		var err error
		if waiting, err = Unsequenced(ctx, q); err != nil {
			return err
		}
		return q.QueryRow(ctx, "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'journal_entries'").Scan(&after)
	}); err != nil {
		t.Fatal(err)
	}
	if !waiting {
		t.Fatal("Unsequenced = false with an entry inserted and not positioned")
	}
	if after != before {
		t.Errorf("Unsequenced read the journal with %d sequential scans, want 0 (journal_entries_unsequenced)", after-before)
	}
}

// insertRuleEntries inserts n journal entries without a position, numbered from … from+n-1 in
// their ids, one microsecond apart in that order (the sequencer's order), in one transaction.
func insertRuleEntries(t *testing.T, db Engine, from, n int) {
	t.Helper()
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	entries := make([]core.Entry, n)
	for i := range entries {
		entries[i] = core.Entry{ID: fmt.Sprintf("00000000-0000-7000-8000-%012d", from+i), Kind: core.KindRulesChanged, Currency: "EUR",
			Caller: "test", RequestID: fmt.Sprintf("r-%06d", from+i), CreatedAt: at.Add(time.Duration(from+i) * time.Microsecond)}
	}
	if err := db.ReadWrite(t.Context(), func(q Querier) error { return InsertEntries(t.Context(), q, entries) }); err != nil {
		t.Fatal(err)
	}
}

// testID is a canonical UUID made from a short name (at most 6 bytes), for the rows a test writes
// by hand: commitment and entry ids are native UUIDs on PostgreSQL (uuids.go). Names of one
// length keep their order.
func testID(name string) string {
	h := hex.EncodeToString([]byte(name))
	return "00000000-0000-7000-8000-" + strings.Repeat("0", 12-len(h)) + h
}
