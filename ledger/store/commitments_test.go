package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// TestCommitmentsReadAtTheirRows protects what a batch that releases, pays or closes reads of its
// commitments (PeekCommitments outside the transaction, LoadCommitmentsAt inside it):
//   - exactly the commitments named that exist, each as the transaction's snapshot has it, also
//     one updated between the peek and the transaction (its row has moved) and one whose peeked
//     address holds another commitment's row (a reused slot): those are read again by key;
//   - on PostgreSQL, reading them at their addresses takes no predicate lock on the primary key's
//     pages nor on the whole table (pg_locks), so that concurrent batches inserting awards into the
//     key's last page do not conflict with this one.
//
// On other engines the peek finds nothing and the commitments are read by key.
func TestCommitmentsReadAtTheirRows(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
		var cs []*core.Commitment
		for i := range 6 {
			cs = append(cs, &core.Commitment{ID: fmt.Sprintf("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a%02d", i), EnvelopeID: "env",
				Beneficiary: "b", Project: "p", Currency: "EUR", Amount: 1_000, CreatedAt: at, UpdatedAt: at, EffectiveAt: at})
		}
		if err := db.ReadWrite(ctx, func(q Querier) error { return InsertCommitments(ctx, q, cs) }); err != nil {
			t.Fatal(err)
		}
		postgres := db.Name() == "postgres"
		load := func(ids []string, rows RowAddresses) (got map[string]*core.Commitment, keyPageLocks int) {
			t.Helper()
			err := db.ReadWrite(ctx, func(q Querier) error {
				var err error
				if got, err = LoadCommitmentsAt(ctx, q, ids, rows); err != nil || !postgres {
					return err
				}
				return q.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE mode = 'SIReadLock' AND pid = pg_backend_pid()
					AND (relation = 'commitments_pkey'::regclass
					  OR relation = 'commitments'::regclass AND locktype = 'relation')`).Scan(&keyPageLocks)
			})
			if err != nil {
				t.Fatal(err)
			}
			return got, keyPageLocks
		}
		stored := func(ids ...string) map[string]*core.Commitment {
			t.Helper()
			m, err := LoadCommitments(ctx, db.Reader(), ids)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		ids := []string{cs[0].ID, cs[2].ID, cs[4].ID}
		rows := PeekCommitments(ctx, db.Reader(), ids)
		if postgres != (len(rows) == 3) {
			t.Fatalf("PeekCommitments found %d rows on %s; want the 3 on PostgreSQL, none elsewhere", len(rows), db.Name())
		}
		got, locks := load(ids, rows)
		if want := stored(ids...); !reflect.DeepEqual(got, want) || len(got) != 3 {
			t.Fatalf("read at their rows: %v; want %v", got, want)
		}
		if locks != 0 {
			t.Fatalf("reading 3 commitments at their rows left %d predicate locks on the primary key or the whole table; want none", locks)
		}

		// An id that does not exist is looked for by key (its absence is what the transaction read).
		ids = append(ids, "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aff")
		rows = PeekCommitments(ctx, db.Reader(), ids)
		if got, _ = load(ids, rows); !reflect.DeepEqual(got, stored(ids...)) || len(got) != 3 {
			t.Fatalf("with an id that does not exist: %v; want the 3 that do", got)
		}

		// Moved since the peek: released in a transaction of its own.
		rows = PeekCommitments(ctx, db.Reader(), ids)
		moved := *stored(cs[2].ID)[cs[2].ID]
		moved.Released, moved.UpdatedAt = 250, at.Add(time.Hour)
		if err := db.ReadWrite(ctx, func(q Querier) error { return UpdateCommitment(ctx, q, &moved) }); err != nil {
			t.Fatal(err)
		}
		got, _ = load(ids, rows)
		if want := stored(ids...); !reflect.DeepEqual(got, want) || got[cs[2].ID].Released != 250 {
			t.Fatalf("after a release since the peek: %v; want %v, the release included", got, want)
		}

		// A peeked address that holds another commitment's row.
		if postgres {
			other := PeekCommitments(ctx, db.Reader(), []string{cs[5].ID})
			rows = RowAddresses{cs[1].ID: other[cs[5].ID]}
			got, _ = load([]string{cs[1].ID}, rows)
			if want := stored(cs[1].ID); !reflect.DeepEqual(got, want) {
				t.Fatalf("with the address of another commitment's row: %v; want %v", got, want)
			}
		}
	})
}

// TestHoldsReadAtTheirRows is TestCommitmentsReadAtTheirRows for the holds a batch confirms or
// cancels (PeekHolds, LoadHoldsAt): read as the snapshot has them, one ended since the peek
// included, and on PostgreSQL without a predicate lock on the primary key or the whole table.
func TestHoldsReadAtTheirRows(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
		var hs []core.Hold
		var ids []string
		for i := range 4 {
			hs = append(hs, core.Hold{ID: fmt.Sprintf("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4b%02d", i), EnvelopeID: "env",
				Beneficiary: "b", Project: "p", Currency: "EUR", Amount: 500, State: core.HoldHeld, CreatedAt: at, UpdatedAt: at,
				EffectiveAt: at})
			ids = append(ids, hs[i].ID)
		}
		if err := db.ReadWrite(ctx, func(q Querier) error { return InsertHolds(ctx, q, hs) }); err != nil {
			t.Fatal(err)
		}
		postgres := db.Name() == "postgres"
		load := func(rows RowAddresses) (got map[string]*core.Hold, locks int) {
			t.Helper()
			err := db.ReadWrite(ctx, func(q Querier) error {
				var err error
				if got, err = LoadHoldsAt(ctx, q, ids[:3], rows); err != nil || !postgres {
					return err
				}
				return q.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE mode = 'SIReadLock' AND pid = pg_backend_pid()
					AND (relation = 'holds_pkey'::regclass OR relation = 'holds'::regclass AND locktype = 'relation')`).Scan(&locks)
			})
			if err != nil {
				t.Fatal(err)
			}
			return got, locks
		}
		stored := func() map[string]*core.Hold {
			t.Helper()
			m, err := LoadHolds(ctx, db.Reader(), ids[:3])
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		rows := PeekHolds(ctx, db.Reader(), ids[:3])
		if postgres != (len(rows) == 3) {
			t.Fatalf("PeekHolds found %d rows on %s; want the 3 on PostgreSQL, none elsewhere", len(rows), db.Name())
		}
		got, locks := load(rows)
		if want := stored(); !reflect.DeepEqual(got, want) || len(got) != 3 {
			t.Fatalf("read at their rows: %v; want %v", got, want)
		}
		if locks != 0 {
			t.Fatalf("reading 3 holds at their rows left %d predicate locks on the primary key or the whole table; want none", locks)
		}
		ended := *stored()[ids[1]]
		ended.State, ended.Reason, ended.UpdatedAt = core.HoldCancelled, "withdrawn", at.Add(time.Hour)
		if err := db.ReadWrite(ctx, func(q Querier) error { return EndHolds(ctx, q, []core.Hold{ended}) }); err != nil {
			t.Fatal(err)
		}
		got, _ = load(rows)
		if want := stored(); !reflect.DeepEqual(got, want) || got[ids[1]].State != core.HoldCancelled {
			t.Fatalf("after a cancellation since the peek: %v; want %v, the cancellation included", got, want)
		}
	})
}
