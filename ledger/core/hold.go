package core

import (
	"fmt"
	"strconv"
	"time"
)

// Holds. A hold reserves part of an envelope for an application under review: the amount leaves
// the envelope's available amount for the hold's account (holds/{id}), and the envelope's Held
// grows by it. A hold ends in exactly one final state, each posting one journal entry that empties
// its account:
//
//   - CONFIRMED (ConfirmHold): the confirmed amount (at most the held amount) becomes a
//     commitment, and the rest returns to the envelope, in one entry;
//   - CANCELLED (CancelHold): the whole amount returns to the envelope;
//   - EXPIRED (the sweeper, once its expire time has passed): the whole amount returns.
//
// A hold whose expire time has passed can no longer be confirmed or cancelled, whether or not
// the sweeper has expired it yet: every decision on a hold is made under its envelope's lock with a
// time later than the envelope's last change (stampAfter), so a decision that finds the hold past
// its expire time and one that expires it see the same hold, in the order of the lock.

// HoldState is the state of a hold: HELD until it ends in one of the three final states.
type HoldState string

// The states of a hold.
const (
	HoldHeld      HoldState = "HELD"
	HoldConfirmed HoldState = "CONFIRMED"
	HoldCancelled HoldState = "CANCELLED"
	HoldExpired   HoldState = "EXPIRED"
)

// Entry kinds of holds.
const (
	// KindHoldCreated: an amount moved from an envelope to a new hold.
	KindHoldCreated EntryKind = "HOLD_CREATED"
	// KindHoldConfirmed: a hold became a commitment; what was not confirmed returned to the envelope.
	KindHoldConfirmed EntryKind = "HOLD_CONFIRMED"
	// KindHoldCancelled: a hold's amount returned to its envelope (CancelHold).
	KindHoldCancelled EntryKind = "HOLD_CANCELLED"
	// KindHoldExpired: an expired hold's amount returned to its envelope (the sweeper).
	KindHoldExpired EntryKind = "HOLD_EXPIRED"
)

// Reasons of holds.
const (
	// ReasonHoldNotFound: the named hold does not exist.
	ReasonHoldNotFound Reason = "HOLD_NOT_FOUND"
	// ReasonHoldExpired: the hold's expire time has passed (swept or not): it can no longer be
	// confirmed or cancelled, and its amount returns (or has returned) to the envelope.
	ReasonHoldExpired Reason = "HOLD_EXPIRED"
	// ReasonHoldNotHeld: the hold is already confirmed or cancelled (an expired one is
	// ReasonHoldExpired).
	ReasonHoldNotHeld Reason = "HOLD_NOT_HELD"
	// ReasonConfirmExceedsHeld: a confirmation for more than the hold's amount.
	ReasonConfirmExceedsHeld Reason = "CONFIRM_EXCEEDS_HELD"
)

// Sentinels of the holds' reasons, for errors.Is.
var (
	ErrHoldNotFound       = &Error{Reason: ReasonHoldNotFound}
	ErrHoldExpired        = &Error{Reason: ReasonHoldExpired}
	ErrHoldNotHeld        = &Error{Reason: ReasonHoldNotHeld}
	ErrConfirmExceedsHeld = &Error{Reason: ReasonConfirmExceedsHeld}
)

// ExpiryCaller is the caller of the journal entries and request log rows of expiries: no client
// sends them, the ledger's sweeper decides them. Its request id for hold h is ExpiryRequestID(h),
// so the request log's primary key lets each hold expire once, whatever process sweeps it.
const ExpiryCaller = "ledger:hold-expiry"

// ExpiryRequestID is the request id under which the expiry of hold id is recorded.
func ExpiryRequestID(id string) string { return "expire/" + id }

// HoldName returns the resource name of hold id, also its account name.
func HoldName(id string) string { return "holds/" + id }

