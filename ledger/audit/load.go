package audit

import (
	"context"
	"math/big"
	"sort"

	"github.com/budgetledger/budgetledger/ledger/store"
)

// load reads every row the checks need, in the transaction of q.
func load(ctx context.Context, q store.Querier) (*snapshot, error) {
	s := &snapshot{entrySums: map[string]*big.Int{}, accounts: map[string]*big.Int{}}
	err := each(ctx, q, "SELECT entry_id, account, amount FROM postings", func(r store.Rows) error {
		var (
			entry, account string
			amount         int64
		)
		if err := r.Scan(&entry, &account, &amount); err != nil {
			return err
		}
		bigAdd(s.entrySums, entry, amount)
		bigAdd(s.accounts, account, amount)
		return nil
	})
	if err == nil {
		err = each(ctx, q, "SELECT id, caller, request_id, kind FROM journal_entries", func(r store.Rows) error {
			var e entryRow
			err := r.Scan(&e.id, &e.caller, &e.requestID, &e.kind)
			s.entries = append(s.entries, e)
			return err
		})
	}
	if err == nil {
		// An entry's request is recorded under its caller's key (core.RequestKey: the request
		// id, a tab, the caller), or under the bare request id if it was recorded before request
		// ids were scoped per caller.
		err = each(ctx, q, "SELECT e.id, e.request_id, COALESCE(r.operation, l.operation) FROM journal_entries e"+
			" LEFT JOIN requests r ON r.request_id = e.request_id || '\t' || e.caller"+
			" LEFT JOIN requests l ON l.request_id = e.request_id"+
			" WHERE COALESCE(r.operation, l.operation) IS NULL OR COALESCE(r.operation, l.operation) <> 'result'", func(r store.Rows) error {
			var u unlogged
			err := r.Scan(&u.entry, &u.requestID, &u.operation)
			s.unlogged = append(s.unlogged, u)
			return err
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
