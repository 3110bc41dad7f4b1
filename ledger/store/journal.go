package store

import (
	"context"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// The journal: append-only entries and their postings.

// InsertEntries appends journal entries and their postings, after asserting invariant 1.
func InsertEntries(ctx context.Context, q Querier, entries []core.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rows := make([][]any, 0, len(entries))
	var postings [][]any
	for _, e := range entries {
		// Invariant 1, asserted before anything is written: the postings sum to zero.
		var sum int64
		for i, p := range e.Postings {
			var err error
			if sum, err = core.AddAmount("an entry's postings", sum, p.Amount); err != nil {
				return err
			}
			postings = append(postings, []any{e.ID, i, p.Account, p.Amount})
		}
		if e.Kind == core.KindRulesChanged {
			if len(e.Postings) != 0 {
				return core.Internal("entry %s changes rules but has postings", e.ID)
			}
		} else if e.Kind == core.KindCommitmentClosed && len(e.Postings) == 0 {
			// A closing with nothing left to pay moves no money.
		} else if sum != 0 || len(e.Postings) < 2 {
			return core.Internal("entry %s is unbalanced: %d postings summing to %d", e.ID, len(e.Postings), sum)
		}
		rows = append(rows, []any{e.ID, string(e.Kind), e.Currency, e.Caller, e.RequestID, e.Memo, micros(e.CreatedAt)})
	}
	if err := bulkInsert(ctx, q, "journal_entries",
		[]string{"id", "kind", "currency", "caller", "request_id", "memo", "created_at"}, rows, "",
		core.Internal("a journal entry was not inserted")); err != nil {
		return err
	}
	return bulkInsert(ctx, q, "postings", []string{"entry_id", "seq", "account", "amount"}, postings, "",
		core.Internal("a posting was not inserted"))
}