// Hold is credit of an envelope reserved for an application under review.
type Hold struct {
	ID          string    `json:"id"`
	EnvelopeID  string    `json:"envelope_id"`
	Beneficiary string    `json:"beneficiary"`
	Project     string    `json:"project"`
	Currency    string    `json:"currency"`
	Amount      int64     `json:"amount"`
	State       HoldState `json:"state"`
	Description string    `json:"description,omitempty"`
	Policy      Policy    `json:"policy"`
	// ExpireAt is when the hold expires; zero: never.
	ExpireAt time.Time `json:"expire_at,omitzero"`
	// EffectiveAt is when the hold took effect: as the caller said, or when it was recorded.
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	// ConfirmedAmount and CommitmentID are the confirmed amount and the commitment it became
	// (CONFIRMED only).
	ConfirmedAmount int64  `json:"confirmed_amount,omitempty"`
	CommitmentID    string `json:"commitment_id,omitempty"`
	// Reason is why it was cancelled (CANCELLED only).
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ExpiredAt reports whether the hold's expire time has passed at t.
func (h *Hold) ExpiredAt(t time.Time) bool { return !h.ExpireAt.IsZero() && !t.Before(h.ExpireAt) }

// CreateHold reserves Amount of an envelope for one project of one beneficiary.
type CreateHold struct {
	RequestID   string
	Caller      string
	EnvelopeID  string
	Beneficiary string
	Project     string
	Amount      int64
	Description string
	Policy
	// ExpireTime is when the hold expires; zero: never.
	ExpireTime time.Time
	// Effective is when the hold took effect (zero: when recorded).
	Effective time.Time
}

// CreateHoldResult is the outcome of CreateHold.
type CreateHoldResult struct {
	Hold     Hold     `json:"hold"`
	Envelope Envelope `json:"envelope"`
	EntryID  string   `json:"entry_id"`
}

// ConfirmHold turns a hold into a commitment of Amount (0: the whole hold); the rest returns to
// the envelope.
type ConfirmHold struct {
	RequestID string
	Caller    string
	HoldID    string
	Amount    int64
	Effective time.Time
}

// ConfirmHoldResult is the outcome of ConfirmHold.
type ConfirmHoldResult struct {
	Hold       Hold       `json:"hold"`
	Commitment Commitment `json:"commitment"`
	Envelope   Envelope   `json:"envelope"`
	EntryID    string     `json:"entry_id"`
}

// CancelHold returns a hold's whole amount to its envelope.
type CancelHold struct {
	RequestID string
	Caller    string
	HoldID    string
	Reason    string
	Effective time.Time
}

// CancelHoldResult is the outcome of CancelHold.
type CancelHoldResult struct {
	Hold     Hold     `json:"hold"`
	Envelope Envelope `json:"envelope"`
	EntryID  string   `json:"entry_id"`
}

// HoldWrites are what a decision on holds writes beside core.Effects' envelopes and entries.
type HoldWrites struct {
	// New are holds to insert.
	New []Hold
	// Ended are holds that left HELD: storage updates each only if it is still HELD, so that no
	// hold ends twice.
	Ended []Hold
	// Commitments are commitments made by confirmations, with their project totals' deltas.
	Commitments []*Commitment
	Deltas      []ProjectDelta
	// Requests are request log rows to record beside the decision's own (expiries).
	Requests []RequestRow
}

var holdIDPattern = commitmentIDPattern

// CheckHoldID checks the id of a hold named in field.
func CheckHoldID(field, id string) error {
	if !holdIDPattern.MatchString(id) {
		return InvalidArgument(field, "must name a hold, holds/{uuid}")
	}
	return nil
}

// Validate checks a CreateHold's fields.
func (c *CreateHold) Validate() error {
	return FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckEnvelopeID("envelope", c.EnvelopeID),
		CheckField("beneficiary", "beneficiary", c.Beneficiary), CheckField("project", "project", c.Project),
		checkAmount("amount", c.Amount), CheckField("description", "description", c.Description), c.Policy.validate(""),
		checkOptionalTime("expire_time", c.ExpireTime), checkOptionalTime("effective_time", c.Effective))
}

// Validate checks a ConfirmHold's fields.
func (c *ConfirmHold) Validate() error {
	if err := CheckHoldID("hold", c.HoldID); err != nil {
		return err
	}
	if c.Amount < 0 {
		return InvalidArgument("amount", "must be a positive amount in minor units, or 0 for the whole hold")
	}
	return FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), checkOptionalTime("effective_time", c.Effective))
}

// Validate checks a CancelHold's fields.
func (c *CancelHold) Validate() error {
	if err := CheckHoldID("hold", c.HoldID); err != nil {
		return err
	}
	return FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckField("reason", "reason", c.Reason),
		checkOptionalTime("effective_time", c.Effective))
}

