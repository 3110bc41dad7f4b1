package model

import (
	"fmt"
	"time"
)

// Holds, as the ledger promises them:
//
//   - A hold takes its amount out of an envelope's available amount into its held amount, if the
//     envelope exists, the expire time (if any) is later than now, the funding rules in force allow
//     an award of the held amount now (what the project's commitments on the envelope hold counts,
//     other holds do not), and the envelope's available amount covers it — checked in that order.
//   - A HELD hold may be confirmed (for at most its amount; 0 means all of it: the confirmed
//     amount becomes a commitment, named by the ledger, and the rest returns to the envelope, the
//     rules being checked again now for the confirmed amount) or cancelled (all of it returns),
//     until its expire time: from then on both are refused with HOLD_EXPIRED, swept or not.
//     Checked in order: the hold's existence, its state (HOLD_NOT_HELD once confirmed or
//     cancelled), its expiry (HOLD_EXPIRED, swept or not), the amount
//     (CONFIRM_EXCEEDS_HELD), the rules.
//   - The sweeper (Sweep) expires every HELD hold whose expire time has passed: its whole amount
//     returns to the envelope, once.
//   - Effective times (docs/dates.md, rule 5): a hold reduces its envelope's available amount, so
//     it may not take effect before the envelope, nor before the envelope's latest effective time
//     (as an award); its confirmation and cancellation may not take effect before the envelope nor
//     before the hold (EFFECTIVE_TIME_BEFORE_HOLD), and may predate the envelope's latest effective
//     time (they return money, or move held money to committed). The commitment a confirmation
//     makes takes the confirmation's effective time. A hold's rules are those in force at its
//     effective time, and a confirmation's at its own: a backdated one is checked against the
//     rule sets kept at its date or before (see the package documentation). The effective time is checked after
//     the envelope's existence and before the expire time (creation), after the hold's state and
//     expiry and before the amount (confirmation).
//
// The model's clock (Now, Advance) is the time every decision on a hold is made at; the test
// drives the ledger's clock (ledger.Config.Clock) with it.

// The reasons of holds.
const (
	HoldNotFound       Reason = "HOLD_NOT_FOUND"
	HoldExpired        Reason = "HOLD_EXPIRED"
	HoldNotHeld        Reason = "HOLD_NOT_HELD"
	ConfirmExceedsHeld Reason = "CONFIRM_EXCEEDS_HELD"
)

// HoldState is the state of a hold.
type HoldState string

// The states of a hold.
const (
	Held      HoldState = "HELD"
	Confirmed HoldState = "CONFIRMED"
	Cancelled HoldState = "CANCELLED"
	Expired   HoldState = "EXPIRED"
)

// Hold is credit of an envelope reserved for an application under review.
type Hold struct {
	ID, EnvelopeID, Beneficiary, Project, Currency, Description string
	Amount                                                      int64
	State                                                       HoldState
	ExpireAt                                                    time.Time
	ConfirmedAmount                                             int64
	CommitmentID, Reason                                        string
	Policy
	// EffectiveAt is when the hold took effect (Now for a time within the run).
	EffectiveAt time.Time
}

// The commands of holds.
type (
	CreateHold struct {
		RequestID, Caller, EnvelopeID, Beneficiary, Project string
		Amount                                              int64
		Description                                         string
		Policy
		ExpireTime time.Time
		// Effective is when the hold took effect (zero: when recorded).
		Effective time.Time
	}
	ConfirmHold struct {
		RequestID, Caller, HoldID string
		Amount                    int64
		// Effective is when the confirmation took effect (zero: when recorded).
		Effective time.Time
	}
	CancelHold struct {
		RequestID, Caller, HoldID, Reason string
		// Effective is when the cancellation took effect (zero: when recorded).
		Effective time.Time
	}
)

// The results of holds.
type (
	CreateHoldResult struct {
		Hold     Hold
		Envelope Envelope
	}
	ConfirmHoldResult struct {
		Hold       Hold
		Commitment Commitment
		Envelope   Envelope
	}
	CancelHoldResult struct {
		Hold     Hold
		Envelope Envelope
	}
)

func (c CreateHold) payload() string {
	return fmt.Sprintf("hold %q %q %q %q %d %q %s %s", c.Caller, c.EnvelopeID, c.Beneficiary, c.Project, c.Amount,
		c.Description, c.Policy.Text(), microText(c.ExpireTime)) + effectiveText(c.Effective)
}

