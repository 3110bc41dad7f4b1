package model_test

// The generator of random operations. It draws from a seeded source only, and looks at the
// world through a view: the model itself in the sequential test (so that amounts hit the edges
// of what is available), what one client knows in the concurrent test.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/internal/model"
)

// Rule times lie outside every run's span (see model.Span): before it, or after it.
var (
	spanEnd    = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	timePast   = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	timePast2  = time.Date(2002, 6, 1, 0, 0, 0, 0, time.UTC)
	timeFuture = time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
	timeLater  = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Effective times of the generated requests lie in 2021, before every run (backdated), or at
// timeFuture (refused: in the future); the generator's clock moves through 2021 as the run goes.
var (
	backdatedFrom  = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	backdatedUntil = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
)

// view is what the generator knows of the ledger.
type view interface {
	// envelopes returns the envelopes the generator may name, existing or not, with the
	// balances it believes they have.
	envelopes() []model.Envelope
	// commitments returns the commitments it knows, with what it believes they hold.
	commitments() []model.Commitment
}

type generator struct {
	r      *rand.Rand
	view   view
	prefix string // of request ids
	// names are envelope ids that may be created (some exist already).
	names    []string
	parentOf func(name string) string // the parent to create a name under; nil: any
	// roots allows creating root envelopes (the concurrent test keeps its trees apart).
	roots bool
	// noRules leaves out rule changes; ruleTargets, when set, are the envelopes they name.
	noRules     bool
	ruleTargets []string

	n    int
	sent []op // mutating ops sent so far, for retries and reused ids
	// clock is the generator's date in 2021: backdated requests are dated around it.
	clock time.Time
	// etags gives some moves and rule changes etags (AIP-154; the sequential test resolves them).
	etags bool
	// ids draws the awards' publication identifiers (SIRET, RNA): a source of its own, so that
	// a seed draws the same operations as before they had them.
	ids *rand.Rand
	// ruleDates draws the past dates of rule sets: a source of its own too.
	ruleDates *rand.Rand
	// dated makes nearly every request dated, the clock moving by hours (TestModelSequentialDated):
	// envelopes keep dates only for long, so that rule sets with past dates are often kept.
	dated bool
}

// etag draws the etags of a move or a rule change: none most often.
func (g *generator) etag() *etagUse {
	if !g.etags || g.chance(0.6) {
		return nil
	}
	return &etagUse{kind: pick(g, []etagKind{etagCurrent, etagCurrent, etagRemembered, etagRemembered, etagBogus})}
}

func newGenerator(seed uint64, v view, prefix string, names []string) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), view: v, prefix: prefix, names: names,
		ids: rand.New(rand.NewPCG(seed, seed^0x5123e7)), ruleDates: rand.New(rand.NewPCG(seed, seed^0x7a1e5da7e))}
}

func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

// effective draws a request's effective time: mostly none (when recorded), often a date of 2021
// around the generator's clock (which moves forward), so that some are accepted and some are
// before an envelope or its latest effective time, rarely one in the future.
func (g *generator) effective() time.Time {
	if g.clock.IsZero() {
		g.clock = backdatedFrom
	}
	if g.dated {
		return g.datedEffective()
	}
	switch x := g.r.IntN(100); {
	case x < 60:
		return time.Time{}
	case x < 97:
		if next := g.clock.AddDate(0, 0, g.r.IntN(6)); next.Before(backdatedUntil) {
			g.clock = next
		}
		if g.chance(0.2) {
			return g.clock.AddDate(0, 0, -g.r.IntN(30)) // perhaps before what is recorded
		}
		return g.clock
	}
	return timeFuture
}

// datedEffective is effective for a dated generator: nearly always a date, the clock moving by
// hours, now and then a day or two before it; rarely none (a time of the run), or the future.
func (g *generator) datedEffective() time.Time {
	switch x := g.r.IntN(100); {
	case x < 3:
		return time.Time{}
	case x < 99:
		if next := g.clock.Add(time.Duration(g.r.IntN(12)) * time.Hour); next.Before(backdatedUntil) {
			g.clock = next
		}
		if g.chance(0.2) {
			return g.clock.Add(-time.Duration(g.r.IntN(48)) * time.Hour) // perhaps before what is recorded
		}
		return g.clock
	}
	return timeFuture
}