func checkOptionalTime(field string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return CheckTime(field, t)
}

func (c *CreateHold) Fingerprint() Fingerprint {
	return Fingerprint{
		Current: canonical("CreateHold").str(c.Caller).str(c.EnvelopeID).str(c.Beneficiary).str(c.Project).
			num(c.Amount).str(c.Description).policy(c.Policy).time(c.ExpireTime).time(c.Effective).sumV2(),
		Legacy: noLegacy,
	}
}

func (c *ConfirmHold) Fingerprint() Fingerprint {
	return Fingerprint{
		Current: canonical("ConfirmHold").str(c.Caller).str(c.HoldID).num(c.Amount).time(c.Effective).sumV2(),
		Legacy:  noLegacy,
	}
}

func (c *CancelHold) Fingerprint() Fingerprint {
	return Fingerprint{
		Current: canonical("CancelHold").str(c.Caller).str(c.HoldID).str(c.Reason).time(c.Effective).sumV2(),
		Legacy:  noLegacy,
	}
}

// noLegacy is the legacy fingerprint of operations newer than the legacy encoding: no stored
// fingerprint equals it.
const noLegacy = "\x00none"

// time appends a time (zero: not given) at microsecond precision, as stored.
func (f *fingerprinter) time(t time.Time) *fingerprinter {
	if t.IsZero() {
		return f.flag(false)
	}
	return f.flag(true).num(t.UnixMicro())
}

// asCommit is the award a hold of amount would be, for the funding rules.
func (h *Hold) asCommit(amount int64) *Commit {
	return &Commit{EnvelopeID: h.EnvelopeID, Beneficiary: h.Beneficiary, Project: h.Project, Amount: amount,
		Description: h.Description, Policy: h.Policy}
}

// DecideCreateHold decides a new hold on env (locked; nil when it does not exist). rules are the
// envelope's funding rules in force at the hold's effective time (st.At when it gives none; see
// ledger.loadRuled) and already what the project holds on the envelope (committed, not held): the
// rules are checked as for an award of the hold's amount made at that time.
func DecideCreateHold(st Stamp, cmd CreateHold, env *Envelope, rules *EffectiveRules, already int64) (*CreateHoldResult, Effects, error) {
	var eff Effects
	if env == nil {
		return nil, eff, EnvelopeNotFound(cmd.EnvelopeID)
	}
	e := *env
	// A hold takes money out of the envelope's available amount: not before the latest effective
	// time recorded on it (docs/dates.md).
	effective, err := CheckEffective(st.At, cmd.Effective, Reduces(&e)...)
	if err != nil {
		return nil, eff, err
	}
	expire := cmd.ExpireTime.UTC().Truncate(time.Microsecond)
	if !expire.IsZero() && !expire.After(st.At) {
		return nil, eff, InvalidArgument("expire_time", "must be later than now (%s)", st.At.Format(time.RFC3339Nano))
	}
	h := Hold{EnvelopeID: e.ID, Beneficiary: cmd.Beneficiary, Project: cmd.Project, Currency: e.Currency,
		Amount: cmd.Amount, State: HoldHeld, Description: cmd.Description, Policy: cmd.Policy, ExpireAt: expire,
		EffectiveAt: effective, CreatedAt: st.At, UpdatedAt: st.At}
	if violation := CheckRules(rules, &e, h.asCommit(cmd.Amount), already, effective); violation != nil {
		return nil, eff, violation
	}
	if e.Available() < cmd.Amount {
		return nil, eff, insufficientFunds(&e, cmd.Amount)
	}
	held, err := AddAmount("the envelope's held amount", e.Held, cmd.Amount)
	if err != nil {
		return nil, eff, err
	}
	e.Held = held
	e.Touch(st.At, effective)
	h.ID = st.NewID()
	res := &CreateHoldResult{Hold: h, Envelope: e, EntryID: st.NewID()}
	eff.Updated = []Envelope{e}
	eff.Holds = &HoldWrites{New: []Hold{h}}
	eff.Entries = []Entry{{ID: res.EntryID, Kind: KindHoldCreated, Currency: e.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Description, CreatedAt: st.At, EffectiveAt: effective,
		Postings: []Posting{{EnvelopeName(e.ID), -cmd.Amount}, {HoldName(h.ID), cmd.Amount}}}}
	return res, eff, nil
}

