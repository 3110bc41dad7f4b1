package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// The checks below see what balances alone cannot: postings between accounts that do not exist
// (they balance, and no stored balance holds them), amounts in one currency moved to an account in
// another, and rule sets edited behind their RULES_CHANGED entry (issue 12, item 5).

// accountCurrencies returns the currency of every account that exists: each envelope's and each
// commitment's ("" for the funding account, which takes any currency).
func accountCurrencies(s *snapshot) map[string]string {
	out := map[string]string{core.FundingAccount: "", core.PaymentsAccount: ""}
	for _, e := range s.envelopes {
		out[core.EnvelopeName(e.ID)] = e.Currency
	}
	for _, c := range s.commitments {
		out[core.CommitmentName(c.ID)] = c.Currency
	}
	for _, h := range s.holds {
		out[core.HoldName(h.ID)] = h.Currency
	}
	return out
}

// postingAccountsExist checks invariant 1 (an entry moves money between accounts of the ledger):
// every posting's account is envelopes/{id} of an envelope, commitments/{id} of a commitment, or
// the funding account. Postings between made-up accounts balance and touch no stored balance, so
// no other check sees them.
func postingAccountsExist(s *snapshot, rep *VerifyReport) {
	exists := accountCurrencies(s)
	check := func(id string, postings []core.Posting) {
		for _, account := range accountsOf(postings) {
			if _, ok := exists[account]; !ok {
				rep.add(1, core.EntryName(id), "posts to account %s, which does not exist", account)
			}
		}
	}
	// The entries and the orphaned postings' entries, in id order (s.entries is sorted).
	orphans := sortedKeys(s.orphans)
	for _, e := range s.entries {
		for len(orphans) > 0 && orphans[0] < e.id {
			check(orphans[0], s.orphans[orphans[0]])
			orphans = orphans[1:]
		}
		check(e.id, e.postings)
	}
	for _, id := range orphans {
		check(id, s.orphans[id])
	}
}

// accountsOf lists the accounts postings move money on, each once, in the postings' order.
func accountsOf(postings []core.Posting) []string {
	var out []string
	for _, p := range postings {
		if !slices.Contains(out, p.Account) {
			out = append(out, p.Account)
		}
	}
	return out
}

// childCurrenciesMatchParents checks invariant 1 for allocations: a child envelope's allocation
// is carved out of its parent's, so both are in one currency.
func childCurrenciesMatchParents(s *snapshot, rep *VerifyReport) {
	currency := map[string]string{}
	for _, e := range s.envelopes {
		currency[e.ID] = e.Currency
	}
	for _, e := range s.envelopes {
		if e.ParentID == "" {
			continue
		}
		parent, ok := currency[e.ParentID]
		switch {
		case !ok:
			rep.add(1, core.EnvelopeName(e.ID), "its parent %s does not exist", core.EnvelopeName(e.ParentID))
		case parent != e.Currency:
			rep.add(1, core.EnvelopeName(e.ID), "is in %s, its parent %s in %s", e.Currency, core.EnvelopeName(e.ParentID), parent)
		}
	}
}

// commitmentCurrenciesMatchEnvelopes checks invariant 1 for awards: a commitment holds money of
// its envelope, in the envelope's currency. (A commitment whose envelope does not exist is
// reported by envelopesMatchJournal.)
func commitmentCurrenciesMatchEnvelopes(s *snapshot, rep *VerifyReport) {
	currency := map[string]string{}
	for _, e := range s.envelopes {
		currency[e.ID] = e.Currency
	}
	for _, c := range s.commitments {
		if env, ok := currency[c.EnvelopeID]; ok && env != c.Currency {
			rep.add(1, core.CommitmentName(c.ID), "is in %s, its envelope %s in %s", c.Currency, core.EnvelopeName(c.EnvelopeID), env)
		}
	}
}

