package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

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
//
// Write transactions run on one connection of the read-write pool, kept for the engine's life
// (sqliteWriter), one transaction at a time in this process (SQLite has one writer anyway; waiting
// here is cheaper than polling SQLite's lock), with the statements it ran prepared on that very
// connection and kept for the next transactions. Preparing elsewhere — on the pool, while a
// transaction holds a connection and the write lock — is what deadlocked an earlier attempt at a
// statement cache (TestEveryOperationOnOneConnection).
type sqliteEngine struct {
	db     *sql.DB // read-write: the writer's connection
	read   *sql.DB // read-only: BEGIN (deferred), query_only
	cfg    Config
	writer chan *sqliteWriter // holds the writer while no write transaction runs
	closed atomic.Bool
}

// sqliteWriter is the connection of this process's write transactions, and the statements
// prepared on it, by SQL text.
type sqliteWriter struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

// maxCachedStatements bounds the writer's prepared statements; when it is reached they are all
// closed and the cache starts again (multi-row statements come in a few sizes, see bulkInsert,
// and IN lists in as many as a batch has items).
const maxCachedStatements = 512

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
	if err := probeSQLite(ctx, path, cfg); err != nil {
		return nil, err
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
	if err := cfg.migrate(ctx, db, "sqlite", false, path); err != nil {
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
	// The read-write pool serves the writer's connection only.
	db.SetMaxOpenConns(1)
	e := &sqliteEngine{db: db, read: read, cfg: cfg, writer: make(chan *sqliteWriter, 1)}
	e.writer <- &sqliteWriter{}
	return e, nil
}

// probeSQLite refuses an existing file that holds another application's tables (refuseForeign)
// before the engine's own connections open it: their journal_mode(WAL) pragma rewrites the
// file's header and leaves -wal and -shm files beside it. The probe sets no pragma and only reads.
func probeSQLite(ctx context.Context, path string, cfg Config) error {
	if cfg.noMigrate {
		return nil // opened as it is, to be inspected by the caller (backup, copy)
	}
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		return nil // a new ledger (or the error, said by the open that follows)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.TxTimeout.Milliseconds()))
	q.Set("mode", "rw")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("opening SQLite file %s: %w", path, err)
	}
	defer db.Close()
	_, err = cfg.refuseBeforeWrite(ctx, db, "sqlite", path)
	return err
}

func (e *sqliteEngine) Name() string      { return "sqlite" }
func (e *sqliteEngine) ForUpdate() string { return "" }
func (e *sqliteEngine) Reader() Querier   { return sqlQuerier{e.read} }

func (e *sqliteEngine) Close() {
	e.closed.Store(true)
	e.read.Close()
	select {
	case w := <-e.writer:
		w.reset()
		e.writer <- w
	default: // a transaction still running: attempt closes the connection when it ends
	}
	e.db.Close()
}

// Ping reads through the read pool: the read-write pool's one connection may be in a write
// transaction.
func (e *sqliteEngine) Ping(ctx context.Context) error {
	var one int
	return e.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
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

// attempt is one write transaction on the writer's connection: BEGIN IMMEDIATE, fn, COMMIT.
func (e *sqliteEngine) attempt(ctx context.Context, fn func(q Querier) error) error {
	var w *sqliteWriter
	select {
	case w = <-e.writer:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() {
		if e.closed.Load() {
			w.reset()
		}
		e.writer <- w
	}()
	if w.conn == nil {
		conn, err := e.db.Conn(ctx)
		if err != nil {
			return err
		}
		// The statement journal, which SQLite keeps for each statement of a write transaction
		// that may have to undo itself alone (a multi-row insert, an update checked by a
		// trigger), spills past 64 KiB to a temporary file by default: its write system calls
		// took 12 % of ledgerd's CPU under 64 clients (docs/benchmarks.md, "SQLite's statement
		// journal"). It only serves to undo a statement inside a live transaction, so it needs
		// no file: a crash rolls the whole transaction back from the WAL. Set on the writer's
		// connection only (not for migrations, nor readers' large sorts, which keep their
		// temporary files).
		if _, err := conn.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
			conn.Close()
			return err
		}
		w.conn, w.stmts = conn, map[string]*sql.Stmt{}
	}
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		// The driver reports the context's end even when BEGIN went through: never leave the
		// connection inside a transaction.
		w.rollback()
		return err
	}
	if err := fn(&sqliteTx{w: w}); err != nil {
		w.rollback()
		if sqliteRequestRecorded(err) {
			return fmt.Errorf("%w: %w", ErrRequestRecorded, err)
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		w.rollback()
		return err
	}
	// As database/sql's Tx.Commit: once begun, COMMIT is not interrupted by the context (the
	// driver would report the context's error whatever COMMIT did).
	if _, err := w.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		w.rollback() // a COMMIT refused (SQLITE_BUSY) leaves the transaction open
		return err
	}
	return nil
}

