package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	crdbpgx "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestCommitTimeSerializationFailure is the regression test of "the cockroach-go trap"
// (DESIGN.md §3). It protects invariant 7 — a success returned to a caller is durable — on
// PostgreSQL.
//
// On PostgreSQL a SERIALIZABLE transaction can be refused at COMMIT with SQLSTATE 40001, after
// every one of its statements succeeded. crdbpgx.ExecuteTx ignores the error of its final COMMIT
// (on CockroachDB, RELEASE SAVEPOINT has already committed; on PostgreSQL it has not), so such a
// transaction is reported as a success although PostgreSQL rolled it back. The ledger's own
// PostgreSQL loop must instead report the failure or retry it in a fresh transaction.
//
// The failure is produced deterministically, in one goroutine, with the classic write skew of two
// serializable transactions over a two-row table, the "victim" (the transaction under test) and a
// "partner" on a connection of its own:
//
//	partner: BEGIN SERIALIZABLE; SELECT sum(v) FROM skew      -- reads both rows
//	victim:                      SELECT sum(v) FROM skew      -- reads both rows
//	partner: UPDATE skew SET v = v + 1 WHERE id = 1           -- rw-conflict victim -> partner
//	victim:  UPDATE skew SET v = v + 1 WHERE id = 2           -- rw-conflict partner -> victim
//	partner: COMMIT                                           -- succeeds, dooms the victim
//	victim:  COMMIT                                           -- 40001 "identification as a pivot,
//	                                                             during commit attempt"
//
// No statement of the victim before COMMIT fails (each is checked), so the failure is raised at
// COMMIT: at the partner's commit, PostgreSQL's SSI finds the dangerous structure and marks the
// still-running victim doomed, which it only reports at the victim's next conflict check, COMMIT.
func TestCommitTimeSerializationFailure(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	eng, err := Open(t.Context(), dsn, Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	pe, ok := eng.(*pgEngine)
	if !ok || pe.cockroach {
		t.Fatalf("engine %T (%s), want PostgreSQL", eng, eng.Name())
	}
	ctx := t.Context()
	partner, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { partner.Close(context.Background()) })
	serializable := pgx.TxOptions{IsoLevel: pgx.Serializable}

	// newSkewTable creates a two-row table, both rows at 0.
	newSkewTable := func(name string) {
		t.Helper()
		if _, err := partner.Exec(ctx, fmt.Sprintf(
			"CREATE TABLE %s (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO %[1]s VALUES (1, 0), (2, 0)", name)); err != nil {
			t.Fatal(err)
		}
	}
	values := func(name string) (v1, v2 int) {
		t.Helper()
		if err := partner.QueryRow(ctx, fmt.Sprintf(
			"SELECT (SELECT v FROM %[1]s WHERE id = 1), (SELECT v FROM %[1]s WHERE id = 2)", name)).Scan(&v1, &v2); err != nil {
			t.Fatal(err)
		}
		return v1, v2
	}
	// victimAlone is the victim's work: read both rows, write row 2.
	victimAlone := func(q Querier, table string) error {
		var sum int
		if err := q.QueryRow(ctx, "SELECT sum(v) FROM "+table).Scan(&sum); err != nil {
			return fmt.Errorf("victim SELECT: %w", err)
		}
		if _, err := q.Exec(ctx, "UPDATE "+table+" SET v = v + 1 WHERE id = 2"); err != nil {
			return fmt.Errorf("victim UPDATE: %w", err)
		}
		return nil
	}
	// victimWithPartner interleaves the victim's work (on q) with the partner's whole
	// transaction, as in the schedule above. It returns an error if any statement fails, so a
	// nil return means the victim reached COMMIT without error.
	victimWithPartner := func(q Querier, table string) error {
		ptx, err := partner.BeginTx(ctx, serializable)
		if err != nil {
			return err
		}
		defer ptx.Rollback(context.WithoutCancel(ctx)) // no-op after a successful COMMIT
		var sum int
		if err := ptx.QueryRow(ctx, "SELECT sum(v) FROM "+table).Scan(&sum); err != nil {
			return fmt.Errorf("partner SELECT: %w", err)
		}
		if err := q.QueryRow(ctx, "SELECT sum(v) FROM "+table).Scan(&sum); err != nil {
			return fmt.Errorf("victim SELECT: %w", err)
		}
		if _, err := ptx.Exec(ctx, "UPDATE "+table+" SET v = v + 1 WHERE id = 1"); err != nil {
			return fmt.Errorf("partner UPDATE: %w", err)
		}
		if _, err := q.Exec(ctx, "UPDATE "+table+" SET v = v + 1 WHERE id = 2"); err != nil {
			return fmt.Errorf("victim UPDATE: %w", err)
		}
		if err := ptx.Commit(ctx); err != nil {
			return fmt.Errorf("partner COMMIT: %w", err)
		}
		return nil
	}
	isSerializationFailure := func(err error) bool {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == "40001"
	}

	t.Run("one attempt reports the failure at COMMIT", func(t *testing.T) {
		newSkewTable("skew_attempt")
		var fnErr error
		err := pe.attempt(ctx, func(q Querier) error {
			fnErr = victimWithPartner(q, "skew_attempt")
			return fnErr
		})
		if fnErr != nil {
			t.Fatalf("the schedule failed before COMMIT: %v", fnErr)
		}
		if !isSerializationFailure(err) {
			t.Fatalf("attempt returned %v, want the COMMIT's SQLSTATE 40001", err)
		}
		// PostgreSQL names where it refused: "Canceled on identification as a pivot, during
		// commit attempt".
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && !strings.Contains(pgErr.Detail, "during commit attempt") {
			t.Errorf("40001 detail %q: not raised at COMMIT", pgErr.Detail)
		}
		if !pgRetryable(err) {
			t.Errorf("pgRetryable(%v) = false", err)
		}
		if !Retryable(err) {
			t.Errorf("Retryable(%v) = false: the ledger would not report TRANSACTION_CONFLICT", err)
		}
		if v1, v2 := values("skew_attempt"); v1 != 1 || v2 != 0 {
			t.Errorf("rows (%d, %d), want (1, 0): the partner committed, the victim did not", v1, v2)
		}
	})

	t.Run("readWrite retries it in a fresh transaction", func(t *testing.T) {
		newSkewTable("skew_readwrite")
		attempts := 0
		err := pe.ReadWrite(ctx, func(q Querier) error {
			attempts++
			if attempts == 1 {
				return victimWithPartner(q, "skew_readwrite")
			}
			return victimAlone(q, "skew_readwrite")
		})
		if err != nil {
			t.Fatalf("readWrite: %v", err)
		}
		if attempts != 2 {
			t.Errorf("fn ran %d times, want 2: the first attempt fails at COMMIT and must be retried", attempts)
		}
		// The victim's write is there exactly once: retried, not lost, not doubled.
		if v1, v2 := values("skew_readwrite"); v1 != 1 || v2 != 1 {
			t.Errorf("rows (%d, %d), want (1, 1)", v1, v2)
		}
	})

	t.Run("crdbpgx.ExecuteTx reports success for a rolled-back transaction", func(t *testing.T) {
		// Documentation of the trap, not of our code: if this starts failing, cockroach-go has
		// changed, and DESIGN.md §3 should be revisited — but the ledger must still not use it
		// on PostgreSQL.
		newSkewTable("skew_crdb")
		var fnErr error
		err := crdbpgx.ExecuteTx(ctx, pe.pool, serializable, func(tx pgx.Tx) error {
			fnErr = victimWithPartner(&pgxQuerier{q: tx}, "skew_crdb")
			return fnErr
		})
		if fnErr != nil {
			t.Fatalf("the schedule failed before COMMIT: %v", fnErr)
		}
		if err != nil {
			t.Fatalf("crdbpgx.ExecuteTx returned %v; the trap (COMMIT's error ignored) no longer reproduces", err)
		}
		if v1, v2 := values("skew_crdb"); v1 != 1 || v2 != 0 {
			t.Fatalf("rows (%d, %d); want (1, 0): ExecuteTx said success and the victim's write is missing", v1, v2)
		}
	})
}

