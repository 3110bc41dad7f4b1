// Package model is a reference model of the budget ledger's contract: an in-memory, sequential,
// deliberately plain restatement of what package ledger promises, against which the real ledger
// is checked (model_test.go). It has no batching, no SQL, no clock and no concurrency; every
// operation is decided on its own, in the order the methods are called. It imports nothing of
// the ledger, so that a mistake in the ledger's code cannot hide in shared code.
//
// The contract it states:
//
//   - An envelope has an allocation; a root envelope is funded from outside, a child's allocation
//     is taken from its parent's available amount (allocation − committed − allocated to
//     children), which never goes below zero.
//   - Allocation moves between a parent and its child, or between siblings (two roots are
//     siblings), in one currency; any other pair is ENVELOPES_NOT_RELATED.
//   - An award (Commit) takes an amount from an envelope's available amount for one project, if
//     the funding rules in force on the envelope allow it; a release returns part of what a
//     commitment still holds.
//   - Funding rules: each envelope has at most one rule set in force at a time: of the rule sets
//     given to it, the one in force from the latest time at or before that time (of two from the
//     same time, the one given last); an award is judged at its effective time. An envelope's
//     effective rules take each rule from the nearest envelope of its chain (itself, its parent,
//     … the root) whose rule set in force sets it. Checked in this order:
//     the award window, the minimum population, the maximum funding share (what the project
//     already holds on the same envelope, awards minus releases, plus the amount, must not pass
//     ⌊eligible cost × bps / 10,000⌋; a share of 10,000 bps lifts the rule).
//   - Refusals are checked in the order the ledger documents and states: for an award, the
//     envelope's existence, the rules, then the funds; for a move, existence, currency, funds,
//     then relation; for a creation, existence of the new id, the parent, currency, then funds.
//   - Every sum is exact or refused with AMOUNT_OVERFLOW.
//   - A request id names one operation of its caller (request ids belong to their caller: two
//     principals may use the same id for two requests), whatever its kind: its first outcome — a result, or a
//     business refusal — is recorded and returned again to every later request with the same id
//     and the same payload (caller included), which changes nothing; the same id with another
//     payload is refused with REQUEST_ID_REUSED, which is not recorded. INVALID_ARGUMENT is
//     decided before the request log is consulted and records nothing.
//   - Etags (AIP-154): an envelope's etag changes whenever the envelope is written (an accepted
//     award, release, move, child creation, or a rule change on it or an ancestor, which marks
//     every envelope of the subtree), and never otherwise; the rules' etag of an envelope changes
//     whenever a rule set is added to it. A move or a rule change sent with an etag that is not
//     the current one is refused with ETAG_MISMATCH after the envelopes are found to exist and
//     before any other check, and is not recorded (the same request id may come again with a
//     fresh etag); the etag is not part of the payload, so a replay ignores it. The model's
//     etags are its own strings: a test pairs them with the ledger's as it reads both.
//   - Payments and closing (payments.go): a payment takes at most what remains to pay on an open
//     commitment (amount − released − paid) out of the ledger; it stays committed on the
//     commitment and its envelope (paid ≤ committed). A release of a commitment partly paid
//     may return only what remains to pay (RELEASE_EXCEEDS_UNPAID); a closing returns what
//     remains to pay to the envelope, counted as released, and a closed commitment takes no
//     payment, release or closing (COMMITMENT_CLOSED).
//   - A bulk award is one request id for the call: each item is decided in order as an award of
//     its own, or, all-or-nothing, all items are accepted or none is (the refusal is the first
//     refused item's, with its index in the metadata "item").
//
// Time. The model has no clock: a Span bounds the times at which the ledger decides during a
// run, and rule sets may only name times outside it (an effective time before the span means "at
// once", one after it "never within the run"; an award window either contains the whole span or
// none of it). SetRules panics on a time inside the span: the model could not decide it. A time
// before the span means "at once" at or before the latest effective time of the envelope and its
// descendants; a later one is kept: the rule set is in force from that date, for the awards dated
// from then on (and for those within the run, until a rule set in force from a later time).
//
// Effective times. A mutation may say when it took effect; the model writes a time within the run
// as Now (later than every backdated time) and decides the backdating rule: not in the future
// (after the span), not before an envelope it posts to, a reduction not before its envelope's
// latest effective time, a release not before its commitment. A backdated award (or hold, or
// confirmation) is checked against the rules in force at its date, the award window included:
// the rule sets kept at a date at or before it, never one in force from a time within the run.
//
// Names. The ledger names commitments; the model is told the name (Commit's newID) and only
// checks that it is fresh.
//
// Fields of requests that are only text (names, descriptions, reasons) are assumed well formed:
// the model checks the numeric validation rules, the hidden characters of an award's free text,
// and an award's publication identifiers (SIRET, RNA) only.
package model

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"strconv"
	"time"
	"unicode"
)

// MaxEnvelopeDepth is how many levels an envelope tree may have (a root is at level 1).
const MaxEnvelopeDepth = 16

// Reason names a refusal, with the same strings as the ledger's reasons.
type Reason string

// The reasons the model gives.
const (
	InvalidArgument         Reason = "INVALID_ARGUMENT"
	EnvelopeNotFound        Reason = "ENVELOPE_NOT_FOUND"
	CommitmentNotFound      Reason = "COMMITMENT_NOT_FOUND"
	EnvelopeAlreadyExists   Reason = "ENVELOPE_ALREADY_EXISTS"
	InsufficientFunds       Reason = "INSUFFICIENT_FUNDS"
	ReleaseExceedsRemaining Reason = "RELEASE_EXCEEDS_REMAINING"
	CurrencyMismatch        Reason = "CURRENCY_MISMATCH"
	EnvelopesNotRelated     Reason = "ENVELOPES_NOT_RELATED"
	AmountOverflow          Reason = "AMOUNT_OVERFLOW"
	RequestIDReused         Reason = "REQUEST_ID_REUSED"
	PolicyViolation         Reason = "POLICY_VIOLATION"
	// The refusals of effective times (the backdating rule).
	EffectiveTimeInFuture         Reason = "EFFECTIVE_TIME_IN_FUTURE"
	EffectiveTimeBeforeEnvelope   Reason = "EFFECTIVE_TIME_BEFORE_ENVELOPE"
	EffectiveTimeBeforeLatest     Reason = "EFFECTIVE_TIME_BEFORE_LATEST"
	EffectiveTimeBeforeCommitment Reason = "EFFECTIVE_TIME_BEFORE_COMMITMENT"
	EffectiveTimeBeforeHold       Reason = "EFFECTIVE_TIME_BEFORE_HOLD"
	EffectiveTimeBeforePayment    Reason = "EFFECTIVE_TIME_BEFORE_PAYMENT"
	EffectiveTimeBeforeRelease    Reason = "EFFECTIVE_TIME_BEFORE_RELEASE"
	EnvelopeTooDeep               Reason = "ENVELOPE_TOO_DEEP"
	ETagMismatch                  Reason = "ETAG_MISMATCH"
	CommitmentClosed              Reason = "COMMITMENT_CLOSED"
	PaymentExceedsRemaining       Reason = "PAYMENT_EXCEEDS_REMAINING"
	ReleaseExceedsUnpaid          Reason = "RELEASE_EXCEEDS_UNPAID"
)