// entryCurrenciesMatchAccounts checks invariant 1 across currencies: an entry's postings sum to
// zero only if they are all in the entry's currency, so every account it posts to is in that
// currency (the funding account takes any).
func entryCurrenciesMatchAccounts(s *snapshot, rep *VerifyReport) {
	currencies := accountCurrencies(s)
	for _, e := range s.entries {
		for _, account := range accountsOf(e.postings) {
			if c, ok := currencies[account]; ok && c != "" && c != e.currency {
				rep.add(1, core.EntryName(e.id), "is in %s but posts to %s, in %s", e.currency, account, c)
			}
		}
	}
}

// ruleSetsMatchJournal checks invariant 6 for the rule sets (append-only, like the journal): each
// rule set is what its RULES_CHANGED entry (the entry of the same id) recorded — the same call and
// rules (the entry's memo, core.RulesChangedMemo), caller, request id and time, on an envelope that
// exists and is in the entry's currency, in force no earlier than it was set — with the envelope
// and effective time SetRules answered (the request log), and every RULES_CHANGED entry has its
// rule set. An edited or deleted rule set would let awards through
// that the recorded rules refuse.
func ruleSetsMatchJournal(s *snapshot, rep *VerifyReport) {
	currency := map[string]string{}
	for _, e := range s.envelopes {
		currency[e.ID] = e.Currency
	}
	stamp := func(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }
	recorded := map[string]bool{}
	for _, rs := range s.ruleSets {
		recorded[rs.id] = true
		name := core.RuleSetName(rs.envelopeID, rs.id)
		e := s.entry(rs.id)
		if e == nil {
			rep.add(6, name, "has no journal entry %s", core.EntryName(rs.id))
			continue
		}
		var diffs []string
		differs := func(what, stored, source, recorded string) {
			if stored != recorded {
				diffs = append(diffs, fmt.Sprintf("%s %q, the %s says %q", what, stored, source, recorded))
			}
		}
		differs("kind", string(core.KindRulesChanged), "journal", e.kind)
		if memo := core.RulesChangedMemo(rs.envelopeID, time.UnixMicro(rs.effectiveFrom), rs.call, rs.rules); e.memo != core.LegacyRulesChangedMemo(rs.call, rs.rules) {
			differs("envelope, date, call and rules", memo, "journal", e.memo)
		}
		differs("caller", rs.caller, "journal", e.caller)
		differs("request id", rs.requestID, "journal", e.requestID)
		differs("creation time", stamp(rs.createdAt), "journal", stamp(e.createdAt))
		if env, ok := currency[rs.envelopeID]; !ok {
			diffs = append(diffs, fmt.Sprintf("its envelope %s does not exist", core.EnvelopeName(rs.envelopeID)))
		} else {
			differs("envelope currency", env, "journal", e.currency)
		}
		if a, ok := s.answeredRuleSets[rs.id]; ok {
			differs("envelope", rs.envelopeID, "request log", a.envelopeID)
			differs("effective time", stamp(rs.effectiveFrom), "request log", stamp(a.effectiveFrom))
		}
		// A rule set in force before it was set is one backdated after the fact (a programme
		// recorded later): its entry then took effect at that same date (core.DecideSetRules).
		if rs.effectiveFrom < rs.createdAt && rs.effectiveFrom != e.effectiveAt {
			diffs = append(diffs, fmt.Sprintf("in force from %s, before it was set at %s, and its entry took effect at %s",
				stamp(rs.effectiveFrom), stamp(rs.createdAt), stamp(e.effectiveAt)))
		}
		if len(diffs) > 0 {
			rep.add(6, name, "differs from what its journal entry %s recorded: %s", core.EntryName(rs.id), strings.Join(diffs, "; "))
		}
	}
	for _, e := range s.entries {
		if core.EntryKind(e.kind) == core.KindRulesChanged && !recorded[e.id] {
			rep.add(6, core.EntryName(e.id), "records a rule change whose rule set is missing from envelope_rules")
		}
	}
}
