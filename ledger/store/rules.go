package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Rule sets: append-only, one row per SetRules, keyed by (envelope, effective time, id).

const ruleSetColumns = "id, envelope_id, call_name, effective_from, rules, caller, request_id, created_at"

func scanRuleSet(s Scanner) (core.RuleSet, error) {
	var (
		rs                 core.RuleSet
		raw                string
		effective, created int64
	)
	if err := s.Scan(&rs.ID, &rs.EnvelopeID, &rs.Call, &effective, &raw, &rs.Caller, &rs.RequestID, &created); err != nil {
		return rs, err
	}
	rs.EffectiveFrom, rs.CreatedAt = fromMicros(effective), fromMicros(created)
	if err := json.Unmarshal([]byte(raw), &rs.Rules); err != nil {
		return rs, core.Internal("rule set %s is unreadable: %w", rs.ID, err)
	}
	return rs, nil
}

// InsertRuleSet writes a new rule set.
func InsertRuleSet(ctx context.Context, q Querier, rs *core.RuleSet) error {
	raw, err := json.Marshal(rs.Rules)
	if err != nil {
		return err
	}
	return q.Write(ctx, `INSERT INTO envelope_rules (envelope_id, effective_from, id, call_name, rules,
		caller, request_id, created_at) VALUES `+placeholders(0, 8),
		[]any{rs.EnvelopeID, micros(rs.EffectiveFrom), rs.ID, rs.Call, string(raw), rs.Caller, rs.RequestID, micros(rs.CreatedAt)},
		nil)
}

// ListRuleSets returns an envelope's own rule sets, oldest effective first.
func ListRuleSets(ctx context.Context, q Querier, envelopeID string) ([]core.RuleSet, error) {
	rs, err := q.Query(ctx, "SELECT "+ruleSetColumns+" FROM envelope_rules WHERE envelope_id = $1 ORDER BY effective_from, id", envelopeID)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []core.RuleSet
	for rs.Next() {
		r, err := scanRuleSet(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// ParentCache remembers envelopes' parents, which never change once created.
type ParentCache struct{ m sync.Map } // envelope id -> parent id ("" for a root)

// Chain returns env's id and its ancestors' ids, nearest first, reading the parents it does not
// know by primary key, one statement per envelope.
func (c *ParentCache) Chain(ctx context.Context, q Querier, env core.Envelope) ([]string, error) {
	c.m.Store(env.ID, env.ParentID)
	ids := []string{env.ID}
	parent := env.ParentID
	for parent != "" {
		if len(ids) > 64 {
			return nil, core.Internal("envelope %s has a cycle of parents", env.ID)
		}
		ids = append(ids, parent)
		if p, ok := c.m.Load(parent); ok {
			parent = p.(string)
			continue
		}
		var pp *string
		if err := q.QueryRow(ctx, "SELECT parent_id FROM envelopes WHERE id = $1", parent).Scan(&pp); err != nil {
			if errors.Is(err, ErrNoRows) {
				return nil, core.Internal("envelope %s has a missing parent %s", env.ID, parent)
			}
			return nil, err
		}
		next := ""
		if pp != nil {
			next = *pp
		}
		c.m.Store(parent, next)
		parent = next
	}
	return ids, nil
}

// EffectiveRules returns the rules in force at time at on each envelope given. It reads the rule
// set in force on each envelope of their chains through the primary key: on PostgreSQL one
// statement for all of them, elsewhere one range statement per envelope. The table is written
// only by SetRules, so these reads conflict with nothing but a rule change.
func (c *ParentCache) EffectiveRules(ctx context.Context, q Querier, envs []core.Envelope, at time.Time) (map[string]*core.EffectiveRules, error) {
	chains := map[string][]string{}
	var all []string
	seen := map[string]bool{}
	for _, env := range envs {
		ids, err := c.Chain(ctx, q, env)
		if err != nil {
			return nil, err
		}
		chains[env.ID] = ids
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	inForce := map[string]*core.RuleSet{}
	keep := func(s Scanner) error {
		rs, err := scanRuleSet(s)
		if errors.Is(err, ErrNoRows) {
			return nil
		}
		if err == nil {
			inForce[rs.EnvelopeID] = &rs
		}
		return err
	}
	var err error
	if p, ok := indexed(q); ok && len(all) > 1 {
		// PostgreSQL: one statement for every envelope, read by the key (indexedStatements).
		err = p.queryIndexed(ctx, "SELECT DISTINCT ON (envelope_id) "+ruleSetColumns+` FROM envelope_rules
			WHERE envelope_id = ANY($1) AND effective_from <= $2 ORDER BY envelope_id, effective_from DESC, id DESC`,
			[]any{all, micros(at)}, keep)
	} else {
		argsList := make([][]any, len(all))
		for i, id := range all {
			argsList[i] = []any{id, micros(at)}
		}
		err = q.QueryEach(ctx, "SELECT "+ruleSetColumns+` FROM envelope_rules WHERE envelope_id = $1 AND effective_from <= $2
			ORDER BY effective_from DESC, id DESC LIMIT 1`, argsList, keep)
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*core.EffectiveRules{}
	for id, ids := range chains {
		out[id] = core.Effective(ids, inForce)
	}
	return out, nil
}

// CountRuleSets returns how many rule sets an envelope has (the rules' etag is made of it).
func CountRuleSets(ctx context.Context, q Querier, envelopeID string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, "SELECT COUNT(*) FROM envelope_rules WHERE envelope_id = $1", envelopeID).Scan(&n)
	return n, err
}