// MaxBulkItems caps the items of one bulk award.
const MaxBulkItems = 10000

// Refusal is a refused operation: its reason, and the metadata the model predicts (a subset of
// what the ledger gives).
type Refusal struct {
	Reason   Reason
	Metadata map[string]string
}

func (r *Refusal) Error() string { return fmt.Sprintf("%s %v", r.Reason, r.Metadata) }

func refuse(reason Reason, kv ...string) *Refusal {
	r := &Refusal{Reason: reason, Metadata: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Metadata[kv[i]] = kv[i+1]
	}
	return r
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Envelope is an envelope's balances.
type Envelope struct {
	ID, ParentID, DisplayName, Currency string
	Allocation, Committed               int64
	ChildrenAllocated, Released         int64
	CommitmentCount                     int64
	// EffectiveAt is when the envelope took effect, LatestEffectiveAt the latest effective time
	// of what posted to it; a time within the run is written Now.
	EffectiveAt, LatestEffectiveAt time.Time
	// Paid is what the envelope's commitments paid (part of Committed).
	Paid int64
	// Held is what the envelope's holds still HELD reserve (see holds.go).
	Held int64
}

// Available is what can still be committed, held or allocated to children.
func (e Envelope) Available() int64 { return e.Allocation - e.Committed - e.ChildrenAllocated - e.Held }

// Policy is what an award says for the funding rules; zero means not given.
type Policy struct {
	EligibleCost int64
	Territory    string
	Population   int64
}

// Commitment is an award.
type Commitment struct {
	ID, EnvelopeID, Beneficiary, Project, Currency, Description string
	Amount, Released                                            int64
	Policy
	// EffectiveAt is when the award took effect (Now for a time within the run).
	EffectiveAt time.Time
	// Paid is what was paid out of the commitment; Closed, whether it was closed.
	Paid   int64
	Closed bool
}

// Remaining is what the commitment still holds.
func (c Commitment) Remaining() int64 { return c.Amount - c.Released }

// Window is [Start, End); a zero side is open.
type Window struct{ Start, End time.Time }

// Rules is a rule set; a nil rule is not set by it.
type Rules struct {
	MaxFundingShareBPS *int64
	MinPopulation      *int64
	AwardWindow        *Window
}

// Span bounds the times at which the ledger decides during a run: [From, To).
type Span struct{ From, To time.Time }

// The commands, as a caller sends them.
type (
	CreateEnvelope struct {
		RequestID, Caller, EnvelopeID, ParentID, DisplayName, Currency string
		Allocation                                                     int64
		Effective                                                      time.Time
	}
	MoveAllocation struct {
		RequestID, Caller, SourceID, DestinationID string
		Amount                                     int64
		Reason                                     string
		Effective                                  time.Time
		// ETag and DestinationETag are model etags (Ledger.ETag); empty checks nothing.
		ETag, DestinationETag string
	}
	SetRules struct {
		RequestID, Caller, EnvelopeID, Call string
		EffectiveTime                       time.Time
		Rules                               Rules
		// ETag is a model rules etag (Ledger.RulesETag); empty checks nothing.
		ETag string
	}
	Commit struct {
		RequestID, Caller, EnvelopeID, Beneficiary, Project string
		Amount                                              int64
		Description                                         string
		Policy
		Effective time.Time
		// Publication is what the open data publishes of the award: part of the request (two
		// awards that differ only there are two requests); its identifiers are checked (see
		// ValidSIRET), nothing else of it is decided on.
		Publication
	}
	// Publication holds the award's publication fields: free text, and the beneficiary's SIRET
	// (14 digits, see ValidSIRET) and RNA number ("W" and 9 digits), each optional.
	Publication struct {
		DecisionReference, BeneficiaryLegalName, Purpose string
		BeneficiarySIRET, BeneficiaryRNA                 string
	}
	Release struct {
		RequestID, Caller, CommitmentID string
		Amount                          int64
		Reason                          string
		Effective                       time.Time
	}
	BulkCommit struct {
		RequestID, Caller, EnvelopeID string
		Items                         []BulkItem
		AllOrNothing                  bool
		Effective                     time.Time
	}
	BulkItem struct {
		Beneficiary, Project string
		Amount               int64
		Description          string
		Policy
		Publication
	}
)

// The results.
type (
	CreateEnvelopeResult struct {
		Envelope Envelope
		Parent   *Envelope
	}
	MoveAllocationResult struct{ Source, Destination Envelope }
	SetRulesResult       struct {
		EnvelopeID, Call string
		Rules            Rules
		// AtOnce: in force from the decision on (the ledger stamps the decision time);
		// otherwise EffectiveFrom is the time asked: after the span, or a date before it kept
		// (after the latest effective time of the envelope and its descendants).
		AtOnce        bool
		EffectiveFrom time.Time
	}
	CommitResult struct {
		Commitment Commitment
		Envelope   Envelope
	}
	ReleaseResult struct {
		Commitment Commitment
		Envelope   Envelope
	}
	BulkItemResult struct {
		Commitment *Commitment
		Refusal    *Refusal
	}
	BulkCommitResult struct {
		Items             []BulkItemResult
		Accepted, Refused int
		// Envelope is as the last accepted item left it, or as the call found it when no item
		// was accepted; a replay answers it as first answered.
		Envelope Envelope
	}
)

// record is a decided request: the payload it was decided for, and its first outcome.
type record struct {
	payload string
	result  any
	refusal *Refusal
}

// Ledger is the model's state. Its zero value is not usable: call New.
type Ledger struct {
	span        Span
	envelopes   map[string]Envelope
	commitments map[string]Commitment
	// rules holds each envelope's rule sets that are in force at some time of the run or before
	// it, in the order they were given (one in force only after the run is not kept).
	rules    map[string][]ruleSet
	requests map[string]record
	// versions counts the writes of each envelope, ruleSets the rule sets given to it: the
	// model's etags.
	versions, ruleSets map[string]int64
	// payments are each commitment's payments, oldest first (payments.go); lastPaid the latest
	// effective time of each one's payments (Now: one not backdated), before which it may not be
	// closed.
	payments map[string][]Payment
	lastPaid map[string]time.Time
	// lastReleased is the latest effective time of each commitment's releases, before which it
	// may not be closed either.
	lastReleased map[string]time.Time
	// Creation order, so that callers can pick envelopes and commitments deterministically.
	envelopeOrder, commitmentOrder []string
	// holds and the model's clock (holds.go).
	holds     map[string]Hold
	holdOrder []string
	now       time.Time
}

// New returns an empty ledger whose decisions are made within span.
func New(span Span) *Ledger {
	return &Ledger{span: span, envelopes: map[string]Envelope{}, commitments: map[string]Commitment{},
		rules: map[string][]ruleSet{}, requests: map[string]record{}, versions: map[string]int64{}, ruleSets: map[string]int64{},
		holds: map[string]Hold{}, now: span.From}
}

// Clone returns a copy that shares nothing mutable with l.
func (l *Ledger) Clone() *Ledger {
	c := &Ledger{span: l.span, envelopes: make(map[string]Envelope, len(l.envelopes)),
		commitments: make(map[string]Commitment, len(l.commitments)), rules: make(map[string][]ruleSet, len(l.rules)),
		requests:        make(map[string]record, len(l.requests)),
		envelopeOrder:   l.envelopeOrder[:len(l.envelopeOrder):len(l.envelopeOrder)],
		commitmentOrder: l.commitmentOrder[:len(l.commitmentOrder):len(l.commitmentOrder)],
		holds:           make(map[string]Hold, len(l.holds)), holdOrder: l.holdOrder[:len(l.holdOrder):len(l.holdOrder)],
		now: l.now}
	for k, v := range l.holds {
		c.holds[k] = v
	}
	for k, v := range l.envelopes {
		c.envelopes[k] = v
	}
	for k, v := range l.commitments {
		c.commitments[k] = v
	}
	for k, v := range l.rules {
		c.rules[k] = v[:len(v):len(v)] // appends copy; Rules' pointers are never written through
	}
	for k, v := range l.requests {
		c.requests[k] = v // results are values, never written after recording
	}
	c.versions, c.ruleSets = make(map[string]int64, len(l.versions)), make(map[string]int64, len(l.ruleSets))
	for k, v := range l.versions {
		c.versions[k] = v
	}
	for k, v := range l.ruleSets {
		c.ruleSets[k] = v
	}
	if l.payments != nil {
		c.payments = make(map[string][]Payment, len(l.payments))
		for k, v := range l.payments {
			c.payments[k] = v[:len(v):len(v)] // appends copy
		}
	}
	if l.lastPaid != nil {
		c.lastPaid = maps.Clone(l.lastPaid)
	}
	if l.lastReleased != nil {
		c.lastReleased = maps.Clone(l.lastReleased)
	}
	return c
}

// Envelope returns an envelope, or ENVELOPE_NOT_FOUND.
func (l *Ledger) Envelope(id string) (Envelope, *Refusal) {
	e, ok := l.envelopes[id]
	if !ok {
		return Envelope{}, refuse(EnvelopeNotFound, "envelope", "envelopes/"+id)
	}
	return e, nil
}

// GetCommitment is Commitment as the API answers it: an id that is no canonical UUID (lowercase,
// with dashes) names no commitment the ledger could have made, and is refused as the field name.
func (l *Ledger) GetCommitment(id string) (Commitment, *Refusal) {
	if !canonicalUUID(id) {
		return Commitment{}, invalid("name")
	}
	return l.Commitment(id)
}

// canonicalUUID reports whether id is a UUID in its canonical text form, the only form of the ids
// the ledger makes (commitments, holds): 8-4-4-4-12 lowercase hex digits. PostgreSQL and
// CockroachDB store them as native UUIDs; any other id is refused before it reaches them.
func canonicalUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// Commitment returns a commitment, or COMMITMENT_NOT_FOUND.
func (l *Ledger) Commitment(id string) (Commitment, *Refusal) {
	c, ok := l.commitments[id]
	if !ok {
		return Commitment{}, refuse(CommitmentNotFound, "commitment", "commitments/"+id)
	}
	return c, nil
}

// EnvelopeIDs returns the ids of the envelopes, oldest first.
func (l *Ledger) EnvelopeIDs() []string {
	return l.envelopeOrder[:len(l.envelopeOrder):len(l.envelopeOrder)]
}

// CommitmentIDs returns the ids of the commitments, oldest first.
func (l *Ledger) CommitmentIDs() []string {
	return l.commitmentOrder[:len(l.commitmentOrder):len(l.commitmentOrder)]
}

// Requested reports whether a caller's request id has a recorded outcome.
func (l *Ledger) Requested(caller, requestID string) bool {
	_, ok := l.requests[requestKey(caller, requestID)]
	return ok
}

// requestKey names a request in the request log: request ids belong to their caller, so the
// same id sent by two principals names two requests.
func requestKey(caller, requestID string) string { return caller + "\t" + requestID }

// lookup returns the outcome a request (key, its caller's request id) already has for payload:
// the recorded one for the same payload, REQUEST_ID_REUSED for another.
func (l *Ledger) lookup(key, requestID, payload string) (record, bool) {
	r, ok := l.requests[key]
	if ok && r.payload != payload {
		return record{refusal: refuse(RequestIDReused, "request_id", requestID)}, true
	}
	return r, ok
}

func (l *Ledger) remember(requestID, payload string, result any, refusal *Refusal) {
	l.requests[requestID] = record{payload: payload, result: result, refusal: refusal}
}

// Payloads: everything the caller sent but the request id, written unambiguously.

func (c CreateEnvelope) payload() string {
	return fmt.Sprintf("create %q %q %q %q %q %d", c.Caller, c.EnvelopeID, c.ParentID, c.DisplayName, c.Currency, c.Allocation) +
		effectiveText(c.Effective)
}

func (c MoveAllocation) payload() string {
	return fmt.Sprintf("move %q %q %q %d %q", c.Caller, c.SourceID, c.DestinationID, c.Amount, c.Reason) +
		effectiveText(c.Effective)
}

func (r Rules) String() string {
	s := "{"
	if r.MaxFundingShareBPS != nil {
		s += fmt.Sprintf(" share=%d", *r.MaxFundingShareBPS)
	}
	if r.MinPopulation != nil {
		s += fmt.Sprintf(" min_population=%d", *r.MinPopulation)
	}
	if w := r.AwardWindow; w != nil {
		s += fmt.Sprintf(" window=[%s,%s)", w.Start.UTC().Format(time.RFC3339Nano), w.End.UTC().Format(time.RFC3339Nano))
	}
	return s + " }"
}

func (c SetRules) payload() string {
	return fmt.Sprintf("rules %q %q %q %s %s", c.Caller, c.EnvelopeID, c.Call, microText(c.EffectiveTime), c.Rules)
}

// Text writes the policy out, for payloads and messages.
func (p Policy) Text() string {
	return fmt.Sprintf("%d %q %d", p.EligibleCost, p.Territory, p.Population)
}

func (c Commit) payload() string {
	return fmt.Sprintf("commit %q %q %q %q %d %q %s publication %s", c.Caller, c.EnvelopeID, c.Beneficiary, c.Project, c.Amount,
		c.Description, c.Policy.Text(), c.Publication.text()) + effectiveText(c.Effective)
}

func (p Publication) text() string {
	return fmt.Sprintf("%q %q %q %q %q", p.DecisionReference, p.BeneficiaryLegalName, p.Purpose, p.BeneficiarySIRET, p.BeneficiaryRNA)
}

func (c Release) payload() string {
	return fmt.Sprintf("release %q %q %d %q", c.Caller, c.CommitmentID, c.Amount, c.Reason) + effectiveText(c.Effective)
}

func (c BulkCommit) payload() string {
	s := fmt.Sprintf("bulk %q %q %t %d", c.Caller, c.EnvelopeID, c.AllOrNothing, len(c.Items))
	for _, it := range c.Items {
		s += fmt.Sprintf(" [%q %q %d %q %s publication %s]", it.Beneficiary, it.Project, it.Amount, it.Description, it.Policy.Text(),
			it.Publication.text())
	}
	return s + effectiveText(c.Effective)
}

// effectiveText writes an effective time out, when one is given, to the microsecond: the ledger
// keeps every time so, and two requests whose times differ below it are the same request
// (docs/dates.md).
func effectiveText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " effective " + microText(t)
}

