package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// releaseFails is a crdb.Tx whose RELEASE SAVEPOINT fails with err: what cockroach-go turns into
// *crdb.AmbiguousCommitError when err is not retryable.
type releaseFails struct{ err error }

func (r releaseFails) Exec(_ context.Context, q string, _ ...any) error {
	if q == "RELEASE SAVEPOINT cockroach_restart" {
		return r.err
	}
	return nil
}
func (releaseFails) Commit(context.Context) error   { return nil }
func (releaseFails) Rollback(context.Context) error { return nil }

// ambiguousCommitError is a real *crdb.AmbiguousCommitError, made by cockroach-go's own code.
func ambiguousCommitError(t *testing.T) error {
	t.Helper()
	err := crdb.ExecuteInTx(t.Context(), releaseFails{&pgconn.PgError{Code: "XX000", Message: "node unavailable"}},
		func() error { return nil })
	var amb *crdb.AmbiguousCommitError
	if !errors.As(err, &amb) {
		t.Fatalf("cockroach-go returned %T (%v), want *crdb.AmbiguousCommitError", err, err)
	}
	return err
}

// TestCockroachOutcome protects invariant 7 on CockroachDB (a success returned is durable, a
// failure returned posted nothing): an outcome CockroachDB cannot vouch for is never reported as
// a failure or a success, but as ErrCommitOutcomeUnknown, which makes the ledger look the request
// log up again (ledger's TestAmbiguousCommitRechecksRequestLog); an answer that says nothing
// committed stays a failure, retried when it is a serialization failure.
func TestCockroachOutcome(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "code " + code} }
	const (
		unknown = iota
		failed
		retried
		recorded
	)
	for _, tc := range []struct {
		name     string
		err      error
		atCommit bool
		want     int
	}{
		{"40003 result is ambiguous at COMMIT", pg("40003"), true, unknown},
		{"40003 from a statement", pg("40003"), false, unknown},
		{"40003 wrapped by a write of the batch", fmt.Errorf("%w: %w", errWriteFailed, pg("40003")), false, unknown},
		{"cockroach-go AmbiguousCommitError", ambiguousCommitError(t), false, unknown},
		{"no answer to COMMIT: connection lost", io.ErrUnexpectedEOF, true, unknown},
		{"no answer to COMMIT: deadline", context.DeadlineExceeded, true, unknown},
		{"session ended (FATAL 57P01) in answer to COMMIT", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, true, unknown},
		{"session ended (FATAL 57P01) at a statement", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, false, failed},
		{"40001 at COMMIT", pg("40001"), true, retried},
		{"40001 from a statement", pg("40001"), false, retried},
		{"check violation at COMMIT", pg("23514"), true, failed},
		{"COMMIT answered ROLLBACK", pgx.ErrTxCommitRollback, true, failed},
		{"connection lost before COMMIT", io.ErrUnexpectedEOF, false, failed},
		{"a ledger error", core.Internal("a bug"), false, failed},
		{"request id recorded by another transaction",
			&pgconn.PgError{Code: "23505", ConstraintName: "requests_pkey"}, true, recorded},
	} {
		got := cockroachOutcome(tc.err, tc.atCommit)
		isUnknown := errors.Is(got, ErrCommitOutcomeUnknown)
		switch tc.want {
		case unknown:
			if !isUnknown {
				t.Errorf("%s: %v, want ErrCommitOutcomeUnknown", tc.name, got)
			}
		case failed:
			if isUnknown || Retryable(got) || !errors.Is(got, tc.err) {
				t.Errorf("%s: %v, want the error itself, neither unknown nor retryable", tc.name, got)
			}
		case retried:
			if isUnknown || !pgRetryable(got) {
				t.Errorf("%s: %v, want a retryable error", tc.name, got)
			}
		case recorded:
			if !errors.Is(got, ErrRequestRecorded) {
				t.Errorf("%s: %v, want ErrRequestRecorded", tc.name, got)
			}
		}
	}
	if got := cockroachOutcome(nil, true); got != nil {
		t.Errorf("cockroachOutcome(nil) = %v", got)
	}
}

// TestRetryingIsBoundedAndCounted protects the README's promise for PostgreSQL and CockroachDB
// alike (issue 19 §4): a serialization failure is retried in a fresh attempt, every retry is
// counted (ledger_transaction_retries_total), there are at most maxTxAttempts attempts, and none
// starts once the context (the ledger's --tx-timeout) has ended.
func TestRetryingIsBoundedAndCounted(t *testing.T) {
	t.Parallel()
	serialization := &pgconn.PgError{Code: "40001", Message: "restart transaction"}
	for _, name := range []string{"postgres", "cockroachdb"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			counted := map[string]int{}
			e := &pgEngine{cockroach: name == "cockroachdb", cfg: Config{OnRetry: func(engine string) { counted[engine]++ }}}

			attempts := 0
			err := e.retrying(t.Context(), func(context.Context) error { attempts++; return serialization })
			if attempts != maxTxAttempts || !Retryable(err) {
				t.Errorf("always conflicting: %d attempts, error %v; want %d attempts and a retryable error", attempts, err, maxTxAttempts)
			}
			if counted[name] != maxTxAttempts-1 {
				t.Errorf("retries counted under %q: %v, want one per retry (%d)", name, counted, maxTxAttempts-1)
			}

			attempts = 0
			err = e.retrying(t.Context(), func(context.Context) error {
				if attempts++; attempts < 3 {
					return serialization
				}
				return nil
			})
			if err != nil || attempts != 3 {
				t.Errorf("conflicting twice: %d attempts, %v; want success at the third", attempts, err)
			}

			ctx, cancel := context.WithCancel(t.Context())
			attempts = 0
			err = e.retrying(ctx, func(context.Context) error {
				if attempts++; attempts == 2 {
					cancel() // the transaction timeout ends during the second attempt
				}
				return serialization
			})
			if attempts != 2 || err == nil {
				t.Errorf("after the deadline: %d attempts, %v; want no attempt after the second, and an error", attempts, err)
			}

			attempts = 0
			definite := &pgconn.PgError{Code: "23514"}
			if err := e.retrying(t.Context(), func(context.Context) error { attempts++; return definite }); attempts != 1 || !errors.Is(err, definite) {
				t.Errorf("a refusal: %d attempts, %v; want one attempt and the refusal", attempts, err)
			}
		})
	}
}