func (g *generator) requestID() string {
	g.n++
	return fmt.Sprintf("%sq%d", g.prefix, g.n)
}

func pick[T any](g *generator, xs []T) T { return xs[g.r.IntN(len(xs))] }

func (g *generator) caller() string {
	if g.chance(0.05) {
		return "service:other"
	}
	return "admin:model"
}

// amount draws an amount around what is available: often exactly at the edges, sometimes at
// the edges of int64, rarely invalid.
func (g *generator) amount(available int64) int64 {
	x := g.r.IntN(100)
	switch {
	case x < 25:
		return 1 + g.r.Int64N(1000)
	case x < 40 && available > 0:
		return available
	case x < 48 && available < math.MaxInt64:
		return available + 1
	case x < 55 && available > 1:
		return available - 1
	case x < 75 && available > 0:
		return 1 + g.r.Int64N(available)
	case x < 85:
		return math.MaxInt64 - g.r.Int64N(3)
	case x < 88:
		return -g.r.Int64N(2) // 0 or -1: INVALID_ARGUMENT
	}
	return 1 + g.r.Int64N(1_000_000)
}

func (g *generator) allocation() int64 {
	switch x := g.r.IntN(10); {
	case x < 4:
		return 1_000_000 + g.r.Int64N(1_000_000_000)
	case x < 6:
		return 1_000_000_000_000_000
	case x < 9:
		return math.MaxInt64 - g.r.Int64N(2)
	}
	return 1 + g.r.Int64N(100)
}

func (g *generator) envelope() model.Envelope {
	envs := g.view.envelopes()
	if len(envs) == 0 || g.chance(0.08) {
		return model.Envelope{ID: pick(g, g.names)}
	}
	return pick(g, envs)
}

// next returns the next operation.
func (g *generator) next() op {
	x := g.r.IntN(100)
	var o op
	switch {
	case x < 8:
		o = g.create()
	case x < 18:
		o = g.move()
	case x < 21 && !g.noRules:
		o = g.setRules()
	case x < 46:
		o = g.commit()
	case x < 56:
		o = g.release()
	case x < 62:
		o = g.pay()
	case x < 64:
		o = g.closeCommitment()
	case x < 72:
		o = g.bulk()
	case x < 82 && len(g.sent) > 0:
		return pick(g, g.sent) // a retry: the same request, again
	case x < 87 && len(g.sent) > 0:
		// The id of an earlier request with another payload: REQUEST_ID_REUSED (or, rarely,
		// the same payload drawn again: a replay).
		prior := pick(g, g.sent)
		if g.chance(0.3) {
			return prior.withCaller("service:someone-else")
		}
		return g.fresh().withRequestID(prior.requestID())
	case x < 94:
		return op{getEnvelope: g.envelope().ID}
	default:
		if cs := g.view.commitments(); len(cs) > 0 && g.chance(0.8) {
			return op{getCommitment: pick(g, cs).ID}
		}
		return op{getCommitment: g.unknownCommitment()}
	}
	g.sent = append(g.sent, o)
	return o
}

// fresh returns a new mutating operation without recording it.
func (g *generator) fresh() op {
	switch g.r.IntN(6) {
	case 0:
		return g.create()
	case 1:
		return g.move()
	case 2:
		if !g.noRules {
			return g.setRules()
		}
		return g.commit()
	case 3:
		return g.release()
	case 4:
		return g.bulk()
	case 5:
		if g.chance(0.5) {
			return g.pay()
		}
		return g.closeCommitment()
	}
	return g.commit()
}

func (g *generator) create() op {
	c := &model.CreateEnvelope{RequestID: g.requestID(), Caller: g.caller(), EnvelopeID: pick(g, g.names),
		DisplayName: "envelope", Allocation: g.allocation()}
	switch {
	case g.roots && g.chance(0.25):
		if g.chance(0.2) {
			c.Currency = "USD"
		}
	default:
		parent := g.envelope()
		if g.parentOf != nil {
			parent = model.Envelope{ID: g.parentOf(c.EnvelopeID)}
			for _, e := range g.view.envelopes() {
				if e.ID == parent.ID {
					parent = e
				}
			}
		}
		c.ParentID = parent.ID
		c.Allocation = g.amount(parent.Available())
		switch x := g.r.IntN(10); {
		case x == 0:
			c.Currency = "USD"
		case x == 1:
			c.Currency = parent.Currency
		}
	}
	if c.Allocation <= 0 && g.chance(0.7) {
		c.Allocation = 1
	}
	c.Effective = g.effective()
	if c.Effective.IsZero() && g.chance(0.6) && !g.clock.IsZero() {
		c.Effective = g.clock // envelopes dated in 2021 take backdated awards
	}
	return op{create: c}
}

