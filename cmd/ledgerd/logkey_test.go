package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// TestExportAndVerifyLogWithoutDatabase protects verification outside the server: `ledgerd
// log-key generate` makes the key, a ledger signs with it (--log-key), `ledgerd export-journal`
// writes the journal and the latest checkpoint, and `ledgerd verify-log`, holding only the
// verifier key and the files, accepts them; an amount changed in the export is refused, and so
// is a checkpoint checked with another log's key. `ledgerd verify` checks the checkpoints too.
func TestExportAndVerifyLogWithoutDatabase(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := context.Background()
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "log.key")
		var vkey bytes.Buffer
		if err := realMain(ctx, []string{"log-key", "generate", "--origin", "ledger.test/fund", "--out", keyFile}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		// realMain prints to os.Stdout; call the command itself to read the verifier key.
		if err := logKeyMain(ctx, []string{"generate", "--origin", "ledger.test/fund", "--out", keyFile}, &vkey, &bytes.Buffer{}); err == nil {
			t.Fatal("log-key generate overwrote an existing key file")
		}
		keyFile2 := filepath.Join(dir, "log2.key")
		if err := logKeyMain(ctx, []string{"generate", "--origin", "ledger.test/fund", "--out", keyFile2}, &vkey, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		verifier := strings.TrimSpace(vkey.String())

		var flags logFlags
		flags.keyFile, flags.every, flags.interval = keyFile2, 1000, 3600_000_000_000
		cfg := ledger.Config{TxTimeout: testdb.TxTimeout}
		if err := flags.apply(&cfg); err != nil {
			t.Fatal(err)
		}
		l, err := ledger.Open(ctx, database, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", Allocation: 8_800_000_000}); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"siren:1", "siren:2", "siren:3"} {
			if _, err := l.Commit(ctx, ledger.Commit{RequestID: b, Caller: "service", EnvelopeID: "fund", Beneficiary: b, Project: "p", Amount: 1_000}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close() // signs a last checkpoint

		journal, cp := filepath.Join(dir, "journal.jsonl"), filepath.Join(dir, "checkpoint")
		var exported bytes.Buffer
		if err := exportJournalMain(ctx, []string{"--database", database, "--checkpoint", cp}, &exported, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(journal, exported.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := verifyLogMain(ctx, []string{"--journal", journal, "--checkpoint", cp, "--verifier-key", verifier}, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("verify-log on an honest export: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "first 4 entries") {
			t.Fatalf("the last checkpoint does not cover the 4 entries:\n%s", out.String())
		}
		if err := verifyMain(ctx, []string{"--database", database, "--log-verifier-key", verifier}, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("ledgerd verify with the log: %v\n%s", err, out.String())
		}

		forged := bytes.Replace(exported.Bytes(), []byte(`"amount":1000`), []byte(`"amount":100`), 1)
		if bytes.Equal(forged, exported.Bytes()) {
			t.Fatalf("no amount to change in the export:\n%s", exported.String())
		}
		if err := os.WriteFile(journal, forged, 0o644); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := verifyLogMain(ctx, []string{"--journal", journal, "--checkpoint", cp, "--verifier-key", verifier}, &out, &bytes.Buffer{}); !errors.Is(err, errDiscrepancies) {
			t.Fatalf("verify-log on a forged export: %v, want %v\n%s", err, errDiscrepancies, out.String())
		}
		other := filepath.Join(dir, "other.key")
		var otherKey bytes.Buffer
		if err := logKeyMain(ctx, []string{"generate", "--origin", "ledger.test/fund", "--out", other}, &otherKey, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if err := verifyLogMain(ctx, []string{"--journal", journal, "--checkpoint", cp, "--verifier-key", strings.TrimSpace(otherKey.String())}, &out, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("verify-log with another key: %v, want the signature refused", err)
		}
	})
}
