// Package audit is the ledger's verifier: it reads every table in one consistent snapshot,
// recomputes every balance from the journal with arbitrary precision (so a corrupt row cannot
// hide behind an overflow), and checks each invariant with a function of its own. It reads only;
// it never repairs.
//
// The invariants (numbered as in the design notes): 1 every journal entry balances, between
// accounts that exist, in one currency (a child in its parent's, a commitment in its envelope's);
// 2 no envelope's available amount is negative; 3 no commitment released more than its amount; 4
// stored balances equal the journal's (payments and closing included: payments.go); 5 one request id posted at most one entry; 6 the journal,
// the request log and the rule sets are append-only (each rule set equals its RULES_CHANGED
// entry); 7 a refused request posted nothing; 9 the journal's positions are gap-free; 20 every
// hold returned or committed its amount exactly once (holds.go); 30 paid + released ≤ amount; 40
// (InvariantEffective) every envelope's available amount was ≥ 0 at every effective instant.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Discrepancy is one broken invariant found by Verify.
type Discrepancy struct {
	// Invariant is the number of the invariant in docs (1: entries balance, between accounts that
	// exist, in one currency; 2: available >= 0; 3: released <= amount; 4: stored balances =
	// journal; 5: one entry per request id; 6: the journal, the request log and the rule sets are
	// append-only; 7: a refused request posted nothing; 9: the journal's positions are 1…N, each
	// once; 20: every hold settled once, see InvariantHoldSettledOnce; 30: paid + released ≤
	// amount and a closed commitment has nothing left to pay).
	Invariant int
	// Subject is the resource concerned, e.g. "envelopes/axis-1".
	Subject string
	Detail  string
}

func (d Discrepancy) String() string {
	return fmt.Sprintf("invariant %d: %s: %s", d.Invariant, d.Subject, d.Detail)
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Envelopes     int
	Commitments   int
	Entries       int
	Discrepancies []Discrepancy
}

// OK reports whether no invariant was found broken.
func (r VerifyReport) OK() bool { return len(r.Discrepancies) == 0 }

func (r *VerifyReport) add(inv int, subject, format string, args ...any) {
	r.Discrepancies = append(r.Discrepancies, Discrepancy{inv, subject, fmt.Sprintf(format, args...)})
}

// entryRow is what the checks read of a journal entry. Its requestID, caller and memo are kept
// for a rule change and a payment only (the checks that compare them with other rows); they are
// empty for every other entry.
type entryRow struct {
	id, requestID, kind, currency, caller, memo string
	createdAt                                   int64
	// effectiveAt is when the entry took effect (microseconds; created_at for an entry written
	// before effective times existed).
	effectiveAt int64
	// seq is the entry's position in the journal (nil: not given yet).
	seq *int64
	// postings are the entry's postings, in order.
	postings []core.Posting
}

// answeredRuleSet is what the request log recorded of a rule set that the journal entry does not
// hold: its envelope and effective time (microseconds).
type answeredRuleSet struct {
	envelopeID    string
	effectiveFrom int64
}

// ruleSetRow is a row of envelope_rules as stored: rules is the JSON text, times are microseconds.
type ruleSetRow struct {
	id, envelopeID, call, rules, caller, requestID string
	effectiveFrom, createdAt                       int64
}

// snapshot is every row the checks read, from one consistent snapshot.
type snapshot struct {
	// accounts are the postings summed per account.
	accounts map[string]*big.Int
	// lastSeq is journal_head's last position given.
	lastSeq int64
	// entries are the journal's entries, sorted by id, each with its postings. The snapshot
	// keeps one row per entry and per commitment and a balance per account, nothing more per
	// entry: a ledger of millions of awards is verified in memory proportional to its rows.
	entries []entryRow
	// orphans are postings whose entry does not exist, by entry id (normally none).
	orphans  map[string][]core.Posting
	ruleSets []ruleSetRow
	// answeredRuleSets are the rule sets as SetRules answered them, by id (request log).
	answeredRuleSets map[string]answeredRuleSet
	// unlogged are entries whose request is missing from the request log or recorded as refused
	// (operation is nil for a missing one).
	unlogged []unlogged
	// unanswerable are the request log's rows that cannot give back their first answer.
	unanswerable []unanswerable
	postedTwice  []postedTwice
	commitments  []core.Commitment
	envelopes    []core.Envelope
	// totals are the stored project totals.
	totals []projectTotal
	// payments are the payments out of commitments (payments.go).
	payments []core.Payment
	// holds and holdPostings are the holds and the postings to their accounts (holds.go).
	holds        []core.Hold
	holdPostings []holdPosting
}

