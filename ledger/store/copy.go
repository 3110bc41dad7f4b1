package store

// Copying a whole ledger from one database to another, any pair among SQLite, PostgreSQL and
// CockroachDB (issue 20, `ledgerd copy`, docs/operations.md).
//
// The copy knows no table of the ledger by name: it reads the tables, their columns, primary
// keys and foreign keys from the source's catalog (sqlite_master and pragma_table_info on SQLite,
// information_schema on PostgreSQL and CockroachDB), so a later migration's tables and columns
// are carried without a change here. What it relies on:
//
//   - Both databases are at the schema version of this binary: the target is migrated by it,
//     the source is opened without migrating and refused when its applied migrations are not
//     exactly the binary's (older: run the new ledgerd on it once; newer: copy with the binary
//     that wrote it).
//   - The source is read in ONE snapshot (a deferred read transaction on SQLite's WAL, a
//     REPEATABLE READ READ ONLY transaction on PostgreSQL, a serializable one on CockroachDB):
//     writers may go on committing on the source, the copy is the ledger as it was at the
//     snapshot's start, and nothing committed after it is copied.
//   - Tables are copied parents before children (by their foreign keys), each table's rows in
//     its primary-key order, in target transactions of at most BatchRows rows. A column that
//     refers to its own table (an envelope's parent) is copied NULL with its row and set in a
//     second phase, so that a child whose id sorts before its parent's needs no deferred
//     constraint. The append-only triggers only refuse UPDATE and DELETE of history; INSERT
//     fires none of them, and the CHECK constraints hold for every row as it stands in the
//     source (they are row checks). Rows that a fresh ledger already holds (the journal's and
//     the log's head rows, seeded by the migrations) are upserted; both heads may grow.
//   - Progress lives in the target (migration 13): ledger_copy says what is being copied and
//     that the copy is unfinished, ledger_copy_tables holds for each table the primary key of the
//     last row copied in the source's order. Each batch's rows and its progress row are written
//     by one transaction, so an interrupted copy resumes exactly after the last committed batch
//     and never writes a row twice. (The last key present in the target would not do: the
//     engines order text differently, PostgreSQL by its collation, SQLite by bytes.) A resumed
//     copy must see the same source: a fingerprint of the source's snapshot (each table's row
//     count and first and last key, and the head rows) is kept and compared.
//   - Until the copy finishes, Open refuses the target (ErrUnfinishedCopy): no ledgerd serves a
//     half-copied ledger.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// CopyOptions tune Copy.
type CopyOptions struct {
	// BatchRows is the most rows one target transaction writes (default 5000).
	BatchRows int
	// TxTimeout bounds the opening of each database (default 30s).
	TxTimeout time.Duration
	// Progress, when set, is called after every batch.
	Progress func(CopyProgress)
	// AfterBatch, when set (tests), is called after every batch has committed.
	AfterBatch func()
}

// CopyProgress is where a copy stands.
type CopyProgress struct {
	Table string // the table being copied
	// Rows are the rows copied so far of all tables (those of an interrupted run included),
	// TotalRows those of the source's snapshot.
	Rows, TotalRows int64
}

// TableCount is a table's row count.
type TableCount struct {
	Table string
	Rows  int64
}

// CopyResult is what Copy did.
type CopyResult struct {
	// Tables are the copied tables in the order copied, with their rows in the target.
	Tables []TableCount
	// Resumed says that the copy continued an interrupted one; Rows are the rows this run wrote.
	Resumed bool
	Rows    int64
}

// ErrUnfinishedCopy is what Open returns on a database that `ledgerd copy` has begun to fill and
// not finished.
var ErrUnfinishedCopy = errors.New("this database is the target of an unfinished `ledgerd copy`: it holds part of a ledger and is not served")

// ErrCopyRefused wraps every refusal of Copy that changed nothing.
var ErrCopyRefused = errors.New("copy refused")

// ErrBackupRefused refuses to back up a ledger whose schema is not this binary's
// (CheckBackupSchema).
var ErrBackupRefused = errors.New("backup refused")

// excludedTables are not the ledger's: goose's version table and migration lock, and the copy's
// own progress.
var excludedTables = []string{"goose_db_version", "ledger_migration_lock", "ledger_copy", "ledger_copy_tables"}

// refuseBeforeWrite is what is refused of a database before anything is written to it: with
// MustExist (verify, export, backup, a copy's source), one that holds no ledger is ErrNoDatabase,
// whatever else it holds; otherwise one that holds another application's tables
// (refuseForeign). held says whether it holds a ledger (a schema version).
func (c Config) refuseBeforeWrite(ctx context.Context, db *sql.DB, dialect, database string) (held bool, err error) {
	if held, err = holdsLedger(ctx, db, dialect); err != nil {
		return false, fmt.Errorf("reading the schema version: %w", err)
	}
	if !c.MustExist {
		return held, refuseForeign(ctx, db, dialect, database)
	}
	if !held {
		return false, fmt.Errorf("%w (the database holds no ledger: no schema version of one)", ErrNoDatabase)
	}
	return true, nil
}

