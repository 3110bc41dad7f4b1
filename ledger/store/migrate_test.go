package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// errInjected is the failure a test injects before a migration's statement.
var errInjected = errors.New("failure injected before this statement")

// TestMigrationsRerunAfterFailure protects the start of every ledgerd (and so every invariant the
// schema enforces, 6 included): a migration that failed at any step is run again, whole, at the
// next start, and must then succeed and leave exactly the schema of a migration that never failed.
//
// It is generic: it runs every migration goose has registered (SQL files and Go migrations), and
// for each, fails it before each of its statements in turn, then starts again. Three modes:
//
//   - sqlite and postgres: as they run in production, each migration in one transaction with its
//     version row (a failure rolls it back);
//   - postgres-statement-by-statement: CockroachDB's mode (isolated DDL), every statement committed
//     on its own, as CockroachDB does with CREATE TRIGGER and with autocommit_before_ddl; a
//     failure leaves the statements before it applied and no version row, and the failure after
//     the last statement (before the version row) is tried too. A migration that breaks the rule
//     written in migrate.go (CREATE without IF NOT EXISTS, a trigger re-created without being
//     dropped, a seed row inserted twice) fails here.
func TestMigrationsRerunAfterFailure(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name      string
		dialect   string
		isolated  bool
		cockroach bool
	}{
		{"sqlite", "sqlite", false, false},
		{"postgres", "postgres", false, false},
		{"postgres-statement-by-statement", "postgres", true, false},
		{"cockroachdb", "postgres", true, true}, // where a cockroach binary is on PATH
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			fresh := freshDatabases(t, mode.dialect, mode.cockroach)
			base := migration{dialect: mode.dialect, isolated: mode.isolated, cockroach: mode.cockroach}

			// A clean run: the schema every failed run must end with, and the statements of each
			// migration.
			db, dump := fresh(t)
			steps := map[int64]int{}
			clean := base.hooked(func(_ context.Context, version int64) { steps[version]++ })
			if err := clean.run(t.Context(), db); err != nil {
				t.Fatalf("clean migration: %v", err)
			}
			want := dump(t)
			p, err := base.provider(db)
			if err != nil {
				t.Fatal(err)
			}
			var versions []int64
			for _, src := range p.ListSources() {
				versions = append(versions, src.Version)
				if steps[src.Version] == 0 {
					t.Fatalf("migration %d (%s) ran no statement that the test could see: goose no longer "+
						"logs SQL statements, or a Go migration is not a list of statements (see migrate.go)",
						src.Version, src.Path)
				}
			}
			slices.Sort(versions)

			for _, v := range versions {
				last := steps[v]
				if !mode.isolated {
					last-- // in a transaction, a failure after the last statement is a rollback like any other
				}
				for k := 0; k <= last; k++ {
					name := fmt.Sprintf("migration-%d/fails-before-statement-%d-of-%d", v, k+1, steps[v])
					if k == steps[v] {
						name = fmt.Sprintf("migration-%d/fails-before-its-version-row", v)
					}
					t.Run(name, func(t *testing.T) {
						db, dump := fresh(t)
						if k == steps[v] {
							// Every statement ran; the process died before goose recorded the version.
							p, err := base.provider(db)
							if err != nil {
								t.Fatal(err)
							}
							if _, err := p.UpTo(t.Context(), v); err != nil {
								t.Fatal(err)
							}
							if _, err := db.ExecContext(t.Context(), "DELETE FROM goose_db_version WHERE version_id = $1", v); err != nil {
								t.Fatal(err)
							}
						} else {
							ctx, cancel := context.WithCancelCause(t.Context())
							defer cancel(nil)
							seen := 0
							failing := base.hooked(func(_ context.Context, version int64) {
								if version == v {
									if seen == k {
										cancel(errInjected)
									}
									seen++
								}
							})
							if err := failing.run(ctx, db); err == nil {
								t.Fatalf("the migrations succeeded despite the failure injected before statement %d of migration %d", k+1, v)
							}
						}
						if err := base.run(t.Context(), db); err != nil {
							t.Fatalf("the next start failed to migrate (migration %d had failed before its statement %d): %v", v, k+1, err)
						}
						if got := dump(t); got != want {
							t.Errorf("schema after the failure and the re-run differs from a clean migration:\n%s", lineDiff(want, got))
						}
					})
				}
			}
		})
	}
}