// TestPostgresCommitOutcome protects invariant 7 on PostgreSQL (a success returned is durable, a
// failure returned posted nothing): an answer to COMMIT that cannot vouch for its outcome (none at
// all, or the session ended by the server, as when a backend waiting for a synchronous standby is
// terminated after committing locally) is ErrCommitOutcomeUnknown, so that the ledger looks the
// request log up again; an ERROR, or a write's failure before COMMIT ran, is a failure.
func TestPostgresCommitOutcome(t *testing.T) {
	t.Parallel()
	fatal := &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}
	for _, tc := range []struct {
		name    string
		err     error
		unknown bool
	}{
		{"FATAL in answer to COMMIT", fatal, true},
		{"PANIC in answer to COMMIT", &pgconn.PgError{Severity: "PANIC", Code: "XX000"}, true},
		{"no answer: connection lost", errors.New("unexpected EOF"), true},
		{"no answer, surfaced at a write's result", fmt.Errorf("%w: %w", errWriteFailed, context.DeadlineExceeded), true},
		{"FATAL at a write, before COMMIT ran", fmt.Errorf("%w: %w", errWriteFailed, fatal), false},
		{"ERROR at COMMIT (a deferred check)", &pgconn.PgError{Severity: "ERROR", Code: "23514"}, false},
		{"ERROR at a write", fmt.Errorf("%w: %w", errWriteFailed, &pgconn.PgError{Severity: "ERROR", Code: "40001"}), false},
		{"a write's row count refused", fmt.Errorf("%w: %w", errWriteFailed, errRowCount), false},
	} {
		got := pgCommitOutcome(tc.err)
		if unknown := errors.Is(got, ErrCommitOutcomeUnknown); unknown != tc.unknown || !errors.Is(got, tc.err) {
			t.Errorf("%s: %v (unknown: %v), want unknown %v, wrapping the error", tc.name, got, unknown, tc.unknown)
		}
	}
	if pgCommitOutcome(nil) != nil {
		t.Error("a COMMIT answered without error is not a success")
	}
}
