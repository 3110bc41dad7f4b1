package core

import (
	"fmt"
	"math/big"
	"strconv"
	"time"
)

// Funding rules.
//
// An administrator gives an envelope a rule set (SetRules): a maximum funding share of a
// project's eligible cost, a minimum population of the beneficiary's territory, and a window of
// dates in which awards may be made. Each rule set belongs to a call (a label such as "appel-2")
// and is in force from its effective time until the envelope's next rule set: a call of a
// programme is the rule sets given at one date. Rule sets are never edited; a new one is added.
//
// Rules inherit down the envelope tree field by field: an envelope's effective rules take each
// rule from the rule set in force on the envelope itself, else on its parent, and so on up to the
// root. A rule set that leaves a rule unset inherits it; one that sets it overrides it (a share of
// 10,000 bps, a minimum population of 0, or an empty window lifts an ancestor's rule).

// ReasonPolicyViolation: an award breaks a funding rule of its envelope (or lacks a figure a
// rule needs). The metadata names the rule and the figures.
const ReasonPolicyViolation Reason = "POLICY_VIOLATION"

// ErrPolicyViolation is the sentinel of ReasonPolicyViolation, for errors.Is.
var ErrPolicyViolation = &Error{Reason: ReasonPolicyViolation}

// Rules are the funding rules of one rule set. A nil field is not set by this rule set and is
// inherited from the envelope's ancestors.
type Rules struct {
	// MaxFundingShareBPS caps what a project may receive from the envelope, in basis points of its
	// eligible cost, counting every award already made to the same project on the same envelope
	// (minus releases). 1 to 10,000.
	MaxFundingShareBPS *int64 `json:"max_funding_share_bps,omitempty"`
	// MinPopulation is the minimum number of inhabitants of the beneficiary's territory; 0 means
	// none.
	MinPopulation *int64 `json:"min_population,omitempty"`
	// AwardWindow bounds the dates at which awards may be made.
	AwardWindow *Window `json:"award_window,omitempty"`
}

// Window is a span of time [Start, End); a zero Start or End leaves that side open, and a window
// with both zero allows any date.
type Window struct {
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
}

func (w *Window) contains(t time.Time) bool {
	return (w.Start.IsZero() || !t.Before(w.Start)) && (w.End.IsZero() || t.Before(w.End))
}

// RuleSet is one rule set given to an envelope.
type RuleSet struct {
	// ID is the rule set's id, also the id of the RULES_CHANGED journal entry that recorded it.
	ID            string    `json:"id"`
	EnvelopeID    string    `json:"envelope_id"`
	Call          string    `json:"call"`
	EffectiveFrom time.Time `json:"effective_from"`
	Rules         Rules     `json:"rules"`
	Caller        string    `json:"caller"`
	RequestID     string    `json:"request_id"`
	CreatedAt     time.Time `json:"created_at"`
}

// RuleSetName returns the resource name of a rule set, "envelopes/{envelope}/ruleSets/{id}".
func RuleSetName(envelopeID, id string) string { return EnvelopeName(envelopeID) + "/ruleSets/" + id }

// EffectiveRules are the rules that apply to awards on an envelope at a time, each with the rule
// set it comes from (nil when no envelope of the chain sets it).
type EffectiveRules struct {
	MaxFundingShareBPS int64    `json:"max_funding_share_bps,omitempty"`
	MaxFundingShareSet *RuleSet `json:"max_funding_share_set,omitempty"`
	MinPopulation      int64    `json:"min_population,omitempty"`
	MinPopulationSet   *RuleSet `json:"min_population_set,omitempty"`
	AwardWindow        *Window  `json:"award_window,omitempty"`
	AwardWindowSet     *RuleSet `json:"award_window_set,omitempty"`
}

// merge fills the rules not yet set from rs (an ancestor's rule set, nearest first).
func (e *EffectiveRules) Merge(rs *RuleSet) {
	if e.MaxFundingShareSet == nil && rs.Rules.MaxFundingShareBPS != nil {
		e.MaxFundingShareBPS, e.MaxFundingShareSet = *rs.Rules.MaxFundingShareBPS, rs
	}
	if e.MinPopulationSet == nil && rs.Rules.MinPopulation != nil {
		e.MinPopulation, e.MinPopulationSet = *rs.Rules.MinPopulation, rs
	}
	if e.AwardWindowSet == nil && rs.Rules.AwardWindow != nil {
		w := *rs.Rules.AwardWindow
		e.AwardWindow, e.AwardWindowSet = &w, rs
	}
}

