package store

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// The request log: one row per decided request, with the fingerprint of its payload and its
// outcome (invariant 5). It is append-only. Its request_id column holds the request's key,
// core.RequestKey(caller, request id) — request ids belong to their caller — or, for a row
// recorded before request ids were scoped per caller, the bare request id.

// LoadRequests returns the request log's rows for keys (absent keys are not in the map). Keys
// are looked up lookupChunk at a time: a statement's cost on SQLite grows faster than its IN
// list (a bulk call of 10,000 items is looked up under 20,002 keys).
func LoadRequests(ctx context.Context, q Querier, keys []string) (map[string]core.Prior, error) {
	found := map[string]core.Prior{}
	if err := lookupInChunks(keys, func(chunk []string) error { return loadRequests(ctx, q, chunk, found) }); err != nil {
		return nil, err
	}
	return found, nil
}

// lookupChunk is how many keys one request-log lookup names.
const lookupChunk = 1000

// lookupInChunks calls read with keys, lookupChunk at a time, and stops at its first error.
func lookupInChunks(keys []string, read func(chunk []string) error) error {
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), lookupChunk)]
		keys = keys[len(chunk):]
		if err := read(chunk); err != nil {
			return err
		}
	}
	return nil
}

// splitBareKeys separates the request log's keys of callers (core.RequestKey: they hold a tab) from
// bare request ids.
func splitBareKeys(keys []string) (scoped, bare []string) {
	scoped = make([]string, 0, len(keys))
	for _, k := range keys {
		if core.IsBareKey(k) {
			bare = append(bare, k)
		} else {
			scoped = append(scoped, k)
		}
	}
	return scoped, bare
}

// requestColumns are what a retry's answer is made of, read by decodeRequests.
const requestColumns = "SELECT request_id, fingerprint, outcome, digest, packed FROM requests"

// A key without a tab is a bare request id (core.LookupKeys), which only a ledger with the row
// of requests_bare_keys may hold (migration 19): its keys are looked up in a second branch that
// the database skips, once per statement, where that row is absent. The same statement reads both,
// so a lookup sees the row and the rows it guards at once.
func loadRequests(ctx context.Context, q Querier, keys []string, found map[string]core.Prior) error {
	scoped, bare := splitBareKeys(keys)
	var query strings.Builder
	var args []any
	if len(scoped) > 0 {
		cond, a := keysIn(q, "request_id", 0, scoped)
		query.WriteString(requestColumns + " WHERE " + cond)
		args = a
	}
	if len(bare) > 0 {
		if query.Len() > 0 {
			query.WriteString(" UNION ALL ")
		}
		cond, a := keysIn(q, "request_id", len(args), bare)
		query.WriteString(requestColumns + " WHERE " + cond + " AND EXISTS (SELECT 1 FROM requests_bare_keys)")
		args = append(args, a...)
	}
	rs, err := queryByKeys(ctx, q, query.String(), args...)
	if err != nil {
		return err
	}
	_, err = decodeRequests(ctx, q, rs, found)
	return err
}

// ReplayRequests reads up to limit rows of the request log, the first after key after in the
// database's order of keys, as LoadRequests reads them for a retry (every answer decoded and
// checked), and returns their keys in that order. An answer that cannot be given back is an
// INTERNAL error, as for a retry; the keys read until then are returned with it.
func ReplayRequests(ctx context.Context, q Querier, after string, limit int) ([]string, error) {
	rs, err := q.Query(ctx, requestColumns+" WHERE request_id > $1 ORDER BY request_id LIMIT $2", after, limit)
	if err != nil {
		return nil, err
	}
	return decodeRequests(ctx, q, rs, map[string]core.Prior{})
}

