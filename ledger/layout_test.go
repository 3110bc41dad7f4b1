package ledger

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestLayering protects the architecture: the decision core does no I/O (no database driver, no
// database/sql, no gRPC), the ledger's packages never reach up into the gRPC server, and each
// arrow points down (core imports nothing of the ledger; storage imports only core and the
// transparency log's pure translog).
func TestLayering(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	deps := func(pkg string) []string {
		t.Helper()
		out, err := exec.Command(goTool, "list", "-deps", "github.com/budgetledger/budgetledger/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	forbidden := map[string][]string{
		"ledger/core": {"github.com/jackc/pgx", "modernc.org/sqlite", "database/sql", "google.golang.org/grpc",
			"github.com/pressly/goose", "net", "github.com/budgetledger/budgetledger/ledger/"},
		"ledger/store":       {"google.golang.org/grpc", "github.com/budgetledger/budgetledger/ledger/groupcommit", "github.com/budgetledger/budgetledger/ledger/audit", "github.com/budgetledger/budgetledger/ledger/report"},
		"ledger/groupcommit": {"github.com/budgetledger/budgetledger/ledger/", "database/sql"},
		// The transparency log's tree maths, encoding and signatures are pure too (issue 14).
		"ledger/translog": {"github.com/jackc/pgx", "modernc.org/sqlite", "database/sql", "google.golang.org/grpc",
			"github.com/budgetledger/budgetledger/ledger/store", "github.com/budgetledger/budgetledger/ledger/audit"},
		"ledger": {"google.golang.org/grpc", "github.com/budgetledger/budgetledger/server"},
	}
	for pkg, bad := range forbidden {
		self := "github.com/budgetledger/budgetledger/" + pkg
		for _, dep := range deps(pkg) {
			if dep == self || (pkg == "ledger/store" && dep == "github.com/budgetledger/budgetledger/ledger/core") {
				continue
			}
			for _, b := range bad {
				if dep == b || strings.HasPrefix(dep, strings.TrimSuffix(b, "/")+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
