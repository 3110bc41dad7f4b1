package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Commitments: one row per award, created by a batch and updated in place by releases.

const commitmentColumns = "id, envelope_id, beneficiary, project, currency, amount, released, description, created_at, updated_at, " +
	"eligible_cost, territory, population, effective_at, paid, closed_at, close_reason, close_effective_at, " +
	"decision_reference, beneficiary_legal_name, beneficiary_siret, beneficiary_rna, purpose"

// SelectCommitments is the SELECT of every commitment column, for FROM commitments. A commitment
// made before effective times existed took effect when it was made.
// A figure stored as NULL is its default (migration 27).
const SelectCommitments = "SELECT id, envelope_id, beneficiary, project, currency, amount, COALESCE(released, 0), " +
	"COALESCE(description, ''), created_at, COALESCE(updated_at, created_at), COALESCE(eligible_cost, 0), " +
	"COALESCE(territory, ''), COALESCE(population, 0), COALESCE(effective_at, created_at), COALESCE(paid, 0), closed_at, " +
	"COALESCE(close_reason, ''), close_effective_at, COALESCE(decision_reference, ''), " +
	"COALESCE(beneficiary_legal_name, ''), COALESCE(beneficiary_siret, ''), COALESCE(beneficiary_rna, ''), " +
	"COALESCE(purpose, '') FROM commitments"

// ScanCommitment reads a commitment row selected with SelectCommitments.
func ScanCommitment(s Scanner) (core.Commitment, error) {
	var (
		c                           core.Commitment
		created, updated, effective int64
		closed, closeEffective      *int64
	)
	err := s.Scan(&c.ID, &c.EnvelopeID, &c.Beneficiary, &c.Project, &c.Currency, &c.Amount, &c.Released,
		&c.Description, &created, &updated, &c.EligibleCost, &c.Territory, &c.Population, &effective,
		&c.Paid, &closed, &c.CloseReason, &closeEffective,
		&c.DecisionReference, &c.BeneficiaryLegalName, &c.BeneficiarySIRET, &c.BeneficiaryRNA, &c.Purpose)
	c.CreatedAt, c.UpdatedAt, c.EffectiveAt = fromMicros(created), fromMicros(updated), fromMicros(effective)
	c.ClosedAt, c.CloseEffectiveAt = optionalTime(closed), optionalTime(closeEffective)
	return c, err
}

// LoadCommitment reads one commitment (COMMITMENT_NOT_FOUND when it does not exist).
func LoadCommitment(ctx context.Context, q Querier, id string) (core.Commitment, error) {
	c, err := ScanCommitment(q.QueryRow(ctx, SelectCommitments+" WHERE id = $1", id))
	if errors.Is(err, ErrNoRows) {
		return c, core.CommitmentNotFound(id)
	}
	return c, err
}

// LoadCommitments reads commitments by id; the ones that do not exist are absent.
func LoadCommitments(ctx context.Context, q Querier, ids []string) (map[string]*core.Commitment, error) {
	found := map[string]*core.Commitment{}
	if len(ids) == 0 {
		return found, nil
	}
	cond, args := keysIn(q, "id", 0, ids)
	rs, err := queryByKeys(ctx, q, SelectCommitments+" WHERE "+cond, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		c, err := ScanCommitment(rs)
		if err != nil {
			return nil, err
		}
		found[c.ID] = &c
	}
	return found, rs.Err()
}

// PeekCommitments and LoadCommitmentsAt read a batch's commitments at their rows' addresses
// (rowaddress.go).
func PeekCommitments(ctx context.Context, q Querier, ids []string) RowAddresses {
	return peekRows(ctx, q, "commitments", ids)
}

// LoadCommitmentsAt is LoadCommitments inside a transaction, at the rows PeekCommitments found.
func LoadCommitmentsAt(ctx context.Context, q Querier, ids []string, rows RowAddresses) (map[string]*core.Commitment, error) {
	return loadAt(ctx, q, SelectCommitments, ids, rows, ScanCommitment,
		func(c core.Commitment) string { return c.ID }, LoadCommitments)
}