func microText(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// keptTime is a bound of an award window as the ledger keeps it: to the microsecond, and a bound
// given within the first microsecond of the year 1 still a bound.
func keptTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if k := t.UTC().Truncate(time.Microsecond); !k.IsZero() {
		return k
	}
	return time.Time{}.Add(time.Microsecond)
}

// Effective times. The model has no clock: an operation without an effective time takes effect
// "now", within the run's span, written Now (every time within the span is later
// than every backdated one, and a time within the run is never refused). An effective time given
// must lie outside the span: before it (backdated, decided by the backdating rule) or after it
// (in the future: EFFECTIVE_TIME_IN_FUTURE).

// Now is how the model writes a time within the run (any of them: the model has no clock). It
// is later than every backdated time, as every time within the run is.
var Now = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)

// bound is one lower bound on an effective time, and the refusal when it is passed: its reason,
// and its metadata, which names the subject whose time since is (key "envelope", say, and its
// resource name) and gives since under sinceKey, beside the effective time asked.
type bound struct {
	since                         time.Time
	reason                        Reason
	subjectKey, subject, sinceKey string
}

// The bounds, as docs/dates.md states them.

func envelopeBound(e Envelope) bound {
	return bound{e.EffectiveAt, EffectiveTimeBeforeEnvelope, "envelope", "envelopes/" + e.ID, "envelope_effective_time"}
}

