-- The ledger's schema. The same statements run on SQLite, PostgreSQL and CockroachDB: amounts are
-- BIGINT minor units, times are BIGINT microseconds since the Unix epoch, identifiers are TEXT made
-- by the application (UUIDv7), and no sequence sits on the write path.
--
-- The tables written by every award (commitments, journal_entries, postings, requests) carry no
-- foreign key: under SERIALIZABLE, a foreign-key check is a predicate-locked read of the parent's
-- index page, and that page (the newest journal entries, the envelopes) is the one every other
-- transaction writes, so batches on unrelated envelopes would abort each other ("pivot"). The
-- same transaction that writes a row locks or writes its parent, and the auditor (Verify) checks
-- that no row is orphaned.

--
-- Every statement is safe to run again (see migrate.go): CockroachDB runs them one by one, so a
-- migration that failed half-way is run again from its first statement.

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
    id          TEXT PRIMARY KEY,
    envelope_id TEXT NOT NULL,
    beneficiary TEXT NOT NULL,
    project     TEXT NOT NULL,
    currency    TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    -- Invariant 3: released never exceeds the amount awarded.
    released    BIGINT NOT NULL CHECK (released >= 0 AND released <= amount),
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS commitments_by_envelope ON commitments (envelope_id, id);
CREATE INDEX IF NOT EXISTS commitments_by_beneficiary ON commitments (beneficiary, id);

CREATE TABLE IF NOT EXISTS journal_entries (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    currency   TEXT NOT NULL,
    caller     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    memo       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS postings (
    entry_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    account  TEXT NOT NULL,
    amount   BIGINT NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (entry_id, seq)
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
