package audit

import (
	"context"
	"encoding/json"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// load reads every row the checks need, in the transaction of q.
func load(ctx context.Context, q store.Querier) (*snapshot, error) {
	s := &snapshot{entrySums: map[string]*big.Int{}, accounts: map[string]*big.Int{}, entryAccounts: map[string][]string{},
		postings: map[string][]core.Posting{}}
	err := each(ctx, q, "SELECT entry_id, account, amount FROM postings ORDER BY entry_id, seq", func(r store.Rows) error {
		var (
			entry, account string
			amount         int64
		)
		if err := r.Scan(&entry, &account, &amount); err != nil {
			return err
		}
		bigAdd(s.entrySums, entry, amount)
		s.postings[entry] = append(s.postings[entry], core.Posting{Account: account, Amount: amount})
		bigAdd(s.accounts, account, amount)
		if !slices.Contains(s.entryAccounts[entry], account) {
			s.entryAccounts[entry] = append(s.entryAccounts[entry], account)
		}
		return nil
	})
	if err == nil {
		err = each(ctx, q, "SELECT id, request_id, kind, currency, caller, memo, created_at, seq, COALESCE(effective_at, created_at) FROM journal_entries", func(r store.Rows) error {
			var e entryRow
			err := r.Scan(&e.id, &e.requestID, &e.kind, &e.currency, &e.caller, &e.memo, &e.createdAt, &e.seq, &e.effectiveAt)
			s.entries = append(s.entries, e)
			return err
		})
	}
	if err == nil {
		err = q.QueryRow(ctx, "SELECT last_seq FROM journal_head WHERE id = 1").Scan(&s.lastSeq)
	}
	if err == nil {
		err = each(ctx, q, `SELECT id, envelope_id, call_name, effective_from, rules, caller, request_id, created_at
			FROM envelope_rules ORDER BY envelope_id, effective_from, id`, func(r store.Rows) error {
			var rs ruleSetRow
			err := r.Scan(&rs.id, &rs.envelopeID, &rs.call, &rs.effectiveFrom, &rs.rules, &rs.caller, &rs.requestID, &rs.createdAt)
			s.ruleSets = append(s.ruleSets, rs)
			return err
		})
	}
	if err == nil {
		// An entry's request is recorded under its caller's key (core.RequestKey: the request
		// id, a tab, the caller), or under the bare request id if it was recorded before request
		// ids were scoped per caller. A bulk call's item ("<id> <index>") is recorded under its
		// own key before migration 18, under the call's key (the id without " <index>") since.
		err = each(ctx, q, "SELECT e.id, e.request_id, COALESCE(r.operation, l.operation, b.operation) FROM journal_entries e"+
			" LEFT JOIN requests r ON r.request_id = e.request_id || '\t' || e.caller"+
			" LEFT JOIN requests l ON l.request_id = e.request_id"+
			" LEFT JOIN requests b ON e.request_id LIKE '% %'"+
			" AND b.request_id = rtrim(rtrim(e.request_id, '0123456789'), ' ') || '\t' || e.caller"+
			" WHERE COALESCE(r.operation, l.operation, b.operation) IS NULL"+
			" OR COALESCE(r.operation, l.operation, b.operation) <> 'result'", func(r store.Rows) error {
			var u unlogged
			err := r.Scan(&u.entry, &u.requestID, &u.operation)
			s.unlogged = append(s.unlogged, u)
			return err
		})
	}
	if err == nil {
		// What SetRules answered (the request log keeps it): the envelope and effective time of
		// each rule set, which its journal entry does not hold. Indexed by the rule set's id, so
		// a row of another operation under the same request id is ignored.
		s.answeredRuleSets = map[string]answeredRuleSet{}
		// The request log keys a rule change by its request id and caller (core.RequestKey), or
		// by the bare request id if it was recorded before request ids were scoped per caller.
		err = each(ctx, q, "SELECT r.outcome FROM requests r"+
			" WHERE r.request_id IN (SELECT request_id || '\t' || caller FROM envelope_rules)"+
			" OR r.request_id IN (SELECT request_id FROM envelope_rules)", func(r store.Rows) error {
			var raw string
			if err := r.Scan(&raw); err != nil {
				return err
			}
			var o struct {
				Result struct {
					RuleSet struct {
						ID            string    `json:"id"`
						EnvelopeID    string    `json:"envelope_id"`
						EffectiveFrom time.Time `json:"effective_from"`
					} `json:"rule_set"`
				} `json:"result"`
			}
			if json.Unmarshal([]byte(raw), &o) == nil && o.Result.RuleSet.ID != "" {
				rs := o.Result.RuleSet
				s.answeredRuleSets[rs.ID] = answeredRuleSet{envelopeID: rs.EnvelopeID, effectiveFrom: rs.EffectiveFrom.UnixMicro()}
			}
			return nil
		})
	}
	if err == nil {
		err = each(ctx, q, store.SelectCommitments, func(r store.Rows) error {
			c, err := store.ScanCommitment(r)
			s.commitments = append(s.commitments, c)
			return err
		})
	}
	if err == nil {
		err = each(ctx, q, store.SelectEnvelopes, func(r store.Rows) error {
			e, err := store.ScanEnvelope(r)
			s.envelopes = append(s.envelopes, e)
			return err
		})
	}
	if err == nil {
		err = each(ctx, q, "SELECT envelope_id, project, awarded, award_count FROM project_totals", func(r store.Rows) error {
			var t projectTotal
			err := r.Scan(&t.key.EnvelopeID, &t.key.Project, &t.awarded, &t.count)
			s.totals = append(s.totals, t)
			return err
		})
	}
	if err == nil {
		err = loadPayments(ctx, q, s)
	}
	if err == nil {
		err = loadHolds(ctx, q, s)
	}
	sort.Slice(s.envelopes, func(i, j int) bool { return s.envelopes[i].ID < s.envelopes[j].ID })
	sort.Slice(s.entries, func(i, j int) bool { return s.entries[i].id < s.entries[j].id })
	sort.Slice(s.commitments, func(i, j int) bool { return s.commitments[i].ID < s.commitments[j].ID })
	return s, err
}

// each runs query and calls scan for each row.
func each(ctx context.Context, q store.Querier, query string, scan func(store.Rows) error) error {
	rs, err := q.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}
