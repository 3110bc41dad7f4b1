package core

import "time"

// Holds, payments and closings in group-commit batches. Each of them is keyed by one envelope
// (a new hold's; a hold's or a commitment's, which never changes), so it can share the batch of
// that envelope's awards. It is decided there by the very function that decides it in a
// transaction of its own (DecideCreateHold, DecideConfirmHold, DecideCancelHold,
// DecideCreatePayment, DecideCloseCommitment), on the batch's working state: the envelope as the
// ops before it left it, the hold or commitment as they left it, the project totals as they
// left them. Its effects are then applied to that working state, so the ops after it see them,
// exactly as one transaction after another would.

// holdUndo is what a decision changed of the batch's working copies of holds (before: nil when
// the hold was not there).
type holdUndo struct {
	id     string
	before *Hold
}

// other returns the request id and caller of an op on a hold or a commitment.
func (op *Op) other() (requestID, caller string) {
	switch {
	case op.CreateHold != nil:
		return op.CreateHold.RequestID, op.CreateHold.Caller
	case op.ConfirmHold != nil:
		return op.ConfirmHold.RequestID, op.ConfirmHold.Caller
	case op.CancelHold != nil:
		return op.CancelHold.RequestID, op.CancelHold.Caller
	case op.Payment != nil:
		return op.Payment.RequestID, op.Payment.Caller
	case op.Close != nil:
		return op.Close.RequestID, op.Close.Caller
	}
	return "", ""
}

// rulesTime is the effective time an op gave whose funding rules it is checked against (zero:
// none given, or an op the rules do not apply to).
func (op *Op) rulesTime() time.Time {
	switch {
	case op.Commit != nil:
		return op.Commit.Effective
	case op.CreateHold != nil:
		return op.CreateHold.Effective
	case op.ConfirmHold != nil:
		return op.ConfirmHold.Effective
	}
	return time.Time{}
}

// ProjectChecked names the project whose total a funding-share rule would be checked against
// for op, if op is checked against the funding rules and gives an eligible cost: an award, a
// new hold, or a confirmation (of the hold seen before the batch; its project and policy never
// change).
func (op *Op) ProjectChecked() (project string, ok bool) {
	switch {
	case op.Commit != nil:
		return op.Commit.Project, op.Commit.HasEligibleCost()
	case op.CreateHold != nil:
		return op.CreateHold.Project, op.CreateHold.HasEligibleCost()
	case op.ConfirmHold != nil && op.Seen != nil:
		return op.Seen.Project, op.Seen.Policy.HasEligibleCost()
	}
	return "", false
}

// readsNoRules reports whether a unit only pays or closes commitments: those decisions read no
// funding rule, so an envelope whose chain of parents cannot be read whole (Loaded.Broken) does
// not fail them, as it does not in a transaction of their own.
func readsNoRules(u *Unit) bool {
	for _, op := range u.Ops {
		if op.Payment == nil && op.Close == nil {
			return false
		}
	}
	return len(u.Ops) > 0
}

// HoldIDs lists the holds a batch of units confirms or cancels.
func HoldIDs(units []*Unit) []string {
	var ids []string
	for _, u := range units {
		for _, op := range u.Ops {
			switch {
			case op.ConfirmHold != nil:
				ids = append(ids, op.ConfirmHold.HoldID)
			case op.CancelHold != nil:
				ids = append(ids, op.CancelHold.HoldID)
			}
		}
	}
	return ids
}

// decodeOther copies the typed result of an op on a hold or a commitment into out.
func decodeOther(result, out any) bool {
	switch r := result.(type) {
	case *CreateHoldResult:
		*out.(*CreateHoldResult) = *r
	case *ConfirmHoldResult:
		*out.(*ConfirmHoldResult) = *r
	case *CancelHoldResult:
		*out.(*CancelHoldResult) = *r
	case *CreatePaymentResult:
		*out.(*CreatePaymentResult) = *r
	case *CloseCommitmentResult:
		*out.(*CloseCommitmentResult) = *r
	default:
		return false
	}
	return true
}

// hold returns the batch's working copy of a hold (nil when it does not exist).
func (b *batchState) hold(id string) *Hold {
	if h, ok := b.holds[id]; ok {
		return h
	}
	return b.in.Holds[id]
}

// setHold replaces the working copy of a hold, noting what it was for reset.
func (b *batchState) setHold(h Hold) {
	before, ok := b.holds[h.ID]
	if !ok {
		before = b.in.Holds[h.ID]
	}
	b.holdUndo = append(b.holdUndo, holdUndo{h.ID, before})
	b.holds[h.ID] = &h
}

