package store

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// The journal: append-only entries and their postings.

// EntryColumns are the columns of a journal entry as written (its position, seq, is given
// later, or beside them where the writer runs alone: insertPositionedColumns). Every field of
// core.Entry but its postings and position is here, in this order.
var EntryColumns = []string{"id", "kind", "currency", "caller", "request_id", "memo", "created_at", "effective_at"}

// SelectEntryColumns reads a journal entry (alias e) in ScanEntry's order; an entry written
// before effective times existed took effect when it was recorded.
const SelectEntryColumns = "e.id, e.seq, e.kind, e.currency, e.caller, e.request_id, e.memo, e.created_at, COALESCE(e.effective_at, e.created_at)"

// ScanEntry reads a journal entry selected with SelectEntryColumns (its postings aside).
func ScanEntry(s Scanner) (core.Entry, error) {
	var (
		e                  core.Entry
		kind               string
		seq                *int64
		created, effective int64
	)
	err := s.Scan(&e.ID, &seq, &kind, &e.Currency, &e.Caller, &e.RequestID, &e.Memo, &created, &effective)
	if seq != nil {
		e.Sequence = *seq
	}
	e.Kind, e.CreatedAt, e.EffectiveAt = core.EntryKind(kind), fromMicros(created), fromMicros(effective)
	return e, err
}

// The postings of entries already read. The entry_postings view gives them (transfers.go), but
// asked for a list of entries it probes the journal's primary key twice an entry (once for each
// leg of a two-leg entry) on top of the postings table. A reader that has just read the entries'
// rows holds their legs already: it selects them with SelectEntryLegs, sets them with
// entryLegs.add, and reads only the postings table (readPostingRows). The postings are the view's,
// in its order (by their seq: a two-leg entry's legs are 0 and 1).

// SelectEntryLegs reads a two-leg entry's legs (alias e), for entryLegs.scan.
const SelectEntryLegs = "e.debit_account, e.credit_account, e.amount"

// entryLegs holds the columns SelectEntryLegs reads, for one row.
type entryLegs struct {
	debit, credit *string
	amount        *int64
}

// targets are the scan targets of SelectEntryLegs.
func (l *entryLegs) targets() []any { return []any{&l.debit, &l.credit, &l.amount} }

// add sets the postings of e to its legs, and reports whether it is a two-leg entry.
func (l *entryLegs) add(e *core.Entry) bool {
	if l.amount == nil || l.debit == nil || l.credit == nil {
		return false
	}
	e.Postings = []core.Posting{{Account: *l.debit, Amount: -*l.amount}, {Account: *l.credit, Amount: *l.amount}}
	return true
}

// withTargets scans what its caller asks for, then extra.
type withTargets struct {
	s     Scanner
	extra []any
}

func (w withTargets) Scan(dest ...any) error { return w.s.Scan(append(dest, w.extra...)...) }

