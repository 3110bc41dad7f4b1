package store

import (
	"context"
	"errors"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Project totals: what each project holds on each envelope, kept for the funding-share rule.

// ProjectTotal is what a project holds on an envelope, as read with the envelope's version
// (commitment_count, released): every change of a project total changes one of them, and both
// only grow, so an equal version under the envelope's lock means the total is still current.
type ProjectTotal struct {
	Awarded         int64
	Count, Released int64 // the envelope's version when read
}

// PeekTotals reads project totals with their envelope's version, one statement per project (sent
// together); it is meant to run outside any transaction (see ledger's batch).
func PeekTotals(ctx context.Context, q Querier, keys []core.ProjectKey) (map[core.ProjectKey]ProjectTotal, error) {
	out := map[core.ProjectKey]ProjectTotal{}
	if len(keys) == 0 {
		return out, nil
	}
	argsList := make([][]any, len(keys))
	for i, k := range keys {
		argsList[i] = []any{k.EnvelopeID, k.Project}
	}
	i := 0
	err := q.QueryEach(ctx, `SELECT e.commitment_count, e.released, COALESCE(p.awarded, 0) FROM envelopes e
		LEFT JOIN project_totals p ON p.envelope_id = e.id AND p.project = $2 WHERE e.id = $1`, argsList,
		func(s Scanner) error {
			k := keys[i]
			i++
			var t ProjectTotal
			err := s.Scan(&t.Count, &t.Released, &t.Awarded)
			if errors.Is(err, ErrNoRows) {
				return nil
			}
			if err == nil {
				out[k] = t
			}
			return err
		})
	return out, err
}

// LoadTotals reads project totals inside a transaction, by primary key, one statement each.
func LoadTotals(ctx context.Context, q Querier, keys []core.ProjectKey) (map[core.ProjectKey]int64, error) {
	out := map[core.ProjectKey]int64{}
	if len(keys) == 0 {
		return out, nil
	}
	argsList := make([][]any, len(keys))
	for i, k := range keys {
		argsList[i] = []any{k.EnvelopeID, k.Project}
	}
	i := 0
	err := q.QueryEach(ctx, "SELECT awarded FROM project_totals WHERE envelope_id = $1 AND project = $2", argsList,
		func(s Scanner) error {
			k := keys[i]
			i++
			var v int64
			err := s.Scan(&v)
			if errors.Is(err, ErrNoRows) {
				out[k] = 0
				return nil
			}
			out[k] = v
			return err
		})
	return out, err
}

// WriteTotals adds a batch's changes to the project totals, one upsert per project.
func WriteTotals(ctx context.Context, q Querier, deltas []core.ProjectDelta, at time.Time) error {
	if len(deltas) == 0 {
		return nil
	}
	sum := map[core.ProjectKey]*core.ProjectDelta{}
	var order []core.ProjectKey
	for _, d := range deltas {
		s, ok := sum[d.Key]
		if !ok {
			s = &core.ProjectDelta{Key: d.Key}
			sum[d.Key] = s
			order = append(order, d.Key)
		}
		s.Amount += d.Amount
		s.Count += d.Count
	}
	rows := make([][]any, 0, len(order))
	for _, k := range order {
		s := sum[k]
		if s.Amount == 0 && s.Count == 0 {
			continue
		}
		rows = append(rows, []any{k.EnvelopeID, k.Project, s.Amount, s.Count, micros(at)})
	}
	return bulkInsert(ctx, q, "project_totals", []string{"envelope_id", "project", "awarded", "award_count", "updated_at"},
		rows, ` ON CONFLICT (envelope_id, project) DO UPDATE SET awarded = project_totals.awarded + excluded.awarded,
		award_count = project_totals.award_count + excluded.award_count, updated_at = excluded.updated_at`,
		core.Internal("a project total was not written"))
}