func (c ConfirmHold) payload() string {
	return fmt.Sprintf("confirm %q %q %d", c.Caller, c.HoldID, c.Amount) + effectiveText(c.Effective)
}

func (c CancelHold) payload() string {
	return fmt.Sprintf("cancel %q %q %q", c.Caller, c.HoldID, c.Reason) + effectiveText(c.Effective)
}

// Now is the model's clock.
func (l *Ledger) Now() time.Time { return l.now }

// Advance moves the model's clock forward by d.
func (l *Ledger) Advance(d time.Duration) { l.now = l.now.Add(d) }

// Hold returns a hold, or HOLD_NOT_FOUND.
func (l *Ledger) Hold(id string) (Hold, *Refusal) {
	h, ok := l.holds[id]
	if !ok {
		return Hold{}, refuse(HoldNotFound, "hold", "holds/"+id)
	}
	return h, nil
}

// HoldIDs returns the ids of the holds, oldest first.
func (l *Ledger) HoldIDs() []string { return l.holdOrder[:len(l.holdOrder):len(l.holdOrder)] }

// HoldIDTaken reports whether a hold id is in use.
func (l *Ledger) HoldIDTaken(id string) bool {
	_, ok := l.holds[id]
	return ok
}

func (l *Ledger) expired(h Hold) bool { return !h.ExpireAt.IsZero() && !l.now.Before(h.ExpireAt) }

