package audit

import (
	"context"
	"math/big"
	"strings"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// InvariantHoldSettledOnce is the number of the holds' invariant (Invariant
// INVARIANT_HOLD_SETTLED_ONCE in the API): a hold's account holds its amount while it is HELD and
// nothing once it has ended; it was filled by one HOLD_CREATED entry and emptied by exactly one
// entry of the kind of its final state (so its amount returned, or was committed, exactly once);
// a confirmed hold's commitment exists with the confirmed amount.
const InvariantHoldSettledOnce = 20

// holdPosting is a posting to a hold's account, with its entry's kind.
type holdPosting struct {
	entry, account, kind string
	amount               int64
}

// loadHolds reads the holds and the postings to their accounts.
func loadHolds(ctx context.Context, q store.Querier, s *snapshot) error {
	err := each(ctx, q, store.SelectHolds, func(r store.Rows) error {
		h, err := store.ScanHold(r)
		s.holds = append(s.holds, h)
		return err
	})
	if err != nil {
		return err
	}
	return each(ctx, q, `SELECT p.entry_id, p.account, p.amount, COALESCE(e.kind, '') FROM entry_postings p
		LEFT JOIN journal_entries e ON e.id = p.entry_id WHERE p.account LIKE 'holds/%' ORDER BY p.entry_id, p.seq`,
		func(r store.Rows) error {
			var p holdPosting
			err := r.Scan(&p.entry, &p.account, &p.amount, &p.kind)
			s.holdPostings = append(s.holdPostings, p)
			return err
		})
}

// closingKind is the kind of the entry that ends a hold in state.
var closingKind = map[core.HoldState]core.EntryKind{
	core.HoldConfirmed: core.KindHoldConfirmed,
	core.HoldCancelled: core.KindHoldCancelled,
	core.HoldExpired:   core.KindHoldExpired,
}

// holdsSettledOnce checks the holds' invariant (InvariantHoldSettledOnce) and, for the envelopes,
// invariant 4: each envelope's held amount is what its HELD holds reserve.
func holdsSettledOnce(s *snapshot, rep *VerifyReport) {
	perHold := map[string][]holdPosting{}
	for _, p := range s.holdPostings {
		perHold[strings.TrimPrefix(p.account, "holds/")] = append(perHold[strings.TrimPrefix(p.account, "holds/")], p)
	}
	held := map[string]*big.Int{}
	for _, h := range s.holds {
		name := core.HoldName(h.ID)
		if h.State == core.HoldHeld {
			bigAdd(held, h.EnvelopeID, h.Amount)
		}
		want := int64(0)
		if h.State == core.HoldHeld {
			want = h.Amount
		}
		if got := balance(s.accounts, name); got.Cmp(big.NewInt(want)) != 0 {
			rep.add(InvariantHoldSettledOnce, name, "is %s and its account holds %s in the journal, not %d", h.State, got, want)
		}
		var created, closed int
		for _, p := range perHold[h.ID] {
			switch core.EntryKind(p.kind) {
			case core.KindHoldCreated:
				created++
				if p.amount != h.Amount {
					rep.add(InvariantHoldSettledOnce, name, "entry %s put %d in it, its amount is %d", core.EntryName(p.entry), p.amount, h.Amount)
				}
			case closingKind[h.State]:
				closed++
				if p.amount != -h.Amount {
					rep.add(InvariantHoldSettledOnce, name, "entry %s took %d out of it, its amount is %d", core.EntryName(p.entry), -p.amount, h.Amount)
				}
			default:
				rep.add(InvariantHoldSettledOnce, name, "is %s but entry %s of kind %q posts to it", h.State, core.EntryName(p.entry), p.kind)
			}
		}
		wantClosed := 1
		if h.State == core.HoldHeld {
			wantClosed = 0
		}
		if created != 1 || closed != wantClosed {
			rep.add(InvariantHoldSettledOnce, name, "is %s with %d entries creating it and %d ending it; want 1 and %d",
				h.State, created, closed, wantClosed)
		}
		if h.State == core.HoldConfirmed {
			c := s.commitment(h.CommitmentID)
			switch {
			case c == nil:
				rep.add(InvariantHoldSettledOnce, name, "was confirmed as %s, which does not exist", core.CommitmentName(h.CommitmentID))
			case c.Amount != h.ConfirmedAmount || c.EnvelopeID != h.EnvelopeID:
				rep.add(InvariantHoldSettledOnce, name, "was confirmed for %d on %s; its commitment %s is of %d on %s",
					h.ConfirmedAmount, core.EnvelopeName(h.EnvelopeID), core.CommitmentName(c.ID), c.Amount, core.EnvelopeName(c.EnvelopeID))
			}
		}
	}
	for _, e := range s.envelopes {
		if got := balance(held, e.ID); got.Cmp(big.NewInt(e.Held)) != 0 {
			rep.add(4, core.EnvelopeName(e.ID), "stores %d held, its holds hold %s", e.Held, got)
		}
	}
}
