package store

// Migration 17 (issue 17 item 1, "fewer rows per award"): two-leg entries in one row.
//
// Almost every journal entry has exactly two postings, the first taking an amount from one
// account and the second giving it to another (an award: envelope −a, commitment +a). Such an
// entry is now stored in its journal_entries row itself, TigerBeetle's transfer shape:
// debit_account (the account of the first posting, −amount), credit_account (the second, +amount)
// and amount (> 0). The postings table keeps only the entries of any other shape: a hold confirmed
// at a lower amount (three postings), and any entry whose postings are not "−a then +a". A rule
// change and a closing with nothing left have no postings at all, and NULL in the three columns.
// An award so writes three rows (commitment, entry, request), not five.
//
// Readers see the postings exactly as before, in the same order, through the view
// entry_postings (entry_id, seq, account, amount): seq 0 and 1 for a transfer's legs, the
// postings table's own seq otherwise. Postings per account use the indexes
// journal_entries_by_debit and journal_entries_by_credit (and postings_by_account). The
// transparency log's leaves are encoded from these postings, so their bytes do not change.
//
// The migration moves an existing ledger: it adds the columns, fills them from the postings of
// every entry that has exactly the transfer's shape, removes those posting rows, and makes the
// journal's append-only trigger cover the new columns (giving an entry its position still
// changes nothing else). The journal's and the postings' append-only triggers are dropped for
// the move and made again after it. Every statement can run again (migrate.go's rule): the
// UPDATE moves only entries not yet moved, the DELETE removes only rows already moved.
//
// The PostgreSQL statements are CockroachDB's too: UPDATE … FROM, CREATE OR REPLACE VIEW and the
// CHECK are in its dialect, and an entry's id is a UUID in both journal_entries and postings
// there (migrations/cockroachdb/00001_schema.sql), so the joins and the view's UNION ALL line up.
// No cockroach binary was at hand where this was written: on CockroachDB they are untested.

// entryPostingsView is the journal's postings, whatever their storage.
const entryPostingsView = ` AS
SELECT id AS entry_id, 0 AS seq, debit_account AS account, -amount AS amount
  FROM journal_entries WHERE amount IS NOT NULL
UNION ALL
SELECT id AS entry_id, 1 AS seq, credit_account AS account, amount AS amount
  FROM journal_entries WHERE amount IS NOT NULL
UNION ALL
SELECT entry_id, seq, account, amount FROM postings`

// moveTransfers fills the transfer columns of every entry whose postings are exactly
// (A, −a), (B, +a) with a > 0, not yet moved.
const moveTransfers = `UPDATE journal_entries SET debit_account = d.account, credit_account = c.account, amount = c.amount
FROM postings d, postings c
WHERE journal_entries.amount IS NULL
  AND d.entry_id = journal_entries.id AND d.seq = 0
  AND c.entry_id = journal_entries.id AND c.seq = 1
  AND c.amount > 0 AND d.amount = -c.amount
  AND NOT EXISTS (SELECT 1 FROM postings o WHERE o.entry_id = journal_entries.id AND o.seq NOT IN (0, 1))`

// removeMovedPostings removes the posting rows of the entries moved (they had exactly these two).
const removeMovedPostings = `DELETE FROM postings WHERE seq IN (0, 1)
  AND entry_id IN (SELECT id FROM journal_entries WHERE amount IS NOT NULL)`

var transfersSchema = map[string][]string{
	"sqlite": {
		`ALTER TABLE journal_entries ADD COLUMN debit_account TEXT`,
		`ALTER TABLE journal_entries ADD COLUMN credit_account TEXT`,
		// The three columns are set together, or none is (SQLite adds no table constraint to an
		// existing table: the column's CHECK names the other two).
		`ALTER TABLE journal_entries ADD COLUMN amount BIGINT CHECK (CASE WHEN amount IS NULL
		   THEN debit_account IS NULL AND credit_account IS NULL
		   ELSE amount > 0 AND debit_account IS NOT NULL AND credit_account IS NOT NULL END)`,
		`DROP TRIGGER IF EXISTS journal_entries_append_only`,
		moveTransfers,
		`DROP TRIGGER IF EXISTS postings_no_delete`,
		removeMovedPostings,
		`CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE ON journal_entries
		 WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.id = OLD.id AND NEW.kind = OLD.kind
		   AND NEW.currency = OLD.currency AND NEW.caller = OLD.caller AND NEW.request_id = OLD.request_id
		   AND NEW.memo = OLD.memo AND NEW.created_at = OLD.created_at AND NEW.effective_at IS OLD.effective_at
		   AND NEW.debit_account IS OLD.debit_account AND NEW.credit_account IS OLD.credit_account
		   AND NEW.amount IS OLD.amount)
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE INDEX IF NOT EXISTS journal_entries_by_debit ON journal_entries (debit_account)`,
		`CREATE INDEX IF NOT EXISTS journal_entries_by_credit ON journal_entries (credit_account)`,
		`DROP VIEW IF EXISTS entry_postings`,
		`CREATE VIEW entry_postings` + entryPostingsView,
	},
	"postgres": {
		`ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS debit_account TEXT`,
		`ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS credit_account TEXT`,
		`ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS amount BIGINT`,
		`ALTER TABLE journal_entries DROP CONSTRAINT IF EXISTS journal_entries_transfer`,
		`ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_transfer CHECK (CASE WHEN amount IS NULL
		   THEN debit_account IS NULL AND credit_account IS NULL
		   ELSE amount > 0 AND debit_account IS NOT NULL AND credit_account IS NOT NULL END)`,
		`DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries`,
		moveTransfers,
		`DROP TRIGGER IF EXISTS postings_append_only ON postings`,
		removeMovedPostings,
		`CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
		`CREATE OR REPLACE FUNCTION ledger_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
		      AND (NEW.id, NEW.kind, NEW.currency, NEW.caller, NEW.request_id, NEW.memo, NEW.created_at, NEW.effective_at,
		           NEW.debit_account, NEW.credit_account, NEW.amount)
		          IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.currency, OLD.caller, OLD.request_id, OLD.memo, OLD.created_at, OLD.effective_at,
		           OLD.debit_account, OLD.credit_account, OLD.amount)
		   THEN RETURN NEW; END IF;
		   RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME;
		 END $$`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()`,
		`CREATE INDEX IF NOT EXISTS journal_entries_by_debit ON journal_entries (debit_account)`,
		`CREATE INDEX IF NOT EXISTS journal_entries_by_credit ON journal_entries (credit_account)`,
		`CREATE OR REPLACE VIEW entry_postings` + entryPostingsView,
	},
}
