-- CockroachDB's version of 00001_schema.sql (see migrate.go): the same tables, columns and
-- indexes, with two differences for a cluster of several nodes.
--
--   - The keys the ledger makes itself are UUIDv7, stored as native UUIDs (16 bytes, not 36
--     characters of text); they compare and sort exactly as their text does.
--   - UUIDv7 keys grow with time, so every insert would go to the last range of each table, one
--     node's: the primary keys they lead are hash-sharded (USING HASH), which spreads the inserts
--     over the table's buckets. Lists keep their order (ORDER BY id); CockroachDB reads the
--     buckets in order and merges them.
--
-- Envelope ids are chosen by administrators and request ids by callers: they stay TEXT.
-- Every statement is safe to run again: CockroachDB runs them one by one.

-- +goose Up
CREATE TABLE IF NOT EXISTS envelopes (
    id                 TEXT PRIMARY KEY,
    parent_id          TEXT REFERENCES envelopes (id),
    display_name       TEXT NOT NULL,
    currency           TEXT NOT NULL,
    allocation         BIGINT NOT NULL CHECK (allocation > 0 OR allocation = 0),
    committed          BIGINT NOT NULL CHECK (committed >= 0),
    children_allocated BIGINT NOT NULL CHECK (children_allocated >= 0),
    released           BIGINT NOT NULL CHECK (released >= 0),
    commitment_count   BIGINT NOT NULL CHECK (commitment_count >= 0),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    -- Invariant 2: available = allocation - committed - children_allocated is never negative.
    CHECK (allocation - committed - children_allocated >= 0)
);
CREATE INDEX IF NOT EXISTS envelopes_by_parent ON envelopes (parent_id, id);

CREATE TABLE IF NOT EXISTS commitments (
    id          UUID NOT NULL,
    envelope_id TEXT NOT NULL,
    beneficiary TEXT NOT NULL,
    project     TEXT NOT NULL,
    currency    TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    -- Invariant 3: released never exceeds the amount awarded.
    released    BIGINT NOT NULL CHECK (released >= 0 AND released <= amount),
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT commitments_pkey PRIMARY KEY (id) USING HASH
);
CREATE INDEX IF NOT EXISTS commitments_by_envelope ON commitments (envelope_id, id);
CREATE INDEX IF NOT EXISTS commitments_by_beneficiary ON commitments (beneficiary, id);

CREATE TABLE IF NOT EXISTS journal_entries (
    id         UUID NOT NULL,
    kind       TEXT NOT NULL,
    currency   TEXT NOT NULL,
    caller     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    memo       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT journal_entries_pkey PRIMARY KEY (id) USING HASH
);

CREATE TABLE IF NOT EXISTS postings (
    entry_id UUID NOT NULL,
    seq      INTEGER NOT NULL,
    account  TEXT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount <> 0),
    CONSTRAINT postings_pkey PRIMARY KEY (entry_id, seq) USING HASH
);
CREATE INDEX IF NOT EXISTS postings_by_account ON postings (account, entry_id);

-- Invariant 5: one row per request id, holding the fingerprint of the request and its outcome
-- (a JSON result or refusal), replayed to any retry of the same request.
CREATE TABLE IF NOT EXISTS requests (
    request_id  TEXT PRIMARY KEY,
    operation   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE requests;
DROP TABLE postings;
DROP TABLE journal_entries;
DROP TABLE commitments;
DROP TABLE envelopes;
