package store

import (
	"context"
	"encoding/json"
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
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), lookupChunk)]
		keys = keys[len(chunk):]
		if err := loadRequests(ctx, q, chunk, found); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// lookupChunk is how many keys one request-log lookup names.
const lookupChunk = 1000

func loadRequests(ctx context.Context, q Querier, keys []string, found map[string]core.Prior) error {
	list, args := inList(0, keys)
	rs, err := q.Query(ctx, "SELECT request_id, fingerprint, outcome FROM requests WHERE request_id IN ("+list+")", args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var id, fp, raw string
		if err := rs.Scan(&id, &fp, &raw); err != nil {
			return err
		}
		var o core.Outcome
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			return core.Internal("request %s has an unreadable outcome: %w", id, err)
		}
		found[id] = core.Prior{Fingerprint: fp, Outcome: o}
	}
	return rs.Err()
}

// InsertRequests records decided requests. If another transaction recorded one of the same keys
// first, the insert fails on the primary key (the engines report ErrRequestRecorded): the
// transaction is rolled back and run again after a fresh look at the request log, so that the
// first outcome is replayed instead of a second decision being made.
func InsertRequests(ctx context.Context, q Querier, at time.Time, reqs []core.RequestRow) error {
	rows := make([][]any, 0, len(reqs))
	for _, r := range reqs {
		raw, err := r.Outcome.Encode()
		if err != nil {
			return err
		}
		op := "result"
		if r.Outcome.Refusal != nil {
			op = string(r.Outcome.Refusal.Reason)
		}
		rows = append(rows, []any{r.Key, op, r.Fingerprint, string(raw), micros(at)})
	}
	return bulkInsert(ctx, q, "requests", []string{"request_id", "operation", "fingerprint", "outcome", "created_at"},
		rows, "", ErrRequestRecorded)
}
