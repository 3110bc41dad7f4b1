package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/sethvargo/go-retry"
)

// pgEngine serves PostgreSQL and CockroachDB through one pgx pool and the same SQL. Every
// read-write transaction runs at SERIALIZABLE. The two engines differ only in how a transaction is
// retried:
//
//   - PostgreSQL: our own loop. Each attempt begins a fresh transaction, the error of COMMIT is
//     checked, and SQLSTATE 40001/40P01 are retried with jittered backoff. To save round trips,
//     BEGIN travels with the transaction's first statements and COMMIT with its writes, in
//     pipelined batches: after an error PostgreSQL skips the rest of a batch, COMMIT included, so
//     a failed write never commits; a write's row count is judged by the server for the same
//     reason (pgxQuerier.hold). cockroach-go's
//     ExecuteTx must not be used here: it retries with SAVEPOINT cockroach_restart, which on
//     PostgreSQL keeps the old snapshot, and it ignores the error of the final COMMIT, so writes
//     PostgreSQL rolled back would be reported as successes (see TestCommitTimeSerializationFailure).
//   - CockroachDB: the same loop (retrying), each attempt a transaction begun on its own
//     (cockroachAttempt); 40003 "result is ambiguous" leaves the outcome unknown
//     (cockroachOutcome), like a connection lost during COMMIT.
type pgEngine struct {
	pool      *pgxpool.Pool
	cockroach bool
	cfg       Config
}

func openPostgres(ctx context.Context, dsn string, cfg Config) (*pgEngine, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message can quote the URL, password included: say only what is wrong.
		return nil, errors.New("the database URL is not a valid PostgreSQL URL")
	}
	switch {
	case cfg.MaxConns > 0:
		pcfg.MaxConns = int32(cfg.MaxConns)
	case !strings.Contains(dsn, "pool_max_conns"):
		// pgx's default, max(4, CPUs), starves group Commit: each busy batch worker holds a
		// connection for its transaction.
		pcfg.MaxConns = max(16, pcfg.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.TxTimeout)
	defer cancel()
	var version string
	if err := pool.QueryRow(pingCtx, "SELECT version()").Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to %s:%d: %w", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	e := &pgEngine{pool: pool, cockroach: strings.Contains(version, "CockroachDB"), cfg: cfg}
	if e.cockroach {
		if err := checkCockroachVersion(version); err != nil {
			pool.Close()
			return nil, err
		}
	}
	// Migrations get connections of their own: the migration lock holds one while the migration
	// runs on another, which must not come out of (or wait on) the service's pool. They use the
	// simple protocol: CockroachDB 24.3 and 25.1 before their March 2025 patches refused CREATE
	// TRIGGER sent as a prepared statement when autocommit_before_ddl is on
	// (cockroachdb/cockroach#141810).
	mcfg := pcfg.ConnConfig.Copy()
	mcfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	db := stdlib.OpenDB(*mcfg)
	defer db.Close()
	if err := cfg.migrate(ctx, db, "postgres", e.cockroach, Redact(dsn)); err != nil {
		pool.Close()
		return nil, err
	}
	return e, nil
}

func (e *pgEngine) Name() string {
	if e.cockroach {
		return "cockroachdb"
	}
	return "postgres"
}

func (e *pgEngine) ForUpdate() string { return " FOR UPDATE" }
func (e *pgEngine) Close()            { e.pool.Close() }
func (e *pgEngine) Reader() Querier   { return &pgxQuerier{q: e.pool, postgres: !e.cockroach} }

func (e *pgEngine) Ping(ctx context.Context) error { return e.pool.Ping(ctx) }

func (e *pgEngine) ReadWrite(ctx context.Context, fn func(q Querier) error) error {
	if e.cockroach {
		return e.retrying(ctx, func(ctx context.Context) error {
			return e.cockroachAttempt(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn)
		})
	}
	return e.retrying(ctx, func(ctx context.Context) error { return e.attempt(ctx, fn) })
}

func (e *pgEngine) Sequencing(ctx context.Context, fn func(q Querier) error) error {
	if e.cockroach {
		return e.ReadWrite(ctx, fn)
	}
	return e.retrying(ctx, func(ctx context.Context) error {
		return e.attemptAt(ctx, "BEGIN ISOLATION LEVEL READ COMMITTED", fn)
	})
}

