package ledger

import (
	"context"
	"errors"
	"time"
)

// querier is the little SQL surface the ledger's logic is written against, so that the same
// statements run inside a SQLite, PostgreSQL or CockroachDB transaction. Placeholders are $1, $2…
// on every engine.
type querier interface {
	exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	// write runs a statement whose only answer is a row count, which check judges. An engine may
	// hold writes back and send them together, in order, before COMMIT (or before the next
	// read), to save round trips; a failed check then fails the transaction before it commits.
	write(ctx context.Context, query string, args []any, check func(rowsAffected int64) error) error
	queryRow(ctx context.Context, query string, args ...any) scanner
	query(ctx context.Context, query string, args ...any) (rows, error)
	// queryEach runs one single-row query once per argument list, in order, and scans each
	// answer (errNoRows when a query matched nothing). An engine may send them together.
	queryEach(ctx context.Context, query string, argsList [][]any, scan func(scanner) error) error
}

type scanner interface{ Scan(dest ...any) error }

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// errNoRows is what queryRow's Scan returns when nothing matched, on every engine.
var errNoRows = errors.New("no rows")

// engine is one kind of database.
type engine interface {
	// name is "sqlite", "postgres" or "cockroachdb".
	name() string
	// readWrite runs fn in a serializable read-write transaction, retrying it on the engine's
	// retryable errors; fn may run several times and must not keep state between attempts.
	readWrite(ctx context.Context, fn func(q querier) error) error
	// readOnly runs fn in a read-only transaction with one consistent snapshot.
	readOnly(ctx context.Context, fn func(q querier) error) error
	// reader runs single statements outside an explicit transaction; each statement reads one
	// snapshot, which is all that Get and List need.
	reader() querier
	// forUpdate is the clause that locks the rows a SELECT reads ("" where the whole transaction
	// already holds the write lock).
	forUpdate() string
	ping(ctx context.Context) error
	close()
}

// errRequestRecorded says that another transaction recorded one of the request ids this one was
// deciding; the caller looks the request log up again and replays what it finds.
var errRequestRecorded = errors.New("a request id was recorded by a concurrent transaction")

// errCommitOutcomeUnknown says that the connection broke while COMMIT was in flight: the
// transaction may or may not have committed.
var errCommitOutcomeUnknown = errors.New("the outcome of COMMIT is unknown")

// Limits shared by the engines.
const (
	// maxTxAttempts bounds the retries of one transaction; the caller then gets ABORTED.
	maxTxAttempts = 12
	// retryBase is the first backoff; it doubles at each attempt, with jitter, up to retryCap.
	retryBase = 2 * time.Millisecond
	retryCap  = 200 * time.Millisecond
)