func (g *generator) move() op {
	envs := g.view.envelopes()
	c := &model.MoveAllocation{RequestID: g.requestID(), Caller: g.caller(), Reason: "move"}
	var src, dst model.Envelope
	if len(envs) >= 2 && g.chance(0.7) {
		// A related pair when one can be found: parent and child, either way, or siblings.
		a := pick(g, envs)
		var related []model.Envelope
		for _, e := range envs {
			if e.ID != a.ID && (e.ParentID == a.ID || a.ParentID == e.ID || (e.ParentID == a.ParentID && (g.roots || e.ParentID != ""))) {
				related = append(related, e)
			}
		}
		if len(related) > 0 {
			src, dst = a, pick(g, related)
		} else {
			src, dst = a, pick(g, envs)
		}
	} else {
		src, dst = g.envelope(), g.envelope()
	}
	if !g.roots && src.ParentID == "" && dst.ParentID == "" && src.ID != dst.ID && len(envs) > 0 {
		// Two roots are siblings: keep the concurrent test's trees apart.
		dst = envs[0]
		for _, e := range envs {
			if e.ParentID == src.ID {
				dst = e
			}
		}
	}
	c.SourceID, c.DestinationID = src.ID, dst.ID
	c.Amount = g.amount(src.Available())
	c.Effective = g.effective()
	return op{move: c, etag: g.etag()}
}

func ptr(v int64) *int64 { return &v }

func (g *generator) setRules() op {
	c := &model.SetRules{RequestID: g.requestID(), Caller: g.caller(), EnvelopeID: g.envelope().ID,
		Call: fmt.Sprintf("appel-%d", g.r.IntN(3))}
	if g.ruleTargets != nil {
		c.EnvelopeID = pick(g, g.ruleTargets)
	}
	r := &c.Rules
	switch x := g.r.IntN(10); {
	case x < 3:
	case x < 5:
		r.MaxFundingShareBPS = ptr(5000)
	case x < 6:
		r.MaxFundingShareBPS = ptr(7500)
	case x < 7:
		r.MaxFundingShareBPS = ptr(10000)
	case x < 8:
		r.MaxFundingShareBPS = ptr(1 + g.r.Int64N(9999))
	case x < 9:
		r.MaxFundingShareBPS = ptr(1)
	default:
		r.MaxFundingShareBPS = ptr(pick(g, []int64{0, 10001})) // INVALID_ARGUMENT
	}
	switch x := g.r.IntN(20); {
	case x < 10:
	case x < 14:
		r.MinPopulation = ptr(0)
	case x < 17:
		r.MinPopulation = ptr(300_000)
	case x < 19:
		r.MinPopulation = ptr(500_000)
	default:
		r.MinPopulation = ptr(math.MaxInt64)
	}
	switch x := g.r.IntN(20); {
	case x < 10:
	case x < 13:
		r.AwardWindow = &model.Window{} // lifts an inherited window
	case x < 15:
		r.AwardWindow = &model.Window{Start: timePast, End: timeLater} // contains the run
	case x < 16:
		r.AwardWindow = &model.Window{Start: timePast, End: timePast2} // closed before the run
	case x < 17:
		r.AwardWindow = &model.Window{Start: timeFuture} // opens after the run
	case x < 19:
		r.AwardWindow = &model.Window{End: timeLater}
	default:
		r.AwardWindow = &model.Window{Start: timePast2, End: timePast} // INVALID_ARGUMENT
	}
	switch x := g.r.IntN(10); {
	case x < 6:
	case x < 8:
		c.EffectiveTime = timePast // at once
	default:
		c.EffectiveTime = timeFuture // never within the run
	}
	c.EffectiveTime = g.ruleDate(c.EnvelopeID, c.EffectiveTime)
	r.AwardWindow = g.ruleWindow(r.AwardWindow)
	return op{rules: c, etag: g.etag()}
}

