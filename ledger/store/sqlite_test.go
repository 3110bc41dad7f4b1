package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// SQLite's parameters are nameless (?) when they come in order, each once, so that neither
// parsing nor binding looks them up by name (quadratic in their number), and numbered (?N)
// otherwise, so that a statement means what it meant with $N; a $ or ? inside a quoted string or
// name is text, not a parameter.
func TestSQLiteParamsNumbersParametersOutsideQuotes(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT a FROM t WHERE a = $1 AND b IN ($2, $3)":  "SELECT a FROM t WHERE a = ? AND b IN (?, ?)",
		"SELECT a FROM t WHERE a = $1 AND b IN ($2, $10)": "SELECT a FROM t WHERE a = ?1 AND b IN (?2, ?10)",
		"SELECT a FROM t WHERE a = $2 AND b = $1":         "SELECT a FROM t WHERE a = ?2 AND b = ?1",
		"SELECT a FROM t WHERE a = $1 OR b = $1":          "SELECT a FROM t WHERE a = ?1 OR b = ?1",
		"SELECT '$1', \"$2\" FROM t WHERE c = $1":         "SELECT '$1', \"$2\" FROM t WHERE c = ?",
		"SELECT 'it''s $1', '?' WHERE x = $1 AND y = $2":  "SELECT 'it''s $1', '?' WHERE x = ? AND y = ?",
		"SELECT 1": "SELECT 1",
	} {
		if got := sqliteParams(in); got != want {
			t.Errorf("sqliteParams(%q) = %q, want %q", in, got, want)
		}
	}
}

