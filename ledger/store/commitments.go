package store

import (
	"context"
	"errors"
	"strings"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Commitments: one row per award, created by a batch and updated in place by releases.

const commitmentColumns = "id, envelope_id, beneficiary, project, currency, amount, released, description, created_at, updated_at, " +
	"eligible_cost, territory, population, effective_at, paid, closed_at, close_reason, close_effective_at, " +
	"decision_reference, beneficiary_legal_name, beneficiary_siret, beneficiary_rna, purpose"

// SelectCommitments is the SELECT of every commitment column, for FROM commitments. A commitment
// made before effective times existed took effect when it was made.
const SelectCommitments = "SELECT id, envelope_id, beneficiary, project, currency, amount, released, description, created_at, " +
	"updated_at, eligible_cost, territory, population, COALESCE(effective_at, created_at), paid, closed_at, close_reason, " +
	"close_effective_at, decision_reference, beneficiary_legal_name, beneficiary_siret, beneficiary_rna, purpose FROM commitments"

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
		rows = append(rows, []any{c.ID, c.EnvelopeID, c.Beneficiary, c.Project, c.Currency, c.Amount, c.Released,
			c.Description, micros(c.CreatedAt), micros(c.UpdatedAt), c.EligibleCost, c.Territory, c.Population,
			micros(orTime(c.EffectiveAt, c.CreatedAt)),
			c.Paid, optionalMicros(c.ClosedAt), c.CloseReason, optionalMicros(c.CloseEffectiveAt),
			c.DecisionReference, c.BeneficiaryLegalName, c.BeneficiarySIRET, c.BeneficiaryRNA, c.Purpose})
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
