package core

import (
	"fmt"
	"strconv"
	"time"
)

// Payments and closing (issue 13 §2). A commitment is paid in instalments (an advance, then the
// balance on proof of completion): each payment moves money from the commitment's account to
// PaymentsAccount, out of the ledger for good. The commitment stays committed (engagé) for what
// was paid; what it still holds in its account is what remains to pay (reste à payer). Closing a
// commitment returns its unpaid rest to the envelope in one entry and ends its life: no payment,
// release or closing after that.
//
// Figures, for a commitment: Amount = Released + Paid + RemainingToPay (Released counts the
// releases and the closing's return); for an envelope: Committed = Paid + RemainingToPay.

// PaymentsAccount is where paid money goes: out of the ledger, for good.
const PaymentsAccount = "external/payments"

// The kinds of journal entry made by payments and closing.
const (
	// KindPaid records a payment: from the commitment's account to PaymentsAccount.
	KindPaid EntryKind = "PAID"
	// KindCommitmentClosed records a closing: the unpaid rest from the commitment's account to
	// its envelope's; without postings when nothing was left to pay.
	KindCommitmentClosed EntryKind = "COMMITMENT_CLOSED"
)

// The reasons of payments and closing.
const (
	// ReasonCommitmentClosed: the commitment is closed: it takes no payment, release or closing.
	ReasonCommitmentClosed Reason = "COMMITMENT_CLOSED"
	// ReasonPaymentExceedsRemaining: a payment larger than what remains to pay on the commitment.
	ReasonPaymentExceedsRemaining Reason = "PAYMENT_EXCEEDS_REMAINING"
	// ReasonReleaseExceedsUnpaid: a release of a partly paid commitment larger than what remains
	// to pay: what was paid cannot be returned.
	ReasonReleaseExceedsUnpaid Reason = "RELEASE_EXCEEDS_UNPAID"
)

// Sentinels of the reasons above, for errors.Is.
var (
	ErrCommitmentClosed        = &Error{Reason: ReasonCommitmentClosed}
	ErrPaymentExceedsRemaining = &Error{Reason: ReasonPaymentExceedsRemaining}
	ErrReleaseExceedsUnpaid    = &Error{Reason: ReasonReleaseExceedsUnpaid}
)

// PaymentName returns the resource name of payment id of commitment commitmentID.
func PaymentName(commitmentID, id string) string {
	return CommitmentName(commitmentID) + "/payments/" + id
}

// RemainingToPay is what the commitment still holds and may pay: Amount - Released - Paid.
func (c *Commitment) RemainingToPay() int64 { return c.Amount - c.Released - c.Paid }

// Closed reports whether the commitment was closed.
func (c *Commitment) Closed() bool { return !c.ClosedAt.IsZero() }

// RemainingToPay is what the envelope's commitments still hold to pay: Committed - Paid.
func (e *Envelope) RemainingToPay() int64 { return e.Committed - e.Paid }

// Payment is money paid out of a commitment.
type Payment struct {
	ID           string `json:"id"`
	CommitmentID string `json:"commitment_id"`
	EnvelopeID   string `json:"envelope_id"`
	Currency     string `json:"currency"`
	Amount       int64  `json:"amount"`
	// EffectiveAt is when the payment took effect, as given (zero: not given, when recorded).
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	Caller      string    `json:"caller"`
	RequestID   string    `json:"request_id"`
	EntryID     string    `json:"entry_id"`
	CreatedAt   time.Time `json:"created_at"`
}

// CreatePayment pays Amount of a commitment's remaining amount to pay.
type CreatePayment struct {
	RequestID    string
	Caller       string
	CommitmentID string
	Amount       int64
	// Effective is when the payment took effect (zero: not given).
	Effective time.Time
}

// CreatePaymentResult is the outcome of CreatePayment.
type CreatePaymentResult struct {
	Payment    Payment    `json:"payment"`
	Commitment Commitment `json:"commitment"`
	Envelope   Envelope   `json:"envelope"`
	EntryID    string     `json:"entry_id"`
}

// CloseCommitment returns a commitment's unpaid rest to its envelope and closes it.
type CloseCommitment struct {
	RequestID    string
	Caller       string
	CommitmentID string
	Reason       string
	// Effective is when the closing took effect (zero: not given).
	Effective time.Time
}

// CloseCommitmentResult is the outcome of CloseCommitment.
type CloseCommitmentResult struct {
	Commitment Commitment `json:"commitment"`
	Envelope   Envelope   `json:"envelope"`
	// Returned is what returned to the envelope (the unpaid rest; 0 if all was paid).
	Returned int64  `json:"returned"`
	EntryID  string `json:"entry_id"`
}