// ruleWindow returns the award window drawn (none, or one of the fixed ones) or, now and then, one
// of 2021 around the generator's clock instead, from the rule dates' source (so that a seed draws
// the same operations as before): one that closes in 2021 takes no award of the run, but judges
// the awards dated in it or out of it by a rule set in force at their dates; one that opens in
// 2021 and never closes takes those of the run, and those dated from its start. A window that is
// INVALID_ARGUMENT stays so.
func (g *generator) ruleWindow(w *model.Window) *model.Window {
	if w != nil && !w.Start.IsZero() && !w.End.IsZero() && !w.Start.Before(w.End) {
		return w
	}
	if g.ruleDates.IntN(4) > 0 {
		return w
	}
	clock := g.clock
	if clock.IsZero() {
		clock = backdatedFrom
	}
	start := clock.AddDate(0, 0, -g.ruleDates.IntN(20))
	switch g.ruleDates.IntN(3) {
	case 0:
		return &model.Window{Start: start, End: start.AddDate(0, 0, 1+g.ruleDates.IntN(20))}
	case 1:
		return &model.Window{Start: start}
	}
	return &model.Window{End: start}
}

// ruleDate draws, instead of a rule set's effective time drawn (none, timePast, or timeFuture),
// now and then a date of 2021, from a source of its own (so that a seed draws the same operations
// as before). One at or before the latest effective time of the envelope and its descendants is
// in force at once; one after it is kept, in force from that date for the awards dated from then
// on (and now, until a rule set is given at once), perhaps before or at the date of a rule set
// kept already. When the generator sees only dates in the envelope's subtree, most rule sets
// get a date around the latest of them, about half of them kept; else a few get one around the
// generator's clock (at once: the subtree has a time of the run), which it reads, never moves.
func (g *generator) ruleDate(envelopeID string, drawn time.Time) time.Time {
	if drawn.Equal(timeFuture) {
		return drawn
	}
	if latest, dated := g.subtreeLatest(envelopeID); dated {
		if g.ruleDates.IntN(5) == 0 {
			return drawn
		}
		unit := 24 * time.Hour
		if g.dated {
			unit = 8 * time.Hour // the clock moves by hours
		}
		return latest.Add(time.Duration(g.ruleDates.IntN(9)-4) * unit)
	}
	if g.ruleDates.IntN(5) >= 1 {
		return drawn
	}
	around := g.clock
	if around.IsZero() {
		around = backdatedFrom
	}
	return around.AddDate(0, 0, g.ruleDates.IntN(12)-6)
}

// subtreeLatest returns the latest effective time the generator sees on an envelope and its
// descendants, and whether it is a date before the run (not a time of the run, nor unknown: the
// concurrent test's clients see their envelopes without times).
func (g *generator) subtreeLatest(envelopeID string) (time.Time, bool) {
	envs := g.view.envelopes()
	parent := map[string]string{}
	for _, e := range envs {
		parent[e.ID] = e.ParentID
	}
	var latest time.Time
	found := false
	for _, e := range envs {
		for id := e.ID; id != ""; id = parent[id] {
			if id == envelopeID {
				found = true
				if e.LatestEffectiveAt.After(latest) {
					latest = e.LatestEffectiveAt
				}
				break
			}
		}
	}
	return latest, found && !latest.IsZero() && latest.Before(backdatedUntil)
}

func (g *generator) policy(amount int64) model.Policy {
	var p model.Policy
	switch x := g.r.IntN(10); {
	case x < 3:
	case x < 5:
		p.EligibleCost = scale(amount, 2, 1)
	case x < 6:
		p.EligibleCost = amount
	case x < 7:
		p.EligibleCost = scale(amount, 4, 3)
	case x < 8:
		p.EligibleCost = math.MaxInt64
	case x < 9:
		p.EligibleCost = 1 + g.r.Int64N(1_000_000)
	default:
		p.EligibleCost = -1 // INVALID_ARGUMENT
	}
	switch x := g.r.IntN(10); {
	case x < 4:
	case x < 6:
		p.Population, p.Territory = 250_000, "insee:69123"
	case x < 8:
		p.Population, p.Territory = 300_000, "insee:13055"
	default:
		p.Population, p.Territory = 600_000+g.r.Int64N(1000), "insee:75056"
	}
	return p
}