// migrate runs the migrations, unless the configuration opens the database as it is.
// A database holding another application's tables is refused (refuseForeign).
// With MustExist, the database must already hold a ledger: one that does not (another
// application's, a database created by hand and never served) is ErrNoDatabase, and is left
// as it is rather than given the ledger's tables.
func (c Config) migrate(ctx context.Context, db *sql.DB, dialect string, cockroach bool, database string) error {
	if c.noMigrate {
		return nil
	}
	// Before goose writes anything (its lock table is its first write).
	held, err := c.refuseBeforeWrite(ctx, db, dialect, database)
	if err != nil {
		return err
	}
	if held {
		// A ledger a later release has migrated is not this binary's to serve or check: its
		// writes would follow rules the schema has moved past (a log leaf encoded without a field
		// the later release logs, ids compared as text once they are UUIDs), and its verify
		// would judge by them.
		unknown, _, err := schemaDiff(ctx, sqlDBs{read: db, dialect: dialect, cockroach: cockroach})
		if err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		}
		if len(unknown) > 0 {
			return fmt.Errorf("%w: the database has schema migrations %v that this ledgerd does not know: run the release that applied them, or a later one", ErrSchemaNewer, unknown)
		}
	}
	return migrate(ctx, db, dialect, cockroach, c.Logger)
}

// ErrSchemaNewer refuses a ledger whose schema a later release of ledgerd has migrated.
var ErrSchemaNewer = errors.New("the ledger's schema is newer than this ledgerd")

