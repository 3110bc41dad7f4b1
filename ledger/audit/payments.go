package audit

import (
	"context"
	"math/big"
	"slices"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Payments and closing (issue 13 §2). A payment moves money from its commitment's account to
// core.PaymentsAccount; a closing returns the unpaid rest to the envelope. The checks below hold
// the stored figures (a commitment's paid and closing, an envelope's paid, the payments table) to
// the journal.

// InvariantPaidWithinCommitted is the number of the invariant "for a commitment, paid + released ≤
// amount (so paid ≤ committed and remaining to pay = committed − paid ≥ 0), and a closed
// commitment has nothing left to pay" (invariant 10 of the design notes, for payments; its
// Invariant value in the API is 30).
const InvariantPaidWithinCommitted = 30

// loadPayments reads every payment (see load).
func loadPayments(ctx context.Context, q store.Querier, s *snapshot) error {
	return each(ctx, q, store.SelectPayments+" ORDER BY commitment_id, id", func(r store.Rows) error {
		p, err := store.ScanPayment(r)
		s.payments = append(s.payments, p)
		return err
	})
}

// paymentsMatchJournal checks invariants 10 (as InvariantPaidWithinCommitted), 4 and 6 for
// payments and closing:
//   - each commitment paid no more than it holds (paid ≥ 0, paid + released ≤ amount), and a
//     closed one has nothing left to pay;
//   - what each commitment paid is the sum of its payments, and each envelope's paid the sum of
//     its commitments';
//   - each payment belongs to a commitment of its envelope, in its currency, and was recorded by a
//     PAID entry of its own; every PAID entry has its payment; what left for PaymentsAccount is
//     what the payments paid.
func paymentsMatchJournal(s *snapshot, rep *VerifyReport) {
	paidPerEnvelope := map[string]*big.Int{}
	for i := range s.commitments {
		c := &s.commitments[i]
		name := core.CommitmentName(c.ID)
		if c.Paid < 0 || new(big.Int).Add(big.NewInt(c.Paid), big.NewInt(c.Released)).Cmp(big.NewInt(c.Amount)) > 0 {
			rep.add(InvariantPaidWithinCommitted, name, "paid %d and released %d of an amount of %d", c.Paid, c.Released, c.Amount)
		}
		if c.Closed() && c.RemainingToPay() != 0 {
			rep.add(InvariantPaidWithinCommitted, name, "is closed with %d left to pay", c.RemainingToPay())
		}
		bigAdd(paidPerEnvelope, c.EnvelopeID, c.Paid)
	}
	for _, e := range s.envelopes {
		if got := balance(paidPerEnvelope, e.ID); got.Cmp(big.NewInt(e.Paid)) != 0 {
			rep.add(4, core.EnvelopeName(e.ID), "stores %d paid, its commitments paid %s", e.Paid, got)
		}
	}
	paidPerCommitment := map[string]*big.Int{}
	total := new(big.Int)
	withPayment := map[string]bool{}
	for _, p := range s.payments {
		name := core.PaymentName(p.CommitmentID, p.ID)
		bigAdd(paidPerCommitment, p.CommitmentID, p.Amount)
		total.Add(total, big.NewInt(p.Amount))
		withPayment[p.EntryID] = true
		c := s.commitment(p.CommitmentID)
		switch {
		case c == nil:
			rep.add(4, name, "its commitment does not exist")
		case c.EnvelopeID != p.EnvelopeID || c.Currency != p.Currency:
			rep.add(4, name, "names envelope %s in %s, its commitment is of %s in %s", p.EnvelopeID, p.Currency, c.EnvelopeID, c.Currency)
		}
		e := s.entry(p.EntryID)
		if e == nil || core.EntryKind(e.kind) != core.KindPaid || e.memo != name || e.requestID != p.RequestID || e.caller != p.Caller {
			rep.add(6, name, "is not what a PAID journal entry %s recorded", core.EntryName(p.EntryID))
			continue
		}
		// The amount and the dates the payments table publishes (ListPayments, the open data's
		// payment dates) are the entry's: its postings, from the commitment to PaymentsAccount,
		// and its creation and effective times.
		paid := []core.Posting{{Account: core.CommitmentName(p.CommitmentID), Amount: -p.Amount}, {Account: core.PaymentsAccount, Amount: p.Amount}}
		if !slices.Equal(e.postings, paid) {
			rep.add(6, name, "pays %d, its PAID journal entry %s posts %v", p.Amount, core.EntryName(p.EntryID), e.postings)
		}
		if at := p.CreatedAt.UnixMicro(); at != e.createdAt {
			rep.add(6, name, "was recorded at %s, its PAID journal entry %s at %s", micro(at), core.EntryName(p.EntryID), micro(e.createdAt))
		}
		if !p.EffectiveAt.IsZero() && p.EffectiveAt.UnixMicro() != e.effectiveAt {
			rep.add(6, name, "took effect at %s, its PAID journal entry %s at %s", micro(p.EffectiveAt.UnixMicro()), core.EntryName(p.EntryID), micro(e.effectiveAt))
		}
	}
	for i := range s.commitments {
		c := &s.commitments[i]
		if got := balance(paidPerCommitment, c.ID); got.Cmp(big.NewInt(c.Paid)) != 0 {
			rep.add(4, core.CommitmentName(c.ID), "stores %d paid, its payments paid %s", c.Paid, got)
		}
	}
	for _, id := range sortedKeys(paidPerCommitment) {
		if s.commitment(id) == nil {
			rep.add(4, core.CommitmentName(id), "has payments but does not exist")
		}
	}
	for _, e := range s.entries {
		if core.EntryKind(e.kind) == core.KindPaid && !withPayment[e.id] {
			rep.add(6, core.EntryName(e.id), "records a payment missing from the payments table")
		}
	}
	if got := balance(s.accounts, core.PaymentsAccount); got.Cmp(total) != 0 {
		rep.add(4, core.PaymentsAccount, "received %s, the payments paid %s", got, total)
	}
}