// Validate checks a CreatePayment's fields.
func (c *CreatePayment) Validate() error {
	if err := CheckCommitmentID("parent", c.CommitmentID); err != nil {
		return err
	}
	if err := FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), checkAmount("amount", c.Amount)); err != nil {
		return err
	}
	if !c.Effective.IsZero() {
		return CheckTime("effective_time", c.Effective)
	}
	return nil
}

// Validate checks a CloseCommitment's fields.
func (c *CloseCommitment) Validate() error {
	if err := CheckCommitmentID("commitment", c.CommitmentID); err != nil {
		return err
	}
	if err := FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckField("reason", "reason", c.Reason)); err != nil {
		return err
	}
	if !c.Effective.IsZero() {
		return CheckTime("effective_time", c.Effective)
	}
	return nil
}

// effectiveMicros is a time given as effective for a fingerprint (0 when not given).
func effectiveMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// Fingerprint identifies a CreatePayment's payload.
func (c *CreatePayment) Fingerprint() Fingerprint {
	f := canonical("CreatePayment").str(c.Caller).str(c.CommitmentID).num(c.Amount).flag(!c.Effective.IsZero()).
		num(effectiveMicros(c.Effective))
	return Fingerprint{Current: f.sumV2(), Legacy: f.sumV2()}
}

// Fingerprint identifies a CloseCommitment's payload.
func (c *CloseCommitment) Fingerprint() Fingerprint {
	f := canonical("CloseCommitment").str(c.Caller).str(c.CommitmentID).str(c.Reason).flag(!c.Effective.IsZero()).
		num(effectiveMicros(c.Effective))
	return Fingerprint{Current: f.sumV2(), Legacy: f.sumV2()}
}

// CommitmentClosed is the refusal of an operation on a closed commitment.
func CommitmentClosed(c *Commitment, operation string) *Error {
	return &Error{Reason: ReasonCommitmentClosed,
		Message: fmt.Sprintf("commitment %q was closed at %s; it takes no %s", CommitmentName(c.ID),
			c.ClosedAt.Format(time.RFC3339Nano), operation),
		Metadata: map[string]string{"commitment": CommitmentName(c.ID), "close_time": c.ClosedAt.Format(time.RFC3339Nano)}}
}

// checkOpen refuses an operation on a closed commitment.
func checkOpen(c *Commitment, operation string) error {
	if c.Closed() {
		return CommitmentClosed(c, operation)
	}
	return nil
}

// DecideCreatePayment decides a payment of cmd.Amount from commitment c (nil when it does not
// exist) of envelope env (locked; nil when it does not exist).
func DecideCreatePayment(st Stamp, cmd CreatePayment, env *Envelope, c *Commitment) (*CreatePaymentResult, Effects, error) {
	var eff Effects
	if c == nil || env == nil || c.EnvelopeID != env.ID {
		return nil, eff, CommitmentNotFound(cmd.CommitmentID)
	}
	cm, e := *c, *env
	// A payment does not reduce the envelope's available amount; it may not predate its
	// commitment (docs/dates.md).
	effective, err := CheckEffective(st.At, cmd.Effective, Returns(&e, &cm)...)
	if err != nil {
		return nil, eff, err
	}
	if err := checkOpen(&cm, "payment"); err != nil {
		return nil, eff, err
	}
	if cmd.Amount > cm.RemainingToPay() {
		return nil, eff, &Error{Reason: ReasonPaymentExceedsRemaining,
			Message: fmt.Sprintf("commitment %q has %d left to pay, %d requested", CommitmentName(cm.ID), cm.RemainingToPay(), cmd.Amount),
			Metadata: map[string]string{"commitment": CommitmentName(cm.ID), "remaining_to_pay": strconv.FormatInt(cm.RemainingToPay(), 10),
				"paid": strconv.FormatInt(cm.Paid, 10), "requested": strconv.FormatInt(cmd.Amount, 10), "currency_code": cm.Currency}}
	}
	paid, err := AddAmount("the envelope's paid amount", e.Paid, cmd.Amount)
	if err != nil {
		return nil, eff, err
	}
	cm.Paid += cmd.Amount // ≤ Amount - Released, checked above
	cm.UpdatedAt = st.At
	e.Paid = paid
	e.UpdatedAt = st.At
	p := Payment{ID: st.NewID(), CommitmentID: cm.ID, EnvelopeID: e.ID, Currency: cm.Currency, Amount: cmd.Amount,
		EffectiveAt: effective, Caller: cmd.Caller, RequestID: cmd.RequestID, CreatedAt: st.At}
	p.EntryID = st.NewID()
	eff.Updated = []Envelope{e}
	eff.Commitments = []Commitment{cm}
	eff.Payments = []Payment{p}
	eff.Entries = []Entry{{ID: p.EntryID, Kind: KindPaid, Currency: cm.Currency, Caller: cmd.Caller, RequestID: cmd.RequestID,
		Memo: PaymentName(cm.ID, p.ID), CreatedAt: st.At, EffectiveAt: effective,
		Postings: []Posting{{CommitmentName(cm.ID), -cmd.Amount}, {PaymentsAccount, cmd.Amount}}}}
	return &CreatePaymentResult{Payment: p, Commitment: cm, Envelope: e, EntryID: p.EntryID}, eff, nil
}