// checkCopyFinished refuses a database whose copy is not finished.
func checkCopyFinished(ctx context.Context, e Engine) error {
	var source string
	var finished sql.NullInt64
	err := e.Reader().QueryRow(ctx, `SELECT source, finished_at FROM ledger_copy WHERE id = 1`).Scan(&source, &finished)
	switch {
	case errors.Is(err, ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("reading the copy state: %w", err)
	case !finished.Valid:
		return fmt.Errorf("%w (copying from %s); run the same `ledgerd copy` again to finish it", ErrUnfinishedCopy, source)
	}
	return nil
}

// sqlDBs are an engine's database/sql handles: read reads (the source), write writes (the target).
type sqlDBs struct {
	dialect   string // "sqlite" or "postgres"
	cockroach bool
	read      *sql.DB
	write     *sql.DB
	close     func()
}

func handles(e Engine) sqlDBs {
	switch e := e.(type) {
	case *sqliteEngine:
		return sqlDBs{dialect: "sqlite", read: e.read, write: e.db, close: func() {}}
	case *pgEngine:
		db := stdlib.OpenDBFromPool(e.pool)
		return sqlDBs{dialect: "postgres", cockroach: e.cockroach, read: db, write: db, close: func() { db.Close() }}
	}
	panic(fmt.Sprintf("copy: unknown engine %T", e))
}

// knownVersions are the migration versions of this binary for one engine (some Go migrations
// have nothing to do, and are not registered, on some engines: goMigrations).
func knownVersions(dialect string, cockroach bool) ([]int64, error) {
	sources, err := migrationSources(dialect, cockroach)
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(sources, "*.sql")
	if err != nil {
		return nil, err
	}
	var vs []int64
	for _, name := range names {
		v, err := strconv.ParseInt(strings.SplitN(name, "_", 2)[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration file %s: %w", name, err)
		}
		vs = append(vs, v)
	}
	for _, g := range goMigrations(dialect, cockroach) {
		vs = append(vs, g.version)
	}
	slices.Sort(vs)
	return slices.Compact(vs), nil
}

// holdsLedger reports whether the database has the ledger's schema version table, with a
// version in it; any other failure to tell is an error, not an answer.
func holdsLedger(ctx context.Context, db *sql.DB, dialect string) (bool, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`
	if dialect != "sqlite" {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'goose_db_version'`
	}
	var n int
	if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil || n == 0 {
		return false, err
	}
	vs, err := appliedVersions(ctx, db)
	return len(vs) > 0, err
}

// appliedVersions are the migrations applied to a database.
func appliedVersions(ctx context.Context, db *sql.DB) ([]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT version_id FROM goose_db_version WHERE is_applied AND version_id > 0 ORDER BY version_id`)
	if err != nil {
		return nil, fmt.Errorf("reading the schema version (is it a ledger?): %w", err)
	}
	defer rows.Close()
	var vs []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// schemaDiff compares a database's applied migrations with this binary's: those it has that this
// binary does not know (its schema is newer), and those it lacks (older).
func schemaDiff(ctx context.Context, h sqlDBs) (unknown, missing []int64, err error) {
	known, err := knownVersions(h.dialect, h.cockroach)
	if err != nil {
		return nil, nil, err
	}
	applied, err := appliedVersions(ctx, h.read)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range applied {
		if !slices.Contains(known, v) {
			unknown = append(unknown, v)
		}
	}
	for _, v := range known {
		if !slices.Contains(applied, v) {
			missing = append(missing, v)
		}
	}
	return unknown, missing, nil
}

// checkVersions says what to do when the schema of a copy's source or target (what) is not this
// binary's.
func checkVersions(ctx context.Context, h sqlDBs, what string) error {
	unknown, missing, err := schemaDiff(ctx, h)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case len(unknown) > 0:
		return fmt.Errorf("%w: the %s has schema migrations %v that this ledgerd does not know (its schema is newer): copy it with the ledgerd release that wrote it, or a later one", ErrCopyRefused, what, unknown)
	case len(missing) > 0:
		return fmt.Errorf("%w: the %s lacks schema migrations %v of this ledgerd (its schema is older): upgrade it first, by starting this ledgerd on it once (or `ledgerd verify --database …` with this binary), then copy", ErrCopyRefused, what, missing)
	}
	return nil
}

// copyTable is one table as the catalog describes it.
type copyTable struct {
	name    string
	cols    []string // the columns copied, in the catalog's order
	key     []string // the primary key's columns (on CockroachDB, maybe a hidden shard column too)
	selfRef []string // nullable columns referring to this table itself: set in a second phase
	parents []string // other tables its foreign keys refer to
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryStrings(ctx context.Context, q queryer, query string, args ...any) ([][]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// catalog reads the ledger's tables from the database's catalog, parents before children.
func catalog(ctx context.Context, q queryer, h sqlDBs) ([]copyTable, error) {
	var tables []copyTable
	if h.dialect == "sqlite" {
		names, err := queryStrings(ctx, q, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if slices.Contains(excludedTables, n[0]) {
				continue
			}
			t := copyTable{name: n[0]}
			cols, err := queryStrings(ctx, q, `SELECT name, pk, "notnull" FROM pragma_table_info($1) ORDER BY cid`, t.name)
			if err != nil {
				return nil, err
			}
			keys := map[int]string{}
			nullable := map[string]bool{}
			for _, c := range cols {
				t.cols = append(t.cols, c[0])
				if pk, _ := strconv.Atoi(c[1]); pk > 0 {
					keys[pk] = c[0]
				}
				nullable[c[0]] = c[2] == "0"
			}
			for i := 1; i <= len(keys); i++ {
				t.key = append(t.key, keys[i])
			}
			fks, err := queryStrings(ctx, q, `SELECT "table", "from" FROM pragma_foreign_key_list($1)`, t.name)
			if err != nil {
				return nil, err
			}
			if err := t.addForeignKeys(fks, nullable); err != nil {
				return nil, err
			}
			tables = append(tables, t)
		}
	} else {
		// The tables of the current schema, but an extension's (schemaTables): PostGIS's
		// spatial_ref_sys beside a ledger is neither copied nor a difference of schema.
		names, err := schemaTables(ctx, q, h.dialect)
		if err != nil {
			return nil, err
		}
		hidden := `'NO'`
		if h.cockroach {
			hidden = `is_hidden`
		}
		for _, name := range names {
			if slices.Contains(excludedTables, name) {
				continue
			}
			t := copyTable{name: name}
			cols, err := queryStrings(ctx, q, `SELECT column_name, is_nullable, `+hidden+`, COALESCE(is_generated, 'NEVER')
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1
				ORDER BY ordinal_position`, t.name)
			if err != nil {
				return nil, err
			}
			nullable := map[string]bool{}
			for _, c := range cols {
				nullable[c[0]] = c[1] == "YES"
				if c[2] == "NO" && c[3] == "NEVER" {
					t.cols = append(t.cols, c[0])
				}
			}
			keys, err := queryStrings(ctx, q, `SELECT kcu.column_name FROM information_schema.table_constraints tc
				JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name
				 AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name
				WHERE tc.table_schema = current_schema() AND tc.table_name = $1 AND tc.constraint_type = 'PRIMARY KEY'
				ORDER BY kcu.ordinal_position`, t.name)
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				t.key = append(t.key, k[0])
			}
			fks, err := queryStrings(ctx, q, `SELECT ccu.table_name, kcu.column_name FROM information_schema.table_constraints tc
				JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name
				 AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name
				JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name
				 AND ccu.constraint_schema = tc.constraint_schema
				WHERE tc.table_schema = current_schema() AND tc.table_name = $1 AND tc.constraint_type = 'FOREIGN KEY'`, t.name)
			if err != nil {
				return nil, err
			}
			if err := t.addForeignKeys(fks, nullable); err != nil {
				return nil, err
			}
			tables = append(tables, t)
		}
	}
	for _, t := range tables {
		if len(t.key) == 0 {
			return nil, fmt.Errorf("table %s has no primary key: the copy streams every table in its primary key's order", t.name)
		}
	}
	return parentsFirst(tables)
}

// addForeignKeys records the foreign keys (referenced table, column) of t.
func (t *copyTable) addForeignKeys(fks [][]string, nullable map[string]bool) error {
	for _, fk := range fks {
		switch {
		case fk[0] != t.name:
			if !slices.Contains(t.parents, fk[0]) {
				t.parents = append(t.parents, fk[0])
			}
		case !nullable[fk[1]]:
			return fmt.Errorf("table %s: column %s refers to its own table and is NOT NULL: the copy cannot order its rows", t.name, fk[1])
		case !slices.Contains(t.selfRef, fk[1]):
			t.selfRef = append(t.selfRef, fk[1])
		}
	}
	return nil
}

// parentsFirst orders tables so that every table comes after the tables it refers to, by name
// otherwise.
func parentsFirst(tables []copyTable) ([]copyTable, error) {
	var out []copyTable
	placed := map[string]bool{}
	for len(out) < len(tables) {
		progress := false
		for _, t := range tables {
			if placed[t.name] {
				continue
			}
			ready := true
			for _, p := range t.parents {
				if !placed[p] {
					ready = false
				}
			}
			if ready {
				out = append(out, t)
				placed[t.name] = true
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("the tables' foreign keys form a cycle: the copy cannot order them")
		}
	}
	return out, nil
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

func params(from, n int) string {
	p := make([]string, n)
	for i := range p {
		p[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(p, ", ")
}

// keyJSON encodes a primary key's values, their types kept (JSON numbers would turn int64 to
// float64).
func keyJSON(vals []any) (string, error) {
	enc := make([][2]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case int64:
			enc[i] = [2]string{"i", strconv.FormatInt(v, 10)}
		case string:
			enc[i] = [2]string{"s", v}
		case []byte:
			enc[i] = [2]string{"b", hex.EncodeToString(v)}
		case float64:
			enc[i] = [2]string{"f", strconv.FormatFloat(v, 'g', -1, 64)}
		default:
			return "", fmt.Errorf("primary key value of type %T", v)
		}
	}
	b, err := json.Marshal(enc)
	return string(b), err
}

func parseKeyJSON(s string) ([]any, error) {
	var enc [][2]string
	if err := json.Unmarshal([]byte(s), &enc); err != nil {
		return nil, err
	}
	vals := make([]any, len(enc))
	for i, e := range enc {
		var err error
		switch e[0] {
		case "i":
			vals[i], err = strconv.ParseInt(e[1], 10, 64)
		case "s":
			vals[i] = e[1]
		case "b":
			vals[i], err = hex.DecodeString(e[1])
		case "f":
			vals[i], err = strconv.ParseFloat(e[1], 64)
		default:
			err = fmt.Errorf("unknown key type %q", e[0])
		}
		if err != nil {
			return nil, err
		}
	}
	return vals, nil
}

// render writes a row's values as text, the same on every engine (for comparisons).
func render(vals []any) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteByte('|')
		}
		switch v := v.(type) {
		case nil:
			b.WriteString("NULL")
		case []byte:
			b.WriteString(hex.EncodeToString(v))
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

func scanAny(rows *sql.Rows, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	for i, v := range vals {
		if b, ok := v.([]byte); ok {
			vals[i] = slices.Clone(b)
		}
	}
	return vals, nil
}

// TableRows returns every row of table in its primary key's order, rendered as text (tests:
// comparing two ledgers table by table).
func TableRows(ctx context.Context, database, table string) ([]string, error) {
	var rows []string
	err := withCatalog(ctx, database, func(h sqlDBs, tables []copyTable) error {
		for _, t := range tables {
			if t.name == table {
				var err error
				rows, err = tableRows(ctx, h.read, t)
				return err
			}
		}
		return fmt.Errorf("no table %s", table)
	})
	return rows, err
}

// Tables lists the ledger's tables (the copy's: goose's and the copy's own excluded), parents first.
func Tables(ctx context.Context, database string) ([]string, error) {
	var names []string
	err := withCatalog(ctx, database, func(_ sqlDBs, tables []copyTable) error {
		for _, t := range tables {
			names = append(names, t.name)
		}
		return nil
	})
	return names, err
}

// withCatalog opens the ledger at database as it is (never migrated) and calls fn with its
// handles and the tables the copy carries.
func withCatalog(ctx context.Context, database string, fn func(h sqlDBs, tables []copyTable) error) error {
	e, err := open(ctx, database, Config{MustExist: true, noMigrate: true, TxTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer e.Close()
	h := handles(e)
	defer h.close()
	tables, err := catalog(ctx, h.read, h)
	if err != nil {
		return err
	}
	return fn(h, tables)
}

func tableRows(ctx context.Context, q queryer, t copyTable) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+quoteAll(t.cols)+` FROM `+quote(t.name)+` ORDER BY `+quoteAll(t.key))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := scanAny(rows, len(t.cols))
		if err != nil {
			return nil, err
		}
		out = append(out, render(vals))
	}
	return out, rows.Err()
}

// keyRows returns the primary keys of a table's rows, rendered.
func keyRows(ctx context.Context, q queryer, t copyTable) ([]string, error) {
	k := t
	k.cols = t.key
	return tableRows(ctx, q, k)
}

// freshKeys are the primary keys of the rows a freshly migrated ledger holds, per table (the
// heads the migrations seed), and its tables, read from a new SQLite ledger in a temporary
// directory.
func freshKeys(ctx context.Context) (map[string][]string, []copyTable, error) {
	dir, err := os.MkdirTemp("", "ledger-copy-fresh-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	e, err := open(ctx, filepath.Join(dir, "fresh.db"), Config{TxTimeout: 30 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("making a fresh ledger to compare with: %w", err)
	}
	defer e.Close()
	h := handles(e)
	tables, err := catalog(ctx, h.read, h)
	if err != nil {
		return nil, nil, err
	}
	out := map[string][]string{}
	for _, t := range tables {
		keys, err := keyRows(ctx, h.read, t)
		if err != nil {
			return nil, nil, err
		}
		out[t.name] = keys
	}
	return out, tables, nil
}

// ledgerCopier is one run of Copy.
type ledgerCopier struct {
	opts         CopyOptions
	src, dst     sqlDBs
	fresh        map[string][]string
	total, done  int64
	rowsThisRun  int64
	insertTexts  map[string]string
	progressStmt string
}

// Copy copies the whole ledger at from into to (see the top of this file). The target must be
// empty, or hold an unfinished copy of the same, unchanged source, which is then resumed.
func Copy(ctx context.Context, from, to string, opts CopyOptions) (CopyResult, error) {
	if opts.BatchRows <= 0 {
		opts.BatchRows = 5000
	}
	if opts.TxTimeout <= 0 {
		opts.TxTimeout = 30 * time.Second
	}
	if from == to || !isPostgres(from) && !isPostgres(to) && sqlitePath(from) == sqlitePath(to) {
		return CopyResult{}, fmt.Errorf("%w: the source and the target are the same database", ErrCopyRefused)
	}
	srcEngine, err := open(ctx, from, Config{TxTimeout: opts.TxTimeout, MustExist: true, noMigrate: true})
	if err != nil {
		return CopyResult{}, fmt.Errorf("opening the source: %w", err)
	}
	defer srcEngine.Close()
	c := &ledgerCopier{opts: opts, src: handles(srcEngine), insertTexts: map[string]string{}}
	defer c.src.close()
	if err := checkVersions(ctx, c.src, "source"); err != nil {
		return CopyResult{}, err
	}
	if err := checkCopyFinished(ctx, srcEngine); err != nil {
		return CopyResult{}, fmt.Errorf("%w: the source: %w", ErrCopyRefused, err)
	}
	var freshTables []copyTable
	if c.fresh, freshTables, err = freshKeys(ctx); err != nil {
		return CopyResult{}, err
	}
	// What can be refused before the target is written (created, migrated) is refused here.
	empty, err := c.checkTarget(ctx, to, opts)
	if err != nil {
		return CopyResult{}, err
	}
	if empty {
		// The target will be a fresh ledger: the source must have its tables and columns.
		srcTables, err := catalog(ctx, c.src.read, c.src)
		if err != nil {
			return CopyResult{}, fmt.Errorf("reading the source's catalog: %w", err)
		}
		if d := schemaDifference(srcTables, freshTables); d != "" {
			return CopyResult{}, fmt.Errorf("%w: the source's tables and columns are not a ledger's at this schema version "+
				"(%s, not in a new ledger); nothing was written", ErrCopyRefused, d)
		}
	}
	dstEngine, err := open(ctx, to, Config{TxTimeout: opts.TxTimeout, unfinishedCopy: true})
	if err != nil {
		return CopyResult{}, fmt.Errorf("opening the target: %w", err)
	}
	defer dstEngine.Close()
	c.dst = handles(dstEngine)
	defer c.dst.close()
	if err := checkVersions(ctx, c.dst, "target"); err != nil {
		return CopyResult{}, err
	}
	c.progressStmt = `INSERT INTO ledger_copy_tables (table_name, last_key, rows_copied, phase) VALUES ($1, $2, $3, $4)
		ON CONFLICT (table_name) DO UPDATE SET last_key = excluded.last_key, rows_copied = excluded.rows_copied, phase = excluded.phase`

	// The source's snapshot, read to the end of the copy.
	txOpts := &sql.TxOptions{ReadOnly: true}
	if c.src.dialect == "postgres" {
		txOpts.Isolation = sql.LevelRepeatableRead
		if c.src.cockroach {
			txOpts.Isolation = sql.LevelSerializable
		}
	}
	snap, err := c.src.read.BeginTx(ctx, txOpts)
	if err != nil {
		return CopyResult{}, fmt.Errorf("reading the source: %w", err)
	}
	defer snap.Rollback()
	tables, err := catalog(ctx, snap, c.src)
	if err != nil {
		return CopyResult{}, fmt.Errorf("reading the source's catalog: %w", err)
	}
	if err := c.sameSchema(ctx, tables); err != nil {
		return CopyResult{}, err
	}
	counts, fingerprint, err := c.fingerprint(ctx, snap, tables)
	if err != nil {
		return CopyResult{}, fmt.Errorf("reading the source: %w", err)
	}
	for _, n := range counts {
		c.total += n
	}
	resumed, err := c.begin(ctx, from, fingerprint, tables)
	if err != nil {
		return CopyResult{}, err
	}
	for _, t := range tables {
		if err := c.copyTable(ctx, snap, t); err != nil {
			return CopyResult{}, fmt.Errorf("copying table %s: %w (the target is left marked unfinished: run the same copy again to resume it)", t.name, err)
		}
	}
	// Every table holds what the source's snapshot held, and the copy is finished.
	res := CopyResult{Resumed: resumed, Rows: c.rowsThisRun}
	for _, t := range tables {
		var n int64
		if err := c.dst.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(t.name)).Scan(&n); err != nil {
			return CopyResult{}, err
		}
		if n != counts[t.name] {
			return CopyResult{}, fmt.Errorf("table %s: the target has %d rows, the source %d: the copy is left unfinished", t.name, n, counts[t.name])
		}
		res.Tables = append(res.Tables, TableCount{t.name, n})
	}
	if _, err := c.dst.write.ExecContext(ctx, `UPDATE ledger_copy SET finished_at = $1 WHERE id = 1`, time.Now().UnixMicro()); err != nil {
		return CopyResult{}, fmt.Errorf("marking the copy finished: %w", err)
	}
	return res, nil
}

// sameSchema checks that the target has the source's tables and columns.
func (c *ledgerCopier) sameSchema(ctx context.Context, tables []copyTable) error {
	dstTables, err := catalog(ctx, c.dst.write, c.dst)
	if err != nil {
		return fmt.Errorf("reading the target's catalog: %w", err)
	}
	if d := schemaDifference(tables, dstTables); d != "" {
		return fmt.Errorf("%w: the source's tables and columns differ from the target's at the same schema version (%s, not in the target)", ErrCopyRefused, d)
	}
	if d := schemaDifference(dstTables, tables); d != "" {
		return fmt.Errorf("%w: the source's tables and columns differ from the target's at the same schema version (%s, not in the source)", ErrCopyRefused, d)
	}
	return nil
}

// schemaDifference names the first table or column of a that b lacks ("" when none): one line,
// where the whole catalog would be kilobytes.
func schemaDifference(a, b []copyTable) string {
	for _, t := range a {
		i := slices.IndexFunc(b, func(u copyTable) bool { return u.name == t.name })
		if i < 0 {
			return "table " + t.name
		}
		for _, col := range t.cols {
			if !slices.Contains(b[i].cols, col) {
				return "column " + t.name + "." + col
			}
		}
	}
	return ""
}

// checkTarget refuses, reading only, a target that is neither empty nor an empty ledger (or the
// unfinished copy of one), before Copy opens it, which would create or migrate it. empty says
// that the target holds no ledger yet: a new SQLite path, a database without tables (or whose
// first migration is under way). The exact checks follow once it is opened (begin).
func (c *ledgerCopier) checkTarget(ctx context.Context, to string, opts CopyOptions) (empty bool, err error) {
	if !isPostgres(to) {
		if info, err := os.Stat(sqlitePath(to)); errors.Is(err, fs.ErrNotExist) || err == nil && info.Size() == 0 {
			return true, nil
		}
	}
	e, err := open(ctx, to, Config{TxTimeout: opts.TxTimeout, MustExist: true, noMigrate: true})
	if err != nil {
		return false, fmt.Errorf("%w: opening the target: %w", ErrCopyRefused, err)
	}
	defer e.Close()
	h := handles(e)
	defer h.close()
	if err := refuseForeign(ctx, h.read, h.dialect, Redact(to)); err != nil {
		return false, fmt.Errorf("%w: %w", ErrCopyRefused, err)
	}
	held, err := holdsLedger(ctx, h.read, h.dialect)
	if err != nil || !held {
		return err == nil, err
	}
	tables, err := catalog(ctx, h.read, h)
	if err != nil {
		return false, fmt.Errorf("reading the target's catalog: %w", err)
	}
	var source string
	var finished sql.NullInt64
	err = h.read.QueryRowContext(ctx, `SELECT source, finished_at FROM ledger_copy WHERE id = 1`).Scan(&source, &finished)
	switch {
	case err == nil && finished.Valid:
		return false, fmt.Errorf("%w: the target already holds a finished copy (of %s); copy into an empty database", ErrCopyRefused, source)
	case err == nil:
		return false, nil // an unfinished copy: begin compares its source
	}
	// No copy begun (or a ledger older than ledger_copy): each table holds what a fresh ledger does.
	for _, t := range tables {
		var n int
		if err := h.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(t.name)).Scan(&n); err != nil {
			return false, fmt.Errorf("reading the target: %w", err)
		}
		if n != len(c.fresh[t.name]) {
			return false, fmt.Errorf("%w: the target is not empty (table %s has %d rows); copy into an empty database", ErrCopyRefused, t.name, n)
		}
	}
	return false, nil
}

// fingerprint reads each table's row count, and a digest of the snapshot: the counts, each
// table's first and last primary key, and the rows of the tables a fresh ledger seeds (the
// journal's and the log's heads, which every change moves).
func (c *ledgerCopier) fingerprint(ctx context.Context, snap *sql.Tx, tables []copyTable) (map[string]int64, string, error) {
	counts := map[string]int64{}
	h := sha256.New()
	for _, t := range tables {
		var n int64
		if err := snap.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+quote(t.name)).Scan(&n); err != nil {
			return nil, "", err
		}
		counts[t.name] = n
		fmt.Fprintf(h, "%s %d\n", t.name, n)
		for _, dir := range []string{"", " DESC"} {
			order := make([]string, len(t.key))
			for i, k := range t.key {
				order[i] = quote(k) + dir
			}
			keys, err := queryStrings(ctx, snap, `SELECT `+quoteAll(t.key)+` FROM `+quote(t.name)+` ORDER BY `+strings.Join(order, ", ")+` LIMIT 1`)
			if err != nil {
				return nil, "", err
			}
			fmt.Fprintf(h, "%q\n", keys)
		}
		if len(c.fresh[t.name]) > 0 {
			rows, err := tableRows(ctx, snap, t)
			if err != nil {
				return nil, "", err
			}
			fmt.Fprintf(h, "%q\n", rows)
		}
	}
	return counts, hex.EncodeToString(h.Sum(nil)), nil
}

// begin records a new copy in the target, or finds the interrupted one to resume.
func (c *ledgerCopier) begin(ctx context.Context, from, fingerprint string, tables []copyTable) (resumed bool, err error) {
	var source, had string
	var finished sql.NullInt64
	err = c.dst.write.QueryRowContext(ctx, `SELECT source, fingerprint, finished_at FROM ledger_copy WHERE id = 1`).Scan(&source, &had, &finished)
	switch {
	case err == nil && finished.Valid:
		return false, fmt.Errorf("%w: the target already holds a finished copy (of %s); copy into an empty database", ErrCopyRefused, source)
	case err == nil && had != fingerprint:
		return false, fmt.Errorf("%w: the target holds an unfinished copy of %s, but not of this source as it is now "+
			"(another ledger, or this one changed since that copy began); drop the target database (or file) and copy again", ErrCopyRefused, source)
	case err == nil:
		return true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("reading the target's copy state: %w", err)
	}
	// A new copy: the target must be a fresh ledger.
	for _, t := range tables {
		keys, err := keyRows(ctx, c.dst.write, t)
		if err != nil {
			return false, err
		}
		if !slices.Equal(keys, c.fresh[t.name]) {
			return false, fmt.Errorf("%w: the target is not empty (table %s has %d rows); copy into an empty database", ErrCopyRefused, t.name, len(keys))
		}
	}
	_, err = c.dst.write.ExecContext(ctx, `INSERT INTO ledger_copy (id, source, fingerprint, started_at) VALUES (1, $1, $2, $3)`,
		Redact(from), fingerprint, time.Now().UnixMicro())
	if err != nil {
		return false, fmt.Errorf("recording the copy in the target: %w", err)
	}
	return false, nil
}

// Phases of a table's copy (ledger_copy_tables.phase).
const (
	phaseRows     = 0 // rows being copied
	phaseSelfRefs = 1 // rows copied; columns referring to the table itself being set
	phaseDone     = 2
)

func (c *ledgerCopier) copyTable(ctx context.Context, snap *sql.Tx, t copyTable) error {
	var lastKey string
	var copied int64
	phase := phaseRows
	err := c.dst.write.QueryRowContext(ctx, `SELECT last_key, rows_copied, phase FROM ledger_copy_tables WHERE table_name = $1`, t.name).
		Scan(&lastKey, &copied, &phase)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	c.done += copied
	if phase == phaseRows {
		if err := c.copyRows(ctx, snap, t, lastKey, copied); err != nil {
			return err
		}
		phase = phaseSelfRefs
	}
	if phase == phaseSelfRefs {
		// Setting a column to the source's value again changes nothing: this phase is simply
		// run again from its start after an interruption.
		if err := c.copySelfRefs(ctx, snap, t); err != nil {
			return err
		}
	}
	return nil
}

// copyRows streams the rows after lastKey (all when empty) in primary-key order into the
// target, BatchRows per transaction.
func (c *ledgerCopier) copyRows(ctx context.Context, snap *sql.Tx, t copyTable, lastKey string, copied int64) error {
	// The key's columns are read after the copied ones: on CockroachDB the key may hold a hidden
	// column that is not copied.
	query := `SELECT ` + quoteAll(t.cols) + `, ` + quoteAll(t.key) + ` FROM ` + quote(t.name)
	var args []any
	if lastKey != "" {
		vals, err := parseKeyJSON(lastKey)
		if err != nil {
			return fmt.Errorf("the recorded progress: %w", err)
		}
		query += ` WHERE (` + quoteAll(t.key) + `) > (` + params(1, len(vals)) + `)`
		args = vals
	}
	query += ` ORDER BY ` + quoteAll(t.key)
	rows, err := snap.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	nullCols := make([]int, 0, len(t.selfRef))
	for _, col := range t.selfRef {
		nullCols = append(nullCols, slices.Index(t.cols, col))
	}
	batch := make([][]any, 0, c.opts.BatchRows)
	var key []any
	for rows.Next() {
		vals, err := scanAny(rows, len(t.cols)+len(t.key))
		if err != nil {
			return err
		}
		row, k := vals[:len(t.cols)], vals[len(t.cols):]
		for _, i := range nullCols {
			row[i] = nil
		}
		batch = append(batch, row)
		key = k
		if len(batch) == c.opts.BatchRows {
			copied += int64(len(batch))
			if err := c.writeBatch(ctx, t, batch, key, copied, phaseRows); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	next := phaseSelfRefs
	if len(t.selfRef) == 0 {
		next = phaseDone
	}
	copied += int64(len(batch))
	if key == nil && lastKey != "" {
		// Nothing left after the recorded key: keep it.
		if key, err = parseKeyJSON(lastKey); err != nil {
			return err
		}
	}
	return c.writeBatch(ctx, t, batch, key, copied, next)
}

// writeBatch inserts rows and records the progress in one target transaction.
func (c *ledgerCopier) writeBatch(ctx context.Context, t copyTable, batch [][]any, key []any, copied int64, phase int) error {
	keyText := ""
	if key != nil {
		var err error
		if keyText, err = keyJSON(key); err != nil {
			return err
		}
	}
	if c.dst.dialect == "postgres" && !c.dst.cockroach && len(c.fresh[t.name]) == 0 {
		// PostgreSQL loads rows fastest with COPY, in the same transaction as the progress row.
		if err := c.copyIn(ctx, t, batch, keyText, copied, phase); err != nil {
			return err
		}
		c.done += int64(len(batch))
		c.rowsThisRun += int64(len(batch))
		c.report(t.name)
		return nil
	}
	perStmt := max(1, min(len(batch), maxParamsPerInsert/max(1, len(t.cols)), maxRowsPerInsert))
	err := c.inTarget(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(batch); start += perStmt {
			chunk := batch[start:min(start+perStmt, len(batch))]
			args := make([]any, 0, len(chunk)*len(t.cols))
			for _, r := range chunk {
				args = append(args, r...)
			}
			if _, err := tx.ExecContext(ctx, c.insertText(t, len(chunk)), args...); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, c.progressStmt, t.name, keyText, copied, phase)
		return err
	})
	if err != nil {
		return err
	}
	c.done += int64(len(batch))
	c.rowsThisRun += int64(len(batch))
	c.report(t.name)
	return nil
}

func (c *ledgerCopier) report(table string) {
	if c.opts.Progress != nil {
		c.opts.Progress(CopyProgress{Table: table, Rows: c.done, TotalRows: c.total})
	}
	if c.opts.AfterBatch != nil {
		c.opts.AfterBatch()
	}
}

// insertText is the INSERT of n rows into t: an upsert for the tables a fresh ledger seeds.
func (c *ledgerCopier) insertText(t copyTable, n int) string {
	id := t.name + "/" + strconv.Itoa(n)
	if s, ok := c.insertTexts[id]; ok {
		return s
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + quote(t.name) + ` (` + quoteAll(t.cols) + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + params(1+i*len(t.cols), len(t.cols)) + ")")
	}
	if len(c.fresh[t.name]) > 0 {
		var sets []string
		for _, col := range t.cols {
			if !slices.Contains(t.key, col) {
				sets = append(sets, quote(col)+" = excluded."+quote(col))
			}
		}
		b.WriteString(` ON CONFLICT (` + quoteAll(t.key) + `) DO UPDATE SET ` + strings.Join(sets, ", "))
	}
	s := b.String()
	c.insertTexts[id] = s
	return s
}

// copySelfRefs sets the columns of t that refer to t itself, which copyRows wrote NULL.
func (c *ledgerCopier) copySelfRefs(ctx context.Context, snap *sql.Tx, t copyTable) error {
	if len(t.selfRef) == 0 {
		return nil
	}
	var notNull []string
	for _, col := range t.selfRef {
		notNull = append(notNull, quote(col)+" IS NOT NULL")
	}
	rows, err := snap.QueryContext(ctx, `SELECT `+quoteAll(t.selfRef)+`, `+quoteAll(t.key)+` FROM `+quote(t.name)+
		` WHERE `+strings.Join(notNull, " OR ")+` ORDER BY `+quoteAll(t.key))
	if err != nil {
		return err
	}
	defer rows.Close()
	var sets, where []string
	for i, col := range t.selfRef {
		sets = append(sets, quote(col)+" = $"+strconv.Itoa(i+1))
	}
	for i, col := range t.key {
		where = append(where, quote(col)+" = $"+strconv.Itoa(len(t.selfRef)+i+1))
	}
	update := `UPDATE ` + quote(t.name) + ` SET ` + strings.Join(sets, ", ") + ` WHERE ` + strings.Join(where, " AND ")
	flush := func(batch [][]any, phase int) error {
		return c.inTarget(ctx, func(tx *sql.Tx) error {
			for _, args := range batch {
				if _, err := tx.ExecContext(ctx, update, args...); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, `UPDATE ledger_copy_tables SET phase = $1 WHERE table_name = $2`, phase, t.name)
			return err
		})
	}
	var batch [][]any
	for rows.Next() {
		vals, err := scanAny(rows, len(t.selfRef)+len(t.key))
		if err != nil {
			return err
		}
		batch = append(batch, vals)
		if len(batch) == c.opts.BatchRows {
			if err := flush(batch, phaseSelfRefs); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return flush(batch, phaseDone)
}

// inTarget runs fn in a target transaction, again when the engine says the conflict is transient.
func (c *ledgerCopier) inTarget(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			}
		}
		var tx *sql.Tx
		tx, err = c.dst.write.BeginTx(ctx, nil)
		if err != nil {
			if sqliteBusy(err) || pgRetryable(err) {
				continue
			}
			return err
		}
		if err = fn(tx); err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err == nil || !(sqliteBusy(err) || pgRetryable(err)) {
			return err
		}
	}
	return err
}

// CheckSchema refuses (ErrCopyRefused) a copy's source whose applied migrations are not exactly
// this binary's, saying what to do; it changes nothing in the database.
func CheckSchema(ctx context.Context, database string) error {
	return withHandles(ctx, database, func(h sqlDBs) error { return checkVersions(ctx, h, "source") })
}

// CheckBackupSchema refuses (ErrBackupRefused) to back up a ledger whose applied migrations are
// not exactly this binary's: back it up with the release that serves it, before any upgrade
// (which would migrate it first).
func CheckBackupSchema(ctx context.Context, database string) error {
	return withHandles(ctx, database, func(h sqlDBs) error {
		unknown, missing, err := schemaDiff(ctx, h)
		switch {
		case err != nil:
			return err
		case len(unknown) > 0:
			return fmt.Errorf("%w: the ledger has schema migrations %v that this ledgerd does not know (its schema is newer): back it up with the ledgerd release that serves it", ErrBackupRefused, unknown)
		case len(missing) > 0:
			return fmt.Errorf("%w: the ledger lacks schema migrations %v of this ledgerd (its schema is older): back it up with the ledgerd release that serves it (before an upgrade, which migrates it)", ErrBackupRefused, missing)
		}
		return nil
	})
}

// withHandles runs check on the database/sql handles of an existing database, opened as it is.
func withHandles(ctx context.Context, database string, check func(sqlDBs) error) error {
	e, err := open(ctx, database, Config{MustExist: true, noMigrate: true, TxTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer e.Close()
	h := handles(e)
	defer h.close()
	return check(h)
}

// copyIn writes a batch to PostgreSQL with COPY and records the progress, in one transaction on
// one connection (database/sql has no COPY: the transaction is begun and ended by hand around
// pgx's CopyFrom).
func (c *ledgerCopier) copyIn(ctx context.Context, t copyTable, batch [][]any, keyText string, copied int64, phase int) error {
	conn, err := c.dst.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copy: a PostgreSQL connection of type %T", dc)
		}
		nativeUUIDValues(t.name, t.cols, batch)
		_, err := sc.Conn().CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(batch))
		return err
	})
	if err == nil {
		_, err = conn.ExecContext(ctx, c.progressStmt, t.name, keyText, copied, phase)
	}
	if err == nil {
		_, err = conn.ExecContext(ctx, "COMMIT")
		return err
	}
	// The connection goes back to the pool: its transaction must not stay open.
	_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	return err
}