// hooked is m with hook called before each statement of every migration (SQL ones through
// goose's statement log, Go ones directly).
func (m migration) hooked(hook func(ctx context.Context, version int64)) migration {
	m.beforeStatement = func(ctx context.Context, version int64, _ string) { hook(ctx, version) }
	m.options = []goose.ProviderOption{goose.WithVerbose(true), goose.WithSlog(slog.New(statementLog{hook}))}
	return m
}

// statementLog is a slog handler that sees goose's "executing statement" records.
type statementLog struct {
	hook func(ctx context.Context, version int64)
}

func (statementLog) Enabled(context.Context, slog.Level) bool { return true }
func (h statementLog) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h statementLog) WithGroup(string) slog.Handler          { return h }
func (h statementLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "executing statement" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "version" {
			h.hook(ctx, a.Value.Int64())
		}
		return true
	})
	return nil
}

// freshDatabases returns a function that makes an empty database of dialect and a function that
// dumps its schema (tables, columns, indexes, constraints, triggers, functions, row counts and
// applied migrations) as text.
func freshDatabases(t *testing.T, dialect string, cockroach bool) func(t *testing.T) (*sql.DB, func(t *testing.T) string) {
	t.Helper()
	const pgTables = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`
	if cockroach {
		testdb.Cockroach(t) // skips the mode without a cockroach binary
		return func(t *testing.T) (*sql.DB, func(t *testing.T) string) {
			cfg, err := pgx.ParseConfig(testdb.Cockroach(t))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
			db := stdlib.OpenDB(*cfg)
			t.Cleanup(func() { db.Close() })
			return db, func(t *testing.T) string {
				return dumpQueries(t, db, pgTables, "",
					`SELECT create_statement FROM [SHOW CREATE ALL TABLES]`,
					`SELECT trigger_name, action_statement FROM information_schema.triggers ORDER BY 1`)
			}
		}
	}
	if dialect == "sqlite" {
		return func(t *testing.T) (*sql.DB, func(t *testing.T) string) {
			db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "ledger.db"), Config{TxTimeout: testdb.TxTimeout}, "immediate"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db, func(t *testing.T) string {
				return dumpQueries(t, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`, "",
					`SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`)
			}
		}
	}
	// One PostgreSQL database for the mode, a schema for each run (much cheaper than a database).
	dsn := testdb.Postgres(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	return func(t *testing.T) (*sql.DB, func(t *testing.T) string) {
		n++
		schema := fmt.Sprintf("run_%d", n)
		admin := stdlib.OpenDB(*cfg.Copy())
		defer admin.Close()
		if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		c := cfg.Copy()
		c.RuntimeParams["search_path"] = schema
		c.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		db := stdlib.OpenDB(*c)
		t.Cleanup(func() { db.Close() })
		return db, func(t *testing.T) string {
			ns := `(SELECT oid FROM pg_namespace WHERE nspname = current_schema())`
			return dumpQueries(t, db, pgTables, schema,
				`SELECT table_name, column_name, data_type, is_nullable, COALESCE(column_default, '')
				 FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2`,
				`SELECT c.relname, c.relkind, COALESCE(array_to_string(c.reloptions, ','), '')
				 FROM pg_class c WHERE c.relnamespace = `+ns+` AND c.relkind IN ('r', 'i') ORDER BY 1`,
				`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1`,
				`SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
				 FROM pg_constraint WHERE connamespace = `+ns+` ORDER BY 1, 2`,
				`SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
				 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
				 WHERE c.relnamespace = `+ns+` AND NOT t.tgisinternal ORDER BY 1, 2`,
				`SELECT proname, prosrc FROM pg_proc WHERE pronamespace = `+ns+` ORDER BY 1`)
		}
	}
}