// InsertCommitments writes new commitments in bulk.
func InsertCommitments(ctx context.Context, q Querier, cs []*core.Commitment) error {
	rows := make([][]any, 0, len(cs))
	for _, c := range cs {
		// What is at its default is stored as NULL (migration 27).
		rows = append(rows, []any{c.ID, c.EnvelopeID, c.Beneficiary, c.Project, c.Currency, c.Amount, orNull(c.Released),
			orNull(c.Description), micros(c.CreatedAt), timeOrNull(c.UpdatedAt, c.CreatedAt), orNull(c.EligibleCost),
			orNull(c.Territory), orNull(c.Population), timeOrNull(c.EffectiveAt, c.CreatedAt),
			orNull(c.Paid), optionalMicros(c.ClosedAt), orNull(c.CloseReason), optionalMicros(c.CloseEffectiveAt),
			orNull(c.DecisionReference), orNull(c.BeneficiaryLegalName), orNull(c.BeneficiarySIRET),
			orNull(c.BeneficiaryRNA), orNull(c.Purpose)})
	}
	return bulkInsert(ctx, q, "commitments", strings.Split(commitmentColumns, ", "), rows, "",
		core.Internal("a commitment was not inserted"))
}

// UpdateCommitment writes what a commitment released.
// UpdateCommitments writes what a batch changed of commitments it read (released, paid or
// closed): on PostgreSQL every such column of them with updateByKeys, elsewhere one statement each
// (UpdateCommitment, or UpdateCommitmentFigures for one paid or closed).
func UpdateCommitments(ctx context.Context, q Querier, cs []*core.Commitment) error {
	p, ok := indexed(q)
	if !ok || len(cs) < 2 {
		for _, c := range cs {
			update := UpdateCommitment
			if c.Paid != 0 || c.Closed() {
				update = UpdateCommitmentFigures // paid or closed: every figure
			}
			if err := update(ctx, q, c); err != nil {
				return err
			}
		}
		return nil
	}
	inChunks(cs, func(part []*core.Commitment) {
		ids := make([]string, len(part))
		paid, released, updated := make([]int64, len(part)), make([]int64, len(part)), make([]int64, len(part))
		closedAt, closeEffective := make([]*int64, len(part)), make([]*int64, len(part))
		reasons := make([]string, len(part))
		for i, c := range part {
			ids[i], paid[i], released[i], updated[i], reasons[i] = c.ID, c.Paid, c.Released, micros(c.UpdatedAt), c.CloseReason
			closedAt[i], closeEffective[i] = optionalMicrosPtr(c.ClosedAt), optionalMicrosPtr(c.CloseEffectiveAt)
		}
		p.updateByKeys("commitments", ids, []setColumn{{"paid", "bigint", paid},
			{"released", "bigint", released}, {"closed_at", "bigint", closedAt}, {"close_reason", "text", reasons},
			{"close_effective_at", "bigint", closeEffective}, {"updated_at", "bigint", updated}}, "",
			func(n int64) error { return core.Internal("updating %d commitments touched %d rows", len(ids), n) })
	})
	return nil
}

func UpdateCommitment(ctx context.Context, q Querier, c *core.Commitment) error {
	return q.Write(ctx, "UPDATE commitments SET released = $2, updated_at = $3 WHERE id = $1",
		[]any{c.ID, c.Released, micros(c.UpdatedAt)}, Expect(1, func(n int64) error {
			return core.Internal("updating commitment %s touched %d rows", c.ID, n)
		}))
}

