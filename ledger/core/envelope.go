package core

import (
	"encoding/json"
	"fmt"
	"time"
)

// Effects are what a decision outside group commit (envelopes, rules) writes: storage applies
// them in the transaction that loaded the decision's inputs.
type Effects struct {
	// Created is a new envelope to insert.
	Created *Envelope
	// Updated are envelopes whose balances changed.
	Updated []Envelope
	// RuleSet is a new rule set to insert.
	RuleSet *RuleSet
	// Entries are the journal entries to append.
	Entries []Entry
	// Commitments are commitments whose figures changed (payments, closing), Payments new
	// payments, and Deltas changes of project totals.
	Commitments []Commitment
	Payments    []Payment
	Deltas      []ProjectDelta
	// Holds are the holds and commitments a decision on holds writes (nil for others).
	Holds *HoldWrites
}

// Envelopes lists the envelopes the effects create or change, as they leave them.
func (e Effects) Envelopes() []Envelope {
	envs := append([]Envelope(nil), e.Updated...)
	if e.Created != nil {
		envs = append(envs, *e.Created)
	}
	return envs
}

// MaxEnvelopeDepth is how many levels an envelope tree may have: a root is at level 1, its
// children at level 2, and so on. A programme needs a handful (fund, axes, windows, lines); the
// limit keeps every envelope's chain of parents, which each award reads for the funding rules,
// short and bounded.
const MaxEnvelopeDepth = 16

// DecideCreateEnvelope decides the creation of an envelope. existing is the envelope already
// holding cmd.EnvelopeID (nil if none); parent is the locked parent of a child envelope (nil for
// a root, or when the parent named does not exist), and parentLevel its level in its tree (1 for
// a root).
func DecideCreateEnvelope(st Stamp, cmd CreateEnvelope, existing, parent *Envelope, parentLevel int) (*CreateEnvelopeResult, Effects, error) {
	var eff Effects
	if existing != nil {
		return nil, eff, &Error{Reason: ReasonEnvelopeAlreadyExists,
			Message:  fmt.Sprintf("envelope %q already exists", EnvelopeName(cmd.EnvelopeID)),
			Metadata: map[string]string{"envelope": EnvelopeName(cmd.EnvelopeID)}}
	}
	at := st.At
	env := Envelope{ID: cmd.EnvelopeID, ParentID: cmd.ParentID, DisplayName: cmd.DisplayName,
		Currency: cmd.Currency, Allocation: cmd.Allocation, CreatedAt: at, UpdatedAt: at, GrantingBody: cmd.GrantingBody}
	res := &CreateEnvelopeResult{}
	entry := Entry{Caller: cmd.Caller, RequestID: cmd.RequestID, Memo: cmd.DisplayName, CreatedAt: at}
	if cmd.ParentID == "" {
		if env.Currency == "" {
			env.Currency = "EUR"
		}
		effective, err := CheckEffective(at, cmd.Effective)
		if err != nil {
			return nil, eff, err
		}
		env.EffectiveAt, env.LatestEffectiveAt, entry.EffectiveAt = effective, effective, effective
		entry.Kind = KindEnvelopeFunded
		entry.Postings = []Posting{{FundingAccount, -cmd.Allocation}, {EnvelopeName(env.ID), cmd.Allocation}}
	} else {
		if parent == nil {
			return nil, eff, EnvelopeNotFound(cmd.ParentID)
		}
		p := *parent
		if env.Currency == "" {
			env.Currency = p.Currency
		}
		if env.Currency != p.Currency {
			return nil, eff, currencyMismatch(p, env.Currency)
		}
		if parentLevel >= MaxEnvelopeDepth {
			return nil, eff, &Error{Reason: ReasonEnvelopeTooDeep,
				Message: fmt.Sprintf("envelope %q is at level %d of its tree; a child would pass the limit of %d levels",
					EnvelopeName(p.ID), parentLevel, MaxEnvelopeDepth),
				Metadata: map[string]string{"parent": EnvelopeName(p.ID), "parent_level": fmt.Sprint(parentLevel),
					"max_depth": fmt.Sprint(MaxEnvelopeDepth)}}
		}
		// The child's allocation is taken from the parent: a reduction of the parent.
		effective, err := CheckEffective(at, cmd.Effective, Reduces(&p)...)
		if err != nil {
			return nil, eff, err
		}
		if p.Available() < cmd.Allocation {
			return nil, eff, insufficientFunds(&p, cmd.Allocation)
		}
		if p.ChildrenAllocated, err = AddAmount(fmt.Sprintf("the allocation to children of envelope %q", EnvelopeName(p.ID)), p.ChildrenAllocated, cmd.Allocation); err != nil {
			return nil, eff, err
		}
		p.Touch(at, effective)
		env.EffectiveAt, env.LatestEffectiveAt, entry.EffectiveAt = effective, effective, effective
		res.Parent = &p
		eff.Updated = []Envelope{p}
		entry.Kind = KindEnvelopeAllocated
		entry.Postings = []Posting{{EnvelopeName(p.ID), -cmd.Allocation}, {EnvelopeName(env.ID), cmd.Allocation}}
	}
	entry.Currency = env.Currency
	res.EntryID = st.NewID()
	entry.ID = res.EntryID
	res.Envelope = env
	eff.Created = &env
	eff.Entries = []Entry{entry}
	return res, eff, nil
}

