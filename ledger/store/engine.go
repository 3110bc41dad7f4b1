package store

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Querier is the little SQL surface the ledger is written against, so that the same statements
// run inside a SQLite, PostgreSQL or CockroachDB transaction. Placeholders are $1, $2… on every
// engine.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	// Write runs a statement whose only answer is a row count, which want, if not nil, judges.
	// An engine may hold writes back and send them together, in order, before COMMIT (or before
	// the next read), to save round trips; a row count other than want's then fails the
	// transaction before it commits, with want's error, on every engine (PostgreSQL judges it in
	// the server: pgxQuerier.send).
	Write(ctx context.Context, query string, args []any, want *RowCount) error
	QueryRow(ctx context.Context, query string, args ...any) Scanner
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryEach runs one single-row query once per argument list, in order, and scans each
	// answer (ErrNoRows when a query matched nothing). An engine may send them together.
	QueryEach(ctx context.Context, query string, argsList [][]any, scan func(Scanner) error) error
}

// RowCount is the row count a Write must report, and the error when it reports another.
type RowCount struct {
	Rows  int64
	Short func(got int64) error
}

// Expect is the RowCount of rows, with short the error of another count.
func Expect(rows int64, short func(got int64) error) *RowCount {
	return &RowCount{Rows: rows, Short: short}
}

// judge is nil when got is the count wanted (or nothing is wanted), else want's error.
func (want *RowCount) judge(got int64) error {
	if want == nil || got == want.Rows {
		return nil
	}
	return want.Short(got)
}

// Scanner reads one row.
type Scanner interface{ Scan(dest ...any) error }

// Rows is the answer of Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// ErrNoRows is what QueryRow's Scan returns when nothing matched, on every engine.
var ErrNoRows = errors.New("no rows")

// Engine is one kind of database.
type Engine interface {
	// Name is "sqlite", "postgres" or "cockroachdb".
	Name() string
	// ReadWrite runs fn in a serializable read-write transaction, retrying it on the engine's
	// retryable errors; fn may run several times and must not keep state between attempts.
	ReadWrite(ctx context.Context, fn func(q Querier) error) error
	// Sequencing runs fn in a transaction meant for assigning journal positions (see
	// sequence.go), retrying it like ReadWrite. Its exclusion comes from the journal_head row it
	// locks, so it reads what is committed when each statement runs (READ COMMITTED on
	// PostgreSQL) and never makes serializable write transactions abort.
	Sequencing(ctx context.Context, fn func(q Querier) error) error
	// InlineSequence reports whether write transactions run one at a time (SQLite): then a
	// position taken inside a write transaction is its commit order, and entries are given theirs
	// before they commit.
	InlineSequence() bool
	// ReadOnly runs fn in a read-only transaction with one consistent snapshot, retrying it on the
	// engine's retryable errors (fn may run several times). With a context from ReadingHistory
	// and Config.FollowerReads, CockroachDB reads a snapshot a few seconds old (see ReadingHistory).
	ReadOnly(ctx context.Context, fn func(q Querier) error) error
	// Reader runs single statements outside an explicit transaction; each statement reads one
	// snapshot, which is all that Get and List need.
	Reader() Querier
	// ForUpdate is the clause that locks the rows a SELECT reads ("" where the whole transaction
	// already holds the write lock).
	ForUpdate() string
	Ping(ctx context.Context) error
	Close()
}

// Config tunes an engine.
type Config struct {
	// TxTimeout bounds the connection check at open and SQLite's busy timeout.
	TxTimeout time.Duration
	// MaxConns caps the connection pool (0: the engine's default).
	MaxConns int
	// OnRetry is called each time a transaction is run again after a retryable failure.
	OnRetry func(engine string)
	// FollowerReads lets the reads that accept a past snapshot (ReadingHistory: Verify and
	// the reports) read on CockroachDB at follower_read_timestamp(), a few seconds in the past,
	// so that they never conflict with writers and any replica can serve them. No effect on
	// SQLite and PostgreSQL.
	FollowerReads bool
	// Logger, when set, receives what opening the database has to warn of: a migration waiting
	// for the migration lock of another process (PostgreSQL, CockroachDB).
	Logger *slog.Logger
	// MustExist refuses to create the database: a SQLite file that does not exist is
	// ErrNoDatabase, not a new empty ledger (PostgreSQL never creates a database on connect).
	MustExist bool

	// noMigrate opens the database as it is, without migrating it (the source of a copy).
	noMigrate bool
	// unfinishedCopy opens a database that `ledgerd copy` has not finished filling (the
	// target of a copy resuming); any other Open refuses it (ErrUnfinishedCopy).
	unfinishedCopy bool
}

// historyKey marks a context whose reads accept a past snapshot.
type historyKey struct{}

// ReadingHistory marks ctx for reads that accept a consistent snapshot of the recent past
// instead of the latest commits: whole-ledger scans (Verify, reports). With Config.FollowerReads
// on CockroachDB, ReadOnly then reads at follower_read_timestamp() (about 4.8 s behind by default):
// what committed after that instant is not seen, the snapshot is still consistent, and the read
// can neither fail nor delay a writer. Elsewhere it changes nothing.
func ReadingHistory(ctx context.Context) context.Context {
	return context.WithValue(ctx, historyKey{}, true)
}

