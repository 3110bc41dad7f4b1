package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/ledger/audit"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// TestReadersNeverStallWriters protects issue 12 item 8: a read-only transaction (the one Verify
// and the report run in) reads a snapshot and does not keep writers out. A reader is held open
// half-way through its reads while an award is made; the award completes meanwhile, the reader
// still sees its snapshot, and a reader begun afterwards sees the award.
//
// Before the fix, SQLite ran ReadOnly as BEGIN IMMEDIATE: the award waited for the reader's
// write lock until the transaction timeout and failed. The deadline below only detects that
// failure; it asserts no timing.
func TestReadersNeverStallWriters(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		mustCommit(t, l, "axis-1", "commune", 1_000)
		count := func(q store.Querier) int64 {
			t.Helper()
			var n int64
			if err := q.QueryRow(ctx, "SELECT COUNT(*) FROM commitments").Scan(&n); err != nil {
				t.Fatalf("counting commitments: %v", err)
			}
			return n
		}
		err := l.db.ReadOnly(ctx, func(q store.Querier) error {
			if n := count(q); n != 1 {
				t.Fatalf("the reader sees %d commitments before the award, want 1", n)
			}
			// The reader is open and has read: an award now must not wait for it.
			awardCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := l.Commit(awardCtx, commitCmd("axis-1", "metropole", 500)); err != nil {
				t.Fatalf("Commit while a reader is open: %v", err)
			}
			if n := count(q); n != 1 {
				t.Errorf("the reader sees %d commitments after an award committed beside it, want its snapshot's 1", n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ReadOnly: %v", err)
		}
		err = l.db.ReadOnly(ctx, func(q store.Querier) error {
			if n := count(q); n != 2 {
				t.Errorf("a reader begun after the award sees %d commitments, want 2", n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ReadOnly: %v", err)
		}
		requireVerifyOK(t, l)
	})
}

// TestReadOnlyRefusesWrites: the SQLite read pool is query_only, so a bug that writes through
// ReadOnly fails instead of taking the write lock behind the writer's back.
func TestReadOnlyRefusesWrites(t *testing.T) {
	t.Parallel()
	l := newSQLiteDB(t).open(t)
	ctx := t.Context()
	buildFund(t, l)
	err := l.db.ReadOnly(ctx, func(q store.Querier) error {
		_, err := q.Exec(ctx, "UPDATE envelopes SET display_name = 'x' WHERE id = 'fund'")
		return err
	})
	if err == nil {
		t.Fatal("a write inside ReadOnly succeeded, want it refused")
	}
	if got := mustGetEnvelope(t, l, "fund").DisplayName; got != "envelope fund" {
		t.Errorf("display name %q after a refused write", got)
	}
}

// TestVerifyReadsOneSnapshotWhileAwardsGoOn protects items 8 and 4 together: Verify is paused
// half-way through its first table, an award commits meanwhile (it would wait for Verify's
// write lock, and fail, before the fix), and Verify, resumed, reads every other table in the same
// snapshot: it finds the ledger sound and counts the journal as it was when it began.
func TestVerifyReadsOneSnapshotWhileAwardsGoOn(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		buildFund(t, l)
		mustCommit(t, l, "axis-1", "commune", 1_000)
		before := requireVerifyOK(t, l)
		var awardErr error
		paused := &pausingEngine{Engine: l.db, pause: func() {
			awardCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			_, awardErr = l.Commit(awardCtx, commitCmd("axis-1", "metropole", 500))
		}}
		rep, err := audit.Verify(ctx, paused)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !paused.paused {
			t.Fatal("Verify read no row: the test did not pause it")
		}
		if awardErr != nil {
			t.Fatalf("Commit while Verify was half-way: %v", awardErr)
		}
		if !rep.OK() || rep.Entries != before.Entries || rep.Commitments != before.Commitments {
			t.Errorf("Verify across an award: %d entries, %d commitments, %v; want its snapshot's %d, %d and none",
				rep.Entries, rep.Commitments, rep.Discrepancies, before.Entries, before.Commitments)
		}
		if after := requireVerifyOK(t, l); after.Entries != before.Entries+1 {
			t.Errorf("Verify after the award: %d entries, want %d", after.Entries, before.Entries+1)
		}
	})
}

// pausingEngine runs pause once, when a read-only transaction has read its first row.
type pausingEngine struct {
	store.Engine
	pause  func()
	paused bool
}

func (e *pausingEngine) ReadOnly(ctx context.Context, fn func(q store.Querier) error) error {
	return e.Engine.ReadOnly(ctx, func(q store.Querier) error { return fn(pausingQuerier{q, e}) })
}

type pausingQuerier struct {
	store.Querier
	e *pausingEngine
}

func (q pausingQuerier) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	rs, err := q.Querier.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return &pausingRows{Rows: rs, e: q.e}, nil
}

type pausingRows struct {
	store.Rows
	e *pausingEngine
}

func (r *pausingRows) Next() bool {
	ok := r.Rows.Next()
	if ok && !r.e.paused {
		r.e.paused = true
		r.e.pause()
	}
	return ok
}
