package store

import (
	"os"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestMain stops the CockroachDB server that testdb.Cockroach starts when a cockroach binary is on PATH.
func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m))
}