// retrying runs attempt until it succeeds or fails for good: serialization failures and
// deadlocks (40001, 40P01) are retried with jittered exponential backoff, each retry counted
// (Config.OnRetry, ledger_transaction_retries_total), at most maxTxAttempts times and never past
// ctx's deadline, which the ledger sets from --tx-timeout. The same loop serves PostgreSQL and
// CockroachDB, read-write and read-only transactions.
func (e *pgEngine) retrying(ctx context.Context, attempt func(ctx context.Context) error) error {
	attempts := 0
	return retry.Do(ctx, backoff(), func(ctx context.Context) error {
		if attempts++; attempts > 1 {
			e.cfg.retried(e.Name())
		}
		err := attempt(ctx)
		if err != nil && pgRetryable(err) {
			return retry.RetryableError(err)
		}
		return err
	})
}

// cockroachAttempt is one CockroachDB transaction: BEGIN (a round trip of its own), fn, its
// held-back writes, COMMIT, with the error of COMMIT judged by cockroachOutcome. It does not use
// cockroach-go's ExecuteTx: that retries inside one transaction (ROLLBACK TO SAVEPOINT
// cockroach_restart) up to 50 times with no backoff, no count and no bound but the caller's
// context; a fresh transaction per attempt lets retrying bound, space and count the retries like
// PostgreSQL's, at the cost of the priority a restarted transaction keeps (group commit keeps
// conflicts rare; docs/cockroachdb.md).
func (e *pgEngine) cockroachAttempt(ctx context.Context, opts pgx.TxOptions, fn func(q Querier) error) error {
	tx, err := e.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	q := &pgxQuerier{q: tx}
	err = fn(q)
	if err == nil {
		err = q.flush(ctx)
	}
	if err != nil {
		// The rollback's own error adds nothing: the transaction is abandoned either way.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return cockroachOutcome(err, false)
	}
	return cockroachOutcome(tx.Commit(ctx), true)
}

// cockroachOutcome classifies the error of a CockroachDB transaction (atCommit: the error of
// COMMIT itself). The outcome is unknown, and the caller must look the request log up again as
// after a connection lost during COMMIT on PostgreSQL, when CockroachDB says so (SQLSTATE 40003,
// "result is ambiguous", from any statement), when cockroach-go says so (crdb.AmbiguousCommitError,
// a RELEASE SAVEPOINT that failed), when COMMIT got no answer, or when the server ended the
// session in answer to it (FATAL). A server's other answer to COMMIT (40001 included) means
// nothing was committed.
func cockroachOutcome(err error, atCommit bool) error {
	var (
		pe        *pgconn.PgError
		ambiguous *crdb.AmbiguousCommitError
		le        *core.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ambiguous), errors.As(err, &pe) && pe.Code == "40003",
		atCommit && errors.As(err, &pe) && sessionEnded(pe):
		return fmt.Errorf("%w: %w", ErrCommitOutcomeUnknown, err)
	case requestRecorded(err):
		return fmt.Errorf("%w: %w", ErrRequestRecorded, err)
	case !atCommit, errors.As(err, &pe), errors.As(err, &le), errors.Is(err, pgx.ErrTxCommitRollback):
		return err
	}
	// No answer to COMMIT (a broken connection, a deadline): it may have committed.
	return fmt.Errorf("%w: %w", ErrCommitOutcomeUnknown, err)
}

func (e *pgEngine) InlineSequence() bool { return false }

// attempt is one serializable PostgreSQL transaction.
func (e *pgEngine) attempt(ctx context.Context, fn func(q Querier) error) error {
	return e.attemptAt(ctx, "BEGIN ISOLATION LEVEL SERIALIZABLE", fn)
}

// attemptAt is one PostgreSQL transaction: begin, fn, COMMIT, with COMMIT's error returned.
func (e *pgEngine) attemptAt(ctx context.Context, begin string, fn func(q Querier) error) error {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection released inside a transaction is closed by the pool, never reused.
	defer conn.Release()
	q := &pgxQuerier{q: conn.Conn(), begin: begin, copy: true, postgres: true}
	err = fn(q)
	if err == nil {
		err = q.commit(ctx)
	} else if q.begin == "" {
		// The rollback's own error adds nothing: the transaction is abandoned either way.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	if requestRecorded(err) {
		return fmt.Errorf("%w: %w", ErrRequestRecorded, err)
	}
	return err
}

// requestRecorded reports a unique violation on the request log: another transaction recorded
// the same request id first.
func requestRecorded(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "requests_pkey"
}

