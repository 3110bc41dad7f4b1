package core

import (
	"fmt"
	"time"
)

// Effective times (bitemporality; see docs/dates.md).
//
// Every operation has two times: when the ledger recorded it (its stamp, Stamp.At, kept as
// CreatedAt) and when what it records took effect (the decision, the agreement, the payment:
// EffectiveAt). A caller may give the effective time of a mutation; not given, it is the time
// recorded. Reports as of a date count what took effect by then.
//
// The backdating rule, which keeps every envelope's available amount ≥ 0 at every effective
// instant, not only at the latest one (invariant 10 of the design notes):
//
//  1. nothing takes effect later than it is recorded (no clock-skew allowance: a caller that
//     means "now" leaves the effective time unset) — EFFECTIVE_TIME_IN_FUTURE;
//  2. nothing takes effect on an envelope before the envelope itself took effect —
//     EFFECTIVE_TIME_BEFORE_ENVELOPE;
//  3. what reduces an envelope's available amount (an award, a move out of it, a child's
//     allocation) takes effect no earlier than the latest effective time already recorded on
//     that envelope (Envelope.LatestEffectiveAt), as TigerBeetle requires of imported events —
//     EFFECTIVE_TIME_BEFORE_LATEST;
//  4. what adds to an envelope (a release, a move into it) may be backdated freely within 2,
//     but a return never predates what it returns (a release, the commitment's own effective
//     time), as Formance lets a revert take effect at the original date —
//     EFFECTIVE_TIME_BEFORE_COMMITMENT.
//
// Why it suffices: a reduction of R at effective time t ≥ LatestEffectiveAt counts, at every
// instant s ≥ t, every entry already recorded on the envelope (they all took effect at or
// before LatestEffectiveAt ≤ t ≤ s), so available(s) = the current available amount − R, which
// the decision has just checked is ≥ 0. An addition only raises available at the instants after
// it. So no instant ever goes negative, and the verifier proves it by replaying the journal in
// effective order (audit, INVARIANT_AVAILABLE_NOT_NEGATIVE_AT_EVERY_EFFECTIVE_INSTANT).
//
// Wiring a new operation (holds, payments, closing): in its Decide function, with the stamp
// st and the envelopes (and commitment) it loaded under their locks,
//
//	eff, err := CheckEffective(st.At, cmd.Effective, Reduces(&env)...)   // or Adds(&env), After(...)
//	if err != nil { return refusal }
//	env.Touch(st.At, eff)                                                 // every envelope it posts to
//	entry := Entry{…, CreatedAt: st.At, EffectiveAt: eff}
//
// and validate cmd.Effective with CheckEffectiveRange in its Validate, and include it in its
// fingerprint with the fingerprinter's effective (only when given).

// The refusals of effective times.
const (
	// ReasonEffectiveTimeInFuture: an effective time later than the time the ledger records
	// the operation. Metadata: effective_time, record_time.
	ReasonEffectiveTimeInFuture Reason = "EFFECTIVE_TIME_IN_FUTURE"
	// ReasonEffectiveTimeBeforeEnvelope: an effective time before the effective time of an
	// envelope the operation posts to. Metadata: envelope, envelope_effective_time,
	// effective_time.
	ReasonEffectiveTimeBeforeEnvelope Reason = "EFFECTIVE_TIME_BEFORE_ENVELOPE"
	// ReasonEffectiveTimeBeforeLatest: an operation that reduces an envelope's available amount
	// with an effective time before the latest effective time already recorded on it. Metadata:
	// envelope, latest_effective_time, effective_time.
	ReasonEffectiveTimeBeforeLatest Reason = "EFFECTIVE_TIME_BEFORE_LATEST"
	// ReasonEffectiveTimeBeforeCommitment: a release, payment or closing of a commitment with an
	// effective time before the commitment's. Metadata: commitment, commitment_effective_time,
	// effective_time.
	ReasonEffectiveTimeBeforeCommitment Reason = "EFFECTIVE_TIME_BEFORE_COMMITMENT"
	// ReasonEffectiveTimeBeforeHold: the confirmation or cancellation of a hold with an
	// effective time before the hold's. Metadata: hold, hold_effective_time, effective_time.
	ReasonEffectiveTimeBeforeHold Reason = "EFFECTIVE_TIME_BEFORE_HOLD"
	// ReasonEffectiveTimeBeforePayment: the closing of a commitment with an effective time before
	// the latest of its payments: a commitment is closed after its last payment. Metadata:
	// commitment, payment_effective_time, effective_time.
	ReasonEffectiveTimeBeforePayment Reason = "EFFECTIVE_TIME_BEFORE_PAYMENT"
	// ReasonEffectiveTimeBeforeRelease: the closing of a commitment with an effective time before
	// the latest of its releases: a commitment is closed after its last release. Metadata:
	// commitment, release_effective_time, effective_time.
	ReasonEffectiveTimeBeforeRelease Reason = "EFFECTIVE_TIME_BEFORE_RELEASE"
)

