package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

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
// Allocation = Committed + ChildrenAllocated + Available(), with Available() >= 0.
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
}

// Available is what can still be committed or allocated to children.
func (e *Envelope) Available() int64 { return e.Allocation - e.Committed - e.ChildrenAllocated }

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
	// it is the one kind of entry without postings; the rule set itself is kept in
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
	ID        string    `json:"id"`
	Kind      EntryKind `json:"kind"`
	Currency  string    `json:"currency"`
	Caller    string    `json:"caller"`
	RequestID string    `json:"request_id"`
	Memo      string    `json:"memo,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Postings  []Posting `json:"postings"`
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
}

// MoveAllocationResult is the outcome of MoveAllocation.
type MoveAllocationResult struct {
	Source      Envelope `json:"source"`
	Destination Envelope `json:"destination"`
	EntryID     string   `json:"entry_id"`
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
}

// Policy is what an award says for the funding rules (see Rules): the project's eligible cost,
// and the beneficiary's territory and population. Zero values mean "not given"; an award that a
// rule needs them for is refused with POLICY_VIOLATION.
type Policy struct {
	// EligibleCost is the project's eligible cost, in minor units.
	EligibleCost int64
	// Territory identifies the beneficiary's territory (e.g. "insee:69123"), kept with the award.
	Territory string
	// Population is the number of inhabitants of the beneficiary's territory.
	Population int64
}

func (p *Policy) validate(prefix string) error {
	if p.EligibleCost < 0 {
		return invalidArgument(prefix+"eligible_cost", "must not be negative")
	}
	if p.Population < 0 {
		return invalidArgument(prefix+"population", "must not be negative")
	}
	return checkText(prefix+"territory", p.Territory, 0, 200)
}

// add appends the policy fields to a fingerprint, only when one is given, so that the
// fingerprints of requests made before they existed do not change.
func (p *Policy) add(f *fingerprinter) {
	if p.EligibleCost != 0 || p.Territory != "" || p.Population != 0 {
		f.str("policy").num(p.EligibleCost).str(p.Territory).num(p.Population)
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
}

// ReleaseResult is the outcome of Release.
type ReleaseResult struct {
	Commitment Commitment `json:"commitment"`
	Envelope   Envelope   `json:"envelope"`
	EntryID    string     `json:"entry_id"`
}

// Validation. The server validates requests with protovalidate first; the ledger checks again so
// that no caller of this package (a benchmark, a tool) can write a malformed row.

var (
	envelopeIDPattern   = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	requestIDPattern    = regexp.MustCompile(`^[!-~]{1,128}$`)
	currencyPattern     = regexp.MustCompile(`^[A-Z]{3}$`)
	commitmentIDPattern = regexp.MustCompile(`^[0-9a-f-]{36}$`)
)

func checkRequestID(id string) error {
	if !requestIDPattern.MatchString(id) {
		return invalidArgument("request_id", "must be 1 to 128 printable ASCII characters without spaces")
	}
	return nil
}

func checkEnvelopeID(field, id string) error {
	if len(id) > 63 || !envelopeIDPattern.MatchString(id) {
		return invalidArgument(field, "must be 1 to 63 lower-case letters, digits and hyphens, starting with a letter")
	}
	return nil
}

func checkText(field, s string, min, max int) error {
	n := utf8.RuneCountInString(s)
	switch {
	case !utf8.ValidString(s):
		return invalidArgument(field, "must be valid UTF-8")
	case n < min:
		return invalidArgument(field, "must not be empty")
	case n > max:
		return invalidArgument(field, "must be at most %d characters", max)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalidArgument(field, "must not contain control characters")
	}
	return nil
}

func checkAmount(field string, v int64) error {
	if v <= 0 {
		return invalidArgument(field, "must be a positive amount in minor units")
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *CreateEnvelope) validate() error {
	err := firstError(checkRequestID(c.RequestID), checkEnvelopeID("envelope_id", c.EnvelopeID),
		checkText("display_name", c.DisplayName, 0, 200), checkAmount("allocation", c.Allocation))
	if err != nil {
		return err
	}
	if c.ParentID != "" {
		if err := checkEnvelopeID("parent", c.ParentID); err != nil {
			return err
		}
	}
	if c.Currency != "" && !currencyPattern.MatchString(c.Currency) {
		return invalidArgument("currency_code", "must be an ISO 4217 code of three upper-case letters")
	}
	return nil
}

func (c *MoveAllocation) validate() error {
	err := firstError(checkRequestID(c.RequestID), checkEnvelopeID("source", c.SourceID),
		checkEnvelopeID("destination", c.DestinationID), checkAmount("amount", c.Amount),
		checkText("reason", c.Reason, 1, 500))
	if err != nil {
		return err
	}
	if c.SourceID == c.DestinationID {
		return invalidArgument("destination", "must differ from source")
	}
	return nil
}

func (c *Commit) validate() error {
	return firstError(checkRequestID(c.RequestID), checkEnvelopeID("envelope", c.EnvelopeID),
		checkText("beneficiary", c.Beneficiary, 1, 200), checkText("project", c.Project, 1, 200),
		checkAmount("amount", c.Amount), checkText("description", c.Description, 0, 500), c.Policy.validate(""))
}

func (c *Release) validate() error {
	if !commitmentIDPattern.MatchString(c.CommitmentID) {
		return invalidArgument("commitment", "must name a commitment, commitments/{uuid}")
	}
	return firstError(checkRequestID(c.RequestID), checkAmount("amount", c.Amount),
		checkText("reason", c.Reason, 1, 500))
}

// Fingerprints. A request id names one operation: the fingerprint of everything the caller sent
// (and who sent it) is stored with the outcome, and a later request with the same id must have the
// same fingerprint. Fields are length-prefixed so that no two payloads encode alike.

type fingerprinter struct{ buf []byte }

func (f *fingerprinter) str(s string) *fingerprinter {
	f.buf = binary.AppendUvarint(f.buf, uint64(len(s)))
	f.buf = append(f.buf, s...)
	return f
}

func (f *fingerprinter) num(v int64) *fingerprinter {
	f.buf = binary.AppendVarint(f.buf, v)
	return f
}

func (f *fingerprinter) sum() string {
	h := sha256.Sum256(f.buf)
	return hex.EncodeToString(h[:])
}

func (c *CreateEnvelope) fingerprint() string {
	f := &fingerprinter{}
	return f.str("CreateEnvelope").str(c.Caller).str(c.EnvelopeID).str(c.ParentID).str(c.DisplayName).
		str(c.Currency).num(c.Allocation).sum()
}

func (c *MoveAllocation) fingerprint() string {
	f := &fingerprinter{}
	return f.str("MoveAllocation").str(c.Caller).str(c.SourceID).str(c.DestinationID).num(c.Amount).
		str(c.Reason).sum()
}

func (c *Commit) fingerprint() string {
	f := &fingerprinter{}
	f.str("Commit").str(c.Caller).str(c.EnvelopeID).str(c.Beneficiary).str(c.Project).
		num(c.Amount).str(c.Description)
	c.Policy.add(f)
	return f.sum()
}

func (c *Release) fingerprint() string {
	f := &fingerprinter{}
	return f.str("Release").str(c.Caller).str(c.CommitmentID).num(c.Amount).str(c.Reason).sum()
}