func (e *pgEngine) ReadOnly(ctx context.Context, fn func(q Querier) error) error {
	// PostgreSQL: one snapshot (REPEATABLE READ), which a read-only transaction never has to
	// retry. CockroachDB runs REPEATABLE READ as SERIALIZABLE unless a cluster setting says
	// otherwise, and a long serializable read can fail with 40001 once its results have begun
	// to stream: ask for SERIALIZABLE there and retry like a write. A caller that accepts a
	// past snapshot (ReadingHistory) reads, with Config.FollowerReads, at
	// follower_read_timestamp(), which conflicts with no writer.
	opts := readOptions(e.cockroach, e.cfg.FollowerReads && historyAccepted(ctx))
	return e.retrying(ctx, func(ctx context.Context) error {
		return pgx.BeginTxFunc(ctx, e.pool, opts, func(tx pgx.Tx) error { return fn(&pgxQuerier{q: tx}) })
	})
}

// followerRead begins a CockroachDB transaction that reads, read-only, at the follower read
// timestamp (a constant expression: CockroachDB takes no placeholder in AS OF SYSTEM TIME).
const followerRead = "BEGIN AS OF SYSTEM TIME follower_read_timestamp()"

// readOptions are the options of a read-only transaction (see ReadOnly).
func readOptions(cockroach, past bool) pgx.TxOptions {
	switch {
	case cockroach && past:
		return pgx.TxOptions{BeginQuery: followerRead}
	case cockroach:
		return pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}
	}
	return pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
}

// pgRetryable reports the errors after which the same transaction may succeed: serialization
// failures and deadlocks.
func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// pgUnavailable reports errors that mean the server cannot be reached or is shutting down.
func pgUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot
		// connect now; 53300: too many connections.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, pgx.ErrTxClosed) ||
		strings.Contains(err.Error(), "conn closed")
}

// pgxQuerier adapts a pgx transaction or pool to Querier. Writes are held back and sent as one
// pipelined batch (one round trip) before the next read or before COMMIT.
type pgxQuerier struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
		SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
		CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	}
	// copy allows COPY for large inserts, and marks a transaction of PostgreSQL proper (not
	// CockroachDB), whose planner settings queryIndexed and writeIndexed use.
	copy bool
	// postgres marks PostgreSQL proper, in or out of a transaction (PeekCommitments).
	postgres bool
	pending  []pendingWrite
	// begin, when set, is the BEGIN statement still to send: it goes with the first statement.
	begin string
}

// started sends BEGIN if it is still pending.
func (p *pgxQuerier) started(ctx context.Context) error {
	if p.begin == "" {
		return nil
	}
	_, err := p.q.Exec(ctx, p.begin)
	p.begin = ""
	return err
}

type pendingWrite struct {
	query string
	args  []any
	want  *RowCount
	// judged: the server judges want's count (judgedByServer), and answers a row, not a count.
	judged bool
}

func (p *pgxQuerier) Write(_ context.Context, query string, args []any, want *RowCount) error {
	p.pending = append(p.pending, p.hold(query, args, want))
	return nil
}

// hold is a write held back. In a transaction of PostgreSQL proper, COMMIT travels in the same
// pipeline as the writes, so a row count judged on its answer would be judged after the
// transaction committed: a write with a count to meet is sent as judgedByServer's statement
// instead, which fails in the server when the count differs, and the failure skips COMMIT.
// CockroachDB's transactions send their writes before COMMIT (cockroachAttempt): their counts
// are judged on the answer.
func (p *pgxQuerier) hold(query string, args []any, want *RowCount) pendingWrite {
	if want == nil || !p.copy {
		return pendingWrite{query: query, args: args, want: want}
	}
	return pendingWrite{query: judgedByServer(query, len(args)), args: append(args[:len(args):len(args)], want.Rows),
		want: want, judged: true}
}

// rowCountMark begins the text judgedByServer's statement fails to cast, followed by the count.
const rowCountMark = "ledger: rows written "

// judgedByServer is a write of n parameters rewritten to fail, in the server, when its row count
// differs from parameter n+1: the cast of a text to integer fails with SQLSTATE 22P02 and a
// message that quotes the text, rowCountMark and the count (judgedRowCount reads it back).
func judgedByServer(query string, n int) string {
	return fmt.Sprintf("WITH w AS (%s RETURNING 1) SELECT CASE WHEN count(*) = $%d::bigint THEN 0 "+
		"ELSE CAST('%s' || count(*) AS integer) END FROM w", query, n+1, rowCountMark)
}

// errRowCount marks a write the server refused for its row count.
var errRowCount = errors.New("a write's row count was refused")