// dumpQueries runs each query and writes its rows as text, followed by the row count of every
// table (listed by tablesQuery) and the applied migrations; schema, if set, is replaced by a
// placeholder.
func dumpQueries(t *testing.T, db *sql.DB, tablesQuery, schema string, queries ...string) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	for _, q := range queries {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if i > 0 {
					b.WriteString(" | ")
				}
				b.WriteString(strings.Join(strings.Fields(v.String), " "))
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	var tables []string
	rows, err := db.QueryContext(ctx, tablesQuery)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		if table == "goose_db_version" || table == "ledger_migration_lock" {
			continue
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "rows %s: %d\n", table, n)
	}
	rows, err = db.QueryContext(ctx, `SELECT version_id, count(*) FROM goose_db_version WHERE is_applied GROUP BY version_id ORDER BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v, n int64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "applied %d ×%d\n", v, n)
	}
	rows.Close()
	out := b.String()
	if schema != "" {
		out = strings.ReplaceAll(out, schema+".", "SCHEMA.")
	}
	return out
}

// lineDiff lists the lines of want missing from got and those of got not in want.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// TestCockroachVersionRefused protects the start on CockroachDB: a version without the triggers
// that keep the ledger's tables append-only (invariant 6) is refused with a message naming the
// minimum, before any migration runs.
func TestCockroachVersionRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"CockroachDB CCL v24.3.0 (x86_64-pc-linux-gnu, built 2024/11/14 00:00:00, go1.22.8 X:nocoverageredesign)", true},
		{"CockroachDB CCL v25.2.1 (aarch64-unknown-linux-gnu, built 2025/06/01, go1.23.7)", true},
		{"CockroachDB OSS v26.1.0-alpha.1 (x86_64-pc-linux-gnu)", true},
		{"CockroachDB CCL v24.2.5 (x86_64-pc-linux-gnu, built 2024/10/01, go1.22.5)", false},
		{"CockroachDB CCL v23.2.12 (x86_64-pc-linux-gnu)", false},
		{"CockroachDB CCL v9.9.9", false},
		{"CockroachDB (unknown build)", false},
	} {
		err := checkCockroachVersion(tc.version)
		if (err == nil) != tc.ok {
			t.Errorf("checkCockroachVersion(%q) = %v, want accepted: %v", tc.version, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "24.3 or later") {
			t.Errorf("checkCockroachVersion(%q) = %q: the message must name the minimum version", tc.version, err)
		}
	}
}

// TestCockroachSchemaMatches protects the ledger's statements on CockroachDB, whose first schema
// is its own file (native UUIDs, hash-sharded keys; migrations/cockroachdb/): every replacement
// file declares the same tables, with the same columns in the same order, and the same indexes
// as the file it replaces, so that the SQL the ledger runs everywhere finds the same names.
func TestCockroachSchemaMatches(t *testing.T) {
	t.Parallel()
	replaced, err := fs.Glob(migrationFiles, "migrations/cockroachdb/*.sql")
	if err != nil || len(replaced) == 0 {
		t.Fatalf("no CockroachDB migration found (%v)", err)
	}
	for _, path := range replaced {
		main, err := fs.ReadFile(migrationFiles, "migrations/"+filepath.Base(path))
		if err != nil {
			t.Fatalf("%s replaces no migration: %v", path, err)
		}
		crdb, err := fs.ReadFile(migrationFiles, path)
		if err != nil {
			t.Fatal(err)
		}
		want, got := declared(string(main)), declared(string(crdb))
		if strings.Count(want, "table ") < strings.Count(string(main), "CREATE TABLE") {
			t.Errorf("the test reads fewer tables than %s creates:\n%s", path, want)
		}
		if got != want {
			t.Errorf("%s declares other names than the file it replaces:\n%s", path, lineDiff(want, got))
		}
	}
}

var (
	createTable = regexp.MustCompile(`(?is)CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);`)
	createIndex = regexp.MustCompile(`(?i)CREATE (UNIQUE )?INDEX IF NOT EXISTS (\w+) ON (\w+) (\([^)]*\))`)
	notAColumn  = regexp.MustCompile(`(?i)^(CHECK|PRIMARY|CONSTRAINT|UNIQUE|--)`)
)

// declared lists the tables (with their columns) and indexes a migration's Up section creates.
func declared(sql string) string {
	up, _, _ := strings.Cut(sql, "-- +goose Down")
	var b strings.Builder
	for _, m := range createTable.FindAllStringSubmatch(up, -1) {
		fmt.Fprintf(&b, "table %s:", m[1])
		for _, line := range strings.Split(m[2], "\n") {
			line = strings.TrimSpace(line)
			if line == "" || notAColumn.MatchString(line) {
				continue
			}
			fmt.Fprintf(&b, " %s", strings.Fields(line)[0])
		}
		b.WriteByte('\n')
	}
	for _, m := range createIndex.FindAllStringSubmatch(up, -1) {
		fmt.Fprintf(&b, "index %s%s on %s %s\n", m[1], m[2], m[3], m[4])
	}
	return b.String()
}

// TestMigrationsPerEngine protects what each engine is given: CockroachDB its own schema file
// (UUIDs, hash-sharded keys) and no PostgreSQL storage parameter, SQLite no ADD COLUMN IF NOT
// EXISTS (which it cannot parse), PostgreSQL the shared files and its fillfactor.
func TestMigrationsPerEngine(t *testing.T) {
	t.Parallel()
	read := func(dialect string, cockroach bool, name string) string {
		t.Helper()
		fsys, err := migrationSources(dialect, cockroach)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if s := read("postgres", true, "00001_schema.sql"); !strings.Contains(s, "USING HASH") || !strings.Contains(s, "UUID NOT NULL") {
		t.Error("CockroachDB's 00001_schema.sql has no hash-sharded UUID key")
	}
	if s := read("postgres", false, "00001_schema.sql"); strings.Contains(s, "USING HASH") {
		t.Error("PostgreSQL was given CockroachDB's schema")
	}
	if s := read("postgres", false, "00003_rules.sql"); !sqliteAddColumn.MatchString(s) {
		t.Error("00003_rules.sql adds its columns without IF NOT EXISTS on PostgreSQL")
	}
	for _, name := range []string{"00003_rules.sql", "00004_sequence.sql"} {
		if s := read("sqlite", false, name); sqliteAddColumn.MatchString(s) {
			t.Errorf("SQLite was given ADD COLUMN IF NOT EXISTS in %s", name)
		}
	}
	fillfactor := func(cockroach bool) bool {
		for _, m := range goMigrations("postgres", cockroach) {
			for _, stmt := range m.statements {
				if strings.Contains(stmt, "fillfactor") {
					return true
				}
			}
		}
		return false
	}
	if !fillfactor(false) || fillfactor(true) {
		t.Errorf("fillfactor given to PostgreSQL: %v, to CockroachDB: %v; want only PostgreSQL", fillfactor(false), fillfactor(true))
	}
}

// TestSQLiteNeverMigratesStatementByStatement protects THE RULE's exception (migrate.go): SQLite's
// table rebuilds (migration 27) are safe only in the migration's transaction, so a run statement
// by statement is refused before anything is written.
func TestSQLiteNeverMigratesStatementByStatement(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "ledger.db"), Config{TxTimeout: testdb.TxTimeout}, "immediate"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := (migration{dialect: "sqlite", isolated: true}).run(t.Context(), db); err == nil {
		t.Fatal("SQLite migrated statement by statement, want a refusal")
	}
	var tables int
	if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("after the refusal the database holds %d schema objects (%v), want none", tables, err)
	}
}

// TestRecordFormatsHaveTheirMigration protects older releases from request-log records they cannot
// read: each record format written since a migration that changes no table (28: a Commit's record
// without its journal entry's id; 29: CreateHold's and ConfirmHold's records by reference; 30:
// CreatePayment's) is
// registered on every engine, so that a release older than it refuses the ledger (ErrSchemaNewer)
// instead of answering those retries INTERNAL. A migration with no statement on an engine is not
// registered there (goMigrations): its marker statement must stay.
func TestRecordFormatsHaveTheirMigration(t *testing.T) {
	t.Parallel()
	formats := map[int64]string{28: "a Commit's record without its entry id", 29: "holds' records by reference",
		30: "payments' records by reference"}
	for _, e := range []struct {
		dialect   string
		cockroach bool
	}{{"sqlite", false}, {"postgres", false}, {"postgres", true}} {
		known, err := knownVersions(e.dialect, e.cockroach)
		if err != nil {
			t.Fatal(err)
		}
		for v, what := range formats {
			if !slices.Contains(known, v) {
				t.Errorf("%s (cockroach %v): migration %d (%s) is not registered", e.dialect, e.cockroach, v, what)
			}
		}
	}
}
