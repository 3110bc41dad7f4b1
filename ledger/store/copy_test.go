package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// execOn runs statements on database outside the ledger (tests: changing a schema behind its back).
func execOn(t *testing.T, database string, stmts ...string) {
	t.Helper()
	e, err := open(t.Context(), database, Config{noMigrate: true, TxTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	h := handles(e)
	defer h.close()
	for _, s := range stmts {
		if _, err := h.write.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func newLedgerDB(t *testing.T, database string) {
	t.Helper()
	e, err := Open(t.Context(), database, Config{TxTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

// TestCopyRefusesAnotherSchemaVersion protects the copy from mixing schemas: a source whose
// applied migrations are older or newer than the binary's is refused, with what to do, and the
// target is left untouched (not even created).
func TestCopyRefusesAnotherSchemaVersion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, stmt, want string
	}{
		{"newer", `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`, "newer"},
		{"older", `DELETE FROM goose_db_version WHERE version_id = 13`, "older"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src := testdb.SQLite(t)
			newLedgerDB(t, src)
			execOn(t, src, c.stmt)
			dst := testdb.SQLite(t)
			_, err := Copy(t.Context(), src, dst, CopyOptions{})
			if !errors.Is(err, ErrCopyRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Copy from a %s schema = %v, want a refusal saying %q", c.name, err, c.want)
			}
			if _, err := open(context.Background(), dst, Config{MustExist: true, noMigrate: true}); !errors.Is(err, ErrNoDatabase) {
				t.Fatalf("the refused copy created its target: %v", err)
			}
		})
	}
}

// TestCopyIsGenericOverTheSchema protects the promise that a later migration's tables and
// columns are carried with no change to the copy: a table and a column the copy's code has never
// heard of, present on both sides, arrive with their rows (a key that sorts in another order than
// it was written, NULLs included).
func TestCopyIsGenericOverTheSchema(t *testing.T) {
	t.Parallel()
	src, dst := testdb.SQLite(t), testdb.Postgres(t)
	newLedgerDB(t, src)
	newLedgerDB(t, dst)
	for _, db := range []string{src, dst} {
		execOn(t, db, `CREATE TABLE future_table (a TEXT NOT NULL, b BIGINT NOT NULL, note TEXT, PRIMARY KEY (a, b))`,
			`ALTER TABLE envelopes ADD COLUMN future_column TEXT`)
	}
	execOn(t, src, `INSERT INTO future_table (a, b, note) VALUES ('z', 2, 'last'), ('a', 10, NULL), ('a', 9, 'x'), ('m', -1, '')`)
	if _, err := Copy(t.Context(), src, dst, CopyOptions{BatchRows: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := TableRows(t.Context(), dst, "future_table")
	if err != nil {
		t.Fatal(err)
	}
	want, err := TableRows(t.Context(), src, "future_table")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("future_table on the target = %q, want %q", got, want)
	}
}

// TestCopyRefusesBeforeWriting protects the promise of docs/operations.md that a refused copy
// writes nothing: what can be decided before the target is touched is decided there, by one
// line. A target holding another application's table (SQLite and PostgreSQL) keeps only it; a
// target ledger that is not empty is refused before it is migrated (its missing migration stays
// missing); a source with a table a ledger does not have is refused before the target is created,
// naming the table.
func TestCopyRefusesBeforeWriting(t *testing.T) {
	t.Parallel()
	oneLine := func(t *testing.T, err error, want string) {
		t.Helper()
		if !errors.Is(err, ErrCopyRefused) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") || len(err.Error()) > 400 {
			t.Fatalf("Copy = %v, want one line refusing it, saying %q", err, want)
		}
	}
	t.Run("a target of another application", func(t *testing.T) {
		t.Parallel()
		testdb.Each(t, func(t *testing.T, dst string) {
			t.Parallel()
			src := testdb.SQLite(t)
			newLedgerDB(t, src)
			db, dialect := rawDB(t, dst)
			if _, err := db.ExecContext(t.Context(), `CREATE TABLE users (id INT)`); err != nil {
				t.Fatal(err)
			}
			_, err := Copy(t.Context(), src, dst, CopyOptions{})
			oneLine(t, err, "holds tables that are not a ledger's (users)")
			if !errors.Is(err, ErrForeignDatabase) {
				t.Fatalf("Copy = %v, want ErrForeignDatabase", err)
			}
			if tables, err := schemaTables(t.Context(), db, dialect); err != nil || !slices.Equal(tables, []string{"users"}) {
				t.Fatalf("the refused target holds %v (%v), want only users", tables, err)
			}
		})
	})
	t.Run("a target ledger not empty", func(t *testing.T) {
		t.Parallel()
		src, dst := testdb.SQLite(t), testdb.SQLite(t)
		newLedgerDB(t, src)
		newLedgerDB(t, dst)
		execOn(t, dst, `INSERT INTO requests_bare_keys (id) VALUES (1)`, `DELETE FROM goose_db_version WHERE version_id = 26`)
		_, err := Copy(t.Context(), src, dst, CopyOptions{})
		oneLine(t, err, "the target is not empty (table requests_bare_keys has 1 rows)")
		e, err := open(t.Context(), dst, Config{MustExist: true, noMigrate: true})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if _, missing, err := schemaDiff(t.Context(), handles(e)); err != nil || !slices.Equal(missing, []int64{26}) {
			t.Fatalf("the refused target lacks migrations %v (%v), want still 26: it was migrated", missing, err)
		}
	})
	t.Run("a source with a table of its own", func(t *testing.T) {
		t.Parallel()
		src, dst := testdb.SQLite(t), testdb.SQLite(t)
		newLedgerDB(t, src)
		execOn(t, src, `CREATE TABLE extra (id INTEGER PRIMARY KEY)`)
		_, err := Copy(t.Context(), src, dst, CopyOptions{})
		oneLine(t, err, "table extra")
		if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the refused copy created its target: %v", err)
		}
	})
}

// TestCopyLeavesAnExtensionsTablesOut protects a move to or from a PostgreSQL database made from a
// template1 with an extension that owns a table (PostGIS's spatial_ref_sys): the table is the
// server's, not the ledger's, so it is neither a difference of schema nor copied, on either side.
func TestCopyLeavesAnExtensionsTablesOut(t *testing.T) {
	t.Parallel()
	src, pg, back := testdb.SQLite(t), testdb.Postgres(t), testdb.SQLite(t)
	execOn(t, pg, `CREATE TABLE spatial_ref_sys (srid INTEGER PRIMARY KEY)`, `ALTER EXTENSION plpgsql ADD TABLE spatial_ref_sys`)
	newLedgerDB(t, src)
	if _, err := Copy(t.Context(), src, pg, CopyOptions{}); err != nil {
		t.Fatalf("copy into a database with an extension's table: %v", err)
	}
	if _, err := Copy(t.Context(), pg, back, CopyOptions{}); err != nil {
		t.Fatalf("copy out of a ledger beside an extension's table: %v", err)
	}
	if _, err := TableRows(t.Context(), back, "spatial_ref_sys"); err == nil {
		t.Fatal("the extension's table was copied into the SQLite ledger")
	}
}
