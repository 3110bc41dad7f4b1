package store

import (
	"slices"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Migration 21 (issue 17, "storage"): on PostgreSQL proper, the keys the ledger makes itself are
// native UUIDs, as they have been on CockroachDB from the start (migrations/cockroachdb/): a
// commitment's id, a journal entry's id (and the legacy postings' entry_id, which the view
// entry_postings unites with it), a payment's id, commitment and entry. A UUID takes 16 bytes
// where its text took 37, in the row and in every index that holds it: a commitment's row and its
// three indexes (the primary key, by envelope, by beneficiary) and an entry's row and primary key,
// about 145 bytes per award after VACUUM FULL (docs/benchmarks.md, "Native UUIDs on
// PostgreSQL"). They compare and sort as their canonical text does, so every order (lists by id,
// the sequencer's ORDER BY created_at, id) is the same. The ledger has only ever made canonical
// UUIDs (core.CheckCommitmentID refuses any other commitment id before a query), and the
// statements read and write them as text, as on CockroachDB.
//
// COPY sends its values in binary, where pgx has no direct encoding of a string into a UUID: it
// built an error for every such value, then fell back to parsing its text, 6 µs of ledgerd's CPU
// per award in calls of 1,000. nativeUUIDValues hands it the 16 bytes instead.
//
// Holds keep TEXT keys, as on CockroachDB: a hold's commitment_id is ” until it is confirmed.
// SQLite has no UUID type and keeps TEXT.
//
// Every statement can run again (migrate.go's rule): converting a UUID column to UUID changes
// nothing, and the view is dropped, then made again, around the conversion of the columns it
// reads (PostgreSQL refuses to change the type of a column a view uses). ALTER COLUMN … TYPE
// rewrites each table and its indexes under an exclusive lock, in the migration's transaction:
// on a large ledger, the first start of this version takes that time before it serves.
var nativeUUIDs = map[string][]string{
	"postgres": {
		`DROP VIEW IF EXISTS entry_postings`,
		`ALTER TABLE journal_entries ALTER COLUMN id TYPE UUID USING id::uuid`,
		`ALTER TABLE postings ALTER COLUMN entry_id TYPE UUID USING entry_id::uuid`,
		`ALTER TABLE commitments ALTER COLUMN id TYPE UUID USING id::uuid`,
		`ALTER TABLE payments ALTER COLUMN commitment_id TYPE UUID USING commitment_id::uuid,
		   ALTER COLUMN id TYPE UUID USING id::uuid, ALTER COLUMN entry_id TYPE UUID USING entry_id::uuid`,
		`CREATE OR REPLACE VIEW entry_postings` + entryPostingsView,
	},
}

// creditHashIndex (migration 22, PostgreSQL proper) makes the index of the journal's credit
// accounts a hash index. Almost every award credits an account of its own
// (commitments/{uuid}, 49 bytes of text), so the B-tree held one 49-byte key per award, which
// deduplication cannot shorten: 78 bytes per award after VACUUM FULL, the largest index of the
// journal. A hash index holds a 4-byte hash code per entry, about 30 bytes per award. Every read
// of it is by equality (the journal of one account: entry_postings' account = $n); reads by
// prefix (reports' LIKE 'commitments/%') never used the B-tree, under a database collation other
// than C. Hash indexes are WAL-logged and crash-safe from PostgreSQL 10, and take predicate locks
// under SERIALIZABLE from 11. CockroachDB, where USING HASH means a hash-sharded B-tree, and
// SQLite keep the B-tree of migration 17.
var creditHashIndex = map[string][]string{
	"postgres": {
		`DROP INDEX IF EXISTS journal_entries_by_credit`,
		`CREATE INDEX journal_entries_by_credit ON journal_entries USING hash (credit_account)`,
	},
}

// uuidColumns are the columns migration 21 made native UUIDs, by table.
var uuidColumns = map[string][]string{
	"journal_entries": {"id"},
	"postings":        {"entry_id"},
	"commitments":     {"id"},
	"payments":        {"commitment_id", "id", "entry_id"},
}

// nativeUUIDValues replaces, in rows for COPY into table (PostgreSQL proper), each canonical UUID
// given as text in a column of uuidColumns by its 16 bytes, which pgx encodes directly. Any other
// value is left for COPY to refuse.
func nativeUUIDValues(table string, columns []string, rows [][]any) {
	for _, name := range uuidColumns[table] {
		c := slices.Index(columns, name)
		if c < 0 {
			continue
		}
		for _, row := range rows {
			if s, ok := row[c].(string); ok {
				if u, ok := core.ParseUUID(s); ok {
					row[c] = u
				}
			}
		}
	}
}

// uuidKeys returns the keys a native UUID column can hold, for a read by keys on PostgreSQL or
// CockroachDB (a commitment's id, a payment's): there, one key that is not a UUID fails the whole
// statement (invalid input syntax for type uuid), with every other key read with it. Such a key
// names no row, so leaving it out changes no answer: a request-log record that names one (written
// on SQLite, which keeps TEXT, or damaged behind the ledger's back) is then a row not found, an
// INTERNAL error for its own retry alone, as any record whose rows are missing. Only canonical
// UUIDs are kept, the only ids the ledger makes: another spelling of one would be read back in
// its canonical form, which the record's does not match either. SQLite keeps every key.
func uuidKeys(q Querier, keys []string) []string {
	if _, ok := q.(*pgxQuerier); !ok {
		return keys
	}
	return slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return notUUIDKey(q, k) })
}

// notUUIDKey reports whether key is one a native UUID column of the database q reads cannot hold
// (uuidKeys).
func notUUIDKey(q Querier, key string) bool {
	if _, ok := q.(*pgxQuerier); !ok {
		return false
	}
	_, ok := core.ParseUUID(key)
	return !ok
}
