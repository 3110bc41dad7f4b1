package clienttest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// clientDir is the client module's directory, from this package's.
var clientDir = filepath.Join("..", "..", "client")

// serverOnly names the packages that a program importing the client must never get: database
// drivers, SQLite, the migration library (issue 11, item 5).
var serverOnly = regexp.MustCompile(`pgx|sqlite|goose|lib/pq|cockroach|github\.com/budgetledger/budgetledger/(ledger|server|internal|cmd)`)

// TestClientModuleDependencies protects the client module's promise (issue 11, item 5):
// `go list -deps ./...` in client/ (what a program importing the client compiles) names no
// database driver, no SQLite, no migration library and no server package, and neither does the
// module graph.
func TestClientModuleDependencies(t *testing.T) {
	t.Parallel()
	out := goCommand(t, clientDir, "list", "-deps", "./...")
	var found []string
	for _, pkg := range strings.Fields(out) {
		if serverOnly.MatchString(pkg) {
			found = append(found, pkg)
		}
	}
	if len(found) > 0 {
		t.Errorf("the client module depends on server-side packages:\n%s", strings.Join(found, "\n"))
	}
	if !strings.Contains(out, "github.com/budgetledger/budgetledger/proto/budgetledger/v1\n") {
		t.Errorf("go list -deps in client/ does not name the generated API package; is the test reading the right module?\n%s", out)
	}
	// Nor does its module graph, which a program importing the client inherits (go.mod files
	// included, not only the packages compiled): no driver's module, and not the server's.
	found = nil
	for _, mod := range strings.Fields(goCommand(t, clientDir, "mod", "graph")) {
		if serverModules.MatchString(mod) {
			found = append(found, mod)
		}
	}
	if len(found) > 0 {
		t.Errorf("the client module's graph holds server-side modules:\n%s", strings.Join(found, "\n"))
	}
}

// serverModules names the modules of serverOnly's packages, and the root (server) module itself.
var serverModules = regexp.MustCompile(`^(github\.com/jackc/pgx|modernc\.org/sqlite|github\.com/pressly/goose|github\.com/lib/pq|github\.com/cockroachdb/|github\.com/budgetledger/budgetledger@)`)

// TestNestedModules runs the tests of the modules nested in this repository — the client's (its
// unit tests, and its examples against a ledgerd process) and the generated API code's (the size
// limit) — which the root module's `go test ./...` does not reach: a nested module's packages are
// not in the root's pattern. So the README's one test command still runs them all.
func TestNestedModules(t *testing.T) {
	t.Parallel()
	args := []string{"test", "-count=1"}
	if raceEnabled {
		args = append(args, "-race")
	}
	for _, dir := range []string{clientDir, filepath.Join("..", "..", "proto", "budgetledger")} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			goCommand(t, dir, slices.Concat(args, []string{"./..."})...)
		})
	}
}

// goCommand runs the go command in dir and returns its standard output, failing the test with
// everything it printed if it fails.
func goCommand(t *testing.T, dir string, args ...string) string {
	t.Helper()
	// go test caches a result by the files the test itself opened, not by those the go command
	// reads: stat the client's files so that a change to them runs this test again.
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err == nil {
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s%s", strings.Join(args, " "), dir, err, out, stderr.String())
	}
	return string(out)
}
