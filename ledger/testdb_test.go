package ledger

// The store harness: every behavioural test runs against each database engine the ledger
// supports, on a database of its own, so that tests can run in parallel.
//
//   - SQLite: a fresh file in t.TempDir(); always runs.
//   - PostgreSQL: a fresh database (CREATE DATABASE ledger_test_<random>) on the server named by
//     LEDGER_TEST_POSTGRES_URL, dropped when the test ends. Without the variable the
//     subtest is skipped — unless CI=true, where a missing variable or an unreachable server
//     fails the test: CI must never pass by skipping the real server.
//   - CockroachDB: one cockroach-go testserver for the whole package, a fresh database per test,
//     only when a `cockroach` binary is on PATH (nothing is downloaded; testdb.Cockroach).

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

const postgresURLEnv = testdb.PostgresEnv

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m))
}

// testDB is a database prepared for one test: its engine name and the string Open takes.
type testDB struct {
	engine string
	dsn    string
}

// open opens a Ledger on db, closed when the test ends.
func (db testDB) open(t *testing.T) *Ledger {
	t.Helper()
	// A generous transaction timeout: no test may depend on how fast the machine is (tests of
	// the timeout itself set their own).
	l, err := Open(t.Context(), db.dsn, Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatalf("Open(%s): %v", db.engine, err)
	}
	t.Cleanup(l.Close)
	if got := l.Engine(); got != db.engine {
		t.Fatalf("Engine() = %q, want %q", got, db.engine)
	}
	return l
}

// forEachDatabase runs test as one parallel subtest per engine, each on a fresh database.
func forEachDatabase(t *testing.T, test func(t *testing.T, db testDB)) {
	t.Helper()
	engines := []struct {
		name string
		make func(t *testing.T) testDB
	}{
		{"sqlite", newSQLiteDB},
		{"postgres", newPostgresDB},
		{"cockroachdb", newCockroachDB},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			test(t, e.make(t))
		})
	}
}

// forEachEngine runs test as one parallel subtest per engine, each with a Ledger on a fresh
// database.
func forEachEngine(t *testing.T, test func(t *testing.T, l *Ledger)) {
	t.Helper()
	forEachDatabase(t, func(t *testing.T, db testDB) { test(t, db.open(t)) })
}

func newSQLiteDB(t *testing.T) testDB {
	return testDB{engine: "sqlite", dsn: filepath.Join(t.TempDir(), "ledger.db")}
}

// requirePostgresURL returns LEDGER_TEST_POSTGRES_URL, or skips the test when it is unset (fails
// it when CI=true).
func requirePostgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(postgresURLEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set, and CI=true: the PostgreSQL tests must run in CI", postgresURLEnv)
		}
		t.Skipf("PostgreSQL tests skipped: set %s, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
			postgresURLEnv)
	}
	return u
}

// newPostgresDB creates a database of the test's own on the PostgreSQL server and drops it when
// the test ends. A server that cannot be reached fails the test: whoever set the variable wants
// PostgreSQL tested.
func newPostgresDB(t *testing.T) testDB {
	t.Helper()
	dsn, err := testdb.CreateDatabase(t, requirePostgresURL(t))
	if err != nil {
		t.Fatalf("connecting to PostgreSQL at %s: %v", postgresURLEnv, err)
	}
	return testDB{engine: "postgres", dsn: dsn}
}

// newCockroachDB creates a database of the test's own on a CockroachDB run from the `cockroach`
// binary on PATH (testdb.Cockroach), or skips the test when there is none.
func newCockroachDB(t *testing.T) testDB {
	t.Helper()
	return testDB{engine: "cockroachdb", dsn: testdb.Cockroach(t)}
}
