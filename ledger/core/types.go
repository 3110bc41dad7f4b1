package core

import "time"

// Account names used in postings.
const (
	// FundingAccount is where money enters the ledger: funding a root envelope posts from it.
	FundingAccount = "external/funding"
)

// EnvelopeName returns the resource name of envelope id, also its account name.
func EnvelopeName(id string) string { return "envelopes/" + id }

// CommitmentName returns the resource name of commitment id, also its account name.
func CommitmentName(id string) string { return "commitments/" + id }

// EntryName returns the resource name of journal entry id.
func EntryName(id string) string { return "journalEntries/" + id }

// Envelope is an amount of money set aside for one purpose. Its balances always satisfy
// Allocation = Held + Committed + ChildrenAllocated + Available(), with Available() >= 0.
type Envelope struct {
	ID                string    `json:"id"`
	ParentID          string    `json:"parent_id,omitempty"`
	DisplayName       string    `json:"display_name,omitempty"`
	Currency          string    `json:"currency"`
	Allocation        int64     `json:"allocation"`
	Committed         int64     `json:"committed"`
	ChildrenAllocated int64     `json:"children_allocated"`
	Released          int64     `json:"released"`
	CommitmentCount   int64     `json:"commitment_count"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	// EffectiveAt is when the envelope took effect (its creation's effective time; CreatedAt
	// unless the creation was backdated). Nothing may take effect on it earlier.
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	// LatestEffectiveAt is the latest effective time of any journal entry posting to the
	// envelope: what reduces its available amount may not take effect earlier (see
	// CheckEffective).
	LatestEffectiveAt time.Time `json:"latest_effective_at,omitzero"`
	// Paid is what was paid out of the envelope's commitments (part of Committed; see payment.go).
	Paid int64 `json:"paid,omitempty"`
	// GrantingBody is what a root envelope says of the body granting its money (publication).
	GrantingBody
	// Held is what the envelope's holds in state HELD reserve (see Hold).
	Held int64 `json:"held,omitempty"`
}

// Available is what can still be committed or allocated to children.
func (e *Envelope) Available() int64 {
	return e.Allocation - e.Committed - e.ChildrenAllocated - e.Held
}

// Commitment is an award of part of an envelope to one project of one beneficiary.
type Commitment struct {
	ID          string `json:"id"`
	EnvelopeID  string `json:"envelope_id"`
	Beneficiary string `json:"beneficiary"`
	Project     string `json:"project"`
	Currency    string `json:"currency"`
	Amount      int64  `json:"amount"`
	Released    int64  `json:"released"`
	Description string `json:"description,omitempty"`
	// EligibleCost, Territory and Population are what the award said of the project's eligible
	// cost and the beneficiary's territory and population (0 and "" when not given); the funding
	// rules look at them.
	EligibleCost int64     `json:"eligible_cost,omitempty"`
	Territory    string    `json:"territory,omitempty"`
	Population   int64     `json:"population,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// EffectiveAt is when the award took effect (the decision or agreement's date; CreatedAt
	// unless the award was backdated). A release may not take effect earlier.
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	// Paid is what was paid out of the commitment (see payment.go); Released counts the
	// releases and the return of its closing.
	Paid int64 `json:"paid,omitempty"`
	// ClosedAt is when the commitment was closed (zero while it is open), CloseReason why, and
	// CloseEffectiveAt when the closing took effect, if given.
	ClosedAt         time.Time `json:"closed_at,omitzero"`
	CloseReason      string    `json:"close_reason,omitempty"`
	CloseEffectiveAt time.Time `json:"close_effective_at,omitzero"`
	// Publication is what the award said for publication.
	Publication
}

// Remaining is the amount the commitment still holds.
func (c *Commitment) Remaining() int64 { return c.Amount - c.Released }

// EntryKind says which operation made a journal entry.
type EntryKind string

// The kinds of journal entry.
const (
	KindEnvelopeFunded    EntryKind = "ENVELOPE_FUNDED"
	KindEnvelopeAllocated EntryKind = "ENVELOPE_ALLOCATED"
	KindAllocationMoved   EntryKind = "ALLOCATION_MOVED"
	KindCommitted         EntryKind = "COMMITTED"
	KindReleased          EntryKind = "RELEASED"
	// KindRulesChanged records a new rule set of an envelope (SetRules). It moves no money, so
	// it has no postings (as a closing with nothing left to pay); the rule set itself is kept in
	// envelope_rules under the entry's id.
	KindRulesChanged EntryKind = "RULES_CHANGED"
)

// Posting is one line of a journal entry: a signed amount on one account.
type Posting struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Entry is one balanced, immutable journal entry.
type Entry struct {
	ID string `json:"id"`
	// Sequence is the entry's position in the journal's order (1, 2, 3, … with no gap), given
	// once the entry has committed; 0 in the result of the operation that made it.
	Sequence  int64     `json:"sequence,omitempty"`
	Kind      EntryKind `json:"kind"`
	Currency  string    `json:"currency"`
	Caller    string    `json:"caller"`
	RequestID string    `json:"request_id"`
	Memo      string    `json:"memo,omitempty"`
	// CreatedAt is when the ledger recorded the entry.
	CreatedAt time.Time `json:"created_at"`
	// EffectiveAt is when what the entry records took effect (the operation's effective time;
	// CreatedAt when none was given). Never later than CreatedAt.
	EffectiveAt time.Time `json:"effective_at,omitzero"`
	Postings    []Posting `json:"postings"`
}