// postedTwice is a request under which the journal holds more than one entry.
type postedTwice struct {
	requestID, caller string
	entries           int64
}

type unanswerable struct {
	key, why string
}

type unlogged struct {
	entry, requestID string
	operation        *string
}

type projectTotal struct {
	key            core.ProjectKey
	awarded, count int64
}

// Verify reads the ledger in one read-only transaction of db and checks every invariant.
func Verify(ctx context.Context, db store.Engine) (VerifyReport, error) {
	var rep VerifyReport
	err := db.ReadOnly(ctx, func(q store.Querier) error {
		s, err := load(ctx, q)
		if err != nil {
			return err
		}
		rep = check(s)
		return nil
	})
	return rep, err
}

// check runs every invariant's check on a snapshot.
func check(s *snapshot) VerifyReport {
	rep := VerifyReport{Entries: len(s.entries), Commitments: len(s.commitments), Envelopes: len(s.envelopes)}
	entriesBalance(s, &rep)
	onePostingEntryPerRequest(s, &rep)
	requestLogComplete(s, &rep)
	commitmentsMatchJournal(s, &rep)
	envelopesMatchJournal(s, &rep)
	fundingMatchesRoots(s, &rep)
	projectTotalsMatchCommitments(s, &rep)
	postingAccountsExist(s, &rep)
	childCurrenciesMatchParents(s, &rep)
	commitmentCurrenciesMatchEnvelopes(s, &rep)
	entryCurrenciesMatchAccounts(s, &rep)
	ruleSetsMatchJournal(s, &rep)
	journalPositionsGapFree(s, &rep)
	availableAtEveryEffectiveInstant(s, &rep)
	paymentsMatchJournal(s, &rep)
	holdsSettledOnce(s, &rep)
	return rep
}

// InvariantEffective is the number of the invariant "available ≥ 0 at every effective instant"
// (the design notes' invariant 10, its part on dates), as the API's Invariant enum numbers it
// (INVARIANT_AVAILABLE_NOT_NEGATIVE_AT_EVERY_EFFECTIVE_INSTANT).
const InvariantEffective = 40

// availableAtEveryEffectiveInstant checks that backdating never made a balance negative in the
// past: it replays the journal in effective order, account by account, and finds every
// envelope's available amount and every commitment's remaining amount ≥ 0 at every effective
// instant (after all the entries of that instant), not only at the latest. It also checks the
// backdating rule's premises: no entry took effect after it was recorded, and none took effect
// on an envelope before the envelope itself did.
func availableAtEveryEffectiveInstant(s *snapshot, rep *VerifyReport) {
	// One event per posting to an envelope or a commitment, sorted by account then effective
	// time (stable: the journal's order within an instant does not matter, its sum does).
	type event struct {
		account    string
		at, amount int64
	}
	var events []event
	envEffective := map[string]int64{}
	for _, e := range s.envelopes {
		envEffective[core.EnvelopeName(e.ID)] = e.EffectiveAt.UnixMicro()
	}
	for _, e := range s.entries {
		if e.effectiveAt > e.createdAt {
			rep.add(InvariantEffective, core.EntryName(e.id), "took effect at %s, after it was recorded at %s",
				micro(e.effectiveAt), micro(e.createdAt))
		}
		var early []string // the accounts reported for this entry
		for _, p := range e.postings {
			if since, ok := envEffective[p.Account]; ok && e.effectiveAt < since && !slices.Contains(early, p.Account) {
				early = append(early, p.Account)
				rep.add(InvariantEffective, core.EntryName(e.id), "took effect at %s on %s, which took effect at %s",
					micro(e.effectiveAt), p.Account, micro(since))
			}
			if strings.HasPrefix(p.Account, "envelopes/") || strings.HasPrefix(p.Account, "commitments/") {
				events = append(events, event{p.Account, e.effectiveAt, p.Amount})
			}
		}
	}
	slices.SortFunc(events, func(a, b event) int {
		if c := strings.Compare(a.account, b.account); c != 0 {
			return c
		}
		return cmp.Compare(a.at, b.at)
	})
	balance := new(big.Int)
	negative := false // the current account was already reported
	for i, ev := range events {
		if i == 0 || ev.account != events[i-1].account {
			balance.SetInt64(0)
			negative = false
		}
		balance.Add(balance, big.NewInt(ev.amount))
		if negative || (i+1 < len(events) && events[i+1].account == ev.account && events[i+1].at == ev.at) {
			continue // reported already, or the instant is not over
		}
		if balance.Sign() < 0 {
			rep.add(InvariantEffective, ev.account, "its balance was %s at the effective instant %s", balance, micro(ev.at))
			negative = true
		}
	}
}

