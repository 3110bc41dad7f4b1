package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// TestBackupAndCopyCommands protects `ledgerd backup` and `ledgerd copy` as an operator runs
// them: a backup is written and verified and never overwrites a file; a copy to PostgreSQL prints
// its report (rows per table, the last position, the log's root) and the target passes `ledgerd
// verify`; a source that fails verification is refused, and copied with --force, its
// discrepancies then printed.
func TestBackupAndCopyCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	source := testdb.SQLite(t)
	l, err := ledger.Open(ctx, source, ledger.Config{TxTimeout: testdb.TxTimeout})
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
	if _, err := l.Commit(ctx, ledger.Commit{RequestID: "award-1", Caller: "service", EnvelopeID: "axis-1",
		Beneficiary: "siren:1", Project: "p1", Amount: 1_000}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	out := filepath.Join(t.TempDir(), "backup.db")
	var stdout, stderr bytes.Buffer
	if err := realMain(ctx, []string{"backup", "--database", source, "--out", out}, &stderr); err != nil {
		t.Fatalf("ledgerd backup: %v", err)
	}
	if err := backupMain(ctx, []string{"--database", source, "--out", out}, &stdout, &stderr); !errors.Is(err, store.ErrBackupExists) {
		t.Fatalf("ledgerd backup onto an existing file: %v, want ErrBackupExists", err)
	}
	if err := realMain(ctx, []string{"verify", "--database", out}, &stderr); err != nil {
		t.Fatalf("ledgerd verify on the backup: %v", err)
	}
	// --out spelt as --database may be (sqlite:PATH) names the file PATH, which is verified.
	spelt := filepath.Join(t.TempDir(), "spelt.db")
	if err := backupMain(ctx, []string{"--database", "sqlite:" + source, "--out", "sqlite:" + spelt}, &stdout, &stderr); err != nil {
		t.Fatalf("ledgerd backup --out sqlite:PATH: %v", err)
	}
	if err := realMain(ctx, []string{"verify", "--database", spelt}, &stderr); err != nil {
		t.Fatalf("ledgerd verify on the backup written to sqlite:PATH: %v", err)
	}

	target := testdb.Postgres(t)
	stdout.Reset()
	stderr.Reset()
	if err := copyMain(ctx, []string{"--from", source, "--to", target}, &stdout, &stderr); err != nil {
		t.Fatalf("ledgerd copy: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"journal_entries", "3 rows", "last position 3", "transparency log: size", "0 discrepancies"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the copy's report lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "copy: ") {
		t.Errorf("no progress lines without a terminal:\n%s", stderr.String())
	}
	if err := realMain(ctx, []string{"verify", "--database", target}, &stderr); err != nil {
		t.Fatalf("ledgerd verify on the copy: %v", err)
	}

	tamperSQL(t, source, "UPDATE envelopes SET committed = committed + 7 WHERE id = 'axis-1'")
	unsoundTarget := testdb.Postgres(t)
	if err := copyMain(ctx, []string{"--from", source, "--to", unsoundTarget}, &stdout, &stderr); !errors.Is(err, ledger.ErrSourceUnsound) {
		t.Fatalf("ledgerd copy of a tampered source: %v, want ErrSourceUnsound", err)
	}
	stdout.Reset()
	if err := copyMain(ctx, []string{"--from", source, "--to", unsoundTarget, "--force"}, &stdout, &stderr); err != nil {
		t.Fatalf("ledgerd copy --force: %v", err)
	}
	if !strings.Contains(stdout.String(), "the source fails verification") || !strings.Contains(stdout.String(), "envelopes/axis-1") {
		t.Errorf("ledgerd copy --force does not say what was wrong:\n%s", stdout.String())
	}
}