// HoldNotFound is the refusal of a request naming a hold that does not exist.
func HoldNotFound(id string) *Error {
	return &Error{Reason: ReasonHoldNotFound, Message: fmt.Sprintf("hold %q does not exist", HoldName(id)),
		Metadata: map[string]string{"hold": HoldName(id)}}
}

// checkHeld refuses a decision on a hold that is not HELD, or whose expire time has passed at.
func checkHeld(h *Hold, id string, at time.Time) error {
	switch {
	case h == nil:
		return HoldNotFound(id)
	case h.State != HoldHeld && h.State != HoldExpired:
		return &Error{Reason: ReasonHoldNotHeld,
			Message:  fmt.Sprintf("hold %q is %s already", HoldName(h.ID), h.State),
			Metadata: map[string]string{"hold": HoldName(h.ID), "state": string(h.State)}}
	case h.State == HoldExpired || h.ExpiredAt(at):
		// The same refusal whether or not the sweeper has expired the hold yet.
		return &Error{Reason: ReasonHoldExpired,
			Message: fmt.Sprintf("hold %q expired at %s; its amount returns to the envelope", HoldName(h.ID),
				h.ExpireAt.Format(time.RFC3339Nano)),
			Metadata: map[string]string{"hold": HoldName(h.ID), "expire_time": h.ExpireAt.Format(time.RFC3339Nano)}}
	}
	return nil
}

// DecideConfirmHold decides the confirmation of hold h (nil when it does not exist) on its
// envelope env (locked). rules are the envelope's funding rules in force at the confirmation's
// effective time (st.At when it gives none) and already what the project holds on the envelope:
// the rules are checked again, as for an award of the confirmed amount made at that time. The confirmed amount is taken from the hold, so the envelope's available amount
// is not checked again; the rest of the hold returns to it.
func DecideConfirmHold(st Stamp, cmd ConfirmHold, h *Hold, env *Envelope, rules *EffectiveRules, already int64) (*ConfirmHoldResult, Effects, error) {
	var eff Effects
	if err := checkHeld(h, cmd.HoldID, st.At); err != nil {
		return nil, eff, err
	}
	if env == nil {
		return nil, eff, Internal("hold %s names envelope %s, which does not exist", h.ID, h.EnvelopeID)
	}
	effective, err := CheckEffective(st.At, cmd.Effective, Settles(env, h)...)
	if err != nil {
		return nil, eff, err
	}
	amount := cmd.Amount
	if amount == 0 {
		amount = h.Amount
	}
	if amount > h.Amount {
		return nil, eff, &Error{Reason: ReasonConfirmExceedsHeld,
			Message: fmt.Sprintf("hold %q holds %d, %d requested", HoldName(h.ID), h.Amount, amount),
			Metadata: map[string]string{"hold": HoldName(h.ID), "held": strconv.FormatInt(h.Amount, 10),
				"requested": strconv.FormatInt(amount, 10)}}
	}
	e := *env
	if violation := CheckRules(rules, &e, h.asCommit(amount), already, effective); violation != nil {
		return nil, eff, violation
	}
	committed, err := AddAmount("the envelope's committed amount", e.Committed, amount)
	if err != nil {
		return nil, eff, err
	}
	e.Held -= h.Amount
	e.Committed = committed
	e.CommitmentCount++
	e.Touch(st.At, effective)
	c := Commitment{ID: st.NewID(), EnvelopeID: e.ID, Beneficiary: h.Beneficiary, Project: h.Project,
		Currency: e.Currency, Amount: amount, Description: h.Description, CreatedAt: st.At, UpdatedAt: st.At,
		EffectiveAt:  effective,
		EligibleCost: h.Policy.EligibleCost, Territory: h.Policy.Territory, Population: h.Policy.Population}
	ended := *h
	ended.State, ended.ConfirmedAmount, ended.CommitmentID, ended.UpdatedAt = HoldConfirmed, amount, c.ID, st.At
	res := &ConfirmHoldResult{Hold: ended, Commitment: c, Envelope: e, EntryID: st.NewID()}
	postings := []Posting{{HoldName(h.ID), -h.Amount}, {CommitmentName(c.ID), amount}}
	if rest := h.Amount - amount; rest > 0 {
		postings = append(postings, Posting{EnvelopeName(e.ID), rest})
	}
	eff.Updated = []Envelope{e}
	eff.Holds = &HoldWrites{Ended: []Hold{ended}, Commitments: []*Commitment{&res.Commitment},
		Deltas: []ProjectDelta{{ProjectKey{e.ID, h.Project}, amount, 1}}}
	eff.Entries = []Entry{{ID: res.EntryID, Kind: KindHoldConfirmed, Currency: e.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: h.Description, CreatedAt: st.At, EffectiveAt: effective, Postings: postings}}
	return res, eff, nil
}