func historyAccepted(ctx context.Context) bool {
	v, _ := ctx.Value(historyKey{}).(bool)
	return v
}

// ErrNoDatabase says that Config.MustExist was set and the database does not exist.
var ErrNoDatabase = errors.New("no ledger database: it is never created here")

func (c Config) retried(engine string) {
	if c.OnRetry != nil {
		c.OnRetry(engine)
	}
}

// Open opens (creating it if needed) the database and brings its schema up to date:
//
//   - "postgres://…" or "postgresql://…": PostgreSQL, or CockroachDB (detected from its version
//     string);
//   - "sqlite:PATH", "file:PATH" or a bare PATH: an embedded SQLite file.
func Open(ctx context.Context, database string, cfg Config) (Engine, error) {
	if cfg.TxTimeout <= 0 {
		cfg.TxTimeout = 5 * time.Second
	}
	e, err := open(ctx, database, cfg)
	if err != nil {
		return nil, err
	}
	if !cfg.unfinishedCopy {
		if err := checkCopyFinished(ctx, e); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// open opens the engine of database, without the checks of Open.
func open(ctx context.Context, database string, cfg Config) (Engine, error) {
	if cfg.TxTimeout <= 0 {
		cfg.TxTimeout = 5 * time.Second
	}
	if isPostgres(database) {
		return openPostgres(ctx, database, cfg)
	}
	if looksLikePostgres(database) {
		return nil, ErrNotPostgresURL
	}
	return openSQLite(ctx, sqlitePath(database), cfg)
}

// isPostgres reports whether database names a PostgreSQL or CockroachDB server.
func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// ErrNotPostgresURL refuses a PostgreSQL connection string in another form than a URL, which
// would otherwise name a new SQLite file (its password in the file's name). The value is not
// repeated: it may hold a password.
var ErrNotPostgresURL = errors.New("the database looks like a PostgreSQL connection string, but ledgerd takes a " +
	"postgres:// URL (postgres://user@host:5432/dbname?sslmode=…) for PostgreSQL and CockroachDB, or a SQLite file's path")

// pgKeywordValue matches a libpq keyword/value connection string ("host=… user=… dbname=…"):
// one that begins with a connection keyword, or holds a password anywhere.
var pgKeywordValue = regexp.MustCompile(`(?i)^\s*(host|hostaddr|port|dbname|user|password|passfile|sslmode|service|connect_timeout|application_name|options|target_session_attrs)\s*=|(^|\s)\w*password\s*=`)

// looksLikePostgres reports whether database, not a postgres:// URL, is still meant for
// PostgreSQL: a keyword/value string, or the scheme without "//" (postgres:NAME).
func looksLikePostgres(database string) bool {
	lower := strings.ToLower(database)
	return strings.HasPrefix(lower, "postgres:") || strings.HasPrefix(lower, "postgresql:") || pgKeywordValue.MatchString(database)
}

// Redact is database as it may be shown (logs, messages, the record of a copy): a URL's
// password, and any query parameter whose name holds "password" (pgx takes
// ?password=… and ?sslpassword=…), replaced by "xxxxx". A SQLite path is shown as it is.
func Redact(database string) string {
	if !isPostgres(database) {
		if looksLikePostgres(database) {
			return "(a PostgreSQL connection string)"
		}
		return database
	}
	u, err := url.Parse(database)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	// Parameter by parameter, keeping their order and spelling.
	params := strings.Split(u.RawQuery, "&")
	for i, p := range params {
		raw, _, _ := strings.Cut(p, "=")
		name, err := url.QueryUnescape(raw)
		if err != nil {
			name = raw
		}
		if strings.Contains(strings.ToLower(name), "password") {
			params[i] = raw + "=xxxxx"
		}
	}
	u.RawQuery = strings.Join(params, "&")
	return u.String()
}

// Retryable reports whether err is a transient conflict: the same transaction may succeed if
// run again.
func Retryable(err error) bool {
	return errors.Is(err, ErrRequestRecorded) || pgRetryable(err) || sqliteBusy(err)
}

// Unavailable reports whether err says the database cannot be reached or used.
func Unavailable(err error) bool {
	return pgUnavailable(err) || sqliteFatal(err)
}

// ErrRequestRecorded says that another transaction recorded one of the request ids this one was
// deciding; the caller looks the request log up again and replays what it finds.
var ErrRequestRecorded = errors.New("a request id was recorded by a concurrent transaction")

// ErrCommitOutcomeUnknown says that the transaction may or may not have committed: the
// connection broke while COMMIT was in flight, or CockroachDB answered that the result is
// ambiguous (SQLSTATE 40003, crdb.AmbiguousCommitError). The caller looks the request log up to
// learn it.
var ErrCommitOutcomeUnknown = errors.New("the outcome of COMMIT is unknown")

// Limits shared by the engines.
const (
	// maxTxAttempts bounds the retries of one transaction; the caller then gets ABORTED.
	maxTxAttempts = 12
	// retryBase is the first backoff; it doubles at each attempt, with jitter, up to retryCap.
	retryBase = 2 * time.Millisecond
	retryCap  = 200 * time.Millisecond
)
