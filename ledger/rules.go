package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"
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
func (e *EffectiveRules) merge(rs *RuleSet) {
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

func (e *EffectiveRules) needsProjectTotal() bool {
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
}

// SetRulesResult is the outcome of SetRules.
type SetRulesResult struct {
	RuleSet RuleSet `json:"rule_set"`
	EntryID string  `json:"entry_id"`
}

func (c *SetRules) validate() error {
	err := firstError(checkRequestID(c.RequestID), checkEnvelopeID("envelope", c.EnvelopeID),
		checkText("call", c.Call, 1, 200))
	if err != nil {
		return err
	}
	r := c.Rules
	if r.MaxFundingShareBPS != nil && (*r.MaxFundingShareBPS < 1 || *r.MaxFundingShareBPS > 10000) {
		return invalidArgument("rules.max_funding_share_bps", "must be 1 to 10000 basis points")
	}
	if r.MinPopulation != nil && *r.MinPopulation < 0 {
		return invalidArgument("rules.min_population", "must not be negative")
	}
	if w := r.AwardWindow; w != nil && !w.Start.IsZero() && !w.End.IsZero() && !w.Start.Before(w.End) {
		return invalidArgument("rules.award_window", "must start before it ends")
	}
	return nil
}

func (c *SetRules) fingerprint() string {
	raw, _ := json.Marshal(c.Rules)
	f := &fingerprinter{}
	return f.str("SetRules").str(c.Caller).str(c.EnvelopeID).str(c.Call).
		num(c.EffectiveTime.UnixMicro()).str(string(raw)).sum()
}

// SetRules records a new rule set for an envelope, and a RULES_CHANGED journal entry.
func (l *Ledger) SetRules(ctx context.Context, cmd SetRules) (SetRulesResult, error) {
	var res SetRulesResult
	if err := cmd.validate(); err != nil {
		return res, err
	}
	err := l.mutate(ctx, cmd.RequestID, cmd.fingerprint(), &res,
		func(ctx context.Context, q querier, at time.Time) (any, error) {
			env, err := l.loadEnvelope(ctx, q, cmd.EnvelopeID, false)
			if err != nil {
				return nil, err
			}
			effective := cmd.EffectiveTime.UTC().Truncate(time.Microsecond)
			if effective.Before(at) {
				effective = at
			}
			rs := RuleSet{ID: newID(), EnvelopeID: env.ID, Call: cmd.Call, EffectiveFrom: effective,
				Rules: cmd.Rules, Caller: cmd.Caller, RequestID: cmd.RequestID, CreatedAt: at}
			raw, err := json.Marshal(rs.Rules)
			if err != nil {
				return nil, err
			}
			if err := q.write(ctx, `INSERT INTO envelope_rules (envelope_id, effective_from, id, call_name, rules,
				caller, request_id, created_at) VALUES `+placeholders(0, 8),
				[]any{rs.EnvelopeID, micros(rs.EffectiveFrom), rs.ID, rs.Call, string(raw), rs.Caller, rs.RequestID, micros(at)},
				nil); err != nil {
				return nil, err
			}
			entry := Entry{ID: rs.ID, Kind: KindRulesChanged, Currency: env.Currency, Caller: cmd.Caller,
				RequestID: cmd.RequestID, Memo: fmt.Sprintf("call %s: %s", cmd.Call, raw), CreatedAt: at}
			if err := insertEntries(ctx, q, []Entry{entry}); err != nil {
				return nil, err
			}
			return &SetRulesResult{RuleSet: rs, EntryID: entry.ID}, nil
		})
	return res, err
}

const ruleSetColumns = "id, envelope_id, call_name, effective_from, rules, caller, request_id, created_at"

func scanRuleSet(s scanner) (RuleSet, error) {
	var (
		rs                 RuleSet
		raw                string
		effective, created int64
	)
	if err := s.Scan(&rs.ID, &rs.EnvelopeID, &rs.Call, &effective, &raw, &rs.Caller, &rs.RequestID, &created); err != nil {
		return rs, err
	}
	rs.EffectiveFrom, rs.CreatedAt = fromMicros(effective), fromMicros(created)
	if err := json.Unmarshal([]byte(raw), &rs.Rules); err != nil {
		return rs, internal("rule set %s is unreadable: %w", rs.ID, err)
	}
	return rs, nil
}

// EnvelopeRules is what GetRules returns: the envelope's own rule sets and its effective rules.
type EnvelopeRules struct {
	// RuleSets are the envelope's own rule sets, oldest effective first (future ones included).
	RuleSets []RuleSet
	// Effective are the rules in force at the time asked, inherited through the tree.
	Effective EffectiveRules
	// At is the time the effective rules are for.
	At time.Time
}

// GetRules returns an envelope's rule sets and the rules in force on it at time at (now if zero).
func (l *Ledger) GetRules(ctx context.Context, envelopeID string, at time.Time) (EnvelopeRules, error) {
	var out EnvelopeRules
	if err := checkEnvelopeID("envelope", envelopeID); err != nil {
		return out, err
	}
	if at.IsZero() {
		at = now()
	}
	out.At = at.UTC()
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	err := l.eng.readOnly(ctx, func(q querier) error {
		out.RuleSets = nil
		env, err := l.loadEnvelope(ctx, q, envelopeID, false)
		if err != nil {
			return err
		}
		rs, err := q.query(ctx, "SELECT "+ruleSetColumns+" FROM envelope_rules WHERE envelope_id = $1 ORDER BY effective_from, id", envelopeID)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			r, err := scanRuleSet(rs)
			if err != nil {
				return err
			}
			out.RuleSets = append(out.RuleSets, r)
		}
		if err := rs.Err(); err != nil {
			return err
		}
		rules, err := l.effectiveRules(ctx, q, []Envelope{env}, at)
		if err != nil {
			return err
		}
		out.Effective = *rules[envelopeID]
		return nil
	})
	return out, l.classify(ctx, err)
}