// scale returns amount*num/den, or MaxInt64 when that does not fit.
func scale(amount, num, den int64) int64 {
	if amount > math.MaxInt64/num {
		return math.MaxInt64
	}
	return amount * num / den
}

func (g *generator) item(available int64) model.BulkItem {
	amount := g.amount(available)
	if amount <= 0 && g.chance(0.8) {
		amount = 1
	}
	it := model.BulkItem{Beneficiary: fmt.Sprintf("siren:%d", 200000000+g.r.IntN(5)),
		Project: fmt.Sprintf("projet-%d", g.r.IntN(4)), Amount: amount, Description: "award",
		Policy: g.policy(amount)}
	// Rarely, free text with a character the rule of free text refuses (INVALID_ARGUMENT): a
	// right-to-left override, a C1 control, a line separator, a zero-width space, a DEL.
	if g.chance(0.02) {
		hidden := []string{"\u202e", "\u0085", "\u2028", "\u200b", "\x7f"}[g.r.IntN(5)]
		switch g.r.IntN(3) {
		case 0:
			it.Beneficiary += hidden
		case 1:
			it.Project = hidden + it.Project
		default:
			it.Description += hidden
		}
	}
	return it
}

func (g *generator) commit() op {
	env := g.envelope()
	it := g.item(env.Available())
	c := &model.Commit{RequestID: g.requestID(), Caller: g.caller(), EnvelopeID: env.ID,
		Beneficiary: it.Beneficiary, Project: it.Project, Amount: it.Amount, Description: it.Description,
		Policy: it.Policy, Effective: g.effective()}
	if g.chance(0.3) {
		// Publication fields, from a small set: a request sent again with another of them is a
		// different request (REQUEST_ID_REUSED), which the model must predict too.
		c.Publication = model.Publication{DecisionReference: pick(g, []string{"", "CP-2021-044", "CP-2021-045"}),
			BeneficiaryLegalName: pick(g, []string{"", "Commune de Lyon", "Commune de Metz"}),
			Purpose:              pick(g, []string{"", "Guichet numérique", "Tiers-lieu"})}
	}
	c.BeneficiarySIRET, c.BeneficiaryRNA = g.identifiers()
	return op{commit: c}
}

// identifiers draws an award's SIRET and RNA number: mostly none; else valid ones (Luhn, or La
// Poste's rule), and invalid ones (a wrong check digit, a wrong length, a letter; an RNA number
// without its W, or short of a digit).
func (g *generator) identifiers() (siret, rna string) {
	r := g.ids
	if r.IntN(4) > 0 {
		return "", ""
	}
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	switch x := r.IntN(20); {
	case x < 3:
	case x < 6:
		siret = knownSIRETs[r.IntN(len(knownSIRETs))]
	case x < 11:
		siret = withLuhnKey(digits(13))
	case x < 13: // La Poste: its digits' sum a multiple of 5 (Luhn or not)
		body := "356000000" + digits(4)
		siret = body + strconv.Itoa((5-digitSum(body)%5)%5+5*r.IntN(2))
	case x < 15: // a wrong check digit
		ok := withLuhnKey(digits(13))
		siret = ok[:13] + strconv.Itoa((int(ok[13]-'0')+1+r.IntN(9))%10)
	case x == 15: // La Poste's SIREN, neither rule
		for siret == "" || luhnValid(siret) || digitSum(siret)%5 == 0 {
			siret = "356000000" + digits(5)
		}
	case x == 16:
		siret = withLuhnKey(digits(12 + 2*r.IntN(2))) // 13 or 15 digits
	case x == 17:
		ok := withLuhnKey(digits(13))
		siret = ok[:5] + "A" + ok[6:]
	case x == 18:
		siret = "3560000000004８" // a full-width digit
	default:
		siret = "21690123100011 " // a space after
	}
	switch x := r.IntN(10); {
	case x < 5:
	case x < 9:
		rna = "W" + digits(9)
	default:
		rna = []string{"w" + digits(9), digits(9), "W" + digits(8), "W" + digits(10), "W" + digits(8) + "A"}[r.IntN(5)]
	}
	return siret, rna
}