// judgedRowCount turns the server's refusal of a judged write's row count into want's error.
func judgedRowCount(err error, want *RowCount) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22P02" {
		return err
	}
	at := strings.Index(pe.Message, rowCountMark)
	if at < 0 {
		return err
	}
	digits := pe.Message[at+len(rowCountMark):]
	digits = digits[:len(digits)-len(strings.TrimLeft(digits, "0123456789"))]
	got, perr := strconv.ParseInt(digits, 10, 64)
	if perr != nil {
		return err
	}
	return fmt.Errorf("%w: %w", errRowCount, want.Short(got))
}

// commit sends the held-back writes and COMMIT as one batch. A serializable transaction can fail
// at COMMIT (SQLSTATE 40001): that error is the outcome. An error that is not the server's answer
// (a broken connection, a deadline) leaves the outcome unknown. A write that fails makes
// PostgreSQL skip the rest of the batch, COMMIT included; the transaction is then rolled back.
func (p *pgxQuerier) commit(ctx context.Context) error {
	err := pgCommitOutcome(p.send(ctx, "COMMIT"))
	if err != nil && errors.Is(err, errWriteFailed) && !errors.Is(err, ErrCommitOutcomeUnknown) {
		_, _ = p.q.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}

// pgCommitOutcome classifies the error of the batch that ends with COMMIT. PostgreSQL's ERROR (or
// a write's row count refused) means nothing was committed. No answer (a broken connection, a
// deadline), even if it surfaced while reading a write's result, means COMMIT may have run on the
// server: ErrCommitOutcomeUnknown. So does a session ended by the server (FATAL) in answer to
// COMMIT: a backend terminated while it waits for a synchronous standby has committed locally
// first, and says so only in a warning.
func pgCommitOutcome(err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && sessionEnded(pe) && !errors.Is(err, errWriteFailed):
		return fmt.Errorf("%w: %w", ErrCommitOutcomeUnknown, err)
	case errors.As(err, &pe), errors.Is(err, errRowCount):
		return err
	}
	return fmt.Errorf("%w: %w", ErrCommitOutcomeUnknown, err)
}

// sessionEnded reports whether the server ended the session with its answer (FATAL, PANIC)
// rather than only the transaction (ERROR).
func sessionEnded(pe *pgconn.PgError) bool {
	return pe.Severity == "FATAL" || pe.Severity == "PANIC"
}

// flush sends the held-back writes in one batch and judges each row count.
func (p *pgxQuerier) flush(ctx context.Context) error {
	if len(p.pending) == 0 {
		return nil
	}
	return p.send(ctx, "")
}

// errWriteFailed marks the failure of a held-back write (as opposed to one of COMMIT).
var errWriteFailed = errors.New("a write failed")

// send sends, as one pipelined batch: BEGIN if still pending, the held-back writes, and tail if
// not empty. It judges each write's row count.
func (p *pgxQuerier) send(ctx context.Context, tail string) error {
	b := &pgx.Batch{}
	hadBegin := p.begin != ""
	if hadBegin {
		b.Queue(p.begin)
	}
	for _, w := range p.pending {
		b.Queue(w.query, w.args...)
	}
	if tail != "" {
		b.Queue(tail)
	}
	pending := p.pending
	p.pending, p.begin = nil, ""
	br := p.q.SendBatch(ctx, b)
	var firstErr error
	if hadBegin {
		if _, err := br.Exec(); err != nil {
			firstErr = fmt.Errorf("%w: %w", errWriteFailed, err)
		}
	}
	for _, w := range pending {
		tag, err := br.Exec()
		switch {
		case w.judged && err != nil:
			err = judgedRowCount(err, w.want)
		case err == nil && !w.judged:
			err = w.want.judge(tag.RowsAffected())
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%w: %w", errWriteFailed, err)
		}
	}
	var tailErr error
	if tail != "" {
		_, tailErr = br.Exec()
	}
	closeErr := br.Close()
	switch {
	case firstErr != nil:
		return firstErr
	case tailErr != nil:
		return tailErr
	}
	return closeErr
}

