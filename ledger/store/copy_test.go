package store

import (
	"context"
	"errors"
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