func latestBound(e Envelope) bound {
	return bound{e.LatestEffectiveAt, EffectiveTimeBeforeLatest, "envelope", "envelopes/" + e.ID, "latest_effective_time"}
}

func commitmentBound(c Commitment) bound {
	return bound{c.EffectiveAt, EffectiveTimeBeforeCommitment, "commitment", "commitments/" + c.ID, "commitment_effective_time"}
}

func holdBound(h Hold) bound {
	return bound{h.EffectiveAt, EffectiveTimeBeforeHold, "hold", "holds/" + h.ID, "hold_effective_time"}
}

// What reduces an envelope: not before it, nor before its latest effective time.
func reduces(e Envelope) []bound { return []bound{envelopeBound(e), latestBound(e)} }

// What only adds to an envelope: not before it.
func adds(e Envelope) []bound { return []bound{envelopeBound(e)} }

// What returns a commitment's money to its envelope: not before the envelope, nor the commitment.
func returns(e Envelope, c Commitment) []bound { return []bound{envelopeBound(e), commitmentBound(c)} }

// effective decides an operation's effective time (see the ledger's docs/dates.md): not in the
// future, not before any bound.
func (l *Ledger) effective(given time.Time, bounds ...bound) (time.Time, *Refusal) {
	if given.IsZero() {
		return Now, nil
	}
	switch {
	case !given.Before(l.span.To):
		// The time it is recorded at (record_time) is within the run: not predicted.
		return time.Time{}, refuse(EffectiveTimeInFuture, "effective_time", microText(given))
	case !given.Before(l.span.From):
		panic(fmt.Sprintf("model: effective time %s falls within the run's span; the model cannot decide it", given))
	}
	t := given.UTC().Truncate(time.Microsecond)
	for _, b := range bounds {
		if t.Before(b.since) {
			r := refuse(b.reason, b.subjectKey, b.subject, "effective_time", microText(t))
			if !b.since.Equal(Now) { // a time within the run is not predicted
				r.Metadata[b.sinceKey] = microText(b.since)
			}
			return time.Time{}, r
		}
	}
	return t, nil
}

// touch moves an envelope's latest effective time up to t.
func touch(e *Envelope, t time.Time) {
	if t.After(e.LatestEffectiveAt) {
		e.LatestEffectiveAt = t
	}
}

// Exact arithmetic.

