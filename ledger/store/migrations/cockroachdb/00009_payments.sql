-- Payments, closing and what publication needs (issue 13 §2 and §4).
--
-- payments: every payment made out of a commitment, append-only, keyed by its commitment so that
-- a commitment's payments are one range of the primary key. Like the other tables written by
-- awards it has no foreign key (see 00001): the transaction that writes a payment locks its
-- envelope and updates its commitment, and Verify checks that none is orphaned.
--
-- commitments gain what was paid (paid), their closing (closed_at, NULL while open; its reason and
-- the effective time given with it) and the publication fields of the award; envelopes what their
-- commitments paid, and a root's granting body. Released keeps counting every return to the
-- envelope, the closing's included, so amount = released + paid + remaining to pay.

-- CockroachDB: the keys the ledger makes are native UUIDs and the primary key is hash-sharded
-- (see 00001_schema.sql there).

-- +goose Up
CREATE TABLE IF NOT EXISTS payments (
    commitment_id UUID NOT NULL,
    id            UUID NOT NULL,
    envelope_id   TEXT NOT NULL,
    currency      TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    effective_at  BIGINT,
    caller        TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    entry_id      UUID NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (commitment_id, id) USING HASH
);

ALTER TABLE commitments ADD COLUMN IF NOT EXISTS paid BIGINT NOT NULL DEFAULT 0 CHECK (paid >= 0);
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS closed_at BIGINT;
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS close_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS close_effective_at BIGINT;
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS decision_reference TEXT NOT NULL DEFAULT '';
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS beneficiary_legal_name TEXT NOT NULL DEFAULT '';
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS beneficiary_siret TEXT NOT NULL DEFAULT '';
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS beneficiary_rna TEXT NOT NULL DEFAULT '';
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS purpose TEXT NOT NULL DEFAULT '';

ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS paid BIGINT NOT NULL DEFAULT 0 CHECK (paid >= 0);
ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS granting_body_name TEXT NOT NULL DEFAULT '';
ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS granting_body_siret TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE envelopes DROP COLUMN IF EXISTS granting_body_siret;
ALTER TABLE envelopes DROP COLUMN IF EXISTS granting_body_name;
ALTER TABLE envelopes DROP COLUMN IF EXISTS paid;
ALTER TABLE commitments DROP COLUMN IF EXISTS purpose;
ALTER TABLE commitments DROP COLUMN IF EXISTS beneficiary_rna;
ALTER TABLE commitments DROP COLUMN IF EXISTS beneficiary_siret;
ALTER TABLE commitments DROP COLUMN IF EXISTS beneficiary_legal_name;
ALTER TABLE commitments DROP COLUMN IF EXISTS decision_reference;
ALTER TABLE commitments DROP COLUMN IF EXISTS close_effective_at;
ALTER TABLE commitments DROP COLUMN IF EXISTS close_reason;
ALTER TABLE commitments DROP COLUMN IF EXISTS closed_at;
ALTER TABLE commitments DROP COLUMN IF EXISTS paid;
DROP TABLE IF EXISTS payments;