func micro(v int64) string { return time.UnixMicro(v).UTC().Format(time.RFC3339Nano) }

// entriesBalance checks invariant 1: each entry's postings sum to zero (a rule change has none),
// and every posting belongs to an entry (there is no foreign key; see the schema).
func entriesBalance(s *snapshot, rep *VerifyReport) {
	for _, e := range s.entries {
		sum, ok := new(big.Int), len(e.postings) > 0
		for _, p := range e.postings {
			sum.Add(sum, big.NewInt(p.Amount))
		}
		switch {
		case core.EntryKind(e.kind) == core.KindRulesChanged:
			// A rule change moves no money: it must have no postings (see KindRulesChanged).
			if ok {
				rep.add(1, core.EntryName(e.id), "changes rules but has postings")
			}
		case core.EntryKind(e.kind) == core.KindCommitmentClosed && !ok:
			// A closing with nothing left to pay moves no money.
		case !ok:
			rep.add(1, core.EntryName(e.id), "has no postings")
		case sum.Sign() != 0:
			rep.add(1, core.EntryName(e.id), "postings sum to %s, not 0", sum)
		}
	}
	for _, id := range sortedKeys(s.orphans) {
		rep.add(1, core.EntryName(id), "has postings but no journal entry")
	}
}

// onePostingEntryPerRequest checks invariant 5: no request id posted twice. Request ids belong
// to their caller: two callers' requests with the same id are two requests.
func onePostingEntryPerRequest(s *snapshot, rep *VerifyReport) {
	// In the order of the request log's keys (core.RequestKey: the request id, a tab, the caller).
	slices.SortFunc(s.postedTwice, func(a, b postedTwice) int {
		return strings.Compare(core.RequestKey(a.caller, a.requestID), core.RequestKey(b.caller, b.requestID))
	})
	for _, d := range s.postedTwice {
		rep.add(5, fmt.Sprintf("request %s of %s", d.requestID, d.caller), "posted %d journal entries", d.entries)
	}
}

// requestLogComplete checks invariants 6 and 7, as far as the rows left can show them: every entry
// was recorded in the request log in the same transaction (an entry whose request is missing
// means a row of the log was removed), a request recorded as refused posted nothing, and every
// answer the log keeps can still be given back to a retry as it was given the first time.
func requestLogComplete(s *snapshot, rep *VerifyReport) {
	for _, u := range s.unanswerable {
		requestID, caller, _ := strings.Cut(u.key, "\t")
		subject := "request " + requestID
		if caller != "" {
			subject += " of " + caller
		}
		rep.add(6, subject, "its recorded answer cannot be given back to a retry: %s", u.why)
	}
	for _, u := range s.unlogged {
		if u.operation == nil {
			rep.add(6, core.EntryName(u.entry), "its request %q is missing from the request log", u.requestID)
		} else {
			rep.add(7, core.EntryName(u.entry), "its request %q is recorded as refused (%s), yet it posted", u.requestID, *u.operation)
		}
	}
}