func add(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

func overflow() *Refusal { return refuse(AmountOverflow) }

func invalid(field string) *Refusal { return refuse(InvalidArgument, "field", field) }

// CreateEnvelope creates a root envelope, or a child funded from its parent.
func (l *Ledger) CreateEnvelope(c CreateEnvelope) (CreateEnvelopeResult, *Refusal) {
	if c.Allocation <= 0 {
		return CreateEnvelopeResult{}, invalid("allocation")
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		res, _ := r.result.(CreateEnvelopeResult)
		return res, r.refusal
	}
	res, refusal := l.createEnvelope(c)
	l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) createEnvelope(c CreateEnvelope) (CreateEnvelopeResult, *Refusal) {
	if _, ok := l.envelopes[c.EnvelopeID]; ok {
		return CreateEnvelopeResult{}, refuse(EnvelopeAlreadyExists, "envelope", "envelopes/"+c.EnvelopeID)
	}
	env := Envelope{ID: c.EnvelopeID, ParentID: c.ParentID, DisplayName: c.DisplayName, Currency: c.Currency,
		Allocation: c.Allocation}
	var res CreateEnvelopeResult
	if c.ParentID == "" {
		if env.Currency == "" {
			env.Currency = "EUR"
		}
		eff, refusal := l.effective(c.Effective)
		if refusal != nil {
			return res, refusal
		}
		env.EffectiveAt, env.LatestEffectiveAt = eff, eff
	} else {
		parent, refusal := l.Envelope(c.ParentID)
		if refusal != nil {
			return res, refusal
		}
		if env.Currency == "" {
			env.Currency = parent.Currency
		}
		if env.Currency != parent.Currency {
			return res, refuse(CurrencyMismatch)
		}
		level := 1 // the parent's: a root is at level 1
		for p := parent.ParentID; p != ""; p = l.envelopes[p].ParentID {
			level++
		}
		if level >= MaxEnvelopeDepth {
			return res, refuse(EnvelopeTooDeep, "parent", "envelopes/"+parent.ID, "parent_level", itoa(int64(level)),
				"max_depth", itoa(MaxEnvelopeDepth))
		}
		eff, refusal := l.effective(c.Effective, reduces(parent)...)
		if refusal != nil {
			return res, refusal
		}
		if parent.Available() < c.Allocation {
			return res, refuse(InsufficientFunds, "available", itoa(parent.Available()), "requested", itoa(c.Allocation))
		}
		var ok bool
		if parent.ChildrenAllocated, ok = add(parent.ChildrenAllocated, c.Allocation); !ok {
			return res, overflow()
		}
		touch(&parent, eff)
		env.EffectiveAt, env.LatestEffectiveAt = eff, eff
		l.envelopes[parent.ID] = parent
		l.versions[parent.ID]++
		res.Parent = &parent
	}
	l.envelopes[env.ID] = env
	l.envelopeOrder = append(l.envelopeOrder, env.ID)
	res.Envelope = env
	return res, nil
}

// MoveAllocation moves allocation between a parent and its child, or between siblings.
func (l *Ledger) MoveAllocation(c MoveAllocation) (MoveAllocationResult, *Refusal) {
	if c.Amount <= 0 {
		return MoveAllocationResult{}, invalid("amount")
	}
	if c.SourceID == c.DestinationID {
		return MoveAllocationResult{}, invalid("destination")
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		res, _ := r.result.(MoveAllocationResult)
		return res, r.refusal
	}
	res, refusal := l.moveAllocation(c)
	if refusal == nil || refusal.Reason != ETagMismatch {
		l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	}
	return res, refusal
}

func (l *Ledger) moveAllocation(c MoveAllocation) (MoveAllocationResult, *Refusal) {
	src, srcFound := l.envelopes[c.SourceID]
	dst, dstFound := l.envelopes[c.DestinationID]
	switch {
	case !srcFound && !dstFound:
		return MoveAllocationResult{}, refuse(EnvelopeNotFound)
	case !srcFound:
		return MoveAllocationResult{}, refuse(EnvelopeNotFound, "envelope", "envelopes/"+c.SourceID)
	case !dstFound:
		return MoveAllocationResult{}, refuse(EnvelopeNotFound, "envelope", "envelopes/"+c.DestinationID)
	}
	if c.ETag != "" && c.ETag != l.ETag(src.ID) {
		return MoveAllocationResult{}, refuse(ETagMismatch, "envelope", "envelopes/"+src.ID)
	}
	if c.DestinationETag != "" && c.DestinationETag != l.ETag(dst.ID) {
		return MoveAllocationResult{}, refuse(ETagMismatch, "envelope", "envelopes/"+dst.ID)
	}
	if src.Currency != dst.Currency {
		return MoveAllocationResult{}, refuse(CurrencyMismatch)
	}
	eff, refusal := l.effective(c.Effective, append(reduces(src), adds(dst)...)...)
	if refusal != nil {
		return MoveAllocationResult{}, refusal
	}
	if src.Available() < c.Amount {
		return MoveAllocationResult{}, refuse(InsufficientFunds, "available", itoa(src.Available()), "requested", itoa(c.Amount))
	}
	ok := true
	switch {
	case dst.ParentID == src.ID: // parent to child
		src.ChildrenAllocated, ok = add(src.ChildrenAllocated, c.Amount)
		if ok {
			dst.Allocation, ok = add(dst.Allocation, c.Amount)
		}
	case src.ParentID == dst.ID: // child to parent
		src.Allocation -= c.Amount
		dst.ChildrenAllocated -= c.Amount
	case src.ParentID == dst.ParentID: // siblings, or two roots
		src.Allocation -= c.Amount
		dst.Allocation, ok = add(dst.Allocation, c.Amount)
	default:
		return MoveAllocationResult{}, refuse(EnvelopesNotRelated)
	}
	if !ok {
		return MoveAllocationResult{}, overflow()
	}
	touch(&src, eff)
	touch(&dst, eff)
	l.envelopes[src.ID], l.envelopes[dst.ID] = src, dst
	l.versions[src.ID]++
	l.versions[dst.ID]++
	return MoveAllocationResult{Source: src, Destination: dst}, nil
}

// atOnce reports whether a rule set asked to take effect at t is in force from its decision on
// (t zero or before the span) or never within the run (t after the span).
func (l *Ledger) atOnce(t time.Time) bool {
	switch {
	case t.IsZero() || !t.After(l.span.From):
		return true
	case !t.Before(l.span.To):
		return false
	}
	panic(fmt.Sprintf("model: effective time %s falls within the run's span; the model cannot decide it", t))
}

// windowContains reports whether w contains time at (Now: every decision of the run, or none).
func (l *Ledger) windowContains(w Window, at time.Time) bool {
	if at.Equal(Now) {
		return l.windowContainsRun(w)
	}
	return (w.Start.IsZero() || !at.Before(w.Start)) && (w.End.IsZero() || at.Before(w.End))
}

// windowContainsRun reports whether w contains every decision of the run (true) or none (false).
func (l *Ledger) windowContainsRun(w Window) bool {
	startOK := w.Start.IsZero() || !w.Start.After(l.span.From)
	endOK := w.End.IsZero() || !w.End.Before(l.span.To)
	startNever := !w.Start.IsZero() && !w.Start.Before(l.span.To)
	endNever := !w.End.IsZero() && !w.End.After(l.span.From)
	switch {
	case startOK && endOK:
		return true
	case startNever || endNever:
		return false
	}
	panic(fmt.Sprintf("model: award window [%s, %s) cuts the run's span; the model cannot decide it", w.Start, w.End))
}

// SetRules gives an envelope a new rule set.
func (l *Ledger) SetRules(c SetRules) (SetRulesResult, *Refusal) {
	// The window's bounds are kept to the microsecond, like every time (a probe found them kept
	// to the nanosecond): before the checks, so that one shorter than a microsecond is empty.
	// The request is known by what was sent (its payload), as the ledger's fingerprint is.
	payload := c.payload()
	if w := c.Rules.AwardWindow; w != nil {
		c.Rules.AwardWindow = &Window{Start: keptTime(w.Start), End: keptTime(w.End)}
	}
	r := c.Rules
	switch {
	case r.MaxFundingShareBPS != nil && (*r.MaxFundingShareBPS < 1 || *r.MaxFundingShareBPS > 10000):
		return SetRulesResult{}, invalid("rules.max_funding_share_bps")
	case r.MinPopulation != nil && *r.MinPopulation < 0:
		return SetRulesResult{}, invalid("rules.min_population")
	case r.AwardWindow != nil && !r.AwardWindow.Start.IsZero() && !r.AwardWindow.End.IsZero() &&
		!r.AwardWindow.Start.Before(r.AwardWindow.End):
		return SetRulesResult{}, invalid("rules.award_window")
	}
	atOnce := l.atOnce(c.EffectiveTime)
	if w := r.AwardWindow; w != nil {
		l.windowContainsRun(*w) // panics if undecidable
	}
	if rec, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, payload); ok {
		res, _ := rec.result.(SetRulesResult)
		return res, rec.refusal
	}
	var (
		res     SetRulesResult
		refusal *Refusal
	)
	if _, refusal = l.Envelope(c.EnvelopeID); refusal == nil && c.ETag != "" && c.ETag != l.RulesETag(c.EnvelopeID) {
		return res, refuse(ETagMismatch, "envelope", "envelopes/"+c.EnvelopeID) // not recorded
	}
	from := Now // at once: from its decision, within the run
	if refusal == nil && atOnce && !c.EffectiveTime.IsZero() {
		// A past time means "at once" at or before the latest effective time recorded on the
		// envelope or a descendant (rules never apply retroactively to what is recorded); after
		// it, the rule set is kept at that time (a programme recorded after the fact): awards
		// dated from then on are judged by it (docs/dates.md, "Funding rules by effective date").
		var latest time.Time
		for _, id := range l.envelopeOrder {
			if l.inSubtree(id, c.EnvelopeID) && l.envelopes[id].LatestEffectiveAt.After(latest) {
				latest = l.envelopes[id].LatestEffectiveAt
			}
		}
		if t := c.EffectiveTime.UTC().Truncate(time.Microsecond); t.After(latest) {
			from, atOnce = t, false
		}
	}
	if refusal == nil {
		l.ruleSets[c.EnvelopeID]++
		for _, id := range l.envelopeOrder {
			if l.inSubtree(id, c.EnvelopeID) {
				l.versions[id]++
			}
		}
		res = SetRulesResult{EnvelopeID: c.EnvelopeID, Call: c.Call, Rules: c.Rules, AtOnce: atOnce}
		switch {
		case atOnce:
			l.rules[c.EnvelopeID] = append(l.rules[c.EnvelopeID], ruleSet{from: Now, rules: c.Rules})
		case from.Before(l.span.From): // kept at its past time
			res.EffectiveFrom = from
			l.rules[c.EnvelopeID] = append(l.rules[c.EnvelopeID], ruleSet{from: from, rules: c.Rules})
		default: // in force only after the run: never within it, nor before it
			res.EffectiveFrom = c.EffectiveTime.UTC()
		}
	}
	l.remember(requestKey(c.Caller, c.RequestID), payload, res, refusal)
	return res, refusal
}