// CreateEnvelope creates a root envelope (ParentID empty, funded from outside the ledger) or a child
// envelope whose allocation is taken from its parent's available amount.
type CreateEnvelope struct {
	RequestID   string
	Caller      string
	EnvelopeID  string
	ParentID    string
	DisplayName string
	// Currency is an ISO 4217 code; empty means EUR for a root and the parent's for a child.
	Currency   string
	Allocation int64
	// Effective is when the act took effect (zero: not given, when recorded); see
	// CheckEffective.
	Effective time.Time
	// GrantingBody names the body granting a root envelope's money (publication); a child
	// envelope gives none.
	GrantingBody
}

// CreateEnvelopeResult is the outcome of CreateEnvelope.
type CreateEnvelopeResult struct {
	Envelope Envelope  `json:"envelope"`
	Parent   *Envelope `json:"parent,omitempty"`
	EntryID  string    `json:"entry_id"`
}

// MoveAllocation moves allocation between a parent and its child or between siblings.
type MoveAllocation struct {
	RequestID     string
	Caller        string
	SourceID      string
	DestinationID string
	Amount        int64
	Reason        string
	// Effective is when the act took effect (zero: not given, when recorded); see
	// CheckEffective.
	Effective time.Time
	// ETag and DestinationETag, when set, are the etags (EnvelopeETag) the source and the
	// destination must still have: a precondition checked under their locks, not part of the
	// request's fingerprint.
	ETag, DestinationETag string
}

// MoveAllocationResult is the outcome of MoveAllocation.
type MoveAllocationResult struct {
	Source      Envelope `json:"source"`
	Destination Envelope `json:"destination"`
	EntryID     string   `json:"entry_id"`
	// EffectiveTime is when the move took effect (zero in outcomes recorded before effective
	// times existed).
	EffectiveTime time.Time `json:"effective_time,omitzero"`
}

// Commit awards Amount from an envelope to one project of one beneficiary.
type Commit struct {
	RequestID   string
	Caller      string
	EnvelopeID  string
	Beneficiary string
	Project     string
	Amount      int64
	Description string
	Policy
	// Effective is when the act took effect (zero: not given, when recorded); see
	// CheckEffective.
	Effective time.Time
	Publication
}

// Policy is what an award says for the funding rules (see Rules): the project's eligible cost,
// and the beneficiary's territory and population. A zero figure means "not given" unless its
// ...Given flag says it was given as 0; an award that a rule needs a figure for and that does not
// give it is refused with POLICY_VIOLATION.
type Policy struct {
	// EligibleCost is the project's eligible cost, in minor units.
	EligibleCost int64
	// Territory identifies the beneficiary's territory (e.g. "insee:69123"), kept with the award.
	Territory string
	// Population is the number of inhabitants of the beneficiary's territory.
	Population int64
	// EligibleCostGiven and PopulationGiven say that a figure of 0 was given (the API's
	// `optional` fields): a rule then checks it like any figure instead of finding it missing.
	EligibleCostGiven, PopulationGiven bool
}

// HasEligibleCost reports whether the award gives an eligible cost (perhaps 0).
func (p *Policy) HasEligibleCost() bool { return p.EligibleCost != 0 || p.EligibleCostGiven }

// HasPopulation reports whether the award gives a population (perhaps 0).
func (p *Policy) HasPopulation() bool { return p.Population != 0 || p.PopulationGiven }

func (p *Policy) validate(prefix string) error {
	if p.EligibleCost < 0 {
		return InvalidArgument(prefix+"eligible_cost", "must not be negative")
	}
	if p.Population < 0 {
		return InvalidArgument(prefix+"population", "must not be negative")
	}
	return CheckField(prefix+"territory", "territory", p.Territory)
}

// addLegacy appends the policy fields to a legacy fingerprint, only when one is given (the
// legacy encoding; see Fingerprint).
func (p *Policy) addLegacy(f *fingerprinter) {
	if p.EligibleCost != 0 || p.Territory != "" || p.Population != 0 {
		f.str("policy").num(p.EligibleCost).str(p.Territory).num(p.Population)
	}
	// A figure given as 0 decides differently from one not given.
	if p.EligibleCostGiven && p.EligibleCost == 0 {
		f.str("eligible_cost given as 0")
	}
	if p.PopulationGiven && p.Population == 0 {
		f.str("population given as 0")
	}
}

// CommitResult is the outcome of Commit: the commitment and the envelope right after it.
type CommitResult struct {
	Commitment Commitment `json:"commitment"`
	Envelope   Envelope   `json:"envelope"`
	EntryID    string     `json:"entry_id"`
}

// Release returns Amount of a commitment's remaining amount to its envelope.
type Release struct {
	RequestID    string
	Caller       string
	CommitmentID string
	Amount       int64
	Reason       string
	// Effective is when the act took effect (zero: not given, when recorded); see
	// CheckEffective.
	Effective time.Time
}

// ReleaseResult is the outcome of Release.
type ReleaseResult struct {
	Commitment Commitment `json:"commitment"`
	Envelope   Envelope   `json:"envelope"`
	EntryID    string     `json:"entry_id"`
	// EffectiveTime is when the release took effect (zero in outcomes recorded before
	// effective times existed).
	EffectiveTime time.Time `json:"effective_time,omitzero"`
}
