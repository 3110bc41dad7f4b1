package server

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// TestEveryServedMethodIsInTheTable checks, on a real server, that every method of every
// service it serves — ours, reflection, and any registered later — has an entry in the
// authorization table, health checks (open to all) excepted.
func TestEveryServedMethodIsInTheTable(t *testing.T) {
	t.Parallel()
	l, err := ledger.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(l, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	n := 0
	for service, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + service + "/" + m.Name
			if service == openService {
				if _, ok := authorization[full]; ok {
					t.Errorf("%s is open to all, yet has an entry in the authorization table", full)
				}
				continue
			}
			n++
			if _, ok := authorization[full]; !ok {
				t.Errorf("%s is served but has no entry in the authorization table: every caller would be refused", full)
			}
		}
	}
	if n != len(authorization) {
		t.Errorf("the server serves %d guarded methods, the table has %d entries: remove the entries of methods no longer served", n, len(authorization))
	}
}