// Sentinels of the effective-time refusals, for errors.Is.
var (
	ErrEffectiveTimeInFuture         = &Error{Reason: ReasonEffectiveTimeInFuture}
	ErrEffectiveTimeBeforeEnvelope   = &Error{Reason: ReasonEffectiveTimeBeforeEnvelope}
	ErrEffectiveTimeBeforeLatest     = &Error{Reason: ReasonEffectiveTimeBeforeLatest}
	ErrEffectiveTimeBeforeCommitment = &Error{Reason: ReasonEffectiveTimeBeforeCommitment}
	ErrEffectiveTimeBeforeHold       = &Error{Reason: ReasonEffectiveTimeBeforeHold}
	ErrEffectiveTimeBeforePayment    = &Error{Reason: ReasonEffectiveTimeBeforePayment}
	ErrEffectiveTimeBeforeRelease    = &Error{Reason: ReasonEffectiveTimeBeforeRelease}
)

// EffectiveBound is one lower bound on an operation's effective time: the time may not be
// before Since, or the operation is refused with Reason, naming Subject under SubjectKey and
// Since under SinceKey in its metadata.
type EffectiveBound struct {
	Since      time.Time
	Reason     Reason
	SubjectKey string
	Subject    string
	SinceKey   string
}

// Reduces are the bounds of an operation that takes from env's available amount: not before
// the envelope took effect, nor before the latest effective time recorded on it (rules 2, 3).
func Reduces(env *Envelope) []EffectiveBound {
	return []EffectiveBound{envelopeBound(env), {Since: env.LatestEffectiveAt, Reason: ReasonEffectiveTimeBeforeLatest,
		SubjectKey: "envelope", Subject: EnvelopeName(env.ID), SinceKey: "latest_effective_time"}}
}

// Adds are the bounds of an operation that only adds to env: not before it took effect (rule 2).
func Adds(env *Envelope) []EffectiveBound { return []EffectiveBound{envelopeBound(env)} }

// Returns are the bounds of an operation that returns a commitment's money to its envelope:
// not before the commitment (rule 4), nor before the envelope took effect.
func Returns(env *Envelope, c *Commitment) []EffectiveBound {
	return []EffectiveBound{envelopeBound(env), {Since: c.EffectiveAt, Reason: ReasonEffectiveTimeBeforeCommitment,
		SubjectKey: "commitment", Subject: CommitmentName(c.ID), SinceKey: "commitment_effective_time"}}
}

// LatestMoves are the latest effective times of a commitment's payments and of its releases (zero:
// none), which its closing may not predate.
type LatestMoves struct {
	Paid, Released time.Time
}

// Later returns m with the time of a payment (paid) or a release (!paid) at t counted.
func (m LatestMoves) Later(paid bool, t time.Time) LatestMoves {
	switch {
	case paid && t.After(m.Paid):
		m.Paid = t
	case !paid && t.After(m.Released):
		m.Released = t
	}
	return m
}

// Closes are the bounds of the closing of commitment c on env: those of Returns, and not before
// the latest effective time of its payments, nor of its releases. A report as of a date between
// a payment or release and a closing dated before it would show a closed commitment that still
// owes money (its unpaid rest, as returned by the closing, counts the release; the report at
// that date does not).
func Closes(env *Envelope, c *Commitment, latest LatestMoves) []EffectiveBound {
	return append(Returns(env, c),
		EffectiveBound{Since: latest.Paid, Reason: ReasonEffectiveTimeBeforePayment,
			SubjectKey: "commitment", Subject: CommitmentName(c.ID), SinceKey: "payment_effective_time"},
		EffectiveBound{Since: latest.Released, Reason: ReasonEffectiveTimeBeforeRelease,
			SubjectKey: "commitment", Subject: CommitmentName(c.ID), SinceKey: "release_effective_time"})
}

