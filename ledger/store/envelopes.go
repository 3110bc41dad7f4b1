package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Envelopes: one row per envelope with its balances, updated in place by the transaction that
// holds its lock.

const envelopeColumns = "id, parent_id, display_name, currency, allocation, committed, children_allocated, " +
	"released, commitment_count, created_at, updated_at, effective_at, latest_effective_at, paid, granting_body_name, " +
	"granting_body_siret, held"

// envelopeSelect reads envelopeColumns; an envelope of a ledger from before effective times took
// effect when it was created, and its last change bounds the latest effective time on it.
const envelopeSelect = "id, parent_id, display_name, currency, allocation, committed, children_allocated, " +
	"released, commitment_count, created_at, updated_at, COALESCE(effective_at, created_at), " +
	"COALESCE(latest_effective_at, updated_at), paid, granting_body_name, granting_body_siret, held"

// ScanEnvelope reads an envelope row selected with envelopeColumns.
func ScanEnvelope(s Scanner) (core.Envelope, error) {
	var (
		e                                   core.Envelope
		parent                              *string
		created, updated, effective, latest int64
	)
	err := s.Scan(&e.ID, &parent, &e.DisplayName, &e.Currency, &e.Allocation, &e.Committed,
		&e.ChildrenAllocated, &e.Released, &e.CommitmentCount, &created, &updated, &effective, &latest, &e.Paid,
		&e.GrantingBodyName, &e.GrantingBodySIRET, &e.Held)
	if parent != nil {
		e.ParentID = *parent
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	e.EffectiveAt, e.LatestEffectiveAt = fromMicros(effective), fromMicros(latest)
	return e, err
}

// SelectEnvelopes is the SELECT of every envelope column, for FROM envelopes.
const SelectEnvelopes = "SELECT " + envelopeSelect + " FROM envelopes"

// LoadEnvelope reads one envelope (ENVELOPE_NOT_FOUND when it does not exist), locking its row
// for the transaction with lock (the engine's ForUpdate clause, or "").
func LoadEnvelope(ctx context.Context, q Querier, id, lock string) (core.Envelope, error) {
	env, err := ScanEnvelope(q.QueryRow(ctx, SelectEnvelopes+" WHERE id = $1"+lock, id))
	if errors.Is(err, ErrNoRows) {
		return env, core.EnvelopeNotFound(id)
	}
	return env, err
}

// FindEnvelope reads one envelope and locks it with lock; nil when it does not exist.
func FindEnvelope(ctx context.Context, q Querier, id, lock string) (*core.Envelope, error) {
	env, err := LoadEnvelope(ctx, q, id, lock)
	if errors.Is(err, core.ErrEnvelopeNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &env, nil
}

// LockEnvelopes reads envelopes and locks their rows for the transaction, in id order, so that
// batches and moves never wait on each other in a cycle. Missing ids are absent from the result.
//
// Each envelope is read through the primary key. A query for several ids at once is planned as
// a sequential scan on a small table, and under SERIALIZABLE a sequential scan locks the whole
// table for conflict detection, so every other batch's balance update would conflict with it.
// So on PostgreSQL several envelopes are read by one statement with sequential scans disabled
// for it (indexedStatements below), and elsewhere by one primary-key lookup each, sent together
// (one round trip).
func LockEnvelopes(ctx context.Context, q Querier, lock string, ids []string) (map[string]core.Envelope, error) {
	found := map[string]core.Envelope{}
	if p, ok := indexed(q); ok && lock != "" && len(ids) > 1 {
		// PostgreSQL locks the rows as the sort gives them: in byte order (COLLATE "C"), the
		// order of the lookups one by one below, whatever the database's collation.
		err := p.queryIndexed(ctx, SelectEnvelopes+` WHERE id = ANY($1) ORDER BY id COLLATE "C"`+lock, []any{ids},
			func(s Scanner) error {
				e, err := ScanEnvelope(s)
				if err == nil {
					found[e.ID] = e
				}
				return err
			})
		return found, err
	}
	sorted := slices.Sorted(slices.Values(ids))
	argsList := make([][]any, len(sorted))
	for i, id := range sorted {
		argsList[i] = []any{id}
	}
	err := q.QueryEach(ctx, SelectEnvelopes+" WHERE id = $1"+lock, argsList,
		func(s Scanner) error {
			e, err := ScanEnvelope(s)
			if errors.Is(err, ErrNoRows) {
				return nil
			}
			if err == nil {
				found[e.ID] = e
			}
			return err
		})
	return found, err
}

// InsertEnvelope writes a new envelope.
func InsertEnvelope(ctx context.Context, q Querier, e *core.Envelope) error {
	var parent any
	if e.ParentID != "" {
		parent = e.ParentID
	}
	return q.Write(ctx, "INSERT INTO envelopes ("+envelopeColumns+") VALUES "+placeholders(0, 17),
		[]any{e.ID, parent, e.DisplayName, e.Currency, e.Allocation, e.Committed, e.ChildrenAllocated,
			e.Released, e.CommitmentCount, micros(e.CreatedAt), micros(e.UpdatedAt), micros(orTime(e.EffectiveAt, e.CreatedAt)),
			micros(orTime(e.LatestEffectiveAt, e.UpdatedAt)), e.Paid, e.GrantingBodyName, e.GrantingBodySIRET, e.Held}, nil)
}

// indexedStatements: several envelopes in one statement (PostgreSQL).
//
// A batch on many envelopes used to lock and update them with one statement per envelope: on 30
// envelopes, about 60 statements per batch, each paying PostgreSQL's fixed cost of a statement.
// An envelope's UPDATE took 40–60 µs of execution, about 24 µs of it preparing the table's nine
// CHECK constraints, which PostgreSQL does once per statement (docs/benchmarks.md, "Several
// envelopes in one statement"). One statement for all of them must still read them through
// the primary key (see LockEnvelopes), so on PostgreSQL proper the statement runs with
// sequential scans disabled for it alone (pgxQuerier.queryIndexed, writeIndexed): SET LOCAL
// before it and after it, in the same round trip. CockroachDB reads a key's row by its key
// whatever the statement, and SQLite has neither the statements' cost nor concurrent writers:
// both keep one statement per envelope.

// UpdateEnvelopes writes the balances of envelopes (each once), whose rows the transaction has
// locked: on PostgreSQL with updateByKeys, elsewhere with UpdateEnvelope each.
func UpdateEnvelopes(ctx context.Context, q Querier, envs []*core.Envelope) error {
	p, ok := indexed(q)
	if !ok || len(envs) < 2 {
		for _, env := range envs {
			if err := UpdateEnvelope(ctx, q, env); err != nil {
				return err
			}
		}
		return nil
	}
	inChunks(envs, func(part []*core.Envelope) {
		ids := make([]string, len(part))
		var vals [9][]int64
		for i, e := range part {
			ids[i] = e.ID
			for c, v := range []int64{e.Allocation, e.Committed, e.ChildrenAllocated, e.Released, e.CommitmentCount,
				micros(e.UpdatedAt), micros(orTime(e.LatestEffectiveAt, e.UpdatedAt)), e.Paid, e.Held} {
				vals[c] = append(vals[c], v)
			}
		}
		var cols []setColumn
		for c, name := range []string{"allocation", "committed", "children_allocated", "released", "commitment_count",
			"updated_at", "latest_effective_at", "paid", "held"} {
			cols = append(cols, setColumn{name, "bigint", vals[c]})
		}
		p.updateByKeys("envelopes", ids, cols, "", func(n int64) error {
			return core.Internal("updating %d envelopes touched %d rows", len(ids), n)
		})
	})
	return nil
}

// UpdateEnvelope writes an envelope's balances.
func UpdateEnvelope(ctx context.Context, q Querier, e *core.Envelope) error {
	return q.Write(ctx, `UPDATE envelopes SET allocation = $2, committed = $3, children_allocated = $4,
		released = $5, commitment_count = $6, updated_at = $7, latest_effective_at = $8, paid = $9, held = $10 WHERE id = $1`,
		[]any{e.ID, e.Allocation, e.Committed, e.ChildrenAllocated, e.Released, e.CommitmentCount, micros(e.UpdatedAt),
			micros(orTime(e.LatestEffectiveAt, e.UpdatedAt)), e.Paid, e.Held},
		Expect(1, func(n int64) error { return core.Internal("updating envelope %s touched %d rows", e.ID, n) }))
}

// Subtree returns the ids of envelope id and all its descendants (in no order); empty when id
// does not exist.
func Subtree(ctx context.Context, q Querier, id string) ([]string, error) {
	rs, err := q.Query(ctx, `WITH RECURSIVE subtree(id) AS (
		SELECT id FROM envelopes WHERE id = $1
		UNION ALL SELECT e.id FROM envelopes e JOIN subtree s ON e.parent_id = s.id)
		SELECT id FROM subtree`, id)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var ids []string
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rs.Err()
}

// orTime is t, or else when t is zero (a value from before effective times existed).
func orTime(t, orElse time.Time) time.Time {
	if t.IsZero() {
		return orElse
	}
	return t
}
