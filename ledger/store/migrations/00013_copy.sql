-- The progress of `ledgerd copy` (issue 20, docs/operations.md), kept in the TARGET of a copy.
--
-- ledger_copy has one row while a database is being filled by `ledgerd copy`, or once it has
-- been: the source it copies (its URL without password), a fingerprint of the source's snapshot
-- (so that a restarted copy resumes only from the same, unchanged source), and finished_at, NULL
-- until every row is copied. A ledger whose copy is not finished is refused by ledgerd (store.Open):
-- a half-copied ledger is never served. A ledger that was never a copy target has no row.
--
-- ledger_copy_tables has one row per copied table: the primary key of the last row copied, in
-- the source's order (a JSON array), how many rows are copied, and the phase reached. Each batch
-- of rows is inserted in the same transaction that advances its row here, so that a copy
-- interrupted at any point resumes after exactly the last batch committed, and never inserts a row
-- twice.
--
-- Every statement is safe to run again (see migrate.go).

-- +goose Up
CREATE TABLE IF NOT EXISTS ledger_copy (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    source      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE IF NOT EXISTS ledger_copy_tables (
    table_name  TEXT PRIMARY KEY,
    last_key    TEXT NOT NULL,
    rows_copied BIGINT NOT NULL CHECK (rows_copied >= 0),
    phase       INTEGER NOT NULL CHECK (phase >= 0)
);

-- +goose Down
DROP TABLE IF EXISTS ledger_copy_tables;
DROP TABLE IF EXISTS ledger_copy;