// ruleSet is a rule set given to an envelope, in force from a time: a date before the run, or
// Now for one in force from its decision within the run.
type ruleSet struct {
	from  time.Time
	rules Rules
}

// inForce returns the rule set in force on an envelope at time at (Now: within the run): of those
// in force from a time at or before at, the one from the latest time, and of two from the same
// time the one given last (the ledger orders them by effective time, then by id, and ids are
// made in order: UUIDv7).
func (l *Ledger) inForce(envelopeID string, at time.Time) (Rules, bool) {
	var (
		best  Rules
		found bool
		from  time.Time
	)
	for _, rs := range l.rules[envelopeID] {
		if !rs.from.After(at) && (!found || !rs.from.Before(from)) {
			best, found, from = rs.rules, true, rs.from
		}
	}
	return best, found
}

// effective is an envelope's effective rules: each rule from the nearest envelope of its chain
// whose rule set in force sets it.
type effective struct {
	share, minPopulation *int64
	window               *Window
}

// effectiveRules are an envelope's effective rules at time at (Now: within the run).
func (l *Ledger) effectiveRules(envelopeID string, at time.Time) effective {
	var e effective
	for id := envelopeID; id != ""; id = l.envelopes[id].ParentID {
		r, ok := l.inForce(id, at)
		if !ok {
			continue
		}
		if e.share == nil {
			e.share = r.MaxFundingShareBPS
		}
		if e.minPopulation == nil {
			e.minPopulation = r.MinPopulation
		}
		if e.window == nil {
			e.window = r.AwardWindow
		}
	}
	return e
}