// The write transactions of SQLite run on one connection with their statements prepared on it
// and kept (the statement cache). What it must keep: every transaction's writes or none (a failed
// or cancelled one leaves nothing and the next one works), no deadlock with a pool of one
// connection (a read during a write transaction, on the read pool), concurrent writers
// serialized without lost updates, multi-row inserts of any size within SQLite's parameter limit
// in a bounded number of statement sizes.
func TestSQLiteWriterCachesStatementsSafely(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, testdb.SQLite(t), Config{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	e := db.(*sqliteEngine)
	count := func() (n int64) {
		t.Helper()
		if err := db.Reader().QueryRow(ctx, "SELECT count(*) FROM writer_test").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := db.ReadWrite(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, "CREATE TABLE writer_test (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount INTEGER NOT NULL)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rows := func(from, n int) [][]any {
		out := make([][]any, n)
		for i := range out {
			out[i] = []any{int64(from + i), fmt.Sprintf("row %d", from+i), int64(i)}
		}
		return out
	}
	cols := []string{"id", "name", "amount"}

	// 1,000 rows in one transaction, then 999 more: chunks of powers of two.
	for _, r := range [][2]int{{0, 1000}, {1000, 999}} {
		if err := db.ReadWrite(ctx, func(q Querier) error {
			return bulkInsert(ctx, q, "writer_test", cols, rows(r[0], r[1]), "", errors.New("short insert"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 1999 {
		t.Fatalf("%d rows, want 1999", n)
	}
	w := <-e.writer
	sizes := len(w.stmts)
	e.writer <- w
	if sizes > 12 { // CREATE TABLE and one INSERT per power of two up to 512
		t.Errorf("%d statements cached for two bulk inserts, want a few sizes", sizes)
	}

	// A transaction that fails after writing leaves nothing; a cancelled one neither.
	boom := errors.New("boom")
	if err := db.ReadWrite(ctx, func(q Querier) error {
		if err := bulkInsert(ctx, q, "writer_test", cols, rows(5000, 10), "", nil); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed transaction: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	if err := db.ReadWrite(cctx, func(q Querier) error {
		if err := bulkInsert(cctx, q, "writer_test", cols, rows(6000, 10), "", nil); err != nil {
			return err
		}
		cancel()
		return nil
	}); err == nil {
		t.Fatal("a transaction whose context ended before COMMIT committed")
	}
	if n := count(); n != 1999 {
		t.Fatalf("%d rows after a failed and a cancelled transaction, want 1999", n)
	}

	// Readers are not blocked by the writer, even with one connection per pool.
	if err := db.ReadWrite(ctx, func(q Querier) error {
		if err := db.Ping(ctx); err != nil {
			return err
		}
		rs, err := db.Reader().Query(ctx, "SELECT 1")
		if err != nil {
			return err
		}
		rs.Close()
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Eight writers, fifty increments each, on one row: none lost.
	if err := db.ReadWrite(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, "INSERT INTO writer_test (id, name, amount) VALUES ($1, $2, $3)", int64(-1), "counter", int64(0))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if err := db.ReadWrite(ctx, func(q Querier) error {
					var v int64
					if err := q.QueryRow(ctx, "SELECT amount FROM writer_test WHERE id = $1", int64(-1)).Scan(&v); err != nil {
						return err
					}
					_, err := q.Exec(ctx, "UPDATE writer_test SET amount = $1 WHERE id = $2", v+1, int64(-1))
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var v int64
	if err := db.Reader().QueryRow(ctx, "SELECT amount FROM writer_test WHERE id = -1").Scan(&v); err != nil || v != 400 {
		t.Fatalf("counter = %d (%v), want 400", v, err)
	}
}

// The statements' placeholders are numbered from after n, in order, each once: what bulkInsert
// and IN lists send, and what sqliteParams turns into nameless parameters.
func TestPlaceholdersNumberInOrder(t *testing.T) {
	if got, want := placeholders(3, 3), "($4, $5, $6)"; got != want {
		t.Errorf("placeholders(3, 3) = %q, want %q", got, want)
	}
	list, args := inList(9, []string{"a", "b"})
	if list != "$10, $11" || len(args) != 2 || args[0] != "a" || args[1] != "b" {
		t.Errorf("inList(9, [a b]) = %q, %v", list, args)
	}
	// Alone it does not start at $1: numbered. After $1 … $9 it is in order: nameless.
	if got := sqliteParams("SELECT * FROM t WHERE a IN (" + list + ")"); got != "SELECT * FROM t WHERE a IN (?10, ?11)" {
		t.Errorf("an IN list starting at $10 became %q", got)
	}
	first, _ := inList(0, make([]string, 9))
	if got := sqliteParams("SELECT * FROM t WHERE a IN (" + first + ") AND b IN (" + list + ")"); strings.Count(got, "?") != 11 || strings.ContainsAny(got, "$0123456789") {
		t.Errorf("$1 … $11 in order became %q", got)
	}
}

// The writer keeps SQLite's statement journal in memory (temp_store = MEMORY on its connection;
// docs/benchmarks.md, "SQLite's statement journal"). What must hold: a statement that fails
// midway inside a write transaction still undoes itself alone — here an insert whose rows land
// between the index entries an earlier statement of the transaction wrote, so that its journal
// passes the 64 KiB at which SQLite would spill it to a file, failing on its last row — while the
// transaction's earlier writes stay and commit; readers keep temporary files for their sorts.
func TestSQLiteWriterStatementJournalInMemory(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, testdb.SQLite(t), Config{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.ReadWrite(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, "CREATE TABLE journal_test (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
		if err == nil {
			_, err = q.Exec(ctx, "CREATE INDEX journal_test_by_name ON journal_test (name)")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	count := func(q Querier) (n int64) {
		t.Helper()
		if err := q.QueryRow(ctx, "SELECT count(*) FROM journal_test").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
	pad := strings.Repeat("x", 200)
	if err := db.ReadWrite(ctx, func(q Querier) error {
		var store int
		if err := q.QueryRow(ctx, "PRAGMA temp_store").Scan(&store); err != nil {
			return err
		}
		if store != 2 {
			t.Errorf("the writer's temp_store is %d, want 2 (MEMORY)", store)
		}
		if _, err := q.Exec(ctx, numbers+"INSERT INTO journal_test (id, name) SELECT i, printf('%04d a', i) || $1 FROM n", pad); err != nil {
			return err
		}
		// Names "0001 b…" go between "0001 a…" and "0002 a…": every index page is changed.
		_, err := q.Exec(ctx, numbers+"INSERT INTO journal_test (id, name) SELECT 1000 + i, printf('%04d b', i) || $1 FROM n "+
			"UNION ALL SELECT 1, 'duplicate'", pad)
		if err == nil {
			t.Error("an insert repeating a primary key succeeded")
		}
		if n := count(q); n != 1000 {
			t.Errorf("after the failed insert, the transaction sees %d rows, want the 1,000 written before it", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(db.Reader()); n != 1000 {
		t.Errorf("after commit, %d rows, want 1,000", n)
	}
	var store int
	if err := db.Reader().QueryRow(ctx, "PRAGMA temp_store").Scan(&store); err != nil {
		t.Fatal(err)
	}
	if store == 2 {
		t.Error("the read pool's temp_store is MEMORY: large sorts would hold the whole sort in memory")
	}
}
