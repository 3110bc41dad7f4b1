// Package report computes funding reports from the journal: per envelope and rolled up through
// its descendants, now or as of a past time. It reads only, in one consistent snapshot.
package report

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Figures are the amounts and counts of an envelope in a report.
type Figures struct {
	// Allocation is the envelope's allocation (rolled up: the same, since its children's
	// allocations are carved out of it).
	Allocation int64 `json:"allocation"`
	// Awarded is the total of the awards made, releases not deducted.
	Awarded int64 `json:"awarded"`
	// Committed is what the awards still hold (Awarded - Released).
	Committed int64 `json:"committed"`
	// Released is what was released from the awards.
	Released int64 `json:"released"`
	// Available is what is free to commit (rolled up: in the envelope and its descendants).
	Available int64 `json:"available"`
	// AwardCount is the number of awards made.
	AwardCount int64 `json:"award_count"`
	// BeneficiaryCount is the number of distinct beneficiaries of those awards.
	BeneficiaryCount int64 `json:"beneficiary_count"`
}

// ReportLine is one envelope of a report: its own figures, and its figures rolled up through its
// descendants.
type ReportLine struct {
	EnvelopeID  string
	ParentID    string
	DisplayName string
	Currency    string
	// Depth is 0 for the report's root envelopes, 1 for their children, and so on.
	Depth int
	Own   Figures
	Total Figures
}

// Report is the funding report of an envelope tree at one time.
type Report struct {
	// AsOf is the time of the report: the time asked for, or for a current report the time of
	// the latest journal entry it counts.
	AsOf time.Time
	// Lines are the envelopes, each followed by its descendants (depth first, children by id).
	Lines []ReportLine
}

// Compute computes, from the journal, the funding report of the envelope rootID and its
// descendants (every envelope tree when rootID is empty), as of time asOf (now when zero): the
// journal entries created at or before asOf, the commitments made then and the envelopes that
// existed. Journal entries and commitments are append-only and carry their creation time, so a
// report as of a past time equals the report taken at that time, except for a transaction that
// was in flight then and committed later with an earlier time (at most the transaction timeout).
func Compute(ctx context.Context, db store.Engine, rootID string, asOf time.Time) (Report, error) {
	var rep Report
	limit := int64(1<<63 - 1)
	if !asOf.IsZero() {
		limit = asOf.UnixMicro()
	}
	err := db.ReadOnly(ctx, func(q store.Querier) error {
		rep = Report{}
		type node struct {
			line     ReportLine
			children []string
			benef    map[string]bool
			subtree  map[string]bool
		}
		nodes := map[string]*node{}
		rs, err := q.Query(ctx, "SELECT id, parent_id, display_name, currency FROM envelopes WHERE created_at <= $1", limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				n      = &node{benef: map[string]bool{}}
				parent *string
			)
			if err := rs.Scan(&n.line.EnvelopeID, &parent, &n.line.DisplayName, &n.line.Currency); err != nil {
				rs.Close()
				return err
			}
			if parent != nil {
				n.line.ParentID = *parent
			}
			nodes[n.line.EnvelopeID] = n
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		if rootID != "" && nodes[rootID] == nil {
			return core.EnvelopeNotFound(rootID)
		}

		// Balances of every account, and awards and releases per envelope, from the journal.
		balances := map[string]int64{}
		var latest int64
		rs, err = q.Query(ctx, `SELECT e.kind, e.created_at, p.account, p.amount FROM journal_entries e
			JOIN postings p ON p.entry_id = e.id WHERE e.created_at <= $1`, limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				kind, account   string
				created, amount int64
			)
			if err := rs.Scan(&kind, &created, &account, &amount); err != nil {
				rs.Close()
				return err
			}
			latest = max(latest, created)
			balances[account] += amount
			id, isEnvelope := strings.CutPrefix(account, "envelopes/")
			n := nodes[id]
			if !isEnvelope || n == nil {
				continue
			}
			switch core.EntryKind(kind) {
			case core.KindCommitted:
				n.line.Own.Awarded -= amount
				n.line.Own.AwardCount++
			case core.KindReleased:
				n.line.Own.Released += amount
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		for id, n := range nodes {
			n.line.Own.Available = balances[core.EnvelopeName(id)]
		}

		// Commitments made by then: what they hold, and their beneficiaries.
		rs, err = q.Query(ctx, "SELECT id, envelope_id, beneficiary FROM commitments WHERE created_at <= $1", limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var id, envelope, beneficiary string
			if err := rs.Scan(&id, &envelope, &beneficiary); err != nil {
				rs.Close()
				return err
			}
			if n := nodes[envelope]; n != nil {
				n.line.Own.Committed += balances[core.CommitmentName(id)]
				n.benef[beneficiary] = true
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}

		var roots []string
		for id, n := range nodes {
			n.line.Own.BeneficiaryCount = int64(len(n.benef))
			if p := nodes[n.line.ParentID]; p != nil {
				p.children = append(p.children, id)
			} else {
				roots = append(roots, id)
			}
		}
		// Roll up, children first: allocation = committed + children's allocations + available.
		var rollUp func(id string)
		rollUp = func(id string) {
			n := nodes[id]
			slices.Sort(n.children)
			n.subtree = n.benef
			t := n.line.Own
			var childrenAllocation int64
			for _, c := range n.children {
				rollUp(c)
				cn := nodes[c]
				childrenAllocation += cn.line.Own.Allocation
				t.Awarded += cn.line.Total.Awarded
				t.Committed += cn.line.Total.Committed
				t.Released += cn.line.Total.Released
				t.Available += cn.line.Total.Available
				t.AwardCount += cn.line.Total.AwardCount
				if len(cn.subtree) > 0 {
					merged := make(map[string]bool, len(n.subtree)+len(cn.subtree))
					for b := range n.subtree {
						merged[b] = true
					}
					for b := range cn.subtree {
						merged[b] = true
					}
					n.subtree = merged
				}
			}
			n.line.Own.Allocation = n.line.Own.Committed + childrenAllocation + n.line.Own.Available
			t.Allocation = n.line.Own.Allocation
			t.BeneficiaryCount = int64(len(n.subtree))
			n.line.Total = t
		}
		var emit func(id string, depth int)
		emit = func(id string, depth int) {
			n := nodes[id]
			n.line.Depth = depth
			rep.Lines = append(rep.Lines, n.line)
			for _, c := range n.children {
				emit(c, depth+1)
			}
		}
		slices.Sort(roots)
		for _, r := range roots {
			rollUp(r)
		}
		if rootID != "" {
			emit(rootID, 0)
		} else {
			for _, r := range roots {
				emit(r, 0)
			}
		}
		if asOf.IsZero() {
			rep.AsOf = time.UnixMicro(latest).UTC()
		} else {
			rep.AsOf = asOf.UTC().Truncate(time.Microsecond)
		}
		return nil
	})
	return rep, err
}