// commitmentsMatchJournal checks invariants 3 and 4 for commitments: released ≤ amount, and what
// each holds equals its account's balance in the journal; and invariant 6: each commitment's
// amount and dates are those of the entry that made it (COMMITTED, or HOLD_CONFIRMED for an award
// made by confirming a hold), the first to pay into its account. The dates are what the open data
// publishes (dateConvention) and what reports as of a date count the award by: a commitment
// whose effective time was moved changes no balance.
func commitmentsMatchJournal(s *snapshot, rep *VerifyReport) {
	made := map[string]*entryRow{}
	for i := range s.entries {
		e := &s.entries[i]
		if k := core.EntryKind(e.kind); k != core.KindCommitted && k != core.KindHoldConfirmed {
			continue
		}
		for _, p := range e.postings {
			if p.Amount > 0 && strings.HasPrefix(p.Account, core.CommitmentName("")) {
				if first, ok := made[p.Account]; !ok || e.createdAt < first.createdAt {
					made[p.Account] = e
				}
			}
		}
	}
	for _, c := range s.commitments {
		name := core.CommitmentName(c.ID)
		if c.Released < 0 || c.Released > c.Amount {
			rep.add(3, name, "released %d of an amount of %d", c.Released, c.Amount)
		}
		// What was paid left the commitment's account (payments.go).
		if got := balance(s.accounts, name); got.Cmp(big.NewInt(c.RemainingToPay())) != 0 {
			rep.add(4, name, "stores %d remaining to pay, the journal says %s", c.RemainingToPay(), got)
		}
		e := made[name]
		if e == nil {
			rep.add(6, name, "no COMMITTED or HOLD_CONFIRMED journal entry made it")
			continue
		}
		var credited int64
		for _, p := range e.postings {
			if p.Account == name {
				credited += p.Amount
			}
		}
		var diffs []string
		if credited != c.Amount {
			diffs = append(diffs, fmt.Sprintf("amount %d, the entry credits %d", c.Amount, credited))
		}
		if at := c.CreatedAt.UnixMicro(); at != e.createdAt {
			diffs = append(diffs, fmt.Sprintf("recorded at %s, the entry at %s", micro(at), micro(e.createdAt)))
		}
		if !c.EffectiveAt.IsZero() && c.EffectiveAt.UnixMicro() != e.effectiveAt {
			diffs = append(diffs, fmt.Sprintf("took effect at %s, the entry at %s", micro(c.EffectiveAt.UnixMicro()), micro(e.effectiveAt)))
		}
		if len(diffs) > 0 {
			rep.add(6, name, "differs from the journal entry %s that made it: %s", core.EntryName(e.id), strings.Join(diffs, "; "))
		}
	}
}

// envelopesMatchJournal checks invariants 2 and 4 for envelopes: available ≥ 0; available equals
// the journal's balance; committed, released and the commitment count equal their commitments';
// the allocation to children equals the children's allocations.
func envelopesMatchJournal(s *snapshot, rep *VerifyReport) {
	type sums struct{ remaining, released, count big.Int }
	perEnvelope := map[string]*sums{}
	for _, c := range s.commitments {
		p := perEnvelope[c.EnvelopeID]
		if p == nil {
			p = &sums{}
			perEnvelope[c.EnvelopeID] = p
		}
		p.remaining.Add(&p.remaining, big.NewInt(c.Remaining()))
		p.released.Add(&p.released, big.NewInt(c.Released))
		p.count.Add(&p.count, big.NewInt(1))
	}
	known := map[string]bool{}
	children := map[string]*big.Int{}
	for _, e := range s.envelopes {
		known[e.ID] = true
		if e.ParentID != "" {
			bigAdd(children, e.ParentID, e.Allocation)
		}
	}
	for _, id := range sortedKeys(perEnvelope) {
		if !known[id] {
			rep.add(4, core.EnvelopeName(id), "holds commitments but does not exist")
		}
	}
	for _, e := range s.envelopes {
		name := core.EnvelopeName(e.ID)
		if e.Available() < 0 {
			rep.add(2, name, "available is %d", e.Available())
		}
		if got := balance(s.accounts, name); got.Cmp(big.NewInt(e.Available())) != 0 {
			rep.add(4, name, "stores %d available, the journal says %s", e.Available(), got)
		}
		p := perEnvelope[e.ID]
		if p == nil {
			p = &sums{}
		}
		if p.remaining.Cmp(big.NewInt(e.Committed)) != 0 {
			rep.add(4, name, "stores %d committed, its commitments hold %s", e.Committed, &p.remaining)
		}
		if p.released.Cmp(big.NewInt(e.Released)) != 0 {
			rep.add(4, name, "stores %d released, its commitments released %s", e.Released, &p.released)
		}
		if p.count.Cmp(big.NewInt(e.CommitmentCount)) != 0 {
			rep.add(4, name, "stores %d commitments, there are %s", e.CommitmentCount, &p.count)
		}
		if got := balance(children, e.ID); got.Cmp(big.NewInt(e.ChildrenAllocated)) != 0 {
			rep.add(4, name, "stores %d allocated to children, their allocations sum to %s", e.ChildrenAllocated, got)
		}
	}
}