func (p *pgxQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if err := p.flush(ctx); err != nil {
		return 0, err
	}
	if err := p.started(ctx); err != nil {
		return 0, err
	}
	tag, err := p.q.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (p *pgxQuerier) QueryRow(ctx context.Context, query string, args ...any) Scanner {
	if err := p.flush(ctx); err != nil {
		return errRow{err}
	}
	if err := p.started(ctx); err != nil {
		return errRow{err}
	}
	return pgxRow{p.q.QueryRow(ctx, query, args...)}
}

func (p *pgxQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	if err := p.started(ctx); err != nil {
		return nil, err
	}
	r, err := p.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// batch begins a pipelined batch, after the held-back writes are sent: with BEGIN first (hadBegin)
// if it is still to send.
func (p *pgxQuerier) batch(ctx context.Context) (b *pgx.Batch, hadBegin bool, err error) {
	if err := p.flush(ctx); err != nil {
		return nil, false, err
	}
	b = &pgx.Batch{}
	if hadBegin = p.begin != ""; hadBegin {
		b.Queue(p.begin)
		p.begin = ""
	}
	return b, hadBegin, nil
}

// queryEach sends the queries as one pipelined batch: one round trip.
func (p *pgxQuerier) QueryEach(ctx context.Context, query string, argsList [][]any, scan func(Scanner) error) error {
	b, hadBegin, err := p.batch(ctx)
	if err != nil {
		return err
	}
	for _, args := range argsList {
		b.Queue(query, args...)
	}
	br := p.q.SendBatch(ctx, b)
	if hadBegin {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	for range argsList {
		if err := scan(pgxRow{br.QueryRow()}); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// Sequential scans off for one statement: see indexedStatements (envelopes.go).
const (
	seqscanOff = "SET LOCAL enable_seqscan = off"
	seqscanOn  = "SET LOCAL enable_seqscan = on"
)

// Joins by key for one statement: sequential scans, hash and merge joins off, so that a join
// finds each row of the other side through an index, whatever the planner's statistics say
// (positionBySet).
const (
	joinByKeyOff = "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), " +
		"set_config('enable_mergejoin', 'off', true)"
	joinByKeyOn = "SELECT set_config('enable_seqscan', 'on', true), set_config('enable_hashjoin', 'on', true), " +
		"set_config('enable_mergejoin', 'on', true)"
)

// indexed reports whether q is a transaction of PostgreSQL proper, where queryIndexed and
// writeIndexed may be used.
func indexed(q Querier) (*pgxQuerier, bool) {
	p, ok := q.(*pgxQuerier)
	return p, ok && p.copy
}

// queryIndexed runs query, scanning each row it returns, with sequential scans disabled for it
// alone: SET LOCAL enable_seqscan before it and after it, in its round trip (with BEGIN if that
// is still to send).
func (p *pgxQuerier) queryIndexed(ctx context.Context, query string, args []any, scan func(Scanner) error) error {
	return p.queryPlanned(ctx, seqscanOff, seqscanOn, query, args, scan)
}

// queryPlanned runs query like queryIndexed, between the planner settings off and on.
func (p *pgxQuerier) queryPlanned(ctx context.Context, off, on, query string, args []any, scan func(Scanner) error) error {
	b, hadBegin, err := p.batch(ctx)
	if err != nil {
		return err
	}
	b.Queue(off)
	b.Queue(query, args...)
	b.Queue(on)
	br := p.q.SendBatch(ctx, b)
	err = func() error {
		if hadBegin {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if _, err := br.Exec(); err != nil { // the first SET
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = br.Exec()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeIndexed holds back a write like Write, with sequential scans disabled for it alone.
func (p *pgxQuerier) writeIndexed(query string, args []any, want *RowCount) {
	p.pending = append(p.pending, pendingWrite{query: seqscanOff}, p.hold(query, args, want),
		pendingWrite{query: seqscanOn})
}

// copyRows copies rows into table with COPY, after the held-back writes (one round trip). It
// reports false when this Querier does not copy.
func (p *pgxQuerier) copyRows(ctx context.Context, table string, columns []string, rows [][]any) (bool, error) {
	if !p.copy {
		return false, nil
	}
	if err := p.flush(ctx); err != nil {
		return true, err
	}
	if err := p.started(ctx); err != nil {
		return true, err
	}
	nativeUUIDValues(table, columns, rows)
	n, err := p.q.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
	if err == nil && n != int64(len(rows)) {
		err = core.Internal("COPY into %s wrote %d of %d rows", table, n, len(rows))
	}
	return true, err
}

// errRow is a row whose query could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type pgxRow struct{ row pgx.Row }

func (r pgxRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNoRows
	}
	return err
}

func backoff() retry.Backoff {
	return retry.WithMaxRetries(maxTxAttempts-1,
		retry.WithCappedDuration(retryCap, retry.WithJitterPercent(50, retry.NewExponential(retryBase))))
}