// readPostingRows adds to entries the rows of the postings table, in the order of their seq;
// legged[i] says whether entries[i] is a two-leg entry whose legs entryLegs.add has set. An entry
// is either two-leg or has posting rows; one that had both (an edited database) gets both, ordered
// by seq, its legs first at an equal seq, as the view would give them.
func readPostingRows(ctx context.Context, q Querier, entries []core.Entry, legged []bool) error {
	index := make(map[string]int, len(entries))
	for i := range entries {
		index[entries[i].ID] = i
	}
	type row struct {
		seq int64
		p   core.Posting
	}
	both := map[int][]row{} // the rows of two-leg entries
	const chunk = 500
	for start := 0; start < len(entries); start += chunk {
		part := entries[start:min(start+chunk, len(entries))]
		ids := make([]string, len(part))
		for i := range part {
			ids[i] = part[i].ID
		}
		list, args := inList(0, ids)
		rs, err := q.Query(ctx, "SELECT entry_id, seq, account, amount FROM postings WHERE entry_id IN ("+list+") ORDER BY entry_id, seq", args...)
		if err != nil {
			return err
		}
		for rs.Next() {
			var r row
			var id string
			if err := rs.Scan(&id, &r.seq, &r.p.Account, &r.p.Amount); err != nil {
				rs.Close()
				return err
			}
			i := index[id]
			if legged[i] {
				both[i] = append(both[i], r)
			} else {
				entries[i].Postings = append(entries[i].Postings, r.p)
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
	}
	for i, rows := range both {
		e := &entries[i]
		merged := []row{{0, e.Postings[0]}, {1, e.Postings[1]}}
		merged = append(merged, rows...)
		slices.SortStableFunc(merged, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
		e.Postings = e.Postings[:0]
		for _, r := range merged {
			e.Postings = append(e.Postings, r.p)
		}
	}
	return nil
}

// insertEntryColumns are the columns InsertEntries writes: EntryColumns, then an entry's two
// legs when it has the transfer's shape (see transfers.go).
var insertEntryColumns = append(EntryColumns[:len(EntryColumns):len(EntryColumns)], "debit_account", "credit_account", "amount")

// insertPositionedColumns are insertEntryColumns and the entry's position, which InsertEntries
// writes with the entry on an engine whose writers run one at a time (inlinePositioner).
var insertPositionedColumns = append(insertEntryColumns[:len(insertEntryColumns):len(insertEntryColumns)], "seq")

// transferLegs reports whether postings have the transfer's shape, (A, −a) then (B, +a) with
// a > 0, stored in the entry's own row; any other shape is stored in the postings table.
func transferLegs(postings []core.Posting) bool {
	return len(postings) == 2 && postings[1].Amount > 0 && postings[0].Amount == -postings[1].Amount
}

// InsertEntries appends journal entries and their postings, after asserting invariant 1: an
// entry of two legs (the transfer's shape) in one row, any other's postings in the postings
// table.
func InsertEntries(ctx context.Context, q Querier, entries []core.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rows := make([][]any, 0, len(entries))
	var postings [][]any
	for _, e := range entries {
		// Invariant 1, asserted before anything is written: the postings sum to zero.
		var sum int64
		for _, p := range e.Postings {
			var err error
			if sum, err = core.AddAmount("an entry's postings", sum, p.Amount); err != nil {
				return err
			}
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
		effective := e.EffectiveAt
		if effective.IsZero() {
			effective = e.CreatedAt
		}
		var debit, credit, amount any
		if transferLegs(e.Postings) {
			debit, credit, amount = e.Postings[0].Account, e.Postings[1].Account, e.Postings[1].Amount
		} else {
			for i, p := range e.Postings {
				postings = append(postings, []any{e.ID, i, p.Account, p.Amount})
			}
		}
		rows = append(rows, []any{e.ID, string(e.Kind), e.Currency, e.Caller, e.RequestID, e.Memo, micros(e.CreatedAt),
			micros(effective), debit, credit, amount})
	}
	columns := insertEntryColumns
	if p, ok := q.(inlinePositioner); ok && p.positionsInline() {
		// The positions AssignSequences would give them: in (created_at, id) order, as the
		// database compares them, after every entry already written.
		first, err := positionFrom(ctx, q, len(entries))
		if err != nil {
			return err
		}
		order := make([]int, len(entries))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			return cmp.Or(cmp.Compare(micros(entries[a].CreatedAt), micros(entries[b].CreatedAt)),
				strings.Compare(entries[a].ID, entries[b].ID))
		})
		for k, i := range order {
			rows[i] = append(rows[i], first+int64(k))
		}
		columns = insertPositionedColumns
	}
	if err := bulkInsert(ctx, q, "journal_entries", columns, rows, "",
		core.Internal("a journal entry was not inserted")); err != nil {
		return err
	}
	if len(postings) == 0 {
		return nil
	}
	return bulkInsert(ctx, q, "postings", []string{"entry_id", "seq", "account", "amount"}, postings, "",
		core.Internal("a posting was not inserted"))
}
