package audit

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// load reads every row the checks need, in the transaction of q.
func load(ctx context.Context, q store.Querier) (*snapshot, error) {
	s := &snapshot{accounts: map[string]*big.Int{}}
	// A few kinds and currencies, shared by every entry instead of a string each.
	interned := map[string]string{}
	intern := func(v string) string {
		if w, ok := interned[v]; ok {
			return w
		}
		interned[v] = v
		return v
	}
	err := each(ctx, q, "SELECT id, request_id, kind, currency, caller, memo, created_at, seq, COALESCE(effective_at, created_at) FROM journal_entries", func(r store.Rows) error {
		var e entryRow
		err := r.Scan(&e.id, &e.requestID, &e.kind, &e.currency, &e.caller, &e.memo, &e.createdAt, &e.seq, &e.effectiveAt)
		e.kind, e.currency = intern(e.kind), intern(e.currency)
		if k := core.EntryKind(e.kind); k != core.KindRulesChanged && k != core.KindPaid {
			// Only a rule change's and a payment's are compared with other rows (consistency.go,
			// payments.go); requests posted twice are found by the database (duplicateRequests).
			e.requestID, e.caller, e.memo = "", "", ""
		}
		s.entries = append(s.entries, e)
		return err
	})
	if err == nil {
		err = each(ctx, q, "SELECT request_id, caller, COUNT(*) FROM journal_entries GROUP BY request_id, caller HAVING COUNT(*) > 1", func(r store.Rows) error {
			var d postedTwice
			err := r.Scan(&d.requestID, &d.caller, &d.entries)
			s.postedTwice = append(s.postedTwice, d)
			return err
		})
	}
	if err == nil {
		// Sorted by id in Go, not by the database: its collation need not be byte order.
		slices.SortFunc(s.entries, func(a, b entryRow) int { return strings.Compare(a.id, b.id) })
		err = loadPostings(ctx, q, s)
	}
	if err == nil {
		err = q.QueryRow(ctx, "SELECT last_seq FROM journal_head WHERE id = 1").Scan(&s.lastSeq)
	}
	if err == nil {
		err = each(ctx, q, `SELECT id, envelope_id, call_name, effective_from, rules, caller, request_id, created_at
			FROM envelope_rules ORDER BY envelope_id, effective_from, id`, func(r store.Rows) error {
			var rs ruleSetRow
			err := r.Scan(&rs.id, &rs.envelopeID, &rs.call, &rs.effectiveFrom, &rs.rules, &rs.caller, &rs.requestID, &rs.createdAt)
			s.ruleSets = append(s.ruleSets, rs)
			return err
		})
	}
	if err == nil {
		// An entry's request is recorded under its caller's key (core.RequestKey: the request
		// id, a tab, the caller), or under the bare request id if it was recorded before request
		// ids were scoped per caller. A bulk call's item ("<id> <index>") is recorded under its
		// own key before migration 18, under the call's key (the id without " <index>") since.
		err = each(ctx, q, "SELECT e.id, e.request_id, COALESCE(r.operation, l.operation, b.operation) FROM journal_entries e"+
			" LEFT JOIN requests r ON r.request_id = e.request_id || '\t' || e.caller"+
			" LEFT JOIN requests l ON l.request_id = e.request_id"+
			" LEFT JOIN requests b ON e.request_id LIKE '% %'"+
			" AND b.request_id = rtrim(rtrim(e.request_id, '0123456789'), ' ') || '\t' || e.caller"+
			" WHERE COALESCE(r.operation, l.operation, b.operation) IS NULL"+
			" OR COALESCE(r.operation, l.operation, b.operation) <> 'result'", func(r store.Rows) error {
			var u unlogged
			err := r.Scan(&u.entry, &u.requestID, &u.operation)
			s.unlogged = append(s.unlogged, u)
			return err
		})
	}
	if err == nil {
		// What SetRules answered (the request log keeps it): the envelope and effective time of
		// each rule set, which its journal entry does not hold. Indexed by the rule set's id, so
		// a row of another operation under the same request id is ignored.
		s.answeredRuleSets = map[string]answeredRuleSet{}
		// The request log keys a rule change by its request id and caller (core.RequestKey), or
		// by the bare request id if it was recorded before request ids were scoped per caller.
		err = each(ctx, q, "SELECT r.outcome, r.packed FROM requests r"+
			" WHERE r.request_id IN (SELECT request_id || '\t' || caller FROM envelope_rules)"+
			" OR r.request_id IN (SELECT request_id FROM envelope_rules)", func(r store.Rows) error {
			var (
				raw    string
				record []byte
			)
			if err := r.Scan(&raw, &record); err != nil {
				return err
			}
			if core.IsDeflated(record) {
				inflated, err := core.InflateOutcome(record)
				if err != nil {
					return nil // unreadable: reported by loadUnanswerable
				}
				raw = string(inflated)
			}
			var o struct {
				Result struct {
					RuleSet struct {
						ID            string    `json:"id"`
						EnvelopeID    string    `json:"envelope_id"`
						EffectiveFrom time.Time `json:"effective_from"`
					} `json:"rule_set"`
				} `json:"result"`
			}
			if json.Unmarshal([]byte(raw), &o) == nil && o.Result.RuleSet.ID != "" {
				rs := o.Result.RuleSet
				s.answeredRuleSets[rs.ID] = answeredRuleSet{envelopeID: rs.EnvelopeID, effectiveFrom: rs.EffectiveFrom.UnixMicro()}
			}
			return nil
		})
	}
	if err == nil {
		err = each(ctx, q, store.SelectCommitments, func(r store.Rows) error {
			c, err := store.ScanCommitment(r)
			s.commitments = append(s.commitments, c)
			return err
		})
	}
	if err == nil {
		err = each(ctx, q, store.SelectEnvelopes, func(r store.Rows) error {
			e, err := store.ScanEnvelope(r)
			s.envelopes = append(s.envelopes, e)
			return err
		})
	}
	if err == nil {
		err = each(ctx, q, "SELECT envelope_id, project, awarded, award_count FROM project_totals", func(r store.Rows) error {
			var t projectTotal
			err := r.Scan(&t.key.EnvelopeID, &t.key.Project, &t.awarded, &t.count)
			s.totals = append(s.totals, t)
			return err
		})
	}
	if err == nil {
		err = loadUnanswerable(ctx, q, s)
	}
	if err == nil {
		err = loadPayments(ctx, q, s)
	}
	if err == nil {
		err = loadHolds(ctx, q, s)
	}
	sort.Slice(s.envelopes, func(i, j int) bool { return s.envelopes[i].ID < s.envelopes[j].ID })
	slices.SortFunc(s.commitments, func(a, b core.Commitment) int { return strings.Compare(a.ID, b.ID) })
	return s, err
}