// rollback ends the transaction. SQLite may have rolled it back already (an interrupted
// statement, some I/O errors): "no transaction is active" is then expected. On any other failure
// the connection is given up, its statements with it, and the next transaction opens another.
func (w *sqliteWriter) rollback() {
	if w.conn == nil {
		return
	}
	_, err := w.conn.ExecContext(context.Background(), "ROLLBACK")
	if err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		w.reset()
	}
}

// reset closes the writer's statements and connection.
func (w *sqliteWriter) reset() {
	for _, s := range w.stmts {
		s.Close()
	}
	if w.conn != nil {
		w.conn.Close()
	}
	w.conn, w.stmts = nil, nil
}

// sqliteTx is the Querier of a write transaction: every statement is prepared once on the
// writer's connection, with SQLite's parameters (sqliteParams), and kept.
type sqliteTx struct{ w *sqliteWriter }

func (t *sqliteTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := t.w.stmts[query]; ok {
		return s, nil
	}
	if len(t.w.stmts) >= maxCachedStatements {
		for k, s := range t.w.stmts {
			s.Close()
			delete(t.w.stmts, k)
		}
	}
	s, err := t.w.conn.PrepareContext(ctx, sqliteParams(query))
	if err != nil {
		return nil, err
	}
	t.w.stmts[query] = s
	return s, nil
}

// maxInsertParams is what bulkInsert may bind in one statement: SQLite's limit (32,766 since
// 3.32, the limit of modernc.org/sqlite's build). With nameless parameters (sqliteParams)
// parsing and binding are linear in their number, and each size of statement is parsed once.
func (t *sqliteTx) maxInsertParams() int { return 32766 }

// positionsInline: SQLite runs one write transaction at a time, so InsertEntries gives entries
// their positions as it inserts them (see inlinePositioner).
func (t *sqliteTx) positionsInline() bool { return true }

func (t *sqliteTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	res, err := s.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *sqliteTx) Write(ctx context.Context, query string, args []any, want *RowCount) error {
	n, err := t.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	return want.judge(n)
}

func (t *sqliteTx) QueryEach(ctx context.Context, query string, argsList [][]any, scan func(Scanner) error) error {
	for _, args := range argsList {
		if err := scan(t.QueryRow(ctx, query, args...)); err != nil {
			return err
		}
	}
	return nil
}

func (t *sqliteTx) QueryRow(ctx context.Context, query string, args ...any) Scanner {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return errScanner{err}
	}
	return sqlRow{s.QueryRowContext(ctx, args...)}
}

func (t *sqliteTx) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	s, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	r, err := s.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

type errScanner struct{ err error }

func (e errScanner) Scan(...any) error { return e.err }

// sqliteParams turns PostgreSQL's $N parameters into SQLite's, outside quoted strings and names:
// plain ? when the statement names $1, $2, … each once and in order (the usual case), ?N
// otherwise. SQLite takes $N too, but it is a name: parsing looks each one up among those seen
// before, and so does modernc.org/sqlite's binding, for every parameter of every execution
// (sqlite3_bind_parameter_name), both quadratic in the statement's parameters. A nameless ?
// costs neither.
func sqliteParams(query string) string {
	if !strings.Contains(query, "$") {
		return query
	}
	var (
		numbered, plain strings.Builder // ?N for every $N; plain ? (valid while in order)
		quote           byte
		inOrder         = true
		next            = 1
	)
	numbered.Grow(len(query))
	plain.Grow(len(query))
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			if n, err := strconv.Atoi(query[i+1 : j]); err != nil || n != next {
				inOrder = false
			}
			next++
			numbered.WriteByte('?')
			numbered.WriteString(query[i+1 : j])
			plain.WriteByte('?')
			i = j - 1
			continue
		}
		numbered.WriteByte(c)
		plain.WriteByte(c)
	}
	if inOrder {
		// Every parameter in order, once: the numbers are not needed.
		return plain.String()
	}
	return numbered.String()
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

// sqlQuerier adapts database/sql (a read transaction, or the read pool for single-statement
// reads) to Querier, with SQLite's parameters (sqliteParams). SQLite runs in process: writes are
// run at once, there is no round trip to save.
type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (s sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, sqliteParams(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s sqlQuerier) Write(ctx context.Context, query string, args []any, want *RowCount) error {
	n, err := s.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	return want.judge(n)
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
	return sqlRow{s.q.QueryRowContext(ctx, sqliteParams(query), args...)}
}

func (s sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	r, err := s.q.QueryContext(ctx, sqliteParams(query), args...)
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