func (e *EffectiveRules) NeedsProjectTotal() bool {
	return e != nil && e.MaxFundingShareBPS > 0 && e.MaxFundingShareBPS < 10000
}

// SetRules gives an envelope a new rule set.
type SetRules struct {
	RequestID  string
	Caller     string
	EnvelopeID string
	// Call names the call of the programme the rule set belongs to, e.g. "appel-2".
	Call string
	// EffectiveTime is when the rule set comes into force; zero, or a time already past, means
	// at once (rules never apply retroactively to awards already decided).
	EffectiveTime time.Time
	Rules         Rules
	// ETag, when set, is the etag of the envelope's rule sets (RulesETag) the envelope must still
	// have: a precondition checked under its lock, not part of the request's fingerprint.
	ETag string
}

// SetRulesResult is the outcome of SetRules.
type SetRulesResult struct {
	RuleSet RuleSet `json:"rule_set"`
	EntryID string  `json:"entry_id"`
	// ETag is the etag of the envelope's rule sets right after this one was added (RulesETag);
	// empty in outcomes recorded before etags existed.
	ETag string `json:"etag,omitempty"`
}

// Kept returns the rules as the ledger keeps them: the award window's bounds in UTC, to the
// microsecond, like every time the ledger keeps (docs/dates.md). Kept at the nanosecond, a bound
// refused an award sent after it, whose time was cut to the microsecond below the bound, and two
// requests whose bounds differ below the microsecond were not the same request.
func (r Rules) Kept() Rules {
	if w := r.AwardWindow; w != nil {
		r.AwardWindow = &Window{Start: keptTime(w.Start), End: keptTime(w.End)}
	}
	return r
}

func keptTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if k := t.UTC().Truncate(time.Microsecond); !k.IsZero() {
		return k
	}
	return time.Time{}.Add(time.Microsecond) // a bound given within the first microsecond stays a bound
}

func (c *SetRules) Validate() error {
	err := FirstError(CheckRequestID(c.RequestID), checkCaller(c.Caller), CheckEnvelopeID("envelope", c.EnvelopeID),
		CheckField("call", "call", c.Call), CheckTime("effective_time", c.EffectiveTime), checkETag("etag", c.ETag))
	if err != nil {
		return err
	}
	r := c.Rules
	if w := r.AwardWindow; w != nil {
		if err := FirstError(CheckTime("rules.award_window.start_time", w.Start),
			CheckTime("rules.award_window.end_time", w.End)); err != nil {
			return err
		}
	}
	if r.MaxFundingShareBPS != nil && (*r.MaxFundingShareBPS < 1 || *r.MaxFundingShareBPS > 10000) {
		return InvalidArgument("rules.max_funding_share_bps", "must be 1 to 10000 basis points")
	}
	if r.MinPopulation != nil && *r.MinPopulation < 0 {
		return InvalidArgument("rules.min_population", "must not be negative")
	}
	if w := r.AwardWindow; w != nil && !w.Start.IsZero() && !w.End.IsZero() && !w.Start.Before(w.End) {
		return InvalidArgument("rules.award_window", "must start before it ends")
	}
	return nil
}

// SetRules records a new rule set for an envelope, and a RULES_CHANGED journal entry.

// EnvelopeRules is what GetRules returns: the envelope's own rule sets and its effective rules.
type EnvelopeRules struct {
	// RuleSets are the envelope's own rule sets, oldest effective first (future ones included).
	RuleSets []RuleSet
	// Effective are the rules in force at the time asked, inherited through the tree.
	Effective EffectiveRules
	// At is the time the effective rules are for.
	At time.Time
	// ETag is the etag of the envelope's rule sets (RulesETag), for SetRules.
	ETag string
}

// Effective merges the rule sets in force on an envelope's chain (the envelope, then its
// ancestors, nearest first) into its effective rules.
func Effective(chain []string, inForce map[string]*RuleSet) *EffectiveRules {
	e := &EffectiveRules{}
	for _, id := range chain {
		if rs, ok := inForce[id]; ok {
			e.Merge(rs)
		}
	}
	return e
}

