// Package testdb gives tests a fresh, real database on every engine the machine offers: a SQLite
// file always, a PostgreSQL database of its own when LEDGER_TEST_POSTGRES_URL is set (for
// example postgres://postgres@127.0.0.1:5432/test?sslmode=disable), and a CockroachDB database
// of its own when a `cockroach` binary is on PATH (one cockroach-go testserver per test binary,
// started by the first test that needs it and stopped by Main; nothing is downloaded). With
// CI=true a PostgreSQL that is not configured or cannot be reached fails the test instead of
// skipping it.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/testserver"
	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable holding the PostgreSQL server URL used by tests.
const PostgresEnv = "LEDGER_TEST_POSTGRES_URL"

// TxTimeout is the transaction timeout of ledgers opened by tests whose subject is not the
// timeout itself. The production default (5 s) is a bound on a healthy database; a test machine
// busy with other work (parallel tests, the race detector, other processes) can take longer
// than that for a batch without anything being wrong, and no test may depend on how fast the
// machine is. Tests of a deadline set their own.
const TxTimeout = 5 * time.Minute

// Each runs fn as a subtest once per engine, with the database URL of a fresh, empty database
// that is dropped when the subtest ends.
func Each(t *testing.T, fn func(t *testing.T, database string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, SQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, Postgres(t))
	})
	t.Run("cockroachdb", func(t *testing.T) {
		fn(t, Cockroach(t))
	})
}

// EachFresh runs fn as a subtest once per engine, with a maker of fresh, empty databases of that
// engine (each dropped when the subtest ends): for a test that needs several, one per run.
func EachFresh(t *testing.T, fn func(t *testing.T, fresh func() string)) {
	t.Helper()
	for _, e := range []struct {
		name string
		open func(testing.TB) string
	}{{"sqlite", SQLite}, {"postgres", Postgres}, {"cockroachdb", Cockroach}} {
		t.Run(e.name, func(t *testing.T) {
			fn(t, func() string { return e.open(t) })
		})
	}
}

// One CockroachDB server serves a whole test binary: started by the first test that needs it,
// stopped by Main.
var cockroach struct {
	once sync.Once
	main bool
	ts   testserver.TestServer
	err  error
}

// Main runs the tests of a package that uses CockroachDB (Each or Cockroach), then stops the
// server: call os.Exit(testdb.Main(m)) from its TestMain.
func Main(m *testing.M) int {
	cockroach.main = true
	code := m.Run()
	if cockroach.ts != nil {
		cockroach.ts.Stop()
	}
	return code
}

// Cockroach creates a database of its own on a CockroachDB server run from the `cockroach`
// binary on PATH and returns its URL; it skips the test when there is no such binary.
func Cockroach(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("cockroach")
	if err != nil {
		t.Skip("CockroachDB run skipped: no cockroach binary on PATH (see docs/cockroachdb.md)")
	}
	if !cockroach.main {
		t.Fatal("this package's TestMain must call testdb.Main, which stops the CockroachDB server")
	}
	cockroach.once.Do(func() {
		cockroach.ts, cockroach.err = testserver.NewTestServer(testserver.CockroachBinaryPathOpt(bin))
		if cockroach.err == nil {
			cockroach.err = cockroach.ts.WaitForInit()
		}
	})
	if cockroach.err != nil {
		t.Fatalf("starting CockroachDB from %s: %v", bin, cockroach.err)
	}
	database, err := CreateDatabase(t, cockroach.ts.PGURL().String())
	if err != nil {
		t.Fatalf("connecting to CockroachDB: %v", err)
	}
	return database
}

// SQLite returns the path of a new SQLite file in a temporary directory.
func SQLite(t testing.TB) string {
	return filepath.Join(t.TempDir(), "ledger.db")
}

// Postgres creates a database of its own on the server named by LEDGER_TEST_POSTGRES_URL and
// returns its URL; it skips the test when the variable is unset, unless CI=true.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must test against PostgreSQL", PostgresEnv)
		}
		t.Skipf("%s is not set; skipping the PostgreSQL run (see README: Testing)", PostgresEnv)
	}
	database, err := CreateDatabase(t, base)
	if err != nil {
		unreachable(t, err)
	}
	return database
}

// CreateDatabase creates a database of the test's own on the PostgreSQL or CockroachDB server at
// serverURL, drops it when the test ends, and returns its URL. The error is that of reaching the
// server, for the caller to skip or fail on; a server that refuses the database fails the test.
func CreateDatabase(t testing.TB, serverURL string) (string, error) {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("parsing the database URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	var version string
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return "", err
	}
	name := "ledger_test_" + randomSuffix()
	// DROP DATABASE … WITH (FORCE) (PostgreSQL 13+) ends the sessions still connected; CockroachDB
	// has no such clause, and drops a database its sessions still use (CASCADE: with its tables).
	drop := "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"
	if strings.Contains(version, "CockroachDB") {
		drop = "DROP DATABASE IF EXISTS " + name + " CASCADE"
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, drop); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String(), nil
}

func unreachable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL at %s cannot be reached: %v", PostgresEnv, err)
	}
	t.Skipf("PostgreSQL at %s cannot be reached (%v); skipping", PostgresEnv, err)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