// TestReadOnlyRetried protects Verify and the reports on CockroachDB, where a long read-only
// serializable transaction can fail with 40001 (issue 19 §3): ReadOnly retries it in a fresh
// transaction, counted like a write's retry. The loop is the one CockroachDB runs; this runs it
// on PostgreSQL, with the serialization failure given by the function.
func TestReadOnlyRetried(t *testing.T) {
	t.Parallel()
	retries := 0
	eng, err := Open(t.Context(), testdb.Postgres(t), Config{TxTimeout: testdb.TxTimeout, OnRetry: func(string) { retries++ }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	runs := 0
	err = eng.ReadOnly(t.Context(), func(q Querier) error {
		runs++
		var n int
		if err := q.QueryRow(t.Context(), "SELECT count(*) FROM journal_entries").Scan(&n); err != nil {
			return err
		}
		if runs == 1 {
			return &pgconn.PgError{Code: "40001", Message: "restart transaction: TransactionRetryWithProtoRefreshError: ReadWithinUncertaintyIntervalError"}
		}
		return nil
	})
	if err != nil || runs != 2 || retries != 1 {
		t.Errorf("ReadOnly after a serialization failure: %v, %d runs, %d retries counted; want success at the second run, one retry", err, runs, retries)
	}
}

// TestReadOptions protects the freshness promise of docs/cockroachdb.md: only a read that accepts
// a past snapshot (ReadingHistory: Verify, reports), on CockroachDB, with FollowerReads, reads at
// follower_read_timestamp(); every other read sees the latest commits, in one snapshot.
func TestReadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                          string
		cockroach, followerReads, old bool
		want                          pgx.TxOptions
	}{
		{"postgres", false, false, false, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}},
		{"postgres, follower reads asked for a report", false, true, true, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}},
		{"cockroachdb", true, false, false, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}},
		{"cockroachdb, a report without follower reads", true, false, true, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}},
		{"cockroachdb, follower reads, a read that needs the latest", true, true, false, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}},
		{"cockroachdb, follower reads, a report", true, true, true, pgx.TxOptions{BeginQuery: followerRead}},
	} {
		ctx := t.Context()
		if tc.old {
			ctx = ReadingHistory(ctx)
		}
		if got := readOptions(tc.cockroach, tc.followerReads && historyAccepted(ctx)); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestUUIDOrderIsTextOrder protects the order of lists on CockroachDB (issue 19 §5), where the
// keys the ledger makes are native UUIDs sorted by their bytes, and elsewhere TEXT sorted by
// their characters: for the canonical lower-case form the ledger writes, both orders are one, so
// ORDER BY id and the page tokens (which hold the text) agree on every engine.
func TestUUIDOrderIsTextOrder(t *testing.T) {
	t.Parallel()
	ids := make([]uuid.UUID, 0, 2000)
	for range 1000 {
		ids = append(ids, uuid.Must(uuid.NewV7()), uuid.New())
	}
	byText := slices.Clone(ids)
	slices.SortFunc(byText, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	byBytes := slices.Clone(ids)
	slices.SortFunc(byBytes, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(byText, byBytes) {
		t.Fatal("UUIDs sorted by their text and by their bytes differ")
	}
}

// TestCommitmentPageTokenHoldsAUUID protects the commitment lists on CockroachDB: a hand-made
// page token whose key is no UUID is refused as a bad token (INVALID_PAGE_TOKEN) before it
// reaches a UUID column, where CockroachDB would fail the query.
func TestCommitmentPageTokenHoldsAUUID(t *testing.T) {
	t.Parallel()
	eng, err := Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	f := CommitmentFilter{EnvelopeID: "axis-1"}
	token := encodePageToken("not-a-uuid", "commitments\x00"+f.EnvelopeID+"\x00"+f.Beneficiary)
	_, _, err = ListCommitments(t.Context(), eng.Reader(), f, Page{Token: token})
	if want := badPageToken(); err == nil || err.Error() != want.Error() {
		t.Errorf("ListCommitments with a token holding no UUID: %v, want %v", err, want)
	}
	if _, _, err := ListCommitments(t.Context(), eng.Reader(), f, Page{}); err != nil {
		t.Errorf("first page: %v", err)
	}
}