// parentCache remembers envelopes' parents, which never change once created.
type parentCache struct{ m sync.Map } // envelope id -> parent id ("" for a root)

// chain returns id and its ancestors, nearest first, reading the parents it does not know by
// primary key, one statement per envelope.
func (l *Ledger) chain(ctx context.Context, q querier, env Envelope) ([]string, error) {
	l.parents.m.Store(env.ID, env.ParentID)
	ids := []string{env.ID}
	parent := env.ParentID
	for parent != "" {
		if len(ids) > 64 {
			return nil, internal("envelope %s has a cycle of parents", env.ID)
		}
		ids = append(ids, parent)
		if p, ok := l.parents.m.Load(parent); ok {
			parent = p.(string)
			continue
		}
		var pp *string
		if err := q.queryRow(ctx, "SELECT parent_id FROM envelopes WHERE id = $1", parent).Scan(&pp); err != nil {
			if errors.Is(err, errNoRows) {
				return nil, internal("envelope %s has a missing parent %s", env.ID, parent)
			}
			return nil, err
		}
		next := ""
		if pp != nil {
			next = *pp
		}
		l.parents.m.Store(parent, next)
		parent = next
	}
	return ids, nil
}

// effectiveRules returns the rules in force at time at on each envelope given. It reads the rule
// set in force on each envelope of their chains with one primary-key range statement per
// envelope: the table is written only by SetRules, so these reads conflict with nothing but a
// rule change.
func (l *Ledger) effectiveRules(ctx context.Context, q querier, envs []Envelope, at time.Time) (map[string]*EffectiveRules, error) {
	chains := map[string][]string{}
	var all []string
	seen := map[string]bool{}
	for _, env := range envs {
		ids, err := l.chain(ctx, q, env)
		if err != nil {
			return nil, err
		}
		chains[env.ID] = ids
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	inForce := map[string]*RuleSet{}
	argsList := make([][]any, len(all))
	for i, id := range all {
		argsList[i] = []any{id, micros(at)}
	}
	err := q.queryEach(ctx, "SELECT "+ruleSetColumns+` FROM envelope_rules WHERE envelope_id = $1 AND effective_from <= $2
		ORDER BY effective_from DESC, id DESC LIMIT 1`, argsList, func(s scanner) error {
		rs, err := scanRuleSet(s)
		if errors.Is(err, errNoRows) {
			return nil
		}
		if err == nil {
			inForce[rs.EnvelopeID] = &rs
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]*EffectiveRules{}
	for id, ids := range chains {
		e := &EffectiveRules{}
		for _, a := range ids {
			if rs, ok := inForce[a]; ok {
				e.merge(rs)
			}
		}
		out[id] = e
	}
	return out, nil
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

// checkRules decides whether an award obeys the effective rules of its envelope; already is what
// the project holds on the envelope before it.
func checkRules(r *EffectiveRules, env *Envelope, cmd *Commit, already int64, at time.Time) *Error {
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
			EnvelopeName(env.ID), at.Format(time.RFC3339), r.AwardWindowSet.Call), md, r.AwardWindowSet)
	}
	if r.MinPopulation > 0 {
		if cmd.Population == 0 {
			return policyViolation(env, "min_population", fmt.Sprintf("envelope %q requires a beneficiary's territory of at least %d inhabitants; the award gives no population",
				EnvelopeName(env.ID), r.MinPopulation), map[string]string{"missing": "population",
				"min_population": strconv.FormatInt(r.MinPopulation, 10)}, r.MinPopulationSet)
		}
		if cmd.Population < r.MinPopulation {
			return policyViolation(env, "min_population", fmt.Sprintf("beneficiary %q (%s) has %d inhabitants; envelope %q requires at least %d",
				cmd.Beneficiary, cmd.Territory, cmd.Population, EnvelopeName(env.ID), r.MinPopulation),
				map[string]string{"min_population": strconv.FormatInt(r.MinPopulation, 10),
					"population": strconv.FormatInt(cmd.Population, 10), "territory": cmd.Territory,
					"beneficiary": cmd.Beneficiary}, r.MinPopulationSet)
		}
	}
	if r.needsProjectTotal() {
		bps := r.MaxFundingShareBPS
		if cmd.EligibleCost == 0 {
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

type projectKey struct{ envelopeID, project string }

// projectTotal is what a project holds on an envelope, as read with the envelope's version
// (commitment_count, released): every change of a project total changes one of them, and both
// only grow, so an equal version under the envelope's lock means the total is still current.
type projectTotal struct {
	awarded         int64
	count, released int64 // the envelope's version when read
}

// preloadTotals reads, outside any transaction, the totals of the projects that a funding-share
// rule will be checked for, each with its envelope's version, one statement per project. Inside
// the transaction, a total whose envelope still has that version under its lock is used as is;
// others are read again there. Reading them outside keeps the predicate locks of these lookups
// out of the serializable transaction, where an index page shared with other envelopes' projects
// would make batches on unrelated envelopes abort each other.
func (l *Ledger) preloadTotals(ctx context.Context, units []*unit) map[projectKey]projectTotal {
	var keys []projectKey
	seen := map[projectKey]bool{}
	for _, u := range units {
		if _, ok := l.shareRuled.Load(u.envelopeID); !ok {
			continue
		}
		for _, op := range u.ops {
			if op.commit == nil || op.commit.EligibleCost == 0 {
				continue
			}
			k := projectKey{u.envelopeID, op.commit.Project}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	out := map[projectKey]projectTotal{}
	if len(keys) == 0 {
		return out
	}
	argsList := make([][]any, len(keys))
	for i, k := range keys {
		argsList[i] = []any{k.envelopeID, k.project}
	}
	i := 0
	err := l.eng.reader().queryEach(ctx, `SELECT e.commitment_count, e.released, COALESCE(p.awarded, 0) FROM envelopes e
		LEFT JOIN project_totals p ON p.envelope_id = e.id AND p.project = $2 WHERE e.id = $1`, argsList,
		func(s scanner) error {
			k := keys[i]
			i++
			var t projectTotal
			err := s.Scan(&t.count, &t.released, &t.awarded)
			if errors.Is(err, errNoRows) {
				return nil
			}
			if err == nil {
				out[k] = t
			}
			return err
		})
	if err != nil {
		return map[projectKey]projectTotal{} // read them in the transaction instead
	}
	return out
}

// loadTotals reads project totals inside the transaction, by primary key, one statement each.
func loadTotals(ctx context.Context, q querier, keys []projectKey) (map[projectKey]int64, error) {
	out := map[projectKey]int64{}
	if len(keys) == 0 {
		return out, nil
	}
	argsList := make([][]any, len(keys))
	for i, k := range keys {
		argsList[i] = []any{k.envelopeID, k.project}
	}
	i := 0
	err := q.queryEach(ctx, "SELECT awarded FROM project_totals WHERE envelope_id = $1 AND project = $2", argsList,
		func(s scanner) error {
			k := keys[i]
			i++
			var v int64
			err := s.Scan(&v)
			if errors.Is(err, errNoRows) {
				out[k] = 0
				return nil
			}
			out[k] = v
			return err
		})
	return out, err
}

// projectDelta is a change of a project total made by one accepted award or release.
type projectDelta struct {
	key           projectKey
	amount, count int64
}

// writeTotals adds the batch's changes to the project totals, one upsert per project.
func writeTotals(ctx context.Context, q querier, deltas []projectDelta, at time.Time) error {
	if len(deltas) == 0 {
		return nil
	}
	sum := map[projectKey]*projectDelta{}
	var order []projectKey
	for _, d := range deltas {
		s, ok := sum[d.key]
		if !ok {
			s = &projectDelta{key: d.key}
			sum[d.key] = s
			order = append(order, d.key)
		}
		s.amount += d.amount
		s.count += d.count
	}
	rows := make([][]any, 0, len(order))
	for _, k := range order {
		s := sum[k]
		if s.amount == 0 && s.count == 0 {
			continue
		}
		rows = append(rows, []any{k.envelopeID, k.project, s.amount, s.count, micros(at)})
	}
	return bulkInsert(ctx, q, "project_totals", []string{"envelope_id", "project", "awarded", "award_count", "updated_at"},
		rows, ` ON CONFLICT (envelope_id, project) DO UPDATE SET awarded = project_totals.awarded + excluded.awarded,
		award_count = project_totals.award_count + excluded.award_count, updated_at = excluded.updated_at`,
		internal("a project total was not written"))
}

// addDelta records a change of a project total, and applies it to the totals being checked.
func (b *batchState) addDelta(d projectDelta) {
	b.deltas = append(b.deltas, d)
	if _, ok := b.totals[d.key]; ok {
		b.totals[d.key] += d.amount
	}
}

// loadPolicyState loads, inside the batch's transaction and after its envelopes are locked, the
// effective rules of every envelope found and the totals of the projects a funding-share rule
// will be checked for: those read ahead (preloadTotals) whose envelope kept its version, the
// others by primary key here.
func (l *Ledger) loadPolicyState(ctx context.Context, q querier, b *batchState, units []*unit, envelopeIDs []string,
	pre map[projectKey]projectTotal, at time.Time) error {
	var found []Envelope
	for _, id := range envelopeIDs {
		if s := b.envs[id]; s.found {
			found = append(found, s.env)
		}
	}
	rules, err := l.effectiveRules(ctx, q, found, at)
	if err != nil {
		return err
	}
	b.rules, b.totals = rules, map[projectKey]int64{}
	for id, r := range rules {
		if r.needsProjectTotal() {
			l.shareRuled.Store(id, true)
		} else {
			l.shareRuled.Delete(id)
		}
	}
	var missing []projectKey
	for _, u := range units {
		s := b.envs[u.envelopeID]
		if !s.found || !rules[u.envelopeID].needsProjectTotal() {
			continue
		}
		for _, op := range u.ops {
			if op.commit == nil || op.commit.EligibleCost == 0 {
				continue
			}
			k := projectKey{u.envelopeID, op.commit.Project}
			if _, ok := b.totals[k]; ok {
				continue
			}
			if t, ok := pre[k]; ok && t.count == s.env.CommitmentCount && t.released == s.env.Released {
				b.totals[k] = t.awarded
				continue
			}
			b.totals[k] = 0
			missing = append(missing, k)
		}
	}
	loaded, err := loadTotals(ctx, q, missing)
	if err != nil {
		return err
	}
	for k, v := range loaded {
		b.totals[k] = v
	}
	return nil
}

// verifyProjectTotals checks invariant 4 for project totals: each (envelope, project) row holds
// what its commitments still hold, and counts them.
func verifyProjectTotals(ctx context.Context, q querier, add func(inv int, subject, format string, args ...any)) error {
	type sums struct{ remaining, count int64 }
	want := map[projectKey]*sums{}
	rs, err := q.query(ctx, "SELECT envelope_id, project, amount - released FROM commitments")
	if err != nil {
		return err
	}
	for rs.Next() {
		var (
			k projectKey
			v int64
		)
		if err := rs.Scan(&k.envelopeID, &k.project, &v); err != nil {
			rs.Close()
			return err
		}
		s := want[k]
		if s == nil {
			s = &sums{}
			want[k] = s
		}
		s.remaining += v
		s.count++
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return err
	}
	rs, err = q.query(ctx, "SELECT envelope_id, project, awarded, award_count FROM project_totals")
	if err != nil {
		return err
	}
	defer rs.Close()
	seen := map[projectKey]bool{}
	for rs.Next() {
		var (
			k              projectKey
			awarded, count int64
		)
		if err := rs.Scan(&k.envelopeID, &k.project, &awarded, &count); err != nil {
			return err
		}
		seen[k] = true
		w := want[k]
		if w == nil {
			w = &sums{}
		}
		if awarded != w.remaining || count != w.count {
			add(4, EnvelopeName(k.envelopeID)+" project "+strconv.Quote(k.project),
				"project total stores %d held by %d awards, its commitments hold %d in %d", awarded, count, w.remaining, w.count)
		}
	}
	for k, w := range want {
		if !seen[k] {
			add(4, EnvelopeName(k.envelopeID)+" project "+strconv.Quote(k.project),
				"has no project total, its commitments hold %d in %d", w.remaining, w.count)
		}
	}
	return rs.Err()
}