// Settles are the bounds of an operation that ends hold h on env (a confirmation, a
// cancellation): not before the envelope, nor before the hold took effect.
func Settles(env *Envelope, h *Hold) []EffectiveBound {
	return []EffectiveBound{envelopeBound(env), {Since: h.EffectiveAt, Reason: ReasonEffectiveTimeBeforeHold,
		SubjectKey: "hold", Subject: HoldName(h.ID), SinceKey: "hold_effective_time"}}
}

func envelopeBound(env *Envelope) EffectiveBound {
	return EffectiveBound{Since: env.EffectiveAt, Reason: ReasonEffectiveTimeBeforeEnvelope,
		SubjectKey: "envelope", Subject: EnvelopeName(env.ID), SinceKey: "envelope_effective_time"}
}

// CheckEffective decides the effective time of an operation recorded at recorded (its stamp)
// that asked for given (zero: not given, which means recorded). It refuses a time later than
// recorded (rule 1) or before any of bounds (rules 2 to 4; see the package's doc). The result is
// in UTC, truncated to the microsecond like every time the ledger keeps.
//
// An operation that does not give an effective time is never refused: recorded is later than
// every bound, since every effective time recorded so far was at most its own stamp, and the
// stamp of a decision is later than the last change of every envelope it locked.
func CheckEffective(recorded, given time.Time, bounds ...EffectiveBound) (time.Time, error) {
	recorded = recorded.UTC().Truncate(time.Microsecond)
	if given.IsZero() {
		return recorded, nil
	}
	eff := given.UTC().Truncate(time.Microsecond)
	if eff.After(recorded) {
		return time.Time{}, &Error{Reason: ReasonEffectiveTimeInFuture,
			Message: fmt.Sprintf("effective_time %s is later than the time the ledger records the operation (%s); leave it unset to mean now",
				eff.Format(time.RFC3339Nano), recorded.Format(time.RFC3339Nano)),
			Metadata: map[string]string{"effective_time": eff.Format(time.RFC3339Nano), "record_time": recorded.Format(time.RFC3339Nano)}}
	}
	for _, b := range bounds {
		if eff.Before(b.Since) {
			what, why := boundWhat(b.Reason)
			return time.Time{}, &Error{Reason: b.Reason,
				Message: fmt.Sprintf("effective_time %s is before %s %q (%s)%s", eff.Format(time.RFC3339Nano),
					what, b.Subject, b.Since.Format(time.RFC3339Nano), why),
				Metadata: map[string]string{b.SubjectKey: b.Subject, b.SinceKey: b.Since.Format(time.RFC3339Nano),
					"effective_time": eff.Format(time.RFC3339Nano)}}
		}
	}
	return eff, nil
}

// boundWhat says what a bound is ("the effective time of envelope", followed by its name), and
// why it binds (after a semicolon; "" when plain).
func boundWhat(r Reason) (what, why string) {
	switch r {
	case ReasonEffectiveTimeBeforeLatest:
		return "the latest effective time recorded on envelope", ": what reduces an envelope's available amount may not be backdated before it"
	case ReasonEffectiveTimeBeforeCommitment:
		return "the effective time of commitment", ": a release, payment or closing may not predate its commitment"
	case ReasonEffectiveTimeBeforeHold:
		return "the effective time of hold", ": a hold's confirmation or cancellation may not predate it"
	case ReasonEffectiveTimeBeforePayment:
		return "the latest payment of commitment", ": a commitment is closed after its last payment"
	case ReasonEffectiveTimeBeforeRelease:
		return "the latest release of commitment", ": a commitment is closed after its last release"
	}
	return "the effective time of envelope", ""
}

// CheckEffectiveRange checks a requested effective time (zero: not given) for the field
// "effective_time": years 0001 to 9999, like every time of the API.
func CheckEffectiveRange(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return CheckTime("effective_time", t)
}

func checkEffectiveRange(t time.Time) error { return CheckEffectiveRange(t) }

// Touch records on the envelope a change recorded at at that takes effect at effective: its
// UpdatedAt becomes at, and its LatestEffectiveAt moves up to effective if that is later.
func (e *Envelope) Touch(at, effective time.Time) {
	e.UpdatedAt = at
	if effective.After(e.LatestEffectiveAt) {
		e.LatestEffectiveAt = effective
	}
}