// projectHolds is what a project holds on an envelope: its awards there minus their releases.
func (l *Ledger) projectHolds(envelopeID, project string) *big.Int {
	sum := new(big.Int)
	for _, c := range l.commitments {
		if c.EnvelopeID == envelopeID && c.Project == project {
			sum.Add(sum, big.NewInt(c.Remaining()))
		}
	}
	return sum
}

// checkRules decides whether an award on envelopeID, effective at time at (Now: within the run),
// obeys the rules in force at that time, its award window included.
func (l *Ledger) checkRules(envelopeID, project string, amount int64, p Policy, at time.Time) *Refusal {
	r := l.effectiveRules(envelopeID, at)
	if r.window != nil && !l.windowContains(*r.window, at) {
		return refuse(PolicyViolation, "rule", "award_window")
	}
	if r.minPopulation != nil && *r.minPopulation > 0 {
		if p.Population == 0 {
			return refuse(PolicyViolation, "rule", "min_population", "missing", "population")
		}
		if p.Population < *r.minPopulation {
			return refuse(PolicyViolation, "rule", "min_population", "population", itoa(p.Population))
		}
	}
	if r.share != nil && *r.share < 10000 {
		if p.EligibleCost == 0 {
			return refuse(PolicyViolation, "rule", "max_funding_share", "missing", "eligible_cost")
		}
		maxAward := new(big.Int).Mul(big.NewInt(p.EligibleCost), big.NewInt(*r.share))
		maxAward.Quo(maxAward, big.NewInt(10000))
		holds := l.projectHolds(envelopeID, project)
		total := new(big.Int).Add(holds, big.NewInt(amount))
		if total.Cmp(maxAward) > 0 {
			return refuse(PolicyViolation, "rule", "max_funding_share", "max_award", maxAward.String(),
				"already_awarded", holds.String(), "requested", itoa(amount))
		}
	}
	return nil
}

// invalidAward returns the field of an award that is invalid, prefixed, or "", in the order the
// ledger checks them: beneficiary, project, amount, description, the policy's, then the
// publication's identifiers (SIRET, then RNA).
func invalidAward(prefix string, it BulkItem) string {
	switch {
	case hiddenControl(it.Beneficiary):
		return prefix + "beneficiary"
	case hiddenControl(it.Project):
		return prefix + "project"
	case it.Amount <= 0:
		return prefix + "amount"
	case hiddenControl(it.Description):
		return prefix + "description"
	case it.Policy.EligibleCost < 0:
		return prefix + "eligible_cost"
	case it.Policy.Population < 0:
		return prefix + "population"
	case hiddenControl(it.Policy.Territory):
		return prefix + "territory"
	case it.BeneficiarySIRET != "" && !ValidSIRET(it.BeneficiarySIRET):
		return prefix + "beneficiary_siret"
	case it.BeneficiaryRNA != "" && !validRNA(it.BeneficiaryRNA):
		return prefix + "beneficiary_rna"
	}
	return ""
}

// laPosteSIREN is La Poste's SIREN: INSEE numbers its establishments beyond what a SIRET's Luhn
// key allows, so a SIRET under it is valid too when its digits sum to a multiple of 5.
const laPosteSIREN = "356000000"