// entry returns the entry of id, nil if there is none (s.entries is sorted by id).
func (s *snapshot) entry(id string) *entryRow {
	if i, ok := slices.BinarySearchFunc(s.entries, id, compareEntryID); ok {
		return &s.entries[i]
	}
	return nil
}

// commitment returns the commitment of id, nil if there is none (s.commitments is sorted by id).
func (s *snapshot) commitment(id string) *core.Commitment {
	if i, ok := slices.BinarySearchFunc(s.commitments, id, func(c core.Commitment, id string) int { return strings.Compare(c.ID, id) }); ok {
		return &s.commitments[i]
	}
	return nil
}

func compareEntryID(e entryRow, id string) int { return strings.Compare(e.id, id) }

// loadPostings gives each entry of s.entries (sorted by id) its postings, in order, whatever
// their storage (the entry_postings view: a two-leg entry's own row, or the postings table; see
// store/transfers.go), and sums them per account. Postings arrive grouped by entry, so an entry is looked up (by binary search,
// no map of every entry) once per group. A posting whose entry does not exist is kept in
// s.orphans.
func loadPostings(ctx context.Context, q store.Querier, s *snapshot) error {
	var (
		last    string
		current []core.Posting // the postings of entry last, where they are appended
		at      = -1           // its index in s.entries, -1 when it has none
	)
	flush := func() {
		if at >= 0 {
			s.entries[at].postings = current
		} else if last != "" {
			if s.orphans == nil {
				s.orphans = map[string][]core.Posting{}
			}
			s.orphans[last] = current
		}
	}
	err := each(ctx, q, "SELECT entry_id, account, amount FROM entry_postings ORDER BY entry_id, seq", func(r store.Rows) error {
		var (
			entry, account string
			amount         int64
		)
		if err := r.Scan(&entry, &account, &amount); err != nil {
			return err
		}
		if entry != last || last == "" {
			flush()
			last, at = entry, -1
			if i, ok := slices.BinarySearchFunc(s.entries, entry, compareEntryID); ok {
				at = i
				current = s.entries[i].postings
			} else {
				current = s.orphans[entry]
			}
		}
		current = append(current, core.Posting{Account: account, Amount: amount})
		bigAdd(s.accounts, account, amount)
		return nil
	})
	flush()
	return err
}