// knownSIRETs are SIRETs of real establishments (La Poste's head office, a multinational's
// French branch, the city of Lyon, DINUM, a ministry's): each passes the Luhn check.
var knownSIRETs = []string{"35600000000048", "73282932000074", "21690123100011", "13002526500013", "11000201100044"}

// luhnValid is the Luhn check, written for the tests apart from the model's ValidSIRET.
func luhnValid(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d = 2*d/10 + 2*d%10
		}
		sum += d
	}
	return sum%10 == 0
}

// withLuhnKey appends to body the digit that makes it pass the Luhn check.
func withLuhnKey(body string) string {
	for d := range 10 {
		if s := body + strconv.Itoa(d); luhnValid(s) {
			return s
		}
	}
	panic("no Luhn key")
}

func digitSum(s string) int {
	sum := 0
	for _, c := range s {
		sum += int(c - '0')
	}
	return sum
}

func (g *generator) bulk() op {
	env := g.envelope()
	c := &model.BulkCommit{RequestID: g.requestID(), Caller: g.caller(), EnvelopeID: env.ID,
		AllOrNothing: g.chance(0.4)}
	n := 1 + g.r.IntN(5)
	for range n {
		c.Items = append(c.Items, g.item(max(env.Available()/int64(n), 1)))
	}
	if g.ids.IntN(4) == 0 { // one call in four gives its items identifiers (an invalid one refuses the call)
		for i := range c.Items {
			c.Items[i].BeneficiarySIRET, c.Items[i].BeneficiaryRNA = g.identifiers()
		}
	}
	c.Effective = g.effective()
	return op{bulk: c}
}

// unknownCommitment draws the id of no commitment: a canonical UUID, or now and then 36 hex
// digits and dashes that are no canonical UUID (refused before they reach a database whose ids are
// native UUIDs: PostgreSQL answered them INTERNAL once).
func (g *generator) unknownCommitment() string {
	id := fmt.Sprintf("00000000-0000-7000-8000-%012x", g.r.Int64N(1<<40))
	if g.chance(0.2) {
		switch g.r.IntN(3) {
		case 0:
			return strings.ReplaceAll(id, "-", "0") // 36 hex digits, no dash
		case 1:
			return id[:24] + "ABCDEF" + id[30:] // upper case: PostgreSQL would accept it
		default:
			return id[1:9] + "-" + id[9:] // a dash out of place
		}
	}
	return id
}

func (g *generator) release() op {
	c := &model.Release{RequestID: g.requestID(), Caller: g.caller(), Reason: "release"}
	cs := g.view.commitments()
	if len(cs) == 0 || g.chance(0.1) {
		c.CommitmentID, c.Amount = g.unknownCommitment(), 1+g.r.Int64N(100)
		c.Effective = g.effective()
		return op{release: c}
	}
	com := pick(g, cs)
	c.CommitmentID = com.ID
	c.Amount = g.amount(com.Remaining())
	c.Effective = g.effective()
	return op{release: c}
}

// pay draws a payment of a known commitment (an advance, the balance, one cent too many), now
// and then of an unknown one.
func (g *generator) pay() op {
	c := &model.CreatePayment{RequestID: g.requestID(), Caller: g.caller(), Effective: g.effective()}
	cs := g.view.commitments()
	if len(cs) == 0 || g.chance(0.1) {
		c.CommitmentID, c.Amount = g.unknownCommitment(), 1+g.r.Int64N(100)
		return op{pay: c}
	}
	com := pick(g, cs)
	c.CommitmentID = com.ID
	switch rest := com.RemainingToPay(); {
	case g.chance(0.3) && rest > 1:
		c.Amount = rest / 3 // an advance
	default:
		c.Amount = g.amount(rest)
	}
	return op{pay: c}
}

// closeCommitment draws the closing of a known commitment, now and then of an unknown one.
func (g *generator) closeCommitment() op {
	c := &model.CloseCommitment{RequestID: g.requestID(), Caller: g.caller(), Reason: "closed", Effective: g.effective()}
	cs := g.view.commitments()
	if len(cs) == 0 || g.chance(0.1) {
		c.CommitmentID = g.unknownCommitment()
		return op{close: c}
	}
	c.CommitmentID = pick(g, cs).ID
	return op{close: c}
}
