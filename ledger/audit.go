package ledger

import (
	"context"
	"fmt"
	"math/big"
	"sort"
)

// Discrepancy is one broken invariant found by Verify.
type Discrepancy struct {
	// Invariant is the number of the invariant in docs (1: entries balance, 2: available >= 0,
	// 3: released <= amount, 4: stored balances = journal, 5: one entry per request id, 6: the
	// journal and the request log are append-only, 7: a refused request posted nothing).
	Invariant int
	// Subject is the resource concerned, e.g. "envelopes/axis-1".
	Subject string
	Detail  string
}

func (d Discrepancy) String() string {
	return fmt.Sprintf("invariant %d: %s: %s", d.Invariant, d.Subject, d.Detail)
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Envelopes     int
	Commitments   int
	Entries       int
	Discrepancies []Discrepancy
}

// OK reports whether no invariant was found broken.
func (r VerifyReport) OK() bool { return len(r.Discrepancies) == 0 }

// Verify recomputes every balance from the journal in one consistent snapshot and checks the
// ledger's invariants. Sums are computed with arbitrary precision, so a corrupt row cannot hide
// behind an overflow.
func (l *Ledger) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	err := l.eng.readOnly(ctx, func(q querier) error {
		rep = VerifyReport{}
		add := func(inv int, subject, format string, args ...any) {
			rep.Discrepancies = append(rep.Discrepancies, Discrepancy{inv, subject, fmt.Sprintf(format, args...)})
		}

		// Postings: the sum of each entry, and the balance of each account. Every posting must
		// belong to an entry (there is no foreign key; see the schema).
		entrySums := map[string]*big.Int{}
		accounts := map[string]*big.Int{}
		rs, err := q.query(ctx, "SELECT entry_id, account, amount FROM postings")
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				entry, account string
				amount         int64
			)
			if err := rs.Scan(&entry, &account, &amount); err != nil {
				rs.Close()
				return err
			}
			bigAdd(entrySums, entry, amount)
			bigAdd(accounts, account, amount)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}

		// Entries: invariant 1, and invariant 5 (no request id posted twice).
		perRequest := map[string]int{}
		rs, err = q.query(ctx, "SELECT id, request_id, kind FROM journal_entries")
		if err != nil {
			return err
		}
		entries := map[string]bool{}
		for rs.Next() {
			var id, rid, kind string
			if err := rs.Scan(&id, &rid, &kind); err != nil {
				rs.Close()
				return err
			}
			entries[id] = true
			rep.Entries++
			perRequest[rid]++
			sum, ok := entrySums[id]
			switch {
			case EntryKind(kind) == KindRulesChanged:
				// A rule change moves no money: it must have no postings (see KindRulesChanged).
				if ok {
					add(1, EntryName(id), "changes rules but has postings")
				}
			case !ok:
				add(1, EntryName(id), "has no postings")
			case sum.Sign() != 0:
				add(1, EntryName(id), "postings sum to %s, not 0", sum)
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		for id := range entrySums {
			if !entries[id] {
				add(1, EntryName(id), "has postings but no journal entry")
			}
		}
		for rid, n := range perRequest {
			if n > 1 {
				add(5, "request "+rid, "posted %d journal entries", n)
			}
		}

		// Invariants 6 and 7, as far as the rows left can show them: every entry was recorded in
		// the request log in the same transaction (an entry whose request is missing means a row
		// of the log was removed), and a request recorded as refused posted nothing.
		rs, err = q.query(ctx, `SELECT e.id, e.request_id, r.operation FROM journal_entries e
			LEFT JOIN requests r ON r.request_id = e.request_id
			WHERE r.request_id IS NULL OR r.operation <> 'result'`)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				id, rid   string
				operation *string
			)
			if err := rs.Scan(&id, &rid, &operation); err != nil {
				rs.Close()
				return err
			}
			if operation == nil {
				add(6, EntryName(id), "its request %q is missing from the request log", rid)
			} else {
				add(7, EntryName(id), "its request %q is recorded as refused (%s), yet it posted", rid, *operation)
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}

		// Commitments: invariants 3 and 4, and their sums per envelope.
		type sums struct{ remaining, released, count big.Int }
		perEnvelope := map[string]*sums{}
		rs, err = q.query(ctx, "SELECT "+commitmentColumns+" FROM commitments")
		if err != nil {
			return err
		}
		for rs.Next() {
			c, err := scanCommitment(rs)
			if err != nil {
				rs.Close()
				return err
			}
			rep.Commitments++
			name := CommitmentName(c.ID)
			if c.Released < 0 || c.Released > c.Amount {
				add(3, name, "released %d of an amount of %d", c.Released, c.Amount)
			}
			if got := balance(accounts, name); got.Cmp(big.NewInt(c.Remaining())) != 0 {
				add(4, name, "stores %d remaining, the journal says %s", c.Remaining(), got)
			}
			s := perEnvelope[c.EnvelopeID]
			if s == nil {
				s = &sums{}
				perEnvelope[c.EnvelopeID] = s
			}
			s.remaining.Add(&s.remaining, big.NewInt(c.Remaining()))
			s.released.Add(&s.released, big.NewInt(c.Released))
			s.count.Add(&s.count, big.NewInt(1))
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}

		// Envelopes: invariants 2 and 4.
		var envs []Envelope
		rs, err = q.query(ctx, "SELECT "+envelopeColumns+" FROM envelopes")
		if err != nil {
			return err
		}
		for rs.Next() {
			e, err := scanEnvelope(rs)
			if err != nil {
				rs.Close()
				return err
			}
			envs = append(envs, e)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		rep.Envelopes = len(envs)
		known := map[string]bool{}
		for _, e := range envs {
			known[e.ID] = true
		}
		for id := range perEnvelope {
			if !known[id] {
				add(4, EnvelopeName(id), "holds commitments but does not exist")
			}
		}
		children := map[string]*big.Int{}
		roots := new(big.Int)
		for _, e := range envs {
			if e.ParentID == "" {
				roots.Add(roots, big.NewInt(e.Allocation))
			} else {
				bigAdd(children, e.ParentID, e.Allocation)
			}
		}
		sort.Slice(envs, func(i, j int) bool { return envs[i].ID < envs[j].ID })
		for _, e := range envs {
			name := EnvelopeName(e.ID)
			if e.Available() < 0 {
				add(2, name, "available is %d", e.Available())
			}
			if got := balance(accounts, name); got.Cmp(big.NewInt(e.Available())) != 0 {
				add(4, name, "stores %d available, the journal says %s", e.Available(), got)
			}
			s := perEnvelope[e.ID]
			if s == nil {
				s = &sums{}
			}
			if s.remaining.Cmp(big.NewInt(e.Committed)) != 0 {
				add(4, name, "stores %d committed, its commitments hold %s", e.Committed, &s.remaining)
			}
			if s.released.Cmp(big.NewInt(e.Released)) != 0 {
				add(4, name, "stores %d released, its commitments released %s", e.Released, &s.released)
			}
			if s.count.Cmp(big.NewInt(e.CommitmentCount)) != 0 {
				add(4, name, "stores %d commitments, there are %s", e.CommitmentCount, &s.count)
			}
			if got := balance(children, e.ID); got.Cmp(big.NewInt(e.ChildrenAllocated)) != 0 {
				add(4, name, "stores %d allocated to children, their allocations sum to %s", e.ChildrenAllocated, got)
			}
		}
		// Money enters only by funding roots: what left the funding account is what the roots hold.
		if funded := new(big.Int).Neg(balance(accounts, FundingAccount)); funded.Cmp(roots) != 0 {
			add(4, FundingAccount, "funded %s, the root envelopes hold %s", funded, roots)
		}
		// The per-project totals the funding-share rule reads equal their commitments.
		return verifyProjectTotals(ctx, q, add)
	})
	return rep, l.classify(ctx, err)
}

func bigAdd(m map[string]*big.Int, key string, v int64) {
	s, ok := m[key]
	if !ok {
		s = new(big.Int)
		m[key] = s
	}
	s.Add(s, big.NewInt(v))
}

func balance(m map[string]*big.Int, key string) *big.Int {
	if v, ok := m[key]; ok {
		return v
	}
	return new(big.Int)
}
