package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Holds: one row per hold, inserted HELD and updated once, when it ends (confirmed, cancelled or
// expired). The update is guarded by the state (WHERE state = 'HELD') and, in the database, by a
// trigger that refuses any change of a hold in a final state: a hold ends at most once, whichever
// process or path ends it.

const holdColumns = "id, envelope_id, beneficiary, project, currency, amount, state, description, " +
	"eligible_cost, territory, population, expire_at, effective_at, confirmed_amount, commitment_id, reason, " +
	"created_at, updated_at"

// SelectHolds is the SELECT of every hold column, for FROM holds.
const SelectHolds = "SELECT " + holdColumns + " FROM holds"

// ScanHold reads a hold row selected with SelectHolds.
func ScanHold(s Scanner) (core.Hold, error) {
	var (
		h                                   core.Hold
		state                               string
		eligible, population                *int64
		expire, effective, created, updated int64
	)
	err := s.Scan(&h.ID, &h.EnvelopeID, &h.Beneficiary, &h.Project, &h.Currency, &h.Amount, &state, &h.Description,
		&eligible, &h.Policy.Territory, &population, &expire, &effective, &h.ConfirmedAmount, &h.CommitmentID, &h.Reason,
		&created, &updated)
	h.State = core.HoldState(state)
	if eligible != nil {
		h.Policy.EligibleCost, h.Policy.EligibleCostGiven = *eligible, true
	}
	if population != nil {
		h.Policy.Population, h.Policy.PopulationGiven = *population, true
	}
	if expire != 0 {
		h.ExpireAt = fromMicros(expire)
	}
	if effective != 0 {
		h.EffectiveAt = fromMicros(effective)
	}
	h.CreatedAt, h.UpdatedAt = fromMicros(created), fromMicros(updated)
	return h, err
}

// LoadHold reads one hold (HOLD_NOT_FOUND when it does not exist).
func LoadHold(ctx context.Context, q Querier, id string) (core.Hold, error) {
	h, err := ScanHold(q.QueryRow(ctx, SelectHolds+" WHERE id = $1", id))
	if errors.Is(err, ErrNoRows) {
		return h, core.HoldNotFound(id)
	}
	return h, err
}

// FindHold reads one hold; nil when it does not exist.
func FindHold(ctx context.Context, q Querier, id string) (*core.Hold, error) {
	h, err := LoadHold(ctx, q, id)
	if errors.Is(err, core.ErrHoldNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// LoadHolds reads holds by id, a chunk of ids per statement; missing ids are absent. (The holds
// table is large, so the planner reads it by primary key: unlike a scan of the small envelopes
// table, this takes no predicate lock on the whole table under SERIALIZABLE.)
func LoadHolds(ctx context.Context, q Querier, ids []string) (map[string]*core.Hold, error) {
	found := map[string]*core.Hold{}
	const chunk = 500
	for start := 0; start < len(ids); start += chunk {
		cond, args := keysIn(q, "id", 0, ids[start:min(start+chunk, len(ids))])
		rs, err := queryByKeys(ctx, q, SelectHolds+" WHERE "+cond, args...)
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			h, err := ScanHold(rs)
			if err != nil {
				rs.Close()
				return nil, err
			}
			found[h.ID] = &h
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// PeekHolds and LoadHoldsAt read a batch's holds at their rows' addresses (rowaddress.go).
func PeekHolds(ctx context.Context, q Querier, ids []string) RowAddresses {
	return peekRows(ctx, q, "holds", ids)
}

// LoadHoldsAt is LoadHolds inside a transaction, at the rows PeekHolds found.
func LoadHoldsAt(ctx context.Context, q Querier, ids []string, rows RowAddresses) (map[string]*core.Hold, error) {
	return loadAt(ctx, q, SelectHolds, ids, rows, ScanHold, func(h core.Hold) string { return h.ID }, LoadHolds)
}

func optional(v int64, given bool) any {
	if given || v != 0 {
		return v
	}
	return nil
}

func microsOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

// InsertHolds writes new holds.
func InsertHolds(ctx context.Context, q Querier, hs []core.Hold) error {
	rows := make([][]any, 0, len(hs))
	for _, h := range hs {
		rows = append(rows, []any{h.ID, h.EnvelopeID, h.Beneficiary, h.Project, h.Currency, h.Amount, string(h.State),
			h.Description, optional(h.Policy.EligibleCost, h.Policy.EligibleCostGiven), h.Policy.Territory,
			optional(h.Policy.Population, h.Policy.PopulationGiven), microsOrZero(h.ExpireAt), microsOrZero(h.EffectiveAt),
			h.ConfirmedAmount, h.CommitmentID, h.Reason, micros(h.CreatedAt), micros(h.UpdatedAt)})
	}
	return bulkInsert(ctx, q, "holds", strings.Split(holdColumns, ", "), rows, "",
		core.Internal("a hold was not inserted"))
}

// errHoldEnded says that a hold this transaction was ending had already left HELD: a concurrent
// transaction ended it first. Nothing of this one is recorded; the caller may retry.
var errHoldEnded = core.Wrap(core.ReasonTransactionConflict,
	"a concurrent transaction ended the same hold; nothing was recorded; retry", errors.New("hold no longer HELD"))

// EndHolds writes holds that left HELD, each only if it is still HELD. Holds expired together
// (the sweeper's) are written with one statement per chunk, the others one by one.
func EndHolds(ctx context.Context, q Querier, hs []core.Hold) error {
	if len(hs) > 1 && sameExpiry(hs) {
		return expireHolds(ctx, q, hs)
	}
	for _, h := range hs {
		if h.State == core.HoldHeld {
			return core.Internal("hold %s is ended as HELD", h.ID)
		}
	}
	if p, ok := indexed(q); ok && len(hs) > 1 {
		endHoldsByKeys(p, hs)
		return nil
	}
	for _, h := range hs {
		err := q.Write(ctx, `UPDATE holds SET state = $2, confirmed_amount = $3, commitment_id = $4, reason = $5,
			updated_at = $6 WHERE id = $1 AND state = 'HELD'`,
			[]any{h.ID, string(h.State), h.ConfirmedAmount, h.CommitmentID, h.Reason, micros(h.UpdatedAt)},
			Expect(1, func(int64) error { return errHoldEnded }))
		if err != nil {
			return err
		}
	}
	return nil
}

// endHoldsByKeys is EndHolds on PostgreSQL: one statement per up to maxRowsPerUpdate holds
// (updateByKeys), each hold only if it is still HELD; hs holds no HELD hold.
func endHoldsByKeys(p *pgxQuerier, hs []core.Hold) {
	inChunks(hs, func(part []core.Hold) {
		ids, states, commitments, reasons := make([]string, len(part)), make([]string, len(part)),
			make([]string, len(part)), make([]string, len(part))
		confirmed, updated := make([]int64, len(part)), make([]int64, len(part))
		for i, h := range part {
			ids[i], states[i], commitments[i], reasons[i] = h.ID, string(h.State), h.CommitmentID, h.Reason
			confirmed[i], updated[i] = h.ConfirmedAmount, micros(h.UpdatedAt)
		}
		p.updateByKeys("holds", ids, []setColumn{{"state", "text", states},
			{"confirmed_amount", "bigint", confirmed}, {"commitment_id", "text", commitments},
			{"reason", "text", reasons}, {"updated_at", "bigint", updated}}, " AND state = 'HELD'",
			func(int64) error { return errHoldEnded })
	})
}

// WriteHolds writes what a decision on holds decided beside its envelopes and entries.
func WriteHolds(ctx context.Context, q Querier, w *core.HoldWrites, at time.Time) error {
	if w == nil {
		return nil
	}
	if err := InsertHolds(ctx, q, w.New); err != nil {
		return err
	}
	if err := EndHolds(ctx, q, w.Ended); err != nil {
		return err
	}
	if err := InsertCommitments(ctx, q, w.Commitments); err != nil {
		return err
	}
	if err := WriteTotals(ctx, q, w.Deltas, at); err != nil {
		return err
	}
	return InsertRequests(ctx, q, at, w.Requests)
}

// ExpiringHold names a hold due to expire, and its envelope.
type ExpiringHold struct{ ID, EnvelopeID string }

// ExpiringHolds lists at most limit holds still HELD whose expire time is at or before at, the
// earliest first. It is meant to run outside any transaction (the sweeper then loads each by
// primary key under its envelope's lock): a range scan in a serializable transaction would make
// every new hold conflict with it.
func ExpiringHolds(ctx context.Context, q Querier, at time.Time, limit int) ([]ExpiringHold, error) {
	rs, err := q.Query(ctx, `SELECT id, envelope_id FROM holds WHERE state = 'HELD' AND expire_at > 0 AND expire_at <= $1
		ORDER BY expire_at, id LIMIT $2`, micros(at), limit)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []ExpiringHold
	for rs.Next() {
		var h ExpiringHold
		if err := rs.Scan(&h.ID, &h.EnvelopeID); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rs.Err()
}

// NextExpiry returns the earliest expire time of a hold still HELD (zero when none expires).
func NextExpiry(ctx context.Context, q Querier) (time.Time, error) {
	var at *int64
	err := q.QueryRow(ctx, `SELECT MIN(expire_at) FROM holds WHERE state = 'HELD' AND expire_at > 0`).Scan(&at)
	if err != nil || at == nil {
		return time.Time{}, err
	}
	return fromMicros(*at), nil
}

// HoldFilter selects holds for ListHolds; empty fields select everything.
type HoldFilter struct {
	EnvelopeID string
	State      core.HoldState
}

// ListHolds returns holds oldest first and the token of the next page.
func ListHolds(ctx context.Context, q Querier, f HoldFilter, page Page) ([]core.Hold, string, error) {
	filterKey := "holds\x00" + f.EnvelopeID + "\x00" + string(f.State)
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	// A token holds the id of a hold, as ListPayments' holds a payment's: any other cursor was not
	// made here.
	if after != "" && core.CheckHoldID("page_token", after) != nil {
		return nil, "", badPageToken()
	}
	args := []any{after}
	query := SelectHolds + " WHERE id > $1"
	if f.EnvelopeID != "" {
		args = append(args, f.EnvelopeID)
		query += fmt.Sprintf(" AND envelope_id = $%d", len(args))
	}
	if f.State != "" {
		args = append(args, string(f.State))
		query += fmt.Sprintf(" AND state = $%d", len(args))
	}
	return listPage(ctx, q, query+" ORDER BY id", args, page.limit(), filterKey, ScanHold,
		func(h core.Hold) string { return h.ID })
}

// sameExpiry reports whether every hold of hs expired at the same time.
func sameExpiry(hs []core.Hold) bool {
	for _, h := range hs {
		if h.State != core.HoldExpired || !h.UpdatedAt.Equal(hs[0].UpdatedAt) {
			return false
		}
	}
	return true
}

// expireHolds marks holds EXPIRED, each only if it is still HELD, a chunk of ids per statement.
func expireHolds(ctx context.Context, q Querier, hs []core.Hold) error {
	const chunk = 500
	for start := 0; start < len(hs); start += chunk {
		part := hs[start:min(start+chunk, len(hs))]
		ids := make([]string, len(part))
		for i, h := range part {
			ids[i] = h.ID
		}
		list, args := inList(1, ids)
		want := int64(len(part))
		err := q.Write(ctx, "UPDATE holds SET state = 'EXPIRED', updated_at = $1 WHERE state = 'HELD' AND id IN ("+list+")",
			append([]any{micros(part[0].UpdatedAt)}, args...), Expect(want, func(int64) error { return errHoldEnded }))
		if err != nil {
			return err
		}
	}
	return nil
}