// CreateHold holds an amount of an envelope; an accepted hold is named newID.
func (l *Ledger) CreateHold(c CreateHold, newID string) (CreateHoldResult, *Refusal) {
	if field := invalidAward("", BulkItem{Beneficiary: c.Beneficiary, Project: c.Project, Amount: c.Amount,
		Description: c.Description, Policy: c.Policy}); field != "" {
		return CreateHoldResult{}, invalid(field)
	}
	key := requestKey(c.Caller, c.RequestID)
	if r, ok := l.lookup(key, c.RequestID, c.payload()); ok {
		res, _ := r.result.(CreateHoldResult)
		return res, r.refusal
	}
	res, refusal := l.createHold(c, newID)
	l.remember(key, c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) createHold(c CreateHold, newID string) (CreateHoldResult, *Refusal) {
	env, refusal := l.Envelope(c.EnvelopeID)
	if refusal != nil {
		return CreateHoldResult{}, refusal
	}
	eff, refusal := l.effective(c.Effective, reduces(env)...)
	if refusal != nil {
		return CreateHoldResult{}, refusal
	}
	if !c.ExpireTime.IsZero() && !c.ExpireTime.After(l.now) {
		return CreateHoldResult{}, invalid("expire_time")
	}
	// It is checked against the rules in force at its effective time (a backdated one, at its date).
	if refusal := l.checkRules(c.EnvelopeID, c.Project, c.Amount, c.Policy, eff); refusal != nil {
		return CreateHoldResult{}, refusal
	}
	if env.Available() < c.Amount {
		return CreateHoldResult{}, refuse(InsufficientFunds, "available", itoa(env.Available()), "requested", itoa(c.Amount))
	}
	var ok bool
	if env.Held, ok = add(env.Held, c.Amount); !ok {
		return CreateHoldResult{}, overflow()
	}
	if _, taken := l.holds[newID]; taken {
		panic("model: the hold id " + newID + " is already taken")
	}
	h := Hold{ID: newID, EnvelopeID: env.ID, Beneficiary: c.Beneficiary, Project: c.Project, Currency: env.Currency,
		Description: c.Description, Amount: c.Amount, State: Held, ExpireAt: c.ExpireTime.UTC(), Policy: c.Policy,
		EffectiveAt: eff}
	touch(&env, eff)
	l.envelopes[env.ID], l.holds[newID] = env, h
	l.versions[env.ID]++
	l.holdOrder = append(l.holdOrder, newID)
	return CreateHoldResult{Hold: h, Envelope: env}, nil
}

// held returns a hold that may still be confirmed or cancelled now, or the refusal.
func (l *Ledger) held(id string) (Hold, *Refusal) {
	h, refusal := l.Hold(id)
	switch {
	case refusal != nil:
		return h, refusal
	case h.State == Confirmed || h.State == Cancelled:
		return h, refuse(HoldNotHeld, "hold", "holds/"+id, "state", string(h.State))
	case h.State == Expired || l.expired(h):
		return h, refuse(HoldExpired, "hold", "holds/"+id, "expire_time", microText(h.ExpireAt))
	}
	return h, nil
}

// ConfirmHold turns a hold into a commitment named newID.
func (l *Ledger) ConfirmHold(c ConfirmHold, newID string) (ConfirmHoldResult, *Refusal) {
	if c.Amount < 0 {
		return ConfirmHoldResult{}, invalid("amount")
	}
	key := requestKey(c.Caller, c.RequestID)
	if r, ok := l.lookup(key, c.RequestID, c.payload()); ok {
		res, _ := r.result.(ConfirmHoldResult)
		return res, r.refusal
	}
	res, refusal := l.confirmHold(c, newID)
	l.remember(key, c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) confirmHold(c ConfirmHold, newID string) (ConfirmHoldResult, *Refusal) {
	h, refusal := l.held(c.HoldID)
	if refusal != nil {
		return ConfirmHoldResult{}, refusal
	}
	env := l.envelopes[h.EnvelopeID]
	eff, refusal := l.effective(c.Effective, settles(env, h)...)
	if refusal != nil {
		return ConfirmHoldResult{}, refusal
	}
	amount := c.Amount
	if amount == 0 {
		amount = h.Amount
	}
	if amount > h.Amount {
		return ConfirmHoldResult{}, refuse(ConfirmExceedsHeld, "hold", "holds/"+h.ID, "held", itoa(h.Amount), "requested", itoa(amount))
	}
	// It is checked against the rules in force at its effective time (a backdated one, at its date).
	if refusal := l.checkRules(h.EnvelopeID, h.Project, amount, h.Policy, eff); refusal != nil {
		return ConfirmHoldResult{}, refusal
	}
	var ok bool
	if env.Committed, ok = add(env.Committed, amount); !ok {
		return ConfirmHoldResult{}, overflow()
	}
	if _, taken := l.commitments[newID]; taken {
		panic("model: the commitment id " + newID + " is already taken")
	}
	env.Held -= h.Amount
	env.CommitmentCount++
	com := Commitment{ID: newID, EnvelopeID: env.ID, Beneficiary: h.Beneficiary, Project: h.Project, Currency: env.Currency,
		Description: h.Description, Amount: amount, Policy: h.Policy, EffectiveAt: eff}
	h.State, h.ConfirmedAmount, h.CommitmentID = Confirmed, amount, newID
	touch(&env, eff)
	l.envelopes[env.ID], l.holds[h.ID], l.commitments[newID] = env, h, com
	l.versions[env.ID]++
	l.commitmentOrder = append(l.commitmentOrder, newID)
	return ConfirmHoldResult{Hold: h, Commitment: com, Envelope: env}, nil
}

// CancelHold returns a hold's whole amount to its envelope.
func (l *Ledger) CancelHold(c CancelHold) (CancelHoldResult, *Refusal) {
	key := requestKey(c.Caller, c.RequestID)
	if r, ok := l.lookup(key, c.RequestID, c.payload()); ok {
		res, _ := r.result.(CancelHoldResult)
		return res, r.refusal
	}
	res, refusal := l.cancelHold(c)
	l.remember(key, c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) cancelHold(c CancelHold) (CancelHoldResult, *Refusal) {
	h, refusal := l.held(c.HoldID)
	if refusal != nil {
		return CancelHoldResult{}, refusal
	}
	env := l.envelopes[h.EnvelopeID]
	eff, refusal := l.effective(c.Effective, settles(env, h)...)
	if refusal != nil {
		return CancelHoldResult{}, refusal
	}
	env.Held -= h.Amount
	h.State, h.Reason = Cancelled, c.Reason
	touch(&env, eff)
	l.envelopes[env.ID], l.holds[h.ID] = env, h
	l.versions[env.ID]++
	return CancelHoldResult{Hold: h, Envelope: env}, nil
}

// settles are the bounds of what ends a hold (a confirmation, a cancellation): not before its
// envelope, nor before the hold.
func settles(env Envelope, h Hold) []bound {
	return []bound{envelopeBound(env), holdBound(h)}
}

// Sweep expires every HELD hold whose expire time has passed, and says how many.
func (l *Ledger) Sweep() int {
	n := 0
	for _, id := range l.holdOrder {
		h := l.holds[id]
		if h.State != Held || !l.expired(h) {
			continue
		}
		env := l.envelopes[h.EnvelopeID]
		env.Held -= h.Amount
		h.State = Expired
		touch(&env, Now) // an expiry takes effect at the hold's expire time, within the run
		l.envelopes[env.ID], l.holds[id] = env, h
		l.versions[env.ID]++
		n++
	}
	return n
}
