// Package testdb gives tests a fresh, real database on every engine the machine offers: a SQLite
// file always, and a PostgreSQL database of its own when LEDGER_TEST_POSTGRES_URL is set (for
// example postgres://postgres@127.0.0.1:5432/test?sslmode=disable). With CI=true a PostgreSQL
// that is not configured or cannot be reached fails the test instead of skipping it.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	name := "ledger_test_" + randomSuffix()
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
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
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