// DecideCancelHold decides the cancellation of hold h (nil when it does not exist) on its envelope
// env (locked): its whole amount returns to the envelope.
func DecideCancelHold(st Stamp, cmd CancelHold, h *Hold, env *Envelope) (*CancelHoldResult, Effects, error) {
	var eff Effects
	if err := checkHeld(h, cmd.HoldID, st.At); err != nil {
		return nil, eff, err
	}
	if env == nil {
		return nil, eff, Internal("hold %s names envelope %s, which does not exist", h.ID, h.EnvelopeID)
	}
	effective, err := CheckEffective(st.At, cmd.Effective, Settles(env, h)...)
	if err != nil {
		return nil, eff, err
	}
	e := *env
	e.Held -= h.Amount
	e.Touch(st.At, effective)
	ended := *h
	ended.State, ended.Reason, ended.UpdatedAt = HoldCancelled, cmd.Reason, st.At
	res := &CancelHoldResult{Hold: ended, Envelope: e, EntryID: st.NewID()}
	eff.Updated = []Envelope{e}
	eff.Holds = &HoldWrites{Ended: []Hold{ended}}
	eff.Entries = []Entry{{ID: res.EntryID, Kind: KindHoldCancelled, Currency: e.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Reason, CreatedAt: st.At, EffectiveAt: effective,
		Postings: []Posting{{HoldName(h.ID), -h.Amount}, {EnvelopeName(e.ID), h.Amount}}}}
	return res, eff, nil
}

// ExpiredHold is what the request log records of an expiry.
type ExpiredHold struct {
	Hold    Hold   `json:"hold"`
	EntryID string `json:"entry_id"`
}

// DecideExpireHolds expires, on envelope env (locked), those of holds (loaded under its lock) that
// are still HELD and whose expire time has passed at st.At; it skips the others (another process
// ended them first). Each expiry is one journal entry and one request log row under
// ExpiryRequestID, so that no hold expires twice.
func DecideExpireHolds(st Stamp, env Envelope, holds []*Hold) (expired int, eff Effects, err error) {
	w := &HoldWrites{}
	for _, h := range holds {
		if h == nil || h.EnvelopeID != env.ID || h.State != HoldHeld || !h.ExpiredAt(st.At) {
			continue
		}
		if env.Held < h.Amount {
			return 0, Effects{}, Internal("envelope %s holds %d, less than hold %s's %d", env.ID, env.Held, h.ID, h.Amount)
		}
		env.Held -= h.Amount
		env.Touch(st.At, minTime(h.ExpireAt, st.At))
		ended := *h
		ended.State, ended.UpdatedAt = HoldExpired, st.At
		entry := Entry{ID: st.NewID(), Kind: KindHoldExpired, Currency: env.Currency, Caller: ExpiryCaller,
			RequestID: ExpiryRequestID(h.ID), Memo: "expired at " + h.ExpireAt.Format(time.RFC3339Nano), CreatedAt: st.At,
			EffectiveAt: minTime(h.ExpireAt, st.At),
			Postings:    []Posting{{HoldName(h.ID), -h.Amount}, {EnvelopeName(env.ID), h.Amount}}}
		outcome, err := Settle(ExpiredHold{Hold: ended, EntryID: entry.ID}, nil)
		if err != nil {
			return 0, Effects{}, err
		}
		w.Ended = append(w.Ended, ended)
		w.Requests = append(w.Requests, RequestRow{Key: RequestKey(ExpiryCaller, ExpiryRequestID(h.ID)),
			Fingerprint: canonical("ExpireHold").str(h.ID).sumV2(), Outcome: outcome})
		eff.Entries = append(eff.Entries, entry)
		expired++
	}
	if expired > 0 {
		eff.Updated = []Envelope{env}
		eff.Holds = w
	}
	return expired, eff, nil
}
