-- Funding rules, calls and per-project totals (issue 7).
--
-- envelope_rules: every rule set an administrator gave an envelope, append-only. A rule set
-- belongs to a call (a label, such as "appel-1") and is in force from effective_from until the
-- envelope's next rule set; its rules are JSON (unset fields inherit from the envelope's
-- ancestors). The change is also recorded in the journal as a RULES_CHANGED entry without
-- postings whose id is this row's id.
--
-- project_totals: what each project holds on an envelope (awards minus releases), kept by every
-- award and release in the same transaction, and read by primary key when a funding-share rule
-- applies. It is written by upserts that add a delta (a release adds a negative one), so it
-- carries no CHECK (PostgreSQL checks the proposed row before the conflict); Verify checks it
-- against the commitments. Like the other tables written by awards it has no foreign key (see 00001).
--
-- commitments gain what the rules look at: the project's eligible cost and the beneficiary's
-- territory and population, as given with the award (0 and '' when not given).

-- Every statement is safe to run again (see migrate.go): CockroachDB runs them one by one.

-- +goose Up
CREATE TABLE IF NOT EXISTS envelope_rules (
    envelope_id    TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    id             TEXT NOT NULL,
    call_name      TEXT NOT NULL,
    rules          TEXT NOT NULL,
    caller         TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (envelope_id, effective_from, id)
);

CREATE TABLE IF NOT EXISTS project_totals (
    envelope_id TEXT NOT NULL,
    project     TEXT NOT NULL,
    awarded     BIGINT NOT NULL,
    award_count BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (envelope_id, project)
);

ALTER TABLE commitments ADD COLUMN IF NOT EXISTS eligible_cost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS territory TEXT NOT NULL DEFAULT '';
ALTER TABLE commitments ADD COLUMN IF NOT EXISTS population BIGINT NOT NULL DEFAULT 0;

INSERT INTO project_totals (envelope_id, project, awarded, award_count, updated_at)
SELECT envelope_id, project, SUM(amount - released), COUNT(*), MAX(updated_at)
FROM commitments GROUP BY envelope_id, project
ON CONFLICT (envelope_id, project) DO NOTHING;

-- +goose Down
ALTER TABLE commitments DROP COLUMN population;
ALTER TABLE commitments DROP COLUMN territory;
ALTER TABLE commitments DROP COLUMN eligible_cost;
DROP TABLE project_totals;
DROP TABLE envelope_rules;