func currencyMismatch(env Envelope, other string) *Error {
	return &Error{Reason: ReasonCurrencyMismatch,
		Message: fmt.Sprintf("envelope %q holds %s, not %s", EnvelopeName(env.ID), env.Currency, other),
		Metadata: map[string]string{"envelope": EnvelopeName(env.ID), "envelope_currency": env.Currency,
			"requested_currency": other}}
}

// DecideMoveAllocation decides a move of allocation between src and dst, both locked (nil when
// the envelope named does not exist).
func DecideMoveAllocation(st Stamp, cmd MoveAllocation, srcEnv, dstEnv *Envelope) (*MoveAllocationResult, Effects, error) {
	var eff Effects
	if srcEnv == nil {
		return nil, eff, EnvelopeNotFound(cmd.SourceID)
	}
	if dstEnv == nil {
		return nil, eff, EnvelopeNotFound(cmd.DestinationID)
	}
	src, dst := *srcEnv, *dstEnv
	if src.Currency != dst.Currency {
		return nil, eff, currencyMismatch(dst, src.Currency)
	}
	// The source's available amount shrinks (a child's allocation, or a parent's share in its
	// children's); the destination's grows.
	effective, err := CheckEffective(st.At, cmd.Effective, append(Reduces(&src), Adds(&dst)...)...)
	if err != nil {
		return nil, eff, err
	}
	if src.Available() < cmd.Amount {
		return nil, eff, insufficientFunds(&src, cmd.Amount)
	}
	switch {
	case dst.ParentID == src.ID: // parent to child
		if src.ChildrenAllocated, err = AddAmount(fmt.Sprintf("the allocation to children of envelope %q", EnvelopeName(src.ID)), src.ChildrenAllocated, cmd.Amount); err == nil {
			dst.Allocation, err = AddAmount(fmt.Sprintf("the allocation of envelope %q", EnvelopeName(dst.ID)), dst.Allocation, cmd.Amount)
		}
	case src.ParentID == dst.ID: // child to parent: the parent's share in its children shrinks
		src.Allocation -= cmd.Amount
		dst.ChildrenAllocated -= cmd.Amount
	case src.ParentID == dst.ParentID: // siblings, or two roots
		src.Allocation -= cmd.Amount
		dst.Allocation, err = AddAmount(fmt.Sprintf("the allocation of envelope %q", EnvelopeName(dst.ID)), dst.Allocation, cmd.Amount)
	default:
		return nil, eff, &Error{Reason: ReasonEnvelopesNotRelated,
			Message: fmt.Sprintf("allocation moves only between a parent and its child or between siblings; %q and %q are neither",
				EnvelopeName(src.ID), EnvelopeName(dst.ID)),
			Metadata: map[string]string{"source": EnvelopeName(src.ID), "destination": EnvelopeName(dst.ID)}}
	}
	if err != nil {
		return nil, eff, err
	}
	src.Touch(st.At, effective)
	dst.Touch(st.At, effective)
	res := &MoveAllocationResult{Source: src, Destination: dst, EntryID: st.NewID(), EffectiveTime: effective}
	eff.Updated = []Envelope{src, dst}
	eff.Entries = []Entry{{ID: res.EntryID, Kind: KindAllocationMoved, Currency: src.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Reason, CreatedAt: st.At, EffectiveAt: effective,
		Postings: []Posting{{EnvelopeName(src.ID), -cmd.Amount}, {EnvelopeName(dst.ID), cmd.Amount}}}}
	return res, eff, nil
}

