package model

import (
	"fmt"
	"time"
)

// Payments and closing, as the contract states them (see the package documentation).

// RemainingToPay is what the commitment may still pay: Amount − Released − Paid.
func (c Commitment) RemainingToPay() int64 { return c.Amount - c.Released - c.Paid }

// Payment is money paid out of a commitment.
type Payment struct {
	ID, CommitmentID string
	Amount           int64
}

// The commands of payments and closing, as a caller sends them.
type (
	CreatePayment struct {
		RequestID, Caller, CommitmentID string
		Amount                          int64
		// Effective is when the payment took effect (zero: when recorded).
		Effective time.Time
	}
	CloseCommitment struct {
		RequestID, Caller, CommitmentID, Reason string
		// Effective is when the closing took effect (zero: when recorded).
		Effective time.Time
	}
)

// Their results.
type (
	CreatePaymentResult struct {
		Payment    Payment
		Commitment Commitment
		Envelope   Envelope
	}
	CloseCommitmentResult struct {
		Commitment Commitment
		Envelope   Envelope
		Returned   int64
	}
)

func (c CreatePayment) payload() string {
	return fmt.Sprintf("pay %q %q %d", c.Caller, c.CommitmentID, c.Amount) + effectiveText(c.Effective)
}

func (c CloseCommitment) payload() string {
	return fmt.Sprintf("close %q %q %q", c.Caller, c.CommitmentID, c.Reason) + effectiveText(c.Effective)
}

// PaymentIDTaken reports whether a payment id is in use: the ledger must name each payment afresh.
func (l *Ledger) PaymentIDTaken(id string) bool {
	for _, ps := range l.payments {
		for _, p := range ps {
			if p.ID == id {
				return true
			}
		}
	}
	return false
}

// Payments returns a commitment's payments, oldest first.
func (l *Ledger) Payments(commitmentID string) []Payment {
	return l.payments[commitmentID][:len(l.payments[commitmentID]):len(l.payments[commitmentID])]
}

// CreatePayment pays part of a commitment; an accepted payment is named newID.
func (l *Ledger) CreatePayment(c CreatePayment, newID string) (CreatePaymentResult, *Refusal) {
	if !canonicalUUID(c.CommitmentID) {
		return CreatePaymentResult{}, invalid("parent")
	}
	if c.Amount <= 0 {
		return CreatePaymentResult{}, invalid("amount")
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		res, _ := r.result.(CreatePaymentResult)
		return res, r.refusal
	}
	res, refusal := l.createPayment(c, newID)
	l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) createPayment(c CreatePayment, newID string) (CreatePaymentResult, *Refusal) {
	com, refusal := l.Commitment(c.CommitmentID)
	if refusal != nil {
		return CreatePaymentResult{}, refusal
	}
	paidAt, refusal := l.effective(c.Effective, returns(l.envelopes[com.EnvelopeID], com)...)
	if refusal != nil {
		return CreatePaymentResult{}, refusal
	}
	if com.Closed {
		return CreatePaymentResult{}, refuse(CommitmentClosed, "commitment", "commitments/"+com.ID)
	}
	if com.RemainingToPay() < c.Amount {
		return CreatePaymentResult{}, refuse(PaymentExceedsRemaining, "remaining_to_pay", itoa(com.RemainingToPay()),
			"paid", itoa(com.Paid), "requested", itoa(c.Amount))
	}
	if l.PaymentIDTaken(newID) {
		panic("model: the payment id " + newID + " is already taken")
	}
	env := l.envelopes[com.EnvelopeID]
	com.Paid += c.Amount // ≤ Amount − Released: no overflow
	env.Paid += c.Amount // ≤ Committed
	p := Payment{ID: newID, CommitmentID: com.ID, Amount: c.Amount}
	if l.payments == nil {
		l.payments = map[string][]Payment{}
	}
	l.payments[com.ID] = append(l.payments[com.ID], p)
	if l.lastPaid == nil {
		l.lastPaid = map[string]time.Time{}
	}
	if paidAt.After(l.lastPaid[com.ID]) {
		l.lastPaid[com.ID] = paidAt
	}
	l.envelopes[env.ID], l.commitments[com.ID] = env, com
	l.versions[env.ID]++
	return CreatePaymentResult{Payment: p, Commitment: com, Envelope: env}, nil
}

// CloseCommitment returns what remains to pay on a commitment to its envelope and closes it.
func (l *Ledger) CloseCommitment(c CloseCommitment) (CloseCommitmentResult, *Refusal) {
	if !canonicalUUID(c.CommitmentID) {
		return CloseCommitmentResult{}, invalid("commitment")
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		res, _ := r.result.(CloseCommitmentResult)
		return res, r.refusal
	}
	res, refusal := l.closeCommitment(c)
	l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) closeCommitment(c CloseCommitment) (CloseCommitmentResult, *Refusal) {
	com, refusal := l.Commitment(c.CommitmentID)
	if refusal != nil {
		return CloseCommitmentResult{}, refusal
	}
	// A commitment is closed after its last payment and its last release (probes found closings
	// dated before either).
	eff, refusal := l.effective(c.Effective, append(returns(l.envelopes[com.EnvelopeID], com),
		bound{l.lastPaid[com.ID], EffectiveTimeBeforePayment, "commitment", "commitments/" + com.ID, "payment_effective_time"},
		bound{l.lastReleased[com.ID], EffectiveTimeBeforeRelease, "commitment", "commitments/" + com.ID, "release_effective_time"})...)
	if refusal != nil {
		return CloseCommitmentResult{}, refusal
	}
	if com.Closed {
		return CloseCommitmentResult{}, refuse(CommitmentClosed, "commitment", "commitments/"+com.ID)
	}
	rest := com.RemainingToPay()
	env := l.envelopes[com.EnvelopeID]
	var ok bool
	if env.Released, ok = add(env.Released, rest); !ok {
		return CloseCommitmentResult{}, overflow()
	}
	touch(&env, eff)
	env.Committed -= rest
	com.Released += rest
	com.Closed = true
	l.envelopes[env.ID], l.commitments[com.ID] = env, com
	l.versions[env.ID]++
	return CloseCommitmentResult{Commitment: com, Envelope: env, Returned: rest}, nil
}