// fundingMatchesRoots checks invariant 4 for money entering the ledger: it enters only by funding
// roots, so what left the funding account is what the roots hold.
func fundingMatchesRoots(s *snapshot, rep *VerifyReport) {
	roots := new(big.Int)
	for _, e := range s.envelopes {
		if e.ParentID == "" {
			roots.Add(roots, big.NewInt(e.Allocation))
		}
	}
	if funded := new(big.Int).Neg(balance(s.accounts, core.FundingAccount)); funded.Cmp(roots) != 0 {
		rep.add(4, core.FundingAccount, "funded %s, the root envelopes hold %s", funded, roots)
	}
}

// projectTotalsMatchCommitments checks invariant 4 for the per-project totals the funding-share
// rule reads: each (envelope, project) row holds what its commitments still hold, and counts them.
func projectTotalsMatchCommitments(s *snapshot, rep *VerifyReport) {
	type sums struct{ remaining, count int64 }
	want := map[core.ProjectKey]*sums{}
	var keys []core.ProjectKey
	for _, c := range s.commitments {
		k := core.ProjectKey{EnvelopeID: c.EnvelopeID, Project: c.Project}
		p := want[k]
		if p == nil {
			p = &sums{}
			want[k] = p
			keys = append(keys, k)
		}
		p.remaining += c.Remaining()
		p.count++
	}
	subject := func(k core.ProjectKey) string {
		return fmt.Sprintf("%s project %q", core.EnvelopeName(k.EnvelopeID), k.Project)
	}
	seen := map[core.ProjectKey]bool{}
	for _, t := range s.totals {
		seen[t.key] = true
		w := want[t.key]
		if w == nil {
			w = &sums{}
		}
		if t.awarded != w.remaining || t.count != w.count {
			rep.add(4, subject(t.key), "project total stores %d held by %d awards, its commitments hold %d in %d",
				t.awarded, t.count, w.remaining, w.count)
		}
	}
	for _, k := range keys {
		if w := want[k]; !seen[k] {
			rep.add(4, subject(k), "has no project total, its commitments hold %d in %d", w.remaining, w.count)
		}
	}
}

func bigAdd(m map[string]*big.Int, key string, v int64) {
	s, ok := m[key]
	if !ok {
		s = new(big.Int)
		m[key] = s
	}
	s.Add(s, big.NewInt(v))
}

func balance(m map[string]*big.Int, key string) *big.Int {
	if v, ok := m[key]; ok {
		return v
	}
	return new(big.Int)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// journalPositionsGapFree checks invariant 9 as the rows can show it: the positions given are
// exactly 1 … journal_head.last_seq, each once (entries not yet given one are committed entries
// waiting for the sequencer, never a gap behind a position already served).
func journalPositionsGapFree(s *snapshot, rep *VerifyReport) {
	// The positioned entries sorted by position (then id); no map of every position.
	var placed []*entryRow
	for i := range s.entries {
		if s.entries[i].seq != nil {
			placed = append(placed, &s.entries[i])
		}
	}
	slices.SortFunc(placed, func(a, b *entryRow) int {
		if c := cmp.Compare(*a.seq, *b.seq); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var seqs []*entryRow // placed without duplicates
	for i, e := range placed {
		if i > 0 && *e.seq == *placed[i-1].seq {
			first := placed[i-1]
			for k := i - 1; k >= 0 && *placed[k].seq == *e.seq; k-- {
				first = placed[k]
			}
			rep.add(9, core.EntryName(e.id), "has position %d, as %s has", *e.seq, core.EntryName(first.id))
			continue
		}
		seqs = append(seqs, e)
	}
	for i, e := range seqs {
		if *e.seq != int64(i+1) {
			rep.add(9, core.EntryName(e.id), "has position %d, where %d was expected: the journal has a gap", *e.seq, i+1)
			return
		}
	}
	if int64(len(seqs)) != s.lastSeq {
		rep.add(9, "journal_head", "says %d positions were given, the journal holds %d", s.lastSeq, len(seqs))
	}
}