// decodeRequests decodes the request-log rows of rs (requestColumns) into found, and returns
// their keys in the order read. It closes rs.
func decodeRequests(ctx context.Context, q Querier, rs Rows, found map[string]core.Prior) ([]string, error) {
	defer rs.Close()
	var keys []string
	packed := map[string][]byte{}
	for rs.Next() {
		var (
			id, fp, raw    string
			digest, record []byte
		)
		if err := rs.Scan(&id, &fp, &raw, &digest, &record); err != nil {
			return keys, err
		}
		keys = append(keys, id)
		if digest != nil {
			fp = core.FingerprintFromDigest(digest)
		}
		var o core.Outcome
		if core.IsDeflated(record) {
			inflated, err := core.InflateOutcome(record)
			if err != nil {
				return keys, core.Internal("request %s has an unreadable outcome: %w", id, err)
			}
			raw, record = string(inflated), nil
		}
		if record != nil {
			packed[id] = record
		} else if err := json.Unmarshal([]byte(raw), &o); err != nil {
			return keys, core.Internal("request %s has an unreadable outcome: %w", id, err)
		}
		found[id] = core.Prior{Fingerprint: fp, Outcome: o}
	}
	if err := rs.Err(); err != nil {
		return keys, err
	}
	rs.Close()
	return keys, unpackRequests(ctx, q, packed, found)
}

