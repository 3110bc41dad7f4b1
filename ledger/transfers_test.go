package ledger

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/google/go-cmp/cmp"
)

// toMigration16 puts a ledger written by this code back into the shape migration 16 left and the
// code before migration 17 wrote: every posting a row of the postings table (seq 0, 1, … in the
// entry's order), journal_entries without the transfer columns and their indexes, the journal's
// append-only trigger of migration 10. The view entry_postings is left as the postings table
// itself, which is what the readers before migration 17 read; migration 17 replaces it. Goose's
// row for 17 stays until dropMigration17, so that the ledger can be opened at the old shape to
// record what it serves. On PostgreSQL the ids the ledger makes go back to TEXT too, as before
// migration 21 (uuids.go), whose row goes with 17's, and 22's (the credit accounts' index, which
// the demotion drops with its column).
var toMigration16 = map[string][]string{
	"sqlite": {
		`DROP VIEW entry_postings`,
		`DROP TRIGGER journal_entries_append_only`,
		`INSERT INTO postings (entry_id, seq, account, amount)
		 SELECT id, 0, debit_account, -amount FROM journal_entries WHERE amount IS NOT NULL
		 UNION ALL SELECT id, 1, credit_account, amount FROM journal_entries WHERE amount IS NOT NULL`,
		`DROP INDEX journal_entries_by_debit`,
		`DROP INDEX journal_entries_by_credit`,
		`ALTER TABLE journal_entries DROP COLUMN amount`,
		`ALTER TABLE journal_entries DROP COLUMN debit_account`,
		`ALTER TABLE journal_entries DROP COLUMN credit_account`,
		// Migration 10's trigger.
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE ON journal_entries
		 WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.id = OLD.id AND NEW.kind = OLD.kind
		   AND NEW.currency = OLD.currency AND NEW.caller = OLD.caller AND NEW.request_id = OLD.request_id
		   AND NEW.memo = OLD.memo AND NEW.created_at = OLD.created_at AND NEW.effective_at IS OLD.effective_at)
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE VIEW entry_postings AS SELECT entry_id, seq, account, amount FROM postings`,
	},
	"postgres": {
		`DROP VIEW entry_postings`,
		// The ids as TEXT, as before migration 21 (native UUIDs).
		`ALTER TABLE journal_entries ALTER COLUMN id TYPE TEXT`,
		`ALTER TABLE postings ALTER COLUMN entry_id TYPE TEXT`,
		`ALTER TABLE commitments ALTER COLUMN id TYPE TEXT`,
		`ALTER TABLE payments ALTER COLUMN commitment_id TYPE TEXT, ALTER COLUMN id TYPE TEXT, ALTER COLUMN entry_id TYPE TEXT`,
		`DROP TRIGGER journal_entries_append_only ON journal_entries`,
		`INSERT INTO postings (entry_id, seq, account, amount)
		 SELECT id, 0, debit_account, -amount FROM journal_entries WHERE amount IS NOT NULL
		 UNION ALL SELECT id, 1, credit_account, amount FROM journal_entries WHERE amount IS NOT NULL`,
		`ALTER TABLE journal_entries DROP COLUMN amount, DROP COLUMN debit_account, DROP COLUMN credit_account`,
		// Migration 10's function and trigger.
		`CREATE OR REPLACE FUNCTION ledger_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
		      AND (NEW.id, NEW.kind, NEW.currency, NEW.caller, NEW.request_id, NEW.memo, NEW.created_at, NEW.effective_at)
		          IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.currency, OLD.caller, OLD.request_id, OLD.memo, OLD.created_at, OLD.effective_at)
		   THEN RETURN NEW; END IF;
		   RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME;
		 END $$`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()`,
		`CREATE VIEW entry_postings AS SELECT entry_id, seq, account, amount FROM postings`,
	},
}

