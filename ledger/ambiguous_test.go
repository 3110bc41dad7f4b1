package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// ambiguousEngine answers one read-write transaction, once armed, as the store answers
// CockroachDB's "result is ambiguous" (SQLSTATE 40003, or cockroach-go's AmbiguousCommitError):
// ErrCommitOutcomeUnknown, after letting the transaction commit (landed) or after rolling it back.
type ambiguousEngine struct {
	store.Engine
	landed bool
	armed  atomic.Bool
}

var errRolledBack = errors.New("rolled back by the test")

func (e *ambiguousEngine) ReadWrite(ctx context.Context, fn func(q store.Querier) error) error {
	if !e.armed.CompareAndSwap(true, false) {
		return e.Engine.ReadWrite(ctx, fn)
	}
	ambiguous := fmt.Errorf("%w: %w", store.ErrCommitOutcomeUnknown,
		&pgconn.PgError{Code: "40003", Message: "result is ambiguous (error=rpc error: node unavailable)"})
	if e.landed {
		if err := e.Engine.ReadWrite(ctx, fn); err != nil {
			return err
		}
		return ambiguous
	}
	err := e.Engine.ReadWrite(ctx, func(q store.Querier) error {
		if err := fn(q); err != nil {
			return err
		}
		return errRolledBack
	})
	if !errors.Is(err, errRolledBack) {
		return err
	}
	return ambiguous
}

// TestAmbiguousCommitRechecksRequestLog protects invariants 5 and 7 when the database cannot say
// whether a COMMIT landed (CockroachDB's 40003, issue 19 §2): the ledger looks the request log up
// again, exactly as after a connection lost during COMMIT on PostgreSQL. If the award landed, its
// recorded outcome is returned and nothing is posted twice; if it did not, it is decided again and
// posted once. Either way the caller gets a success, and a retry with the same request id
// replays it.
func TestAmbiguousCommitRechecksRequestLog(t *testing.T) {
	t.Parallel()
	for _, landed := range []bool{true, false} {
		t.Run(fmt.Sprintf("landed=%v", landed), func(t *testing.T) {
			t.Parallel()
			forEachDatabase(t, func(t *testing.T, db testDB) {
				ctx := t.Context()
				eng, err := store.Open(ctx, db.dsn, store.Config{TxTimeout: testdb.TxTimeout})
				if err != nil {
					t.Fatal(err)
				}
				m, err := newMetrics(nil)
				if err != nil {
					t.Fatal(err)
				}
				amb := &ambiguousEngine{Engine: eng, landed: landed}
				l := newLedger(amb, Config{TxTimeout: testdb.TxTimeout}.withDefaults(), m)
				t.Cleanup(l.Close)
				buildFund(t, l)
				before, err := l.GetEnvelope(ctx, "axis-1")
				if err != nil {
					t.Fatal(err)
				}

				cmd := commitCmd("axis-1", "commune", 1_000)
				amb.armed.Store(true)
				first, err := l.Commit(ctx, cmd)
				if err != nil {
					t.Fatalf("Commit with an ambiguous COMMIT: %v; want the outcome found in the request log", err)
				}
				if amb.armed.Load() {
					t.Fatal("the test's ambiguous answer was never given")
				}
				again, err := l.Commit(ctx, cmd)
				if err != nil || again.Commitment.ID != first.Commitment.ID {
					t.Fatalf("retry with the same request id: %+v, %v; want the first outcome %s replayed", again.Commitment, err, first.Commitment.ID)
				}
				after, err := l.GetEnvelope(ctx, "axis-1")
				if err != nil {
					t.Fatal(err)
				}
				if got := after.Committed - before.Committed; got != 1_000 {
					t.Errorf("committed on axis-1 grew by %d, want 1000: the award was posted %s", got,
						map[bool]string{true: "twice", false: "not at all"}[got > 1_000])
				}
				requireVerifyOK(t, l)
			})
		})
	}
}