func policyViolation(env *Envelope, rule, message string, md map[string]string, from *RuleSet) *Error {
	md["rule"] = rule
	md["envelope"] = EnvelopeName(env.ID)
	if from != nil {
		md["rule_set"] = RuleSetName(from.EnvelopeID, from.ID)
		md["call"] = from.Call
	}
	return &Error{Reason: ReasonPolicyViolation, Message: message, Metadata: md}
}

// CheckRules decides whether an award obeys the effective rules of its envelope; already is what
// the project holds on the envelope before it.
func CheckRules(r *EffectiveRules, env *Envelope, cmd *Commit, already int64, at time.Time) *Error {
	if r == nil {
		return nil
	}
	if w := r.AwardWindow; w != nil && !w.contains(at) {
		md := map[string]string{"award_time": at.Format(time.RFC3339Nano)}
		if !w.Start.IsZero() {
			md["window_start"] = w.Start.Format(time.RFC3339Nano)
		}
		if !w.End.IsZero() {
			md["window_end"] = w.End.Format(time.RFC3339Nano)
		}
		return policyViolation(env, "award_window", fmt.Sprintf("envelope %q takes no award at %s: outside the award window of call %q",
			EnvelopeName(env.ID), at.Format(time.RFC3339Nano), r.AwardWindowSet.Call), md, r.AwardWindowSet)
	}
	if r.MinPopulation > 0 {
		if !cmd.HasPopulation() {
			return policyViolation(env, "min_population", fmt.Sprintf("envelope %q requires a beneficiary's territory of at least %d inhabitants; the award gives no population",
				EnvelopeName(env.ID), r.MinPopulation), map[string]string{"missing": "population",
				"min_population": strconv.FormatInt(r.MinPopulation, 10)}, r.MinPopulationSet)
		}
		if cmd.Population < r.MinPopulation {
			where := ""
			if cmd.Territory != "" {
				where = fmt.Sprintf(" (%s)", cmd.Territory)
			}
			return policyViolation(env, "min_population", fmt.Sprintf("beneficiary %q%s has %d inhabitants; envelope %q requires at least %d",
				cmd.Beneficiary, where, cmd.Population, EnvelopeName(env.ID), r.MinPopulation),
				map[string]string{"min_population": strconv.FormatInt(r.MinPopulation, 10),
					"population": strconv.FormatInt(cmd.Population, 10), "territory": cmd.Territory,
					"beneficiary": cmd.Beneficiary}, r.MinPopulationSet)
		}
	}
	if r.NeedsProjectTotal() {
		bps := r.MaxFundingShareBPS
		if !cmd.HasEligibleCost() {
			return policyViolation(env, "max_funding_share", fmt.Sprintf("envelope %q funds at most %d bps of a project's eligible cost; the award gives no eligible cost",
				EnvelopeName(env.ID), bps), map[string]string{"missing": "eligible_cost",
				"max_bps": strconv.FormatInt(bps, 10)}, r.MaxFundingShareSet)
		}
		// max_award = floor(eligible_cost * bps / 10000), exact for any int64 cost.
		maxAward := new(big.Int).Mul(big.NewInt(cmd.EligibleCost), big.NewInt(bps))
		maxAward.Quo(maxAward, big.NewInt(10000))
		total := new(big.Int).Add(big.NewInt(already), big.NewInt(cmd.Amount))
		if total.Cmp(maxAward) > 0 {
			return policyViolation(env, "max_funding_share", fmt.Sprintf("project %q may receive at most %s (%d bps of %d) from envelope %q; it holds %d, %d requested",
				cmd.Project, maxAward, bps, cmd.EligibleCost, EnvelopeName(env.ID), already, cmd.Amount),
				map[string]string{"max_bps": strconv.FormatInt(bps, 10),
					"eligible_cost":   strconv.FormatInt(cmd.EligibleCost, 10),
					"already_awarded": strconv.FormatInt(already, 10),
					"requested":       strconv.FormatInt(cmd.Amount, 10),
					"max_award":       maxAward.String(),
					"project":         cmd.Project}, r.MaxFundingShareSet)
		}
	}
	return nil
}

// Project totals.

// ProjectKey names one project on one envelope, whose awards a funding-share rule adds up.
type ProjectKey struct{ EnvelopeID, Project string }

// ProjectDelta is a change of a project total made by one accepted award (Count 1) or release
// (Count 0).
type ProjectDelta struct {
	Key           ProjectKey
	Amount, Count int64
}