// TestTransfersMigration protects migration 17 (two-leg entries in one row), and on PostgreSQL
// migration 21 (native UUIDs), on a ledger with every kind of entry put back in the shape the code
// before them wrote: after the migration, every entry
// has the postings it had before in the same order, the journal lists the same entries by
// envelope and by commitment, the reports are equal at several dates, Verify and VerifyLog are
// clean (the Merkle leaves, encoded from the postings, are the ones stored before: invariant 11),
// the checkpoint signed before it verifies against a newer one by a consistency proof, and the
// postings table keeps only the entries of another shape.
func TestTransfersMigration(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		if db.engine == "cockroachdb" {
			t.Skip("the demotion to migration 16 is written for SQLite and PostgreSQL")
		}
		ctx := t.Context()
		src := fillForCopy(t, db)
		open := src.opener(t)
		type served struct {
			entries   []Entry
			byAccount map[string][]Entry
			reports   []Report
			awards    []Awards
			postings  int64 // rows of the postings table
			transfers int64 // entries stored as one row
		}
		read := func(l *Ledger) served {
			t.Helper()
			s := served{entries: allEntries(t, l, EntryFilter{}), byAccount: map[string][]Entry{}}
			for _, e := range []string{"z-programme", "a-axis-1", "m-axis-2", "b-other"} {
				s.byAccount[EnvelopeName(e)] = allEntries(t, l, EntryFilter{EnvelopeID: e})
				commitments, _, err := l.ListCommitments(ctx, CommitmentFilter{EnvelopeID: e}, Page{Size: 100})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range commitments {
					s.byAccount[CommitmentName(c.ID)] = allEntries(t, l, EntryFilter{CommitmentID: c.ID})
					s.byAccount[EnvelopeName(e)+" "+CommitmentName(c.ID)] = allEntries(t, l, EntryFilter{EnvelopeID: e, CommitmentID: c.ID})
				}
			}
			for _, asOf := range []time.Time{src.now.Add(-50 * 24 * time.Hour), src.now.Add(-15 * 24 * time.Hour), src.now.Add(time.Hour)} {
				r, err := l.ReportAt(ctx, "", asOf)
				if err != nil {
					t.Fatal(err)
				}
				s.reports = append(s.reports, r)
			}
			for _, root := range []string{"z-programme", "b-other"} {
				a, err := l.Awards(ctx, root, nil)
				if err != nil {
					t.Fatal(err)
				}
				s.awards = append(s.awards, a)
			}
			err := l.db.ReadOnly(ctx, func(q store.Querier) error {
				return q.QueryRow(ctx, "SELECT COUNT(*) FROM postings").Scan(&s.postings)
			})
			if err != nil {
				t.Fatal(err)
			}
			requireVerifyOK(t, l)
			if rep, err := l.VerifyLog(ctx, src.vkey); err != nil || !rep.OK() {
				t.Fatalf("VerifyLog = %+v, %v", rep, err)
			}
			return s
		}

		// What the ledger serves, then the ledger put back at migration 16's shape (goose's row
		// for 17 kept until the shape is checked). The readers read the transfer columns, so what
		// is served is read before: after the migration, the same must be served.
		l := open()
		before := read(l)
		var twoLegs int64
		for _, e := range before.entries {
			if len(e.Postings) == 2 && e.Postings[1].Amount > 0 && e.Postings[0].Amount == -e.Postings[1].Amount {
				twoLegs++
			}
		}
		for _, stmt := range toMigration16[db.engine] {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		var rows int64
		err := l.db.ReadOnly(ctx, func(q store.Querier) error {
			return q.QueryRow(ctx, "SELECT COUNT(*) FROM postings").Scan(&rows)
		})
		if err != nil {
			t.Fatal(err)
		}
		if twoLegs == 0 || rows != 2*twoLegs+3 {
			t.Fatalf("at migration 16's shape: %d posting rows for %d two-leg entries, want every posting a row plus the confirmed hold's three", rows, twoLegs)
		}
		if err := rawExec(ctx, l, "DELETE FROM goose_db_version WHERE version_id IN (17, 21, 22)"); err != nil {
			t.Fatal(err)
		}
		l.Close()

		l = open() // runs migration 17 (and 21, 22 on PostgreSQL)
		defer l.Close()
		if db.engine == "postgres" {
			var text int64
			err := l.db.ReadOnly(ctx, func(q store.Querier) error {
				return q.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema()
					AND (table_name, column_name) IN (('journal_entries', 'id'), ('postings', 'entry_id'), ('commitments', 'id'),
					('payments', 'commitment_id'), ('payments', 'id'), ('payments', 'entry_id')) AND data_type <> 'uuid'`).Scan(&text)
			})
			if err != nil || text != 0 {
				t.Fatalf("after migration 21: %d id columns not UUID (%v), want 0", text, err)
			}
			var method string
			err = l.db.ReadOnly(ctx, func(q store.Querier) error {
				return q.QueryRow(ctx, `SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam
					WHERE c.relname = 'journal_entries_by_credit' AND c.relnamespace = current_schema()::regnamespace`).Scan(&method)
			})
			if err != nil || method != "hash" {
				t.Fatalf("after migration 22: the credit accounts' index is %q (%v), want hash", method, err)
			}
		}
		after := read(l)
		err = l.db.ReadOnly(ctx, func(q store.Querier) error {
			return q.QueryRow(ctx, "SELECT COUNT(*) FROM journal_entries WHERE amount IS NOT NULL").Scan(&after.transfers)
		})
		if err != nil {
			t.Fatal(err)
		}
		if before.postings != 3 || after.postings != 3 || after.transfers != twoLegs {
			t.Errorf("after: %d posting rows (want the confirmed hold's 3) and %d entries in one row (want %d)",
				after.postings, after.transfers, twoLegs)
		}
		if diff := cmp.Diff(before.entries, after.entries); diff != "" {
			t.Errorf("the journal changed (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(before.byAccount, after.byAccount); diff != "" {
			t.Errorf("the journal by account changed (-before +after):\n%s", diff)
		}
		if !reflect.DeepEqual(before.reports, after.reports) {
			t.Errorf("the reports changed:\n before %+v\n after  %+v", before.reports, after.reports)
		}
		if !reflect.DeepEqual(before.awards, after.awards) {
			t.Errorf("the awards report changed:\n before %+v\n after  %+v", before.awards, after.awards)
		}

		// The checkpoint signed before the migration verifies against a newer one.
		if _, err := l.Commit(ctx, commitCmd("b-other", "siren:after-17", 1_000)); err != nil {
			t.Fatal(err)
		}
		if err := checkpointExtends(t, l, src.checkpoint, src.vkey); err != nil {
			t.Errorf("the checkpoint signed before migration 17 does not verify against a newer one: %v", err)
		}
		requireVerifyOK(t, l)
	})
}

// TestEntryReadersGiveTheViewsPostings protects the journal's postings as served and as logged
// (invariants 1 and 11): ListEntries and the transparency log's reader (EntriesBySequence) take a
// two-leg entry's legs from its own row and read only the postings table, and must give every
// entry exactly the postings of the entry_postings view, in its order, on a ledger with every kind
// of entry — and still the view's, with an extra row beside the legs, in a database edited behind
// the ledger's back (so that the verifier sees what the view shows).
func TestEntryReadersGiveTheViewsPostings(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		src := fillForCopy(t, db)
		l, err := Open(ctx, src.dsn, Config{TxTimeout: testdb.TxTimeout, HoldSweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		check := func(when string) {
			t.Helper()
			// Listed first: ListEntries positions every entry committed (on PostgreSQL the last
			// ones of fillForCopy may still wait for the sequencer), and nothing is written after.
			listed := map[string][]Posting{}
			for _, e := range allEntries(t, l, EntryFilter{}) {
				listed[e.ID] = e.Postings
			}
			view := map[string][]Posting{}
			bySeq := map[string][]Posting{}
			err := l.db.ReadOnly(ctx, func(q store.Querier) error {
				rs, err := q.Query(ctx, "SELECT entry_id, account, amount FROM entry_postings ORDER BY entry_id, seq")
				if err != nil {
					return err
				}
				defer rs.Close()
				for rs.Next() {
					var (
						id string
						p  Posting
					)
					if err := rs.Scan(&id, &p.Account, &p.Amount); err != nil {
						return err
					}
					view[id] = append(view[id], p)
				}
				if err := rs.Err(); err != nil {
					return err
				}
				// Three entries a call: every chunk boundary of the reader is crossed.
				for after := int64(0); ; {
					entries, err := store.EntriesBySequence(ctx, q, after, 3)
					if err != nil || len(entries) == 0 {
						return err
					}
					for _, e := range entries {
						bySeq[e.ID] = e.Postings
						after = e.Sequence
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) < 10 || len(listed) != len(bySeq) {
				t.Fatalf("%s: %d entries listed, %d read by position", when, len(listed), len(bySeq))
			}
			for id, got := range listed {
				if !slices.Equal(got, view[id]) {
					t.Errorf("%s: ListEntries gives entry %s %v, the view %v", when, id, got, view[id])
				}
				if !slices.Equal(bySeq[id], view[id]) {
					t.Errorf("%s: EntriesBySequence gives entry %s %v, the view %v", when, id, bySeq[id], view[id])
				}
			}
		}
		check("as written")

		// A row added to the postings table of a two-leg entry, as an edit of the database would.
		var id string
		err = l.db.ReadOnly(ctx, func(q store.Querier) error {
			return q.QueryRow(ctx, "SELECT id FROM journal_entries WHERE amount IS NOT NULL ORDER BY seq LIMIT 1").Scan(&id)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := rawExec(ctx, l, "INSERT INTO postings (entry_id, seq, account, amount) VALUES ($1, 2, 'envelope/forged', 5)", id); err != nil {
			t.Fatal(err)
		}
		check("edited")
	})
}
