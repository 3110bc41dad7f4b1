package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/sethvargo/go-retry"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteEngine is the embedded default: one file, WAL, every write transaction BEGIN IMMEDIATE (so
// SQLite's single writer serializes them), synchronous=FULL so that an acknowledged commit
// survives a power cut.
//
// Reads go through a second pool on the same file whose transactions are deferred and whose
// connections are query_only: a WAL reader reads the snapshot it started in and neither waits for
// the writer nor makes it wait, so Verify and the report never stall awards (issue 12, item 8).
type sqliteEngine struct {
	db   *sql.DB // read-write: BEGIN IMMEDIATE
	read *sql.DB // read-only: BEGIN (deferred), query_only
	cfg  Config
}

// sqliteDSN is the DSN of the SQLite file at path, its transactions begun with txlock
// ("immediate" or "deferred"), plus extra pragmas.
func sqliteDSN(path string, cfg Config, txlock string, extra ...string) string {
	q := url.Values{}
	for _, p := range append([]string{
		fmt.Sprintf("busy_timeout(%d)", cfg.TxTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"foreign_keys(ON)",
	}, extra...) {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", txlock)
	if cfg.MustExist {
		// Without it SQLite creates a missing file: a mistyped path would open an empty ledger.
		q.Set("mode", "rw")
	}
	return "file:" + path + "?" + q.Encode()
}

func openSQLite(ctx context.Context, path string, cfg Config) (*sqliteEngine, error) {
	if cfg.MustExist {
		// An empty file is no ledger either: SQLite would take it for a new database.
		info, err := os.Stat(path)
		if err == nil && info.Size() == 0 {
			err = errors.New("the file is empty")
		}
		if err != nil {
			return nil, fmt.Errorf("%w (SQLite file %s: %w)", ErrNoDatabase, path, err)
		}
	}
	db, err := sql.Open("sqlite", sqliteDSN(path, cfg, "immediate"))
	if err != nil {
		return nil, fmt.Errorf("opening SQLite file %s: %w", path, err)
	}
	// One writer at a time is SQLite's rule; the read pool below serves readers beside it.
	db.SetMaxOpenConns(8)
	if cfg.MaxConns > 0 {
		db.SetMaxOpenConns(cfg.MaxConns)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite file %s: %w", path, err)
	}
	if err := cfg.migrate(ctx, db, "sqlite", false); err != nil {
		db.Close()
		return nil, err
	}
	// Opened after the migrations, so that the file exists and is in WAL mode already.
	read, err := sql.Open("sqlite", sqliteDSN(path, cfg, "deferred", "query_only(1)"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening SQLite file %s: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	if cfg.MaxConns > 0 {
		read.SetMaxOpenConns(cfg.MaxConns)
	}
	return &sqliteEngine{db: db, read: read, cfg: cfg}, nil
}

func (e *sqliteEngine) Name() string      { return "sqlite" }
func (e *sqliteEngine) ForUpdate() string { return "" }
func (e *sqliteEngine) Reader() Querier   { return sqlQuerier{e.read} }

func (e *sqliteEngine) Close() {
	e.read.Close()
	e.db.Close()
}

func (e *sqliteEngine) Ping(ctx context.Context) error {
	var one int
	return e.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func (e *sqliteEngine) Sequencing(ctx context.Context, fn func(q Querier) error) error {
	return e.ReadWrite(ctx, fn)
}

func (e *sqliteEngine) InlineSequence() bool { return true }

func (e *sqliteEngine) ReadWrite(ctx context.Context, fn func(q Querier) error) error {
	return retry.Do(ctx, backoff(), func(ctx context.Context) error {
		err := e.attempt(ctx, fn)
		if err != nil && (sqliteBusy(err)) {
			e.cfg.retried("sqlite")
			return retry.RetryableError(err)
		}
		return err
	})
}

func (e *sqliteEngine) attempt(ctx context.Context, fn func(q Querier) error) error {
	tx, err := e.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from _txlock
	if err != nil {
		return err
	}
	if err := fn(sqlQuerier{tx}); err != nil {
		tx.Rollback()
		if sqliteRequestRecorded(err) {
			return fmt.Errorf("%w: %w", ErrRequestRecorded, err)
		}
		return err
	}
	return tx.Commit()
}

// sqliteRequestRecorded reports a primary-key violation on the request log: a request id recorded
// after this transaction looked it up.
func sqliteRequestRecorded(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY &&
		strings.Contains(se.Error(), "requests.request_id")
}

// ReadOnly runs fn in a deferred transaction of the read pool: in WAL mode it reads the snapshot
// of its first statement to the end, while the writer goes on committing beside it.
func (e *sqliteEngine) ReadOnly(ctx context.Context, fn func(q Querier) error) error {
	return retry.Do(ctx, backoff(), func(ctx context.Context) error {
		err := e.readAttempt(ctx, fn)
		if err != nil && sqliteBusy(err) {
			e.cfg.retried("sqlite")
			return retry.RetryableError(err)
		}
		return err
	})
}

func (e *sqliteEngine) readAttempt(ctx context.Context, fn func(q Querier) error) error {
	tx, err := e.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(sqlQuerier{tx})
}

func sqliteBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return false
}

// sqliteFatal reports errors that mean the file cannot be used (gone, read-only, full, corrupt).
func sqliteFatal(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return false
}

// sqlQuerier adapts database/sql (a transaction, or the pool for single-statement reads) to
// Querier. SQLite runs in process: writes are run at once, there is no round trip to save.
type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (s sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlQuerier) Write(ctx context.Context, query string, args []any, check func(int64) error) error {
	n, err := s.Exec(ctx, query, args...)
	if err != nil || check == nil {
		return err
	}
	return check(n)
}

func (s sqlQuerier) QueryEach(ctx context.Context, query string, argsList [][]any, scan func(Scanner) error) error {
	for _, args := range argsList {
		if err := scan(s.QueryRow(ctx, query, args...)); err != nil {
			return err
		}
	}
	return nil
}

func (s sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Scanner {
	return sqlRow{s.q.QueryRowContext(ctx, query, args...)}
}

func (s sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	r, err := s.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

type sqlRow struct{ row *sql.Row }

func (r sqlRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNoRows
	}
	return err
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// sqlitePath turns a --database value into a file path: "sqlite:PATH", "file:PATH" or a bare path.
func sqlitePath(dsn string) string {
	for _, prefix := range []string{"sqlite://", "sqlite:", "file:"} {
		if strings.HasPrefix(dsn, prefix) {
			return strings.TrimPrefix(dsn, prefix)
		}
	}
	return dsn
}
