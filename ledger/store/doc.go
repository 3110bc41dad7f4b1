// Package store is the ledger's storage: the database engines (SQLite, the embedded default;
// PostgreSQL and CockroachDB through pgx), the schema and its migrations, page tokens, and one
// file per table with the statements that load and write it. It makes no decision.
//
// What it promises: Engine.ReadWrite runs a function in a serializable transaction and retries
// it in a fresh transaction on the engine's retryable errors, checking the outcome of COMMIT (a
// connection lost during COMMIT is ErrCommitOutcomeUnknown, never a success or a failure it
// cannot know); a request id recorded twice fails the transaction (ErrRequestRecorded); an entry
// that does not balance is never written; the journal, postings and request log are append-only
// in the database itself (triggers). An entry of two legs, "−a from A, +a to B" (nearly every
// entry), is one journal_entries row with debit_account, credit_account and amount; the
// postings table keeps the postings of the entries of any other shape; readers see every
// entry's postings, in order, through the view entry_postings (transfers.go, migration 17).
// The request log (requests.go) keeps a canonical fingerprint as its 32 bytes and an award's, a
// bulk call's, a hold's creation's or confirmation's or a payment's result by reference
// (core.PackCommit, core.PackBulk, core.PackCreateHold, core.PackConfirmHold, core.PackPayment),
// rebuilt from the holds', payments', commitments' and envelopes' rows when replayed, and any
// other outcome as its JSON deflated
// with a preset dictionary and checksummed (core.DeflateOutcome); rows written before migration
// 18 (JSON) are read as they are. The same SQL runs on every engine; on CockroachDB an
// ambiguous commit (40003) is ErrCommitOutcomeUnknown too, and every migration is safe to run
// again after a failure at any of its statements (see migrate.go and docs/cockroachdb.md).
package store