// unpackRequests rebuilds the results recorded by reference (a Commit's, core.PackCommit; a bulk
// call's, core.PackBulk; a CreateHold's and a ConfirmHold's, core.PackCreateHold,
// core.PackConfirmHold; a CreatePayment's, core.PackPayment) from their holds', payments',
// commitments', envelopes' and journal entries' rows: the holds first (a confirmation's
// commitment is the one its hold names), then the payments (by their primary key, which the
// record names whole), the commitments, then the envelopes and the Commits' journal entries, each
// by one list.
func unpackRequests(ctx context.Context, q Querier, packed map[string][]byte, found map[string]core.Prior) error {
	if len(packed) == 0 {
		return nil
	}
	var ids, holdIDs, confirmed, awarded []string
	var paymentKeys []PaymentKey
	bulks := map[string]*core.PackedBulk{}
	for key, record := range packed {
		switch {
		case core.IsPackedCommit(record):
			id, entry, err := core.PackedCommitRefs(record)
			if err != nil {
				return core.Internal("request %s has an unreadable outcome: %w", key, err)
			}
			ids = append(ids, id)
			if entry == "" {
				awarded = append(awarded, id)
			}
		case core.IsPackedBulk(record):
			p, err := core.UnpackBulkRefs(record)
			if err != nil {
				return core.Internal("request %s has an unreadable outcome: %w", key, err)
			}
			bulks[key] = p
			ids = append(ids, p.Commitments...)
		case core.IsPackedCreateHold(record), core.IsPackedConfirmHold(record):
			id, err := core.PackedHoldID(record)
			if err != nil {
				return core.Internal("request %s has an unreadable outcome: %w", key, err)
			}
			holdIDs = append(holdIDs, id)
			if core.IsPackedConfirmHold(record) {
				confirmed = append(confirmed, id)
			}
		case core.IsPackedPayment(record):
			c, id, err := core.PackedPaymentRefs(record)
			if err != nil {
				return core.Internal("request %s has an unreadable outcome: %w", key, err)
			}
			ids = append(ids, c)
			paymentKeys = append(paymentKeys, PaymentKey{c, id})
		default:
			return core.Internal("request %s has an unreadable outcome: unknown record format %d", key, record[0])
		}
	}
	holds := map[string]*core.Hold{}
	if len(holdIDs) > 0 {
		var err error
		if holds, err = LoadHolds(ctx, q, slices.Compact(slices.Sorted(slices.Values(holdIDs)))); err != nil {
			return err
		}
		for _, id := range confirmed { // only a confirmation's answer shows the hold's commitment
			if h, ok := holds[id]; ok && h.CommitmentID != "" {
				ids = append(ids, h.CommitmentID)
			}
		}
	}
	payments := map[PaymentKey]*core.Payment{}
	if len(paymentKeys) > 0 {
		var err error
		if payments, err = LoadPayments(ctx, q, paymentKeys); err != nil {
			return err
		}
	}
	commitments := map[string]*core.Commitment{}
	// A commitment's id is a native UUID on PostgreSQL and CockroachDB: an id that is not one
	// (a damaged record's) names no commitment, and must not fail the others' read (uuidKeys).
	if err := lookupInChunks(uuidKeys(q, ids), func(chunk []string) error {
		got, err := LoadCommitments(ctx, q, chunk)
		maps.Copy(commitments, got)
		return err
	}); err != nil {
		return err
	}
	var envelopeIDs []string
	for _, c := range commitments {
		envelopeIDs = append(envelopeIDs, c.EnvelopeID)
	}
	for _, p := range bulks {
		envelopeIDs = append(envelopeIDs, p.EnvelopeID)
	}
	for _, h := range holds {
		envelopeIDs = append(envelopeIDs, h.EnvelopeID)
	}
	envelopes, err := LockEnvelopes(ctx, q, "", slices.Compact(slices.Sorted(slices.Values(envelopeIDs))))
	if err != nil {
		return err
	}
	envelopeOf := func(key, id string) (core.Envelope, error) {
		env, ok := envelopes[id]
		if !ok {
			return env, core.Internal("request %s names envelope %s, which does not exist", key, id)
		}
		return env, nil
	}
	entries, err := awardEntries(ctx, q, awarded)
	if err != nil {
		return err
	}
	for key, record := range packed {
		var o core.Outcome
		switch {
		case core.IsPackedBulk(record):
			p := bulks[key]
			env, err := envelopeOf(key, p.EnvelopeID)
			if err != nil {
				return err
			}
			r, err := p.Rebuild(commitments, env)
			if err != nil {
				return core.Internal("request %s: %w", key, err)
			}
			o.Bulk = r
		case core.IsPackedCommit(record):
			id, _, _ := core.PackedCommitRefs(record)
			c, ok := commitments[id]
			if !ok {
				return core.Internal("request %s names commitment %s, which does not exist", key, id)
			}
			env, err := envelopeOf(key, c.EnvelopeID)
			if err != nil {
				return err
			}
			r, err := core.UnpackCommit(record, *c, env, entries[id])
			if err != nil {
				return core.Internal("request %s: %w", key, err)
			}
			o.Commit = r
		case core.IsPackedPayment(record):
			cid, pid, _ := core.PackedPaymentRefs(record)
			pay, ok := payments[PaymentKey{cid, pid}]
			if !ok {
				return core.Internal("request %s names payment %s of commitment %s, which does not exist", key, pid, cid)
			}
			c, ok := commitments[cid]
			if !ok {
				return core.Internal("request %s names commitment %s, which does not exist", key, cid)
			}
			env, err := envelopeOf(key, c.EnvelopeID)
			if err != nil {
				return err
			}
			r, err := core.UnpackPayment(record, *pay, *c, env)
			if err != nil {
				return core.Internal("request %s: %w", key, err)
			}
			o.CreatePayment = r
		default:
			id, _ := core.PackedHoldID(record)
			h, ok := holds[id]
			if !ok {
				return core.Internal("request %s names hold %s, which does not exist", key, id)
			}
			env, err := envelopeOf(key, h.EnvelopeID)
			if err != nil {
				return err
			}
			if core.IsPackedCreateHold(record) {
				r, err := core.UnpackCreateHold(record, *h, env)
				if err != nil {
					return core.Internal("request %s: %w", key, err)
				}
				o.CreateHold = r
				break
			}
			c, ok := commitments[h.CommitmentID]
			if !ok {
				return core.Internal("request %s names hold %s, whose commitment %q does not exist", key, id, h.CommitmentID)
			}
			r, err := core.UnpackConfirmHold(record, *h, *c, env)
			if err != nil {
				return core.Internal("request %s: %w", key, err)
			}
			o.ConfirmHold = r
		}
		p := found[key]
		p.Outcome = o
		found[key] = p
	}
	return nil
}

// awardEntries returns the ids of the COMMITTED journal entries of commitments ids, by
// commitment: the entry that made each (a Commit's or a bulk item's; no other entry of that kind
// credits a commitment), which a Commit's packed record leaves to the journal since migration 28.
func awardEntries(ctx context.Context, q Querier, ids []string) (map[string]string, error) {
	entries := map[string]string{}
	if err := lookupInChunks(ids, func(chunk []string) error { return loadAwardEntries(ctx, q, chunk, entries) }); err != nil {
		return nil, err
	}
	return entries, nil
}