// ValidSIRET reports whether s is a SIRET as the ledger accepts one (DESIGN.md §6): 14 ASCII
// digits that pass the Luhn check (from the right, every second digit doubled, and 9 taken off
// a double above 9; the sum a multiple of 10), or, under La Poste's SIREN, whose digits sum to a
// multiple of 5.
func ValidSIRET(s string) bool {
	if len(s) != 14 {
		return false
	}
	luhn, digits := 0, 0
	for i := range 14 {
		c := s[13-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		digits += d
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		luhn += d
	}
	return luhn%10 == 0 || (s[:9] == laPosteSIREN && digits%5 == 0)
}

// validRNA reports whether s is a number of the register of associations: "W" and 9 ASCII digits.
func validRNA(s string) bool {
	if len(s) != 10 || s[0] != 'W' {
		return false
	}
	for i := 1; i < 10; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// hiddenControl reports whether free text holds a character the README's rule refuses: a
// control character (C0, DEL, C1), a line or paragraph separator, a bidirectional embedding,
// override or isolate, the zero-width space or the byte-order mark. (The model's own reading of
// the rule, written apart from the ledger's core.IsHiddenControl.)
func hiddenControl(s string) bool {
	for _, r := range s {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029', r >= '\u202a' && r <= '\u202e',
			r >= '\u2066' && r <= '\u2069', r == '\u200b', r == '\ufeff':
			return true
		}
	}
	return false
}

// award decides one award on the current state and applies it if accepted.
func (l *Ledger) award(envelopeID, newID string, it BulkItem, given time.Time) (Commitment, Envelope, *Refusal) {
	env, refusal := l.Envelope(envelopeID)
	if refusal != nil {
		return Commitment{}, Envelope{}, refusal
	}
	eff, refusal := l.effective(given, reduces(env)...)
	if refusal != nil {
		return Commitment{}, Envelope{}, refusal
	}
	// It is checked against the rules in force at its effective time (a backdated one, at its date).
	if refusal := l.checkRules(envelopeID, it.Project, it.Amount, it.Policy, eff); refusal != nil {
		return Commitment{}, Envelope{}, refusal
	}
	if env.Available() < it.Amount {
		return Commitment{}, Envelope{}, refuse(InsufficientFunds, "available", itoa(env.Available()), "requested", itoa(it.Amount))
	}
	var ok bool
	if env.Committed, ok = add(env.Committed, it.Amount); !ok {
		return Commitment{}, Envelope{}, overflow()
	}
	if _, taken := l.commitments[newID]; taken {
		panic("model: the commitment id " + newID + " is already taken")
	}
	env.CommitmentCount++
	touch(&env, eff)
	c := Commitment{ID: newID, EnvelopeID: envelopeID, Beneficiary: it.Beneficiary, Project: it.Project,
		Currency: env.Currency, Description: it.Description, Amount: it.Amount, Policy: it.Policy, EffectiveAt: eff}
	l.envelopes[envelopeID] = env
	l.versions[envelopeID]++
	l.commitments[newID] = c
	l.commitmentOrder = append(l.commitmentOrder, newID)
	return c, env, nil
}

// IDTaken reports whether a commitment id is in use: the ledger must name each award afresh.
func (l *Ledger) IDTaken(id string) bool {
	_, ok := l.commitments[id]
	return ok
}

// Commit awards an amount of an envelope to a project; an accepted award is named newID.
func (l *Ledger) Commit(c Commit, newID string) (CommitResult, *Refusal) {
	if field := invalidAward("", BulkItem{Beneficiary: c.Beneficiary, Project: c.Project, Amount: c.Amount,
		Description: c.Description, Policy: c.Policy, Publication: c.Publication}); field != "" {
		return CommitResult{}, invalid(field)
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		res, _ := r.result.(CommitResult)
		return res, r.refusal
	}
	var res CommitResult
	com, env, refusal := l.award(c.EnvelopeID, newID, BulkItem{Beneficiary: c.Beneficiary, Project: c.Project,
		Amount: c.Amount, Description: c.Description, Policy: c.Policy}, c.Effective)
	if refusal == nil {
		res = CommitResult{Commitment: com, Envelope: env}
	}
	l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	return res, refusal
}

// Release returns part of a commitment's remaining amount to its envelope.
func (l *Ledger) Release(c Release) (ReleaseResult, *Refusal) {
	if !canonicalUUID(c.CommitmentID) {
		return ReleaseResult{}, invalid("commitment")
	}
	if c.Amount <= 0 {
		return ReleaseResult{}, invalid("amount")
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		res, _ := r.result.(ReleaseResult)
		return res, r.refusal
	}
	res, refusal := l.release(c)
	l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) release(c Release) (ReleaseResult, *Refusal) {
	com, refusal := l.Commitment(c.CommitmentID)
	if refusal != nil {
		return ReleaseResult{}, refusal
	}
	env := l.envelopes[com.EnvelopeID]
	eff, refusal := l.effective(c.Effective, returns(env, com)...)
	if refusal != nil {
		return ReleaseResult{}, refusal
	}
	if com.Closed {
		return ReleaseResult{}, refuse(CommitmentClosed, "commitment", "commitments/"+com.ID)
	}
	if com.Paid > 0 && com.RemainingToPay() < c.Amount {
		return ReleaseResult{}, refuse(ReleaseExceedsUnpaid, "remaining_to_pay", itoa(com.RemainingToPay()),
			"paid", itoa(com.Paid), "requested", itoa(c.Amount))
	}
	if com.Remaining() < c.Amount {
		return ReleaseResult{}, refuse(ReleaseExceedsRemaining, "remaining", itoa(com.Remaining()), "requested", itoa(c.Amount))
	}
	var ok bool
	if env.Released, ok = add(env.Released, c.Amount); !ok {
		return ReleaseResult{}, overflow()
	}
	touch(&env, eff)
	env.Committed -= c.Amount
	com.Released += c.Amount
	if l.lastReleased == nil {
		l.lastReleased = map[string]time.Time{}
	}
	if eff.After(l.lastReleased[com.ID]) {
		l.lastReleased[com.ID] = eff
	}
	l.envelopes[env.ID], l.commitments[com.ID] = env, com
	l.versions[env.ID]++
	return ReleaseResult{Commitment: com, Envelope: env}, nil
}

// BulkCommit decides the items of one call in order; an accepted item i is named newIDs[i].
func (l *Ledger) BulkCommit(c BulkCommit, newIDs []string) (BulkCommitResult, *Refusal) {
	if len(c.Items) == 0 || len(c.Items) > MaxBulkItems {
		return BulkCommitResult{}, invalid("items")
	}
	for i, it := range c.Items {
		if field := invalidAward(fmt.Sprintf("items[%d].", i), it); field != "" {
			return BulkCommitResult{}, invalid(field)
		}
	}
	if r, ok := l.lookup(requestKey(c.Caller, c.RequestID), c.RequestID, c.payload()); ok {
		// The first answer, the envelope included (the ledger records a bulk call as one row
		// since migration 18; calls recorded before that which accepted no item answered the
		// envelope as it is now, outside what this model runs).
		res, _ := r.result.(BulkCommitResult)
		return res, r.refusal
	}
	res, refusal := l.bulkCommit(c, newIDs)
	l.remember(requestKey(c.Caller, c.RequestID), c.payload(), res, refusal)
	return res, refusal
}

func (l *Ledger) bulkCommit(c BulkCommit, newIDs []string) (BulkCommitResult, *Refusal) {
	if _, refusal := l.Envelope(c.EnvelopeID); refusal != nil {
		return BulkCommitResult{}, refusal
	}
	// All-or-nothing decides on a copy and keeps it only if every item is accepted.
	work := l
	if c.AllOrNothing {
		work = l.Clone()
	}
	res := BulkCommitResult{Items: make([]BulkItemResult, len(c.Items))}
	for i, it := range c.Items {
		id := fmt.Sprintf("model-unnamed-%d", i)
		if i < len(newIDs) && newIDs[i] != "" {
			id = newIDs[i]
		}
		com, env, refusal := work.award(c.EnvelopeID, id, it, c.Effective)
		if refusal != nil {
			if c.AllOrNothing {
				whole := refuse(refusal.Reason, "item", strconv.Itoa(i))
				for k, v := range refusal.Metadata {
					whole.Metadata[k] = v
				}
				return BulkCommitResult{}, whole
			}
			res.Items[i].Refusal = refusal
			res.Refused++
			continue
		}
		res.Items[i].Commitment = &com
		res.Accepted++
		res.Envelope = env
	}
	if c.AllOrNothing {
		*l = *work
	}
	if res.Accepted == 0 {
		res.Envelope = l.envelopes[c.EnvelopeID]
	}
	return res, nil
}

// ETag is the model's etag of an envelope: it changes whenever the envelope is written.
func (l *Ledger) ETag(envelopeID string) string {
	return fmt.Sprintf("%s@%d", envelopeID, l.versions[envelopeID])
}

// RulesETag is the model's etag of an envelope's rule sets: it changes whenever one is added.
func (l *Ledger) RulesETag(envelopeID string) string {
	return fmt.Sprintf("%s#%d", envelopeID, l.ruleSets[envelopeID])
}

// inSubtree reports whether envelope id is root or one of its descendants.
func (l *Ledger) inSubtree(id, root string) bool {
	for ; id != ""; id = l.envelopes[id].ParentID {
		if id == root {
			return true
		}
	}
	return false
}