// Migration 27: a commitment's figures that an award leaves at their default are stored as NULL
// (what it released, paid, its eligible cost and population: 0; its update and effective times: its
// creation time; its texts: the empty string), and SelectCommitments reads NULL as the default.
// Later updates (a release, a payment, a closing) write their values, zeros included. On PostgreSQL
// a NULL takes no byte of the row, where a 0 took eight and the text columns between them padding:
// ledgerbench's award row went from 168 bytes to 96 (docs/benchmarks.md). PostgreSQL and CockroachDB drop
// NOT NULL and the defaults (as SQLite's rebuilt table has none), in one statement (one schema
// change), and keep the rows they have, whose zeros read the same, instead of rewriting a table
// every award writes. SQLite, which has no ALTER COLUMN, rebuilds the table in the migration's
// transaction (THE RULE, migrate.go) and stores its rows as the new ones: its rows were already
// about as small (SQLite stores a zero or an empty text in no byte), but both engines then hold the
// same, and a copy from one to the other needs no translation.
var commitmentsSparse = map[string][]string{
	"sqlite": {
		`CREATE TABLE commitments_sparse (
		    id                     TEXT PRIMARY KEY,
		    envelope_id            TEXT NOT NULL,
		    beneficiary            TEXT NOT NULL,
		    project                TEXT NOT NULL,
		    currency               TEXT NOT NULL,
		    amount                 BIGINT NOT NULL CHECK (amount > 0),
		    -- Invariant 3: released never exceeds the amount awarded.
		    released               BIGINT CHECK (released >= 0 AND released <= amount),
		    description            TEXT,
		    created_at             BIGINT NOT NULL,
		    updated_at             BIGINT,
		    eligible_cost          BIGINT,
		    territory              TEXT,
		    population             BIGINT,
		    paid                   BIGINT CHECK (paid >= 0),
		    closed_at              BIGINT,
		    close_reason           TEXT,
		    close_effective_at     BIGINT,
		    decision_reference     TEXT,
		    beneficiary_legal_name TEXT,
		    beneficiary_siret      TEXT,
		    beneficiary_rna        TEXT,
		    purpose                TEXT,
		    effective_at           BIGINT
		)`,
		`INSERT INTO commitments_sparse (` + commitmentColumns + `)
		 SELECT id, envelope_id, beneficiary, project, currency, amount, NULLIF(released, 0),
		   NULLIF(description, ''), created_at, NULLIF(updated_at, created_at), NULLIF(eligible_cost, 0),
		   NULLIF(territory, ''), NULLIF(population, 0), NULLIF(effective_at, created_at), NULLIF(paid, 0),
		   closed_at, NULLIF(close_reason, ''), close_effective_at, NULLIF(decision_reference, ''),
		   NULLIF(beneficiary_legal_name, ''), NULLIF(beneficiary_siret, ''), NULLIF(beneficiary_rna, ''),
		   NULLIF(purpose, '')
		 FROM commitments`,
		`DROP TABLE commitments`,
		`ALTER TABLE commitments_sparse RENAME TO commitments`,
		`CREATE INDEX commitments_by_envelope ON commitments (envelope_id, id)`,
		`CREATE INDEX commitments_by_beneficiary ON commitments (beneficiary, id)`,
	},
	"postgres": {
		`ALTER TABLE commitments` + sparseColumns(
			"released", "description", "updated_at", "eligible_cost", "territory", "population", "paid",
			"close_reason", "decision_reference", "beneficiary_legal_name", "beneficiary_siret",
			"beneficiary_rna", "purpose"),
	},
}

// sparseColumns is the ALTER TABLE clauses that make columns nullable without a default.
func sparseColumns(columns ...string) string {
	var b strings.Builder
	for i, c := range columns {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(" ALTER COLUMN " + c + " DROP NOT NULL, ALTER COLUMN " + c + " DROP DEFAULT")
	}
	return b.String()
}

// orNull is v, or NULL where v is its type's zero (a commitment's default: migration 27).
func orNull[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// timeOrNull is t in microseconds, or NULL where it is def (a commitment's default: migration 27).
func timeOrNull(t, def time.Time) any {
	if t.IsZero() || t.Equal(def) {
		return nil
	}
	return micros(t)
}