func loadAwardEntries(ctx context.Context, q Querier, ids []string, entries map[string]string) error {
	accounts := make([]string, len(ids))
	for i, id := range ids {
		accounts[i] = core.CommitmentName(id)
	}
	cond, args := keysIn(q, "credit_account", 1, accounts)
	rs, err := queryByKeys(ctx, q, "SELECT credit_account, id FROM journal_entries WHERE kind = $1 AND "+cond,
		append([]any{string(core.KindCommitted)}, args...)...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var account, entry string
		if err := rs.Scan(&account, &entry); err != nil {
			return err
		}
		id := strings.TrimPrefix(account, core.CommitmentName(""))
		if _, twice := entries[id]; twice {
			return core.Internal("the commitment %s has two COMMITTED journal entries", id)
		}
		entries[id] = entry
	}
	return rs.Err()
}

// InsertRequests records decided requests. If another transaction recorded one of the same keys
// first, the insert fails on the primary key (the engines report ErrRequestRecorded): the
// transaction is rolled back and run again after a fresh look at the request log, so that the
// first outcome is replayed instead of a second decision being made.
//
// A canonical fingerprint is stored as its 32 bytes (digest), a Commit's, a bulk call's, a
// CreateHold's, a ConfirmHold's or a CreatePayment's result by reference (packed, core.PackCommit,
// core.PackBulk, core.PackCreateHold, core.PackConfirmHold: migration 29; core.PackPayment:
// migration 30), any other outcome as its JSON deflated
// (packed, core.DeflateOutcome); the text columns then hold ”. Anything else is stored as before
// migration 18: the fingerprint's text, the outcome's JSON.
func InsertRequests(ctx context.Context, q Querier, at time.Time, reqs []core.RequestRow) error {
	rows := make([][]any, 0, len(reqs))
	for _, r := range reqs {
		fp, digest := r.Fingerprint, any(nil)
		if d := core.FingerprintDigest(fp); d != nil {
			fp, digest = "", d
		}
		var (
			raw    []byte
			packed any
		)
		switch {
		case r.Outcome.Refusal != nil:
		case r.Outcome.Bulk != nil:
			p, err := core.PackBulk(r.Outcome.Bulk)
			if err != nil {
				return err
			}
			if p == nil {
				return core.Internal("bulk call %s cannot be packed", r.Key)
			}
			packed = p
		case r.Outcome.Commit != nil:
			if p := core.PackCommit(r.Outcome.Commit); p != nil {
				packed = p
			}
		case r.Outcome.CreateHold != nil:
			if p := core.PackCreateHold(r.Outcome.CreateHold); p != nil {
				packed = p
			}
		case r.Outcome.ConfirmHold != nil:
			if p := core.PackConfirmHold(r.Outcome.ConfirmHold); p != nil {
				packed = p
			}
		case r.Outcome.CreatePayment != nil:
			if p := core.PackPayment(r.Outcome.CreatePayment); p != nil {
				packed = p
			}
		}
		if packed == nil {
			var err error
			if raw, err = r.Outcome.Encode(); err != nil {
				return err
			}
			if d := core.DeflateOutcome(raw); d != nil {
				packed, raw = d, nil
			}
		}
		op := "result"
		if r.Outcome.Refusal != nil {
			op = string(r.Outcome.Refusal.Reason)
		}
		rows = append(rows, []any{r.Key, op, fp, string(raw), micros(at), digest, packed})
	}
	if err := bulkInsert(ctx, q, "requests", []string{"request_id", "operation", "fingerprint", "outcome", "created_at", "digest", "packed"},
		rows, "", ErrRequestRecorded); err != nil {
		return err
	}
	// A row under a bare request id (only tests and tools write one now: the ledger scopes every
	// request id) is looked up only where requests_bare_keys says such rows exist.
	for _, r := range reqs {
		if core.IsBareKey(r.Key) {
			return q.Write(ctx, "INSERT INTO requests_bare_keys (id) VALUES (1) ON CONFLICT DO NOTHING", nil, nil)
		}
	}
	return nil
}