// RulesChangedMemo is the memo of a RULES_CHANGED entry: the envelope, the time the rule set is in
// force from, the call and the rule set's rules, as the JSON stored in envelope_rules. The entry
// has no postings: the memo is what tells a reader of the journal (and of the transparency log,
// whose leaf holds it) which envelope's rules changed, and from when (a date after the entry's
// own, for rules set ahead). The auditor holds each rule set to it.
func RulesChangedMemo(envelopeID string, from time.Time, call, rulesJSON string) string {
	return fmt.Sprintf("envelope %s from %s, call %s: %s", EnvelopeName(envelopeID),
		from.UTC().Format(time.RFC3339Nano), call, rulesJSON)
}

// LegacyRulesChangedMemo is the memo of a RULES_CHANGED entry written before the memo named the
// envelope and the date (2026-12-03): the call and the rules.
func LegacyRulesChangedMemo(call, rulesJSON string) string {
	return fmt.Sprintf("call %s: %s", call, rulesJSON)
}

// DecideSetRules decides a new rule set for env (nil when the envelope does not exist). A rule
// set takes effect at its effective time, or at once (st.At) when that is zero, or not after the
// latest effective time recorded on the envelope or a descendant: rules never apply
// retroactively to what is already recorded. A past time after it is kept (see docs/dates.md). subtree are env and its descendants,
// locked: the rule change marks each as changed at st.At, so that awards on them are ordered
// with it (see the ledger's SetRules).
func DecideSetRules(st Stamp, cmd SetRules, env *Envelope, subtree []Envelope) (*SetRulesResult, Effects, error) {
	var eff Effects
	if env == nil {
		return nil, eff, EnvelopeNotFound(cmd.EnvelopeID)
	}
	effective := cmd.EffectiveTime.UTC().Truncate(time.Microsecond)
	if effective.Before(st.At) && !effective.After(latestEffective(subtree)) {
		// Rules never apply retroactively to what is already recorded: a time at or before the
		// latest effective time recorded on the envelope or a descendant means at once. A past
		// time after it (a programme recorded after the fact) is kept: awards backdated after it
		// are checked against these rules (CheckRules by effective time).
		effective = st.At
	}
	rs := RuleSet{ID: st.NewID(), EnvelopeID: env.ID, Call: cmd.Call, EffectiveFrom: effective,
		Rules: cmd.Rules, Caller: cmd.Caller, RequestID: cmd.RequestID, CreatedAt: st.At}
	raw, err := json.Marshal(rs.Rules)
	if err != nil {
		return nil, eff, err
	}
	eff.RuleSet = &rs
	for _, e := range subtree {
		e.UpdatedAt = st.At
		eff.Updated = append(eff.Updated, e)
	}
	eff.Entries = []Entry{{ID: rs.ID, Kind: KindRulesChanged, Currency: env.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: RulesChangedMemo(env.ID, effective, cmd.Call, string(raw)), CreatedAt: st.At,
		EffectiveAt: minTime(effective, st.At)}}
	return &SetRulesResult{RuleSet: rs, EntryID: rs.ID}, eff, nil
}

// latestEffective is the latest effective time recorded on any of envs.
func latestEffective(envs []Envelope) time.Time {
	var latest time.Time
	for _, e := range envs {
		if e.LatestEffectiveAt.After(latest) {
			latest = e.LatestEffectiveAt
		}
		// A ledger from before effective times: its envelopes' last change bounds them.
		if e.LatestEffectiveAt.IsZero() && e.UpdatedAt.After(latest) {
			latest = e.UpdatedAt
		}
	}
	return latest
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
