package server_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/server"
)

//go:generate go test -run ^TestRoleTablesInDocs$ -update-docs .

var updateDocs = flag.Bool("update-docs", false, "rewrite the role tables of README.md and docs/security.md from the authorization table")

const (
	roleTableBegin = "<!-- role table: generated from the authorization table of server/auth.go by `go generate ./server/`; do not edit -->\n"
	roleTableEnd   = "<!-- end of role table -->\n"
)

// TestRoleTablesInDocs protects "one source for the role table": the tables of README.md and
// docs/security.md are the server's authorization table, RPC by RPC. `go generate ./server/`
// rewrites them.
func TestRoleTablesInDocs(t *testing.T) {
	want := server.RoleTableMarkdown()
	for _, rpc := range []string{"SetEnvelopeRules", "GetEnvelopeRules", "GetFundingReport", "VerifyLedger"} {
		if !strings.Contains(want, rpc+"`") {
			t.Errorf("the generated table has no row for %s", rpc)
		}
	}
	for _, doc := range []string{"README.md", "docs/security.md"} {
		path := filepath.Join("..", doc)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		begin := strings.Index(text, roleTableBegin)
		end := strings.Index(text, roleTableEnd)
		if begin < 0 || end < begin {
			t.Errorf("%s has no role table between the markers %q and %q", doc, roleTableBegin, roleTableEnd)
			continue
		}
		got := text[begin+len(roleTableBegin) : end]
		if got == want {
			continue
		}
		if *updateDocs {
			if err := os.WriteFile(path, []byte(text[:begin+len(roleTableBegin)]+want+text[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("the role table of %s differs from the authorization table; run go generate ./server/ to write:\n%s", doc, want)
	}
}
