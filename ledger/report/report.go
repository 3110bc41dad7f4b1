// Package report computes funding reports from the journal: per envelope and rolled up through
// its descendants, now or as of a past time. It reads only, in one consistent snapshot.
package report

import (
	"context"
	"fmt"
	"math"
	"math/big"
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
	// Paid is what was paid out of the awards (décaissé), part of Committed (engagé).
	Paid int64 `json:"paid"`
	// RemainingToPay is what the awards still hold to pay (reste à payer): Committed - Paid.
	RemainingToPay int64 `json:"remaining_to_pay"`
	// Held is what holds still HELD reserve (rolled up: in the envelope and its descendants).
	Held int64 `json:"held"`
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
	// AsOf is the effective date of the report: the time asked for, or for a current report the
	// latest effective time of the journal entries it counts.
	AsOf time.Time
	// KnownAt is the recorded horizon of the report: the time asked for, or else the latest
	// recorded time of the journal entries it read; the report as of AsOf known at KnownAt is
	// this one.
	KnownAt time.Time
	// Lines are the envelopes, each followed by its descendants (depth first, children by id).
	Lines []ReportLine
}

// Compute computes, from the journal, the funding report of the envelope rootID and its
// descendants (every envelope tree when rootID is empty), as of the effective date *asOf (every
// entry when asOf is nil) as the ledger knew it at *knownAt (everything recorded when knownAt is
// nil): the journal entries, commitments and envelopes that took effect at or before asOf among
// those recorded at or before knownAt. Both can be combined: "what did we believe on 15 January
// 2022 about 31 December 2021". Rows are append-only (envelopes and commitments keep their
// creation's times), so a report known at a past time equals the report taken at that time,
// except for a transaction that was in flight then and committed later with an earlier time (at
// most the transaction timeout).
//
// Every sum is exact: the journal is added up with arbitrary precision, so the order in which rows
// are read cannot overflow a partial sum. A figure whose exact value does not fit the report's
// 64-bit integers (say, awards of near the largest amount made, released and made again) is not
// wrapped: the report is refused with AMOUNT_OVERFLOW, naming the envelope and the figure.
func Compute(ctx context.Context, db store.Engine, rootID string, asOf, knownAt *time.Time) (Report, error) {
	var rep Report
	limit, known := int64(math.MaxInt64), int64(math.MaxInt64)
	if asOf != nil {
		if err := core.CheckTime("as_of_time", *asOf); err != nil {
			return rep, err
		}
		limit = asOf.UnixMicro()
	}
	if knownAt != nil {
		if err := core.CheckTime("known_at_time", *knownAt); err != nil {
			return rep, err
		}
		known = knownAt.UnixMicro()
	}
	err := db.ReadOnly(ctx, func(q store.Querier) error {
		rep = Report{}
		type node struct {
			line       ReportLine
			own, total exact
			children   []string
			benef      map[string]bool
			subtree    map[string]bool
		}
		nodes := map[string]*node{}
		rs, err := q.Query(ctx, `SELECT id, parent_id, display_name, currency FROM envelopes
			WHERE created_at <= $1 AND COALESCE(effective_at, created_at) <= $2`, known, limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				n      = &node{benef: map[string]bool{}, own: newExact(), total: newExact()}
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
		balances := map[string]*big.Int{}
		paid := map[string]*big.Int{} // by commitment id
		// confirmed are the awards made by confirming holds, by commitment account: their
		// entries post to the envelope only what was not confirmed.
		confirmed := map[string]int64{}
		var latest, latestRecorded int64
		rs, err = q.Query(ctx, `SELECT e.kind, e.created_at, COALESCE(e.effective_at, e.created_at), p.account, p.amount
			FROM journal_entries e JOIN entry_postings p ON p.entry_id = e.id WHERE e.created_at <= $1`, known)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				kind, account              string
				created, effective, amount int64
			)
			if err := rs.Scan(&kind, &created, &effective, &account, &amount); err != nil {
				rs.Close()
				return err
			}
			latestRecorded = max(latestRecorded, created)
			if effective > limit {
				continue
			}
			latest = max(latest, effective)
			add(balances, account, amount)
			if c, ok := strings.CutPrefix(account, "commitments/"); ok && core.EntryKind(kind) == core.KindPaid {
				add(paid, c, -amount)
			}
			if core.EntryKind(kind) == core.KindHoldConfirmed && strings.HasPrefix(account, "commitments/") {
				confirmed[account] = amount
			}
			id, isEnvelope := strings.CutPrefix(account, "envelopes/")
			n := nodes[id]
			if !isEnvelope || n == nil {
				continue
			}
			switch core.EntryKind(kind) {
			case core.KindCommitted:
				n.own.awarded.Sub(n.own.awarded, big.NewInt(amount))
				n.line.Own.AwardCount++
			case core.KindReleased, core.KindCommitmentClosed:
				// A closing returns the unpaid rest: released, like a release.
				n.own.released.Add(n.own.released, big.NewInt(amount))
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		for id, n := range nodes {
			if b := balances[core.EnvelopeName(id)]; b != nil {
				n.own.available.Set(b)
			}
		}

		// Commitments made by then: what they hold, and their beneficiaries.
		rs, err = q.Query(ctx, `SELECT id, envelope_id, beneficiary FROM commitments
			WHERE created_at <= $1 AND COALESCE(effective_at, created_at) <= $2`, known, limit)
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
				// The account holds what remains to pay; what was paid left it, yet stays
				// committed.
				if b := balances[core.CommitmentName(id)]; b != nil {
					n.own.committed.Add(n.own.committed, b)
					n.own.remainingToPay.Add(n.own.remainingToPay, b)
				}
				if p := paid[id]; p != nil {
					n.own.committed.Add(n.own.committed, p)
					n.own.paid.Add(n.own.paid, p)
				}
				if amount, ok := confirmed[core.CommitmentName(id)]; ok {
					n.own.awarded.Add(n.own.awarded, big.NewInt(amount))
					n.line.Own.AwardCount++
				}
				n.benef[beneficiary] = true
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}

		// Holds made by then (recorded by the horizon, in effect at the date): what those still
		// HELD reserve.
		rs, err = q.Query(ctx, "SELECT id, envelope_id FROM holds WHERE created_at <= $1 AND effective_at <= $2", known, limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var id, envelope string
			if err := rs.Scan(&id, &envelope); err != nil {
				rs.Close()
				return err
			}
			if n := nodes[envelope]; n != nil {
				if b := balances[core.HoldName(id)]; b != nil {
					n.own.held.Add(n.own.held, b)
				}
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
		// Roll up, children first: allocation = held + committed + children's allocations +
		// available.
		var rollUp func(id string)
		rollUp = func(id string) {
			n := nodes[id]
			slices.Sort(n.children)
			n.subtree = n.benef
			n.total.add(n.own)
			childrenAllocation := new(big.Int)
			count := n.line.Own.AwardCount
			for _, c := range n.children {
				rollUp(c)
				cn := nodes[c]
				childrenAllocation.Add(childrenAllocation, cn.own.allocation)
				n.total.add(cn.total)
				count += cn.line.Total.AwardCount
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
			n.own.allocation.Add(n.own.committed, childrenAllocation)
			n.own.allocation.Add(n.own.allocation, n.own.available)
			n.own.allocation.Add(n.own.allocation, n.own.held)
			n.total.allocation.Set(n.own.allocation)
			n.line.Total.AwardCount = count
			n.line.Total.BeneficiaryCount = int64(len(n.subtree))
		}
		// Emit the lines asked for, each figure fitted to an int64 (only those: an overflowing tree
		// does not spoil the report of another).
		var emit func(id string, depth int) error
		emit = func(id string, depth int) error {
			n := nodes[id]
			n.line.Depth = depth
			if err := n.own.fit(id, "", &n.line.Own); err != nil {
				return err
			}
			if err := n.total.fit(id, "total ", &n.line.Total); err != nil {
				return err
			}
			rep.Lines = append(rep.Lines, n.line)
			for _, c := range n.children {
				if err := emit(c, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		slices.Sort(roots)
		for _, r := range roots {
			rollUp(r)
		}
		if rootID != "" {
			roots = []string{rootID}
		}
		for _, r := range roots {
			if err := emit(r, 0); err != nil {
				return err
			}
		}
		// (Nothing counted: no date, rather than 1970-01-01.)
		if asOf != nil {
			rep.AsOf = asOf.UTC().Truncate(time.Microsecond)
		} else if latest != 0 {
			rep.AsOf = time.UnixMicro(latest).UTC()
		}
		if knownAt == nil {
			if latestRecorded != 0 {
				rep.KnownAt = time.UnixMicro(latestRecorded).UTC()
			}
		} else {
			rep.KnownAt = knownAt.UTC().Truncate(time.Microsecond)
		}
		return nil
	})
	return rep, err
}

// exact are an envelope's money figures, summed with arbitrary precision.
type exact struct {
	allocation, awarded, committed, released, available, paid, remainingToPay, held *big.Int
}

func newExact() exact {
	return exact{new(big.Int), new(big.Int), new(big.Int), new(big.Int), new(big.Int), new(big.Int), new(big.Int), new(big.Int)}
}

// add adds o's awarded, committed, released, available, paid and remaining amounts to e's (allocations do not
// roll up: a child's is carved out of its parent's).
func (e exact) add(o exact) {
	e.awarded.Add(e.awarded, o.awarded)
	e.committed.Add(e.committed, o.committed)
	e.released.Add(e.released, o.released)
	e.available.Add(e.available, o.available)
	e.paid.Add(e.paid, o.paid)
	e.remainingToPay.Add(e.remainingToPay, o.remainingToPay)
	e.held.Add(e.held, o.held)
}

// fit copies e into f's int64 figures, or refuses with AMOUNT_OVERFLOW naming the envelope and the
// first figure whose exact value does not fit.
func (e exact) fit(envelopeID, prefix string, f *Figures) error {
	for _, v := range []struct {
		name string
		from *big.Int
		to   *int64
	}{
		{"allocation", e.allocation, &f.Allocation}, {"awarded", e.awarded, &f.Awarded},
		{"committed", e.committed, &f.Committed}, {"released", e.released, &f.Released},
		{"available", e.available, &f.Available}, {"paid", e.paid, &f.Paid},
		{"remaining_to_pay", e.remainingToPay, &f.RemainingToPay},
		{"available", e.available, &f.Available}, {"held", e.held, &f.Held},
	} {
		if !v.from.IsInt64() {
			return &core.Error{Reason: core.ReasonAmountOverflow,
				Message: fmt.Sprintf("the figure %s%s of envelope %q is %s, beyond the largest amount a report holds",
					prefix, v.name, core.EnvelopeName(envelopeID), v.from),
				Metadata: map[string]string{"envelope": core.EnvelopeName(envelopeID), "figure": prefix + v.name}}
		}
		*v.to = v.from.Int64()
	}
	return nil
}

func add(m map[string]*big.Int, key string, v int64) {
	s, ok := m[key]
	if !ok {
		s = new(big.Int)
		m[key] = s
	}
	s.Add(s, big.NewInt(v))
}
