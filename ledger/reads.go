package ledger

import (
	"context"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// GetEnvelope returns one envelope.
func (l *Ledger) GetEnvelope(ctx context.Context, id string) (Envelope, error) {
	if err := core.CheckEnvelopeID("name", id); err != nil {
		return Envelope{}, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	env, err := store.LoadEnvelope(ctx, l.db.Reader(), id, "")
	return env, l.classify(ctx, err)
}

// GetCommitment returns one commitment.
func (l *Ledger) GetCommitment(ctx context.Context, id string) (Commitment, error) {
	if err := core.CheckCommitmentID("name", id); err != nil {
		return Commitment{}, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	c, err := store.LoadCommitment(ctx, l.db.Reader(), id)
	return c, l.classify(ctx, err)
}

// ListEnvelopes returns envelopes in id order and the token of the next page ("" at the end).
func (l *Ledger) ListEnvelopes(ctx context.Context, f EnvelopeFilter, page Page) ([]Envelope, string, error) {
	if f.ParentID != "" {
		if err := core.CheckEnvelopeID("parent", f.ParentID); err != nil {
			return nil, "", err
		}
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	items, next, err := store.ListEnvelopes(ctx, l.db.Reader(), f, page)
	return items, next, l.classify(ctx, err)
}

// ListCommitments returns commitments oldest first and the token of the next page.
func (l *Ledger) ListCommitments(ctx context.Context, f CommitmentFilter, page Page) ([]Commitment, string, error) {
	if f.EnvelopeID != "" {
		if err := core.CheckEnvelopeID("envelope", f.EnvelopeID); err != nil {
			return nil, "", err
		}
	}
	if f.Beneficiary != "" {
		// The filter is compared with stored beneficiaries: what no beneficiary can be (a NUL,
		// which PostgreSQL cannot even receive in text) is refused, not looked up.
		if err := core.CheckField("beneficiary", "beneficiary", f.Beneficiary); err != nil {
			return nil, "", err
		}
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	items, next, err := store.ListCommitments(ctx, l.db.Reader(), f, page)
	return items, next, l.classify(ctx, err)
}

// ListEntries returns journal entries in the journal's order (by sequence), with their postings,
// and the token of the next page. Once a caller has read the entry at position P, no entry ever
// appears at a position ≤ P (invariant 9).
func (l *Ledger) ListEntries(ctx context.Context, f EntryFilter, page Page) ([]Entry, string, error) {
	if f.EnvelopeID != "" {
		if err := core.CheckEnvelopeID("envelope", f.EnvelopeID); err != nil {
			return nil, "", err
		}
	}
	if f.CommitmentID != "" {
		if err := core.CheckCommitmentID("commitment", f.CommitmentID); err != nil {
			return nil, "", err
		}
	}
	if f.AfterSequence < 0 {
		return nil, "", core.InvalidArgument("after_sequence", "must not be negative")
	}
	// Position what has committed, so that a caller reads its own writes.
	if err := l.catchUp(ctx, true); err != nil {
		return nil, "", err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	items, next, err := store.ListEntries(ctx, l.db.Reader(), f, page)
	return items, next, l.classify(ctx, err)
}
