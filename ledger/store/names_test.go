package store

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestRedact protects passwords from every place a database is shown (the listening log line,
// verify's and copy's messages, the target's ledger_copy row): the URL's user password and any
// query parameter whose name holds "password" are hidden, the rest is kept as it was written.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:S3CRET@h:5432/db?sslmode=disable":           "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?sslmode=disable&password=S3CRET":       "postgres://u@h/db?sslmode=disable&password=xxxxx",
		"postgresql://u@h/db?sslpassword=S3CRET&pool_max_conns=4": "postgresql://u@h/db?sslpassword=xxxxx&pool_max_conns=4",
		"postgres://u@h/db?PassWord=S3CRET":                       "postgres://u@h/db?PassWord=xxxxx",
		"postgres://u@h/db?pass%77ord=S3CRET":                     "postgres://u@h/db?pass%77ord=xxxxx",
		"postgres://u@h/db":                                       "postgres://u@h/db",
		"host=127.0.0.1 user=postgres password=S3CRET dbname=x":   "(a PostgreSQL connection string)",
		"/var/lib/ledger/ledger.db":                               "/var/lib/ledger/ledger.db",
		"sqlite:///tmp/my ledger.db":                              "sqlite:///tmp/my ledger.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPostgresConnectionStringRefused protects a PostgreSQL connection string written in another
// form than a postgres:// URL from becoming a new SQLite file named after it (its password in
// the name): it is refused, by one line that does not repeat it, and no file is made. SQLite
// paths as the README gives them still open.
func TestPostgresConnectionStringRefused(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, database := range []string{
		"host=127.0.0.1 user=postgres password=S3CRET dbname=x",
		"dbname=x sslmode=disable",
		"postgres:x",
		"postgresql:x",
		"PostgreSQL:x",
		"  host = db.example password=S3CRET",
	} {
		_, err := Open(t.Context(), database, Config{})
		if !errors.Is(err, ErrNotPostgresURL) || strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("Open(%q) = %v, want ErrNotPostgresURL without the password", database, err)
		}
	}
	if names, _ := os.ReadDir("."); len(names) > 0 {
		t.Fatalf("a refused connection string made files: %v", names)
	}
	for _, database := range []string{"ledger.db", "my ledger.db", "sqlite:other.db", "file:third.db", t.TempDir() + "/abs.db"} {
		e, err := Open(t.Context(), database, Config{})
		if err != nil {
			t.Fatalf("Open(%q) = %v", database, err)
		}
		e.Close()
	}
}
