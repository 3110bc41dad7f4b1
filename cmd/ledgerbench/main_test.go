package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestMain runs the test binary as a `ledgerbench serve` child when --server process re-executes
// it (startChild runs os.Executable, which is this binary in a test).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ok, err := serveChild(context.Background(), os.Args[2:], os.Stdout)
		if err != nil || !ok {
			os.Stderr.WriteString("ledgerbench serve: " + errString(err) + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func errString(err error) string {
	if err == nil {
		return "failed"
	}
	return err.Error()
}

// The CPU time of a ledgerd child and of PostgreSQL's backends is read from /proc/PID/stat's
// utime and stime, counted from the last ')' so that a command name with spaces or parentheses
// does not shift the fields.
func TestParseProcStatCountsFieldsAfterTheCommandName(t *testing.T) {
	line := "4242 (post gres) (x)) S 1 4242 4242 0 -1 4194560 1520 0 0 0 250 75 0 0 20 0 1 0 3155 221184000 3000 18446744073709551615"
	got, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want { // (250 + 75) ticks of 10 ms
		t.Fatalf("CPU time %v, want %v", got, want)
	}
	if _, err := parseProcStat("4242 (short) S 1 2"); err == nil {
		t.Fatal("a truncated stat line was read without error")
	}
}

// A short run of the award + hold + confirm + payment mix, with ledgerd in a child process on
// PostgreSQL, reports what the matrix relies on: every kind of call made, CPU per award for
// ledgerd, PostgreSQL and the load generator apart, the empty RPC's cost, the storage per table
// after VACUUM FULL, and the invariants still holding after the run.
func TestMixOnPostgresReportsCPUAndStoragePerAward(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: CPU time of other processes cannot be read")
	}
	database := testdb.Postgres(t)
	var out bytes.Buffer
	ok, err := realMain(t.Context(), []string{"--database", database, "--server", "process", "--clients", "4",
		"--duration", "700ms", "--min-calls", "12", "--hold-ratio", "0.5", "--payment-ratio", "0.5", "--json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("invariants broken after the run:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Commits == 0 || r.Holds == 0 || r.Holds == r.Commits || r.Payments == 0 {
		t.Errorf("the mix was not run: %d awards, %d of them holds, %d payments", r.Commits, r.Holds, r.Payments)
	}
	if r.Server != "process" || r.CPULedgerdUs <= 0 || r.CPUPostgresUs <= 0 || r.CPUBenchUs <= 0 || r.EmptyRPCCPULedgerdUs <= 0 {
		t.Errorf("CPU per award not measured apart: %+v", r)
	}
	tables := map[string]tableSize{}
	for _, s := range r.Storage {
		tables[s.Table] = s
	}
	// No "postings": every entry of this mix has two legs, kept in its journal_entries row
	// (migration 17); the postings table holds only entries of another shape.
	for _, name := range []string{"commitments", "journal_entries", "requests", "holds", "payments"} {
		if s, ok := tables[name]; !ok || s.Bytes <= 0 || s.IndexBytes <= 0 || s.Rows <= 0 {
			t.Errorf("table %s: %+v", name, s)
		}
	}
	// --min-calls: no call is cut by the end of the run, so every award stored was counted.
	if r.StoredAwards != r.Commits || r.BytesPerAward <= 0 {
		t.Errorf("%d commitments stored for %d awards, %.0f bytes per award", r.StoredAwards, r.Commits, r.BytesPerAward)
	}
	var table bytes.Buffer
	line, _ := json.Marshal(r)
	if err := printTable(bytes.NewReader(line), &table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| postgres | Commit or hold + confirm") {
		t.Errorf("the table does not name the mix:\n%s", table.String())
	}
}

// TestProjectsOwnGivesEveryAwardItsProject protects what --projects own measures: a ledger where
// every award, single or in a BatchCommit call, names a project of its own (one project total per
// award, as in a call for projects), where --projects shared names one project per call number.
func TestProjectsOwnGivesEveryAwardItsProject(t *testing.T) {
	for _, tc := range []struct {
		projects, bulk string
		own            bool
	}{{"own", "0", true}, {"own", "3", true}, {"shared", "0", false}} {
		path := filepath.Join(t.TempDir(), "ledger.db")
		var out bytes.Buffer
		ok, err := realMain(t.Context(), []string{"--database", path, "--clients", "3", "--duration", "1ms",
			"--min-calls", "4", "--bulk", tc.bulk, "--projects", tc.projects, "--json"}, &out)
		if err != nil || !ok {
			t.Fatalf("--projects %s --bulk %s: %v, invariants held %v\n%s", tc.projects, tc.bulk, err, ok, out.String())
		}
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		var awards, projects int
		err = db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT project) FROM commitments").Scan(&awards, &projects)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if awards < 12 || (projects == awards) != tc.own {
			t.Errorf("--projects %s --bulk %s: %d awards over %d projects", tc.projects, tc.bulk, awards, projects)
		}
	}
	if _, err := parseFlags([]string{"--projects", "each"}); err == nil {
		t.Error("--projects each was accepted")
	}
}

// TestProfilesNeverReplaceAFile protects the file a mistyped --cpuprofile or --ledgerd-cpuprofile
// names (a ledger, a key): an existing file is refused before the run, and left as it was.
func TestProfilesNeverReplaceAFile(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "important.txt")
	if err := os.WriteFile(existing, []byte("important\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	short := []string{"--database", filepath.Join(dir, "bench.db"), "--clients", "1", "--conns", "1", "--duration", "100ms"}
	for _, run := range []struct {
		flag string
		run  func() error
	}{
		{"--cpuprofile", func() error {
			_, err := realMain(t.Context(), append(short, "--cpuprofile", existing), &bytes.Buffer{})
			return err
		}},
		{"--ledgerd-cpuprofile", func() error {
			_, err := realMain(t.Context(), append(short, "--server", "process", "--ledgerd-cpuprofile", existing), &bytes.Buffer{})
			return err
		}},
		{"--cpuprofile", func() error {
			_, err := holdsExpiry(t.Context(), []string{"--database", filepath.Join(dir, "holds.db"), "--holds", "1", "--clients", "0",
				"--cpuprofile", existing}, &bytes.Buffer{})
			return err
		}},
	} {
		if err := run.run(); err == nil || !strings.Contains(err.Error(), run.flag+": ") || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("%s naming an existing file: %v, want it refused", run.flag, err)
		}
		if got, err := os.ReadFile(existing); err != nil || string(got) != "important\n" {
			t.Fatalf("%s replaced the existing file: it holds %d bytes, %v", run.flag, len(got), err)
		}
	}
}
