//go:build faults

package faults

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// TestCopySIGKILL protects issue 20's restart promise against the harshest interruption: a
// `ledgerd copy` from SQLite to PostgreSQL is killed with SIGKILL three times (once past each
// quarter of the rows), in the middle of whatever it was doing, and run again each time; the
// target it finishes is refused by `ledgerd verify` while unfinished, then verifies, and holds
// exactly the rows of an uninterrupted copy of the same source, table by table (no row twice,
// none missing).
func TestCopySIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	whole, target := testdb.Postgres(t), testdb.Postgres(t)
	source := testdb.SQLite(t)
	fillForCopy(ctx, t, source, 2_000)

	if out, err := exec.CommandContext(ctx, ledgerdBin, "copy", "--from", source, "--to", whole).CombinedOutput(); err != nil {
		t.Fatalf("the uninterrupted copy: %v\n%s", err, out)
	}

	for _, killPast := range []int{25, 50, 75} {
		killed := copyUntil(ctx, t, source, target, killPast)
		if !killed {
			t.Fatalf("the copy finished before it passed %d%% of the rows: nothing was killed", killPast)
		}
		// A half-copied ledger is never served nor verified as a ledger.
		out, err := exec.CommandContext(ctx, ledgerdBin, "verify", "--database", target).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "copy") {
			t.Fatalf("ledgerd verify on a target killed at %d%%: %v\n%s; want a refusal naming the unfinished copy", killPast, err, out)
		}
	}
	out, err := exec.CommandContext(ctx, ledgerdBin, "copy", "--from", source, "--to", target).CombinedOutput()
	if err != nil {
		t.Fatalf("the copy run after three kills: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "resumed") {
		t.Errorf("the last run does not say it resumed an interrupted copy:\n%s", out)
	}
	if out, err := exec.CommandContext(ctx, ledgerdBin, "verify", "--database", target).CombinedOutput(); err != nil {
		t.Fatalf("ledgerd verify on the finished target: %v\n%s", err, out)
	}
	want, got := dumpPostgres(ctx, t, whole), dumpPostgres(ctx, t, target)
	if len(want) == 0 {
		t.Fatal("the uninterrupted copy holds no table")
	}
	for table, rows := range want {
		if got[table] != rows {
			t.Errorf("table %s differs between the killed-and-resumed copy and the uninterrupted one (%d and %d bytes)", table, len(got[table]), len(rows))
		}
	}
	for table := range got {
		if _, ok := want[table]; !ok {
			t.Errorf("table %s is only in the killed-and-resumed copy", table)
		}
	}
}

// fillForCopy writes a SQLite ledger of n awards (in calls of 100) under a fund of two envelopes,
// with a few releases, so that the copy has many batches to be killed in.
func fillForCopy(ctx context.Context, t *testing.T, database string, n int) {
	t.Helper()
	l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: time.Minute, HoldSweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, e := range []ledger.CreateEnvelope{
		{RequestID: "fund", Caller: "faults", EnvelopeID: "fund", DisplayName: "Fund", Allocation: 1_000_000_000_000},
		{RequestID: "axis", Caller: "faults", EnvelopeID: "axis", ParentID: "fund", DisplayName: "Axis", Allocation: 500_000_000_000},
	} {
		if _, err := l.CreateEnvelope(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for call := 0; call*100 < n; call++ {
		items := make([]ledger.BulkItem, 100)
		for i := range items {
			items[i] = ledger.BulkItem{Beneficiary: fmt.Sprintf("siren:%09d", call*100+i), Project: fmt.Sprintf("p-%d", call*100+i), Amount: int64(1_000 + i)}
		}
		envelope := []string{"fund", "axis"}[call%2]
		res, err := l.BulkCommit(ctx, ledger.BulkCommit{RequestID: fmt.Sprintf("bulk-%d", call), Caller: "faults", EnvelopeID: envelope, Items: items})
		if err != nil || res.Accepted != len(items) {
			t.Fatalf("BulkCommit %d: %+v, %v", call, res.Accepted, err)
		}
		if _, err := l.Release(ctx, ledger.Release{RequestID: fmt.Sprintf("release-%d", call), Caller: "faults",
			CommitmentID: res.Items[0].Commitment.ID, Amount: 10, Reason: "project scaled down"}); err != nil {
			t.Fatal(err)
		}
	}
}

var copyProgressLine = regexp.MustCompile(`^copy: \d+ of \d+ rows \((\d+)%\)`)

// copyUntil runs `ledgerd copy --batch-rows 50` from source to target and kills it with SIGKILL
// as soon as it reports more than percent of the rows copied. It reports whether it killed it
// (false: the copy ended first).
func copyUntil(ctx context.Context, t *testing.T, source, target string, percent int) bool {
	t.Helper()
	cmd := exec.CommandContext(ctx, ledgerdBin, "copy", "--from", source, "--to", target, "--batch-rows", "50")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		m := copyProgressLine.FindStringSubmatch(lines.Text())
		if m == nil {
			continue
		}
		if p, _ := strconv.Atoi(m[1]); p > percent {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	io.Copy(io.Discard, stderr) //nolint:errcheck // drains what was written before the kill
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("ledgerd copy failed before it was killed: %v", err)
	}
	return killed
}

// dumpPostgres returns every table of the ledger at database as text, rows sorted by their text,
// but the copy's own bookkeeping and the migrations' (times and lock states differ between two
// databases).
func dumpPostgres(ctx context.Context, t *testing.T, database string) map[string]string {
	t.Helper()
	db, err := sql.Open("pgx", database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
		  AND table_name NOT LIKE 'goose%' AND table_name NOT LIKE 'ledger_copy%'
		  AND table_name <> 'ledger_migration_lock'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, table := range tables {
		// Each row as its text form, in the order of that text: the same rows give the same dump
		// whatever order they were inserted in.
		var dump sql.NullString
		q := fmt.Sprintf(`SELECT string_agg(r::text, E'\n' ORDER BY r::text COLLATE "C") FROM %q AS r`, table)
		if err := db.QueryRowContext(ctx, q).Scan(&dump); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out[table] = dump.String
	}
	return out
}
