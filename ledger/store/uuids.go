package store

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
