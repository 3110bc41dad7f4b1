package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// TestVerifyCommand protects `ledgerd verify`: on a sound ledger it prints a summary and exits 0
// (realMain returns nil); after a balance is edited behind the ledger's back it prints the
// discrepancy and exits 1 (realMain returns an error, which main turns into status 1).
func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := context.Background()
		l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []ledger.CreateEnvelope{
			{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", Allocation: 8_800_000_000},
			{RequestID: "axis-1", Caller: "admin", EnvelopeID: "axis-1", ParentID: "fund", Allocation: 3_000_000_000},
		} {
			if _, err := l.CreateEnvelope(ctx, cmd); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()

		if err := realMain(ctx, []string{"verify", "--database", database}, &bytes.Buffer{}); err != nil {
			t.Fatalf("ledgerd verify on a sound ledger: %v, want exit 0", err)
		}
		var out bytes.Buffer
		if err := verifyMain(ctx, []string{"--database", database}, &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "checked 2 envelopes, 0 commitments, 2 journal entries: 0 discrepancies") {
			t.Errorf("summary on a sound ledger:\n%s", out.String())
		}

		tamperSQL(t, database, "UPDATE envelopes SET committed = committed + 7 WHERE id = 'axis-1'")
		if err := realMain(ctx, []string{"verify", "--database", database}, &bytes.Buffer{}); !errors.Is(err, errDiscrepancies) {
			t.Fatalf("ledgerd verify on a tampered ledger: %v, want exit 1 with %v", err, errDiscrepancies)
		}
		out.Reset()
		_ = verifyMain(ctx, []string{"--database", database}, &out, &bytes.Buffer{})
		for _, want := range []string{
			"invariant 4: envelopes/axis-1: stores 2999999993 available, the journal says 3000000000",
			"invariant 4: envelopes/axis-1: stores 7 committed, its commitments hold 0",
			": 2 discrepancies",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("report lacks %q:\n%s", want, out.String())
			}
		}
	})
}

// TestVerifyCommandMissingDatabase: verifying a path where no ledger is fails, rather than
// creating an empty ledger and calling it sound.
func TestVerifyCommandMissingDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.db")
	err := verifyMain(context.Background(), []string{"--database", path}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || errors.Is(err, errDiscrepancies) || !strings.Contains(err.Error(), "no ledger at") {
		t.Fatalf("verify of a missing file: %v, want a 'no ledger at' error", err)
	}
}

func tamperSQL(t *testing.T, database, query string) {
	t.Helper()
	ctx := context.Background()
	if strings.HasPrefix(database, "postgres://") {
		conn, err := pgx.Connect(ctx, database)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, query); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite", "file:"+database+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, query); err != nil {
		t.Fatal(err)
	}
}
