package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// TestWriteRowCountFailsTheTransaction protects Querier.Write's promise, on which every row-count
// check of the ledger rests (invariant: nothing half-written): a write whose row count is not
// the one wanted fails the whole transaction before it commits, with the error the caller gave,
// told the count it got. On PostgreSQL the writes and COMMIT travel in one pipelined batch, so
// a count judged on the answer would come after the commit (pgxQuerier.hold): this test failed
// there, with the transaction's other writes committed, before the server judged the count.
// Each case writes an envelope first, then a write that falls short or goes over:
//   - sent with COMMIT (fn returns without reading);
//   - sent before a read of the same transaction (the read reports the refusal);
//   - in a set update of several rows (updateByKeys on PostgreSQL);
//
// and after each, nothing of the transaction is stored, and the next transaction on the engine
// commits (the refused one was rolled back, not left open on its connection).
func TestWriteRowCountFailsTheTransaction(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
		envelope := func(id string) *core.Envelope {
			return &core.Envelope{ID: id, DisplayName: "Envelope", Currency: "EUR", Allocation: 1_000, CreatedAt: at, UpdatedAt: at}
		}
		if err := db.ReadWrite(ctx, func(q Querier) error {
			return errors.Join(InsertEnvelope(ctx, q, envelope("kept-1")), InsertEnvelope(ctx, q, envelope("kept-2")))
		}); err != nil {
			t.Fatal(err)
		}
		errShort := errors.New("wrong row count")
		var got int64
		want := func(rows int64) *RowCount {
			got = -1
			return Expect(rows, func(n int64) error { got = n; return fmt.Errorf("%w: %d", errShort, n) })
		}
		renamed := "UPDATE envelopes SET display_name = 'renamed' WHERE id LIKE $1"
		cases := []struct {
			name    string
			write   func(q Querier) error
			wantGot int64
		}{
			{"short, sent with COMMIT", func(q Querier) error {
				return q.Write(ctx, renamed, []any{"missing%"}, want(1))
			}, 0},
			{"over, sent with COMMIT", func(q Querier) error {
				return q.Write(ctx, renamed, []any{"kept-%"}, want(1))
			}, 2},
			{"short, sent before a read", func(q Querier) error {
				if err := q.Write(ctx, renamed, []any{"missing%"}, want(1)); err != nil {
					return err
				}
				var n int64
				return q.QueryRow(ctx, "SELECT count(*) FROM envelopes").Scan(&n)
			}, 0},
			{"short, several rows by their keys", func(q Querier) error {
				e1, e2 := envelope("kept-1"), envelope("missing")
				e1.Allocation, e2.Allocation = 2_000, 2_000
				return UpdateEnvelopes(ctx, q, []*core.Envelope{e1, e2})
			}, -1},
		}
		for i, c := range cases {
			added := fmt.Sprintf("added-%d", i)
			err := db.ReadWrite(ctx, func(q Querier) error {
				if err := InsertEnvelope(ctx, q, envelope(added)); err != nil {
					return err
				}
				return c.write(q)
			})
			if err == nil {
				t.Fatalf("%s: the transaction committed", c.name)
			}
			if c.wantGot >= 0 && (!errors.Is(err, errShort) || got != c.wantGot) {
				t.Fatalf("%s: got %v (count told %d); want the caller's error, told %d", c.name, err, got, c.wantGot)
			}
			if e, ok := core.AsError(err); c.wantGot < 0 && (!ok || e.Reason != core.ReasonInternal) {
				t.Fatalf("%s: got %v; want the ledger's internal error", c.name, err)
			}
			var names []string
			if err := db.ReadWrite(ctx, func(q Querier) error {
				names = nil
				rows, err := q.Query(ctx, "SELECT id || ':' || display_name || ':' || allocation FROM envelopes ORDER BY id")
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						return err
					}
					names = append(names, s)
				}
				return rows.Err()
			}); err != nil {
				t.Fatalf("%s: the next transaction: %v", c.name, err)
			}
			if fmt.Sprint(names) != "[kept-1:Envelope:1000 kept-2:Envelope:1000]" {
				t.Fatalf("%s: the envelopes read %v after the refused transaction; want the two kept, unchanged", c.name, names)
			}
		}
	})
}