// rulesOf returns the funding rules an op on envelopeID that gave the effective time given is
// checked against, and what the project holds on the envelope when a funding-share rule needs it
// and the policy gives an eligible cost (0 otherwise), as a transaction of its own reads them
// (see ledger.loadRuled). A time given after the batch's is refused before any rule is read.
func (b *batchState) rulesOf(envelopeID, project string, p *Policy, given time.Time) (*EffectiveRules, int64, error) {
	var rules *EffectiveRules
	if !given.IsZero() && given.UTC().Truncate(time.Microsecond).After(b.st.At) {
		rules = b.in.Rules[envelopeID]
	} else {
		var err error
		if rules, err = b.in.rulesFor(envelopeID, given); err != nil {
			return nil, 0, err
		}
	}
	if !rules.NeedsProjectTotal() || !p.HasEligibleCost() {
		return rules, 0, nil
	}
	k := ProjectKey{envelopeID, project}
	total, ok := b.in.Totals[k]
	if !ok {
		return nil, 0, Internal("the total of project %q on envelope %s was not loaded", project, envelopeID)
	}
	return rules, total, nil
}

// decideOther decides an op on a hold or a commitment against the batch's working state and,
// when it is accepted, applies its effects there. It returns the op's result, its business
// refusal, or an error that fails its unit (nothing of it is then applied).
func (b *batchState) decideOther(op *Op, s *envState, envelopeID string) (any, error, error) {
	var env *Envelope
	if s.found {
		env = &s.env // the Decide functions work on copies
	}
	var (
		result any
		eff    Effects
		err    error
	)
	switch {
	case op.CreateHold != nil:
		cmd := op.CreateHold
		var rules *EffectiveRules
		var already int64
		if env != nil {
			if rules, already, err = b.rulesOf(envelopeID, cmd.Project, &cmd.Policy, cmd.Effective); err != nil {
				return nil, nil, err
			}
		}
		var r *CreateHoldResult
		r, eff, err = DecideCreateHold(b.st, *cmd, env, rules, already)
		result = r
	case op.ConfirmHold != nil, op.CancelHold != nil:
		id := ""
		if op.ConfirmHold != nil {
			id = op.ConfirmHold.HoldID
		} else {
			id = op.CancelHold.HoldID
		}
		h := b.hold(id)
		if h != nil && h.EnvelopeID != envelopeID {
			return nil, nil, Internal("hold %s is on envelope %s, not %s", id, h.EnvelopeID, envelopeID)
		}
		if op.CancelHold != nil {
			var r *CancelHoldResult
			r, eff, err = DecideCancelHold(b.st, *op.CancelHold, h, env)
			result = r
			break
		}
		var rules *EffectiveRules
		var already int64
		if h != nil && env != nil {
			if rules, already, err = b.rulesOf(envelopeID, h.Project, &h.Policy, op.ConfirmHold.Effective); err != nil {
				return nil, nil, err
			}
		}
		var r *ConfirmHoldResult
		r, eff, err = DecideConfirmHold(b.st, *op.ConfirmHold, h, env, rules, already)
		result = r
	case op.Payment != nil, op.Close != nil:
		id := ""
		if op.Payment != nil {
			id = op.Payment.CommitmentID
		} else {
			id = op.Close.CommitmentID
		}
		var c *Commitment
		if found, ok := b.commitment(id); ok {
			c = found
		}
		if op.Payment != nil {
			var r *CreatePaymentResult
			r, eff, err = DecideCreatePayment(b.st, *op.Payment, env, c)
			result = r
		} else {
			// Not before its last payment or release: recorded, or decided earlier in this
			// batch.
			latest := b.in.Latest[id]
			for _, p := range b.payments {
				if p.CommitmentID == id {
					latest = latest.Later(true, p.EffectiveAt)
				}
			}
			account := CommitmentName(id)
			for _, e := range b.entries {
				if e.Kind == KindReleased && len(e.Postings) > 0 && e.Postings[0].Account == account {
					latest = latest.Later(false, e.EffectiveAt)
				}
			}
			var r *CloseCommitmentResult
			r, eff, err = DecideCloseCommitment(b.st, *op.Close, env, c, latest)
			result = r
		}
		if err == nil {
			// Apply the commitment's new figures to the working copy, as releases do.
			before := *c
			_, seen := b.changed[c.ID]
			b.undo = append(b.undo, commitmentUndo{c: c, before: before, added: !seen})
			if !seen {
				b.changed[c.ID] = c
				b.changedOrder = append(b.changedOrder, c)
			}
			*c = eff.Commitments[0]
		}
	default:
		return nil, nil, Internal("an operation of no known kind in a batch")
	}
	if err != nil {
		if _, ok := IsRefusal(err); ok {
			return nil, err, nil
		}
		return nil, nil, err
	}
	// Accepted: apply the effects to the working state.
	if len(eff.Updated) != 1 || eff.Updated[0].ID != envelopeID {
		return nil, nil, Internal("a decision in a batch changed other envelopes than %s", envelopeID)
	}
	s.env = eff.Updated[0]
	b.entries = append(b.entries, eff.Entries...)
	for _, d := range eff.Deltas {
		b.addDelta(d)
	}
	b.payments = append(b.payments, eff.Payments...)
	if w := eff.Holds; w != nil {
		for _, h := range w.New {
			b.setHold(h)
			b.newHolds = append(b.newHolds, h)
		}
		for _, h := range w.Ended {
			b.setHold(h)
			b.endedHolds = append(b.endedHolds, h)
		}
		b.newCommitments = append(b.newCommitments, w.Commitments...)
		for _, d := range w.Deltas {
			b.addDelta(d)
		}
	}
	return result, nil, nil
}