// DecideCloseCommitment decides the closing of commitment c (nil when it does not exist) of
// envelope env (locked; nil when it does not exist): its unpaid rest returns to env. latest are
// the latest effective times of c's payments and releases.
func DecideCloseCommitment(st Stamp, cmd CloseCommitment, env *Envelope, c *Commitment, latest LatestMoves) (*CloseCommitmentResult, Effects, error) {
	var eff Effects
	if c == nil || env == nil || c.EnvelopeID != env.ID {
		return nil, eff, CommitmentNotFound(cmd.CommitmentID)
	}
	cm, e := *c, *env
	// The unpaid rest returns to the envelope: not before the commitment, nor before its last
	// payment or release (docs/dates.md).
	effective, err := CheckEffective(st.At, cmd.Effective, Closes(&e, &cm, latest)...)
	if err != nil {
		return nil, eff, err
	}
	if err := checkOpen(&cm, "closing"); err != nil {
		return nil, eff, err
	}
	rest := cm.RemainingToPay()
	released, err := AddAmount("the envelope's released amount", e.Released, rest)
	if err != nil {
		return nil, eff, err
	}
	cm.Released += rest
	cm.ClosedAt, cm.CloseReason, cm.CloseEffectiveAt = st.At, cmd.Reason, effective
	cm.UpdatedAt = st.At
	e.Committed -= rest
	e.Released = released
	e.Touch(st.At, effective)
	res := &CloseCommitmentResult{Commitment: cm, Envelope: e, Returned: rest, EntryID: st.NewID()}
	entry := Entry{ID: res.EntryID, Kind: KindCommitmentClosed, Currency: cm.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: ClosedMemo(cm.ID, cmd.Reason), CreatedAt: st.At, EffectiveAt: effective}
	if rest > 0 {
		entry.Postings = []Posting{{CommitmentName(cm.ID), -rest}, {EnvelopeName(e.ID), rest}}
		eff.Deltas = []ProjectDelta{{ProjectKey{e.ID, cm.Project}, -rest, 0}}
	}
	eff.Updated = []Envelope{e}
	eff.Commitments = []Commitment{cm}
	eff.Entries = []Entry{entry}
	return res, eff, nil
}

// ClosedMemo is the memo of a COMMITMENT_CLOSED entry: it names the commitment, which an entry
// without postings (nothing left to pay) does not otherwise.
func ClosedMemo(commitmentID, reason string) string {
	return CommitmentName(commitmentID) + " closed: " + reason
}

// releaseRefusal refuses a release that a payment or closing forbids (nil if none does): on a
// closed commitment, or of more than remains to pay on a commitment partly paid.
func releaseRefusal(c *Commitment, amount int64) *Error {
	if c.Closed() {
		return CommitmentClosed(c, "release")
	}
	if c.Paid > 0 && amount > c.RemainingToPay() {
		return &Error{Reason: ReasonReleaseExceedsUnpaid,
			Message: fmt.Sprintf("commitment %q has %d left to pay (%d of its %d were paid and cannot be returned), %d requested",
				CommitmentName(c.ID), c.RemainingToPay(), c.Paid, c.Remaining(), amount),
			Metadata: map[string]string{"commitment": CommitmentName(c.ID), "remaining_to_pay": strconv.FormatInt(c.RemainingToPay(), 10),
				"paid": strconv.FormatInt(c.Paid, 10), "remaining": strconv.FormatInt(c.Remaining(), 10),
				"requested": strconv.FormatInt(amount, 10)}}
	}
	return nil
}
