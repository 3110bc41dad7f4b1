-- The journal's order (issue 10's sequence): every journal entry gets a position, seq, in an
-- order readers can follow. Positions are assigned after the entries commit, by one transaction
-- at a time holding the journal_head row (see store/sequence.go): a position, once seen, never
-- has an entry appear at or before it. An entry not yet given one is not served to readers.
-- Entries of an existing ledger get theirs in (created_at, id) order at the first run.

-- Every statement is safe to run again (see migrate.go): CockroachDB runs them one by one.

-- +goose Up
ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS seq BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS journal_entries_by_seq ON journal_entries (seq);
CREATE INDEX IF NOT EXISTS journal_entries_unsequenced ON journal_entries (created_at, id) WHERE seq IS NULL;
CREATE TABLE IF NOT EXISTS journal_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0)
);
INSERT INTO journal_head (id, last_seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- +goose Down
DROP TABLE journal_head;
DROP INDEX journal_entries_unsequenced;
DROP INDEX journal_entries_by_seq;
ALTER TABLE journal_entries DROP COLUMN seq;
