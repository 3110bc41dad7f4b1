package store

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// rawDB opens database with its driver alone, no pragma and no ledger code (tests: another
// application's database).
func rawDB(t *testing.T, database string) (*sql.DB, string) {
	t.Helper()
	driver, dsn, dialect := "sqlite", "file:"+sqlitePath(database), "sqlite"
	if isPostgres(database) {
		driver, dsn, dialect = "pgx", database, "postgres"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dialect
}

// TestForeignDatabaseRefused protects another application's database from the ledger: one that
// holds tables and is not a ledger (its own users, or an envelopes table of its own, on which
// migration 1 used to fail half-way) is refused at open, by one line naming its tables, and
// nothing is written: no table is added (goose's version table and migration lock included),
// and a SQLite file keeps its bytes (no journal_mode(WAL) header, no -wal file). A ledger with a
// table of its operator's beside its own still opens.
func TestForeignDatabaseRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		stmts []string
		want  string
	}{
		{"users", []string{`CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)`}, "(users)"},
		{"a clashing name", []string{`CREATE TABLE envelopes (id TEXT PRIMARY KEY, sender TEXT)`,
			`CREATE TABLE orders (id INTEGER PRIMARY KEY)`}, "(envelopes, orders)"},
		{"another application migrated by goose", []string{
			`CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id BIGINT NOT NULL, is_applied BOOLEAN NOT NULL, tstamp TIMESTAMP)`,
			`INSERT INTO goose_db_version (id, version_id, is_applied) VALUES (1, 0, true), (2, 1, true)`,
			`CREATE TABLE users (id INTEGER PRIMARY KEY)`}, "(users)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testdb.Each(t, func(t *testing.T, database string) {
				t.Parallel()
				db, dialect := rawDB(t, database)
				for _, s := range c.stmts {
					if _, err := db.ExecContext(t.Context(), s); err != nil {
						t.Fatalf("%s: %v", s, err)
					}
				}
				before, err := schemaTables(t.Context(), db, dialect)
				if err != nil {
					t.Fatal(err)
				}
				var bytes [32]byte
				if dialect == "sqlite" {
					db.Close()
					b, err := os.ReadFile(database)
					if err != nil {
						t.Fatal(err)
					}
					bytes = sha256.Sum256(b)
				}
				_, err = Open(t.Context(), database, Config{TxTimeout: time.Minute})
				if !errors.Is(err, ErrForeignDatabase) || !strings.Contains(err.Error(), c.want) ||
					!strings.Contains(err.Error(), "refusing to add the ledger's schema") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("Open = %v, want one line refusing the database and naming %s", err, c.want)
				}
				if dialect == "sqlite" {
					b, err := os.ReadFile(database)
					if err != nil {
						t.Fatal(err)
					}
					if sha256.Sum256(b) != bytes {
						t.Fatal("the refused SQLite file was written")
					}
					if _, err := os.Stat(database + "-wal"); err == nil {
						t.Fatal("the refused SQLite file has a -wal file beside it")
					}
					db, _ = rawDB(t, database)
				}
				after, err := schemaTables(t.Context(), db, dialect)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(after, before) {
					t.Fatalf("tables after the refusal %v, before %v", after, before)
				}
			})
		})
	}
	t.Run("a new PostgreSQL database with an extension's table", func(t *testing.T) {
		// PostGIS puts spatial_ref_sys in every database made from a template1 that has it: the
		// server's table, not another application's. (plpgsql, always installed, stands in for
		// PostGIS: the table is made its member as PostGIS's is.)
		t.Parallel()
		database := testdb.Postgres(t)
		execOn(t, database, `CREATE TABLE spatial_ref_sys (srid INTEGER PRIMARY KEY)`)
		execOn(t, database, `ALTER EXTENSION plpgsql ADD TABLE spatial_ref_sys`)
		newLedgerDB(t, database)
	})
	t.Run("a ledger with a table of its operator's", func(t *testing.T) {
		t.Parallel()
		testdb.Each(t, func(t *testing.T, database string) {
			t.Parallel()
			newLedgerDB(t, database)
			execOn(t, database, `CREATE TABLE operator_notes (id INTEGER PRIMARY KEY)`)
			newLedgerDB(t, database)
		})
	})
}

// TestMigrationLockWaitIsLogged protects the operator of a restart after a kill during
// migrations from a silent wait: while another process's (here a crashed one's) migration lock
// has a lease left, Open says in a WARN that it waits for the lock, and who holds it, then opens
// once the lease has run out.
func TestMigrationLockWaitIsLogged(t *testing.T) {
	t.Parallel()
	database := testdb.Postgres(t)
	newLedgerDB(t, database)
	// A migration to run (goose takes no lock when none is pending), and a lock held.
	execOn(t, database, `DELETE FROM goose_db_version WHERE version_id = 26`,
		`UPDATE ledger_migration_lock SET locked = true, locked_by = 'crashed-ledgerd',
		locked_at = now(), lease_expires_at = now() + interval '2 seconds'`)
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	e, err := Open(t.Context(), database, Config{TxTimeout: time.Minute, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	mu.Lock()
	defer mu.Unlock()
	if got := logs.String(); strings.Count(got, "level=WARN") != 1 || !strings.Contains(got, "waiting for the migration lock") ||
		!strings.Contains(got, "holder=crashed-ledgerd") {
		t.Fatalf("the log of an Open waiting for the migration lock = %q, want one WARN naming the holder", got)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
