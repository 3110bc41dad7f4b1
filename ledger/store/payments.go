package store

import (
	"context"
	"slices"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
)

// Payments: one row per payment out of a commitment, appended by CreatePayment; and what payments
// and closing change of a commitment.

const paymentColumns = "commitment_id, id, envelope_id, currency, amount, effective_at, caller, request_id, entry_id, created_at"

// SelectPayments is the SELECT of every payment column, for FROM payments.
const SelectPayments = "SELECT " + paymentColumns + " FROM payments"

// ScanPayment reads a payment row selected with SelectPayments.
func ScanPayment(s Scanner) (core.Payment, error) {
	var (
		p         core.Payment
		effective *int64
		created   int64
	)
	err := s.Scan(&p.CommitmentID, &p.ID, &p.EnvelopeID, &p.Currency, &p.Amount, &effective, &p.Caller,
		&p.RequestID, &p.EntryID, &created)
	p.EffectiveAt, p.CreatedAt = optionalTime(effective), fromMicros(created)
	return p, err
}

// PaymentKey is a payment's primary key: its commitment's id and its own.
type PaymentKey struct{ CommitmentID, ID string }

// LoadPayments reads payments by key, a chunk of keys per statement; missing ones are absent. The
// statement names the keys' commitments and ids in two lists, read through the primary key: a
// payment id is unique, so the rows found are the payments asked for (any other is left out).
func LoadPayments(ctx context.Context, q Querier, keys []PaymentKey) (map[PaymentKey]*core.Payment, error) {
	found := map[PaymentKey]*core.Payment{}
	want := make(map[PaymentKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	// Both columns are native UUIDs on PostgreSQL and CockroachDB: a key that is not one names
	// no payment (uuidKeys).
	keys = slices.DeleteFunc(slices.Clone(keys), func(k PaymentKey) bool {
		return notUUIDKey(q, k.CommitmentID) || notUUIDKey(q, k.ID)
	})
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		var commitments, ids []string
		for _, k := range keys[start:min(start+chunk, len(keys))] {
			commitments, ids = append(commitments, k.CommitmentID), append(ids, k.ID)
		}
		byCommitment, args := keysIn(q, "commitment_id", 0, commitments)
		byID, more := keysIn(q, "id", len(args), ids)
		rs, err := queryByKeys(ctx, q, SelectPayments+" WHERE "+byCommitment+" AND "+byID, append(args, more...)...)
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			p, err := ScanPayment(rs)
			if err != nil {
				rs.Close()
				return nil, err
			}
			if k := (PaymentKey{p.CommitmentID, p.ID}); want[k] {
				found[k] = &p
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// InsertPayments appends payments.
func InsertPayments(ctx context.Context, q Querier, ps []core.Payment) error {
	rows := make([][]any, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []any{p.CommitmentID, p.ID, p.EnvelopeID, p.Currency, p.Amount, optionalMicros(p.EffectiveAt),
			p.Caller, p.RequestID, p.EntryID, micros(p.CreatedAt)})
	}
	return bulkInsert(ctx, q, "payments", []string{"commitment_id", "id", "envelope_id", "currency", "amount",
		"effective_at", "caller", "request_id", "entry_id", "created_at"}, rows, "", core.Internal("a payment was not inserted"))
}

// UpdateCommitmentFigures writes what payments and closing change of a commitment: what it paid and
// released, and its closing.
func UpdateCommitmentFigures(ctx context.Context, q Querier, c *core.Commitment) error {
	return q.Write(ctx, `UPDATE commitments SET paid = $2, released = $3, closed_at = $4, close_reason = $5,
		close_effective_at = $6, updated_at = $7 WHERE id = $1`,
		[]any{c.ID, c.Paid, c.Released, optionalMicros(c.ClosedAt), c.CloseReason, optionalMicros(c.CloseEffectiveAt),
			micros(c.UpdatedAt)}, Expect(1, func(n int64) error {
			return core.Internal("updating commitment %s touched %d rows", c.ID, n)
		}))
}

// writePaymentEffects writes the commitments, payments and project totals a payment or closing
// changed (see WriteEffects).
func writePaymentEffects(ctx context.Context, q Querier, eff core.Effects) error {
	for i := range eff.Commitments {
		if err := UpdateCommitmentFigures(ctx, q, &eff.Commitments[i]); err != nil {
			return err
		}
	}
	if len(eff.Payments) > 0 {
		if err := InsertPayments(ctx, q, eff.Payments); err != nil {
			return err
		}
	}
	if len(eff.Deltas) > 0 && len(eff.Commitments) > 0 {
		// The totals change at the decision's time, which the commitments carry.
		return WriteTotals(ctx, q, eff.Deltas, eff.Commitments[0].UpdatedAt)
	}
	return nil
}

// ListPayments returns the payments of a commitment, oldest first, and the token of the next page.
func ListPayments(ctx context.Context, q Querier, commitmentID string, page Page) ([]core.Payment, string, error) {
	filterKey := "payments\x00" + commitmentID
	after, err := decodePageToken(page.Token, filterKey)
	if err != nil {
		return nil, "", err
	}
	// Payment ids are UUIDs (native ones on PostgreSQL and CockroachDB, where "" is no UUID): the
	// first page has no lower bound, and a token must hold a payment id.
	query, args := SelectPayments+" WHERE commitment_id = $1", []any{commitmentID}
	if after != "" {
		if core.CheckCommitmentID("page_token", after) != nil {
			return nil, "", badPageToken()
		}
		query, args = query+" AND id > $2", append(args, after)
	}
	return listPage(ctx, q, query+" ORDER BY commitment_id, id", args, page.limit(), filterKey, ScanPayment,
		func(p core.Payment) string { return p.ID })
}

// optionalTime reads a nullable time column (NULL: the zero time).
func optionalTime(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMicros(*v)
}

// optionalMicros writes a nullable time column (the zero time: NULL).
func optionalMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// optionalMicrosPtr is optionalMicros for an array's element.
func optionalMicrosPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := micros(t)
	return &v
}

// LatestMoves returns the latest effective times of the payments and of the releases of a
// commitment (the zero time when it has none): a closing may not predate them. A release is a
// RELEASED journal entry from the commitment's account, a transfer stored in its journal_entries
// row (migration 17), found by the index on debit_account.
func LatestMoves(ctx context.Context, q Querier, commitmentID string) (core.LatestMoves, error) {
	var paid, released *int64
	if err := q.QueryRow(ctx, "SELECT (SELECT MAX(COALESCE(effective_at, created_at)) FROM payments WHERE commitment_id = $1),"+
		" (SELECT MAX(COALESCE(effective_at, created_at)) FROM journal_entries WHERE debit_account = $2 AND kind = $3)",
		commitmentID, core.CommitmentName(commitmentID), string(core.KindReleased)).Scan(&paid, &released); err != nil {
		return core.LatestMoves{}, err
	}
	return core.LatestMoves{Paid: optionalTime(paid), Released: optionalTime(released)}, nil
}