// answerPage is how many of the request log's rows loadUnanswerable replays at once.
const answerPage = 1000

// loadUnanswerable gives back, as a retry would be answered, every answer the request log keeps
// (store.ReplayRequests: a deflated one inflated and checked against its checksum, one kept by
// reference rebuilt from its commitments and envelope and checked against the checksum of what
// was answered), and keeps those it cannot give back: a retry of them would fail INTERNAL
// instead of being answered as the first time.
func loadUnanswerable(ctx context.Context, q store.Querier, s *snapshot) error {
	// unreadable reports whether err is a record's (INTERNAL: it cannot answer), not the database's.
	unreadable := core.IsInternal
	// A row under a bare request id is looked up only where requests_bare_keys has its row
	// (migration 19, store.LoadRequests): without it, a retry of that request would be decided
	// again instead of answered.
	var marked int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM requests_bare_keys").Scan(&marked); err != nil {
		return err
	}
	unlooked := func(keys []string) {
		for _, k := range keys {
			if marked == 0 && core.IsBareKey(k) {
				s.unanswerable = append(s.unanswerable, unanswerable{key: k,
					why: "it is recorded under its bare request id, which this ledger does not look up (requests_bare_keys is empty): a retry would be decided again"})
			}
		}
	}
	after := ""
	for {
		keys, err := store.ReplayRequests(ctx, q, after, answerPage)
		if err == nil {
			if len(keys) == 0 {
				return nil
			}
			unlooked(keys)
			after = keys[len(keys)-1]
			continue
		}
		if !unreadable(err) {
			return err
		}
		// The page again, one request at a time, to name each that cannot answer.
		replayErr := err
		if keys, err = pageOfRequests(ctx, q, after); err != nil {
			return err
		}
		if len(keys) == 0 {
			return replayErr // not in the same snapshot: never so
		}
		unlooked(keys)
		for _, k := range keys {
			if _, err := store.LoadRequests(ctx, q, []string{k}); unreadable(err) {
				why := err // "internal error": what was wrong is its cause
				if cause := errors.Unwrap(err); cause != nil {
					why = cause
				}
				s.unanswerable = append(s.unanswerable, unanswerable{key: k, why: why.Error()})
			} else if err != nil {
				return err
			}
		}
		after = keys[len(keys)-1]
	}
}

// pageOfRequests returns the keys of the request log's page that store.ReplayRequests read after
// key after, in the same order.
func pageOfRequests(ctx context.Context, q store.Querier, after string) ([]string, error) {
	rs, err := q.Query(ctx, "SELECT request_id FROM requests WHERE request_id > $1 ORDER BY request_id LIMIT $2", after, answerPage)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var keys []string
	for rs.Next() {
		var k string
		if err := rs.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rs.Err()
}

// each runs query and calls scan for each row.
func each(ctx context.Context, q store.Querier, query string, scan func(store.Rows) error) error {
	rs, err := q.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}
