package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/translog"
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
		// The key from a file, as verify-log takes it; a key that cannot be read is a mistake of
		// the command line, told before any work, not discrepancies of the ledger.
		vkeyFile := filepath.Join(dir, "verifier.txt")
		if err := os.WriteFile(vkeyFile, []byte(verifier+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := verifyMain(ctx, []string{"--database", database, "--log-verifier-key", "@" + vkeyFile}, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("ledgerd verify with the log's key from a file: %v\n%s", err, out.String())
		}
		if err := verifyMain(ctx, []string{"--database", database, "--log-verifier-key", "@" + keyFile2}, &out, &bytes.Buffer{}); err == nil ||
			errors.Is(err, errDiscrepancies) || !strings.Contains(err.Error(), "--log-verifier-key") {
			t.Fatalf("ledgerd verify with the signing key's file in place of the verifier key: %v, want the flag refused", err)
		}
		if !strings.HasPrefix(database, "postgres") {
			backup := filepath.Join(dir, "backup.db")
			if err := backupMain(ctx, []string{"--database", database, "--out", backup, "--log-verifier-key", "not a key"}, &out, &bytes.Buffer{}); err == nil ||
				!strings.Contains(err.Error(), "--log-verifier-key") {
				t.Fatalf("backup with a malformed verifier key: %v, want the flag refused", err)
			}
			if _, err := os.Stat(backup); !os.IsNotExist(err) {
				t.Errorf("backup with a malformed verifier key left %s: %v", backup, err)
			}
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

// TestVerifyLogLegacyLeaves protects an outsider's verification of a log whose first leaves were
// written without their entries' effective times (before migration 25): the export lists each
// entry as it is, backdated, and `verify-log --legacy-effective-until N` rebuilds the signed root
// by putting created_at in the effective_at field of the first N leaves (docs/transparency.md);
// without the flag, or with a bound that is not the log's, the root does not rebuild.
func TestVerifyLogLegacyLeaves(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey, err := translog.GenerateKey("ledger.test/legacy")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var journal bytes.Buffer
	b := translog.NewBuilder()
	for i := range int64(5) {
		e := ledger.Entry{ID: fmt.Sprintf("01a23a9f-9053-7d97-baea-e9de0841c5%02d", i), Sequence: i + 1, Kind: "COMMITTED", Currency: "EUR",
			Caller: "service:test", RequestID: fmt.Sprintf("r%d", i), CreatedAt: created.Add(time.Duration(i) * time.Minute),
			EffectiveAt: created.Add(-48 * time.Hour), // backdated
			Postings:    []ledger.Posting{{Account: "envelopes/fund", Amount: -100}, {Account: "commitments/c", Amount: 100}}}
		if err := json.NewEncoder(&journal).Encode(e); err != nil {
			t.Fatal(err)
		}
		if i < 3 { // logged before migration 25
			e.EffectiveAt = time.Time{}
		}
		b.Add(translog.EncodeLeaf(e))
	}
	note, err := signer.Sign(b.Size(), b.Root())
	if err != nil {
		t.Fatal(err)
	}
	journalFile, cp := filepath.Join(dir, "journal.jsonl"), filepath.Join(dir, "checkpoint")
	if err := os.WriteFile(journalFile, journal.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, note, 0o644); err != nil {
		t.Fatal(err)
	}
	for bound, ok := range map[string]bool{"3": true, "0": false, "2": false, "4": false} {
		var out bytes.Buffer
		err := verifyLogMain(ctx, []string{"--journal", journalFile, "--checkpoint", cp, "--verifier-key", vkey, "--legacy-effective-until", bound}, &out, &bytes.Buffer{})
		if ok && err != nil || !ok && !errors.Is(err, errDiscrepancies) {
			t.Errorf("verify-log --legacy-effective-until %s: %v\n%s", bound, err, out.String())
		}
	}
}

// TestLogKeyGenerateMakesOnlyUsableKeys protects `ledgerd log-key generate` from leaving a key
// file that --log-key cannot use: an origin that the note library reads back as no key name (a
// space, a newline, a '+') is refused up front, with no file made; a good one gives a key that
// --log-key takes.
func TestLogKeyGenerateMakesOnlyUsableKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, origin := range []string{"a b", "ledger.test/fund\nx", "x+y", "tab\there", "bad\xffutf8"} {
		out := filepath.Join(dir, "log.key")
		err := logKeyMain(context.Background(), []string{"generate", "--origin", origin, "--out", out}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.HasPrefix(err.Error(), "log-key generate: --origin") || strings.Contains(err.Error(), "\n") {
			t.Errorf("--origin %q: %v, want one line refusing --origin", origin, err)
		}
		if _, err := os.Lstat(out); !os.IsNotExist(err) {
			t.Fatalf("--origin %q refused, but %s was made: %v", origin, out, err)
		}
	}
	out := filepath.Join(dir, "good.key")
	if err := logKeyMain(context.Background(), []string{"generate", "--origin", "ledger.test/fund-2021", "--out", out}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	flags := logFlags{keyFile: out, every: 1000, interval: time.Hour}
	if err := flags.apply(&ledger.Config{}); err != nil {
		t.Errorf("--log-key refuses the key log-key generate made: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the folder, want the key alone: %v", len(entries), entries)
	}
}

// TestLogKeyGenerateFailedWriteLeavesNoFile protects the rerun after a failed write (a full disk,
// here a file size limit): log-key generate says so in one line of its own, and leaves neither the
// key file (empty, it made the rerun fail with "file exists") nor its temporary file.
func TestLogKeyGenerateFailedWriteLeavesNoFile(t *testing.T) {
	// Not parallel: the limit is the whole process's, for the few milliseconds of one call.
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &saved); err != nil {
		t.Skip("no file size limit here:", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "log.key")
	args := []string{"generate", "--origin", "ledger.test/fund", "--out", out}
	signal.Ignore(syscall.SIGXFSZ) // a write over the limit fails with EFBIG rather than killing the process
	defer signal.Reset(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 16, Max: saved.Max}); err != nil {
		t.Skip("cannot set a file size limit:", err)
	}
	err := logKeyMain(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &saved); err != nil {
		t.Fatal(err)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "log-key generate: ") {
		t.Fatalf("log-key generate on a failing disk: %v, want an error of log-key generate", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed log-key generate left %v", entries)
	}
	var vkey bytes.Buffer
	if err := logKeyMain(context.Background(), args, &vkey, &bytes.Buffer{}); err != nil {
		t.Fatalf("the rerun: %v", err)
	}
	if err := translog.CheckVerifierKey(strings.TrimSpace(vkey.String())); err != nil {
		t.Errorf("the rerun printed %q: %v", vkey.String(), err)
	}
}

// failingWriter is a stdout that cannot be written (a closed pipe, a full disk).
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestExportJournalCheckpointIsNewAndLast protects the checkpoints an auditor keeps, and the
// pairing of a checkpoint with its journal: export-journal --checkpoint refuses an existing file
// (an older checkpoint is evidence), writes the new one only once the journal is written (a failed
// export leaves none), and export-journal and verify-log refuse extra arguments as backup and copy
// do, with errors prefixed by the subcommand; --out, like --checkpoint, refuses an existing file
// and holds what stdout would.
func TestExportJournalCheckpointIsNewAndLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey, err := translog.GenerateKey("ledger.test/export")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := translog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	database := filepath.Join(dir, "ledger.db")
	l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout,
		Log: ledger.LogConfig{Enabled: true, Signer: signer, CheckpointEvery: 1000, CheckpointInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: "fund", Caller: "admin", EnvelopeID: "fund", Allocation: 100}); err != nil {
		t.Fatal(err)
	}
	l.Close() // signs a checkpoint

	old := filepath.Join(dir, "old-checkpoint")
	if err := os.WriteFile(old, []byte("an older checkpoint\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var journal bytes.Buffer
	err = exportJournalMain(ctx, []string{"--database", database, "--checkpoint", old}, &journal, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "export-journal: --checkpoint: ") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("export-journal --checkpoint over an existing file: %v, want it refused", err)
	}
	if got, _ := os.ReadFile(old); string(got) != "an older checkpoint\n" {
		t.Errorf("the existing checkpoint file now holds %q", got)
	}

	cp := filepath.Join(dir, "checkpoint")
	err = exportJournalMain(ctx, []string{"--database", database, "--checkpoint", cp}, failingWriter{}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "export-journal: ") {
		t.Errorf("export-journal to a stdout that fails: %v, want an error of export-journal", err)
	}
	if _, err := os.Lstat(cp); !os.IsNotExist(err) {
		t.Errorf("a failed export-journal left its checkpoint: %v", err)
	}
	// --out: a journal kept from an earlier export is refused, not emptied as a shell
	// redirection would; a new one holds what stdout would.
	kept := filepath.Join(dir, "journal-kept.jsonl")
	if err := os.WriteFile(kept, []byte("an earlier journal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = exportJournalMain(ctx, []string{"--database", database, "--out", kept, "--checkpoint", cp}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "export-journal: --out: ") {
		t.Errorf("export-journal --out over an existing file: %v, want it refused", err)
	}
	if got, _ := os.ReadFile(kept); string(got) != "an earlier journal\n" {
		t.Errorf("the existing journal file now holds %q", got)
	}
	if _, err := os.Lstat(cp); !os.IsNotExist(err) {
		t.Errorf("a refused export-journal left its checkpoint: %v", err)
	}
	if err := exportJournalMain(ctx, []string{"--database", database, "--checkpoint", cp}, &journal, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if note, err := os.ReadFile(cp); err != nil || !strings.HasPrefix(string(note), "ledger.test/export\n") {
		t.Errorf("the checkpoint: %q, %v", note, err)
	}
	outFile := filepath.Join(dir, "journal.jsonl")
	if err := exportJournalMain(ctx, []string{"--database", database, "--out", outFile}, failingWriter{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("export-journal --out wrote to stdout: %v", err)
	}
	if got, err := os.ReadFile(outFile); err != nil || string(got) != journal.String() {
		t.Errorf("export-journal --out wrote %q (%v), stdout had %q", got, err, journal.String())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("a temporary file is left: %s", e.Name())
		}
	}

	for _, run := range []struct {
		name, want string
		err        error
	}{
		{"export-journal", `export-journal: unexpected argument "extra"`,
			exportJournalMain(ctx, []string{"--database", database, "extra"}, &bytes.Buffer{}, &bytes.Buffer{})},
		{"verify-log", `verify-log: unexpected argument "extra"`,
			verifyLogMain(ctx, []string{"--journal", "j", "--checkpoint", cp, "--verifier-key", "k", "extra"}, &bytes.Buffer{}, &bytes.Buffer{})},
		{"verify-log", "verify-log: --checkpoint: ",
			verifyLogMain(ctx, []string{"--journal", "-", "--checkpoint", filepath.Join(dir, "nofile"), "--verifier-key", vkey}, &bytes.Buffer{}, &bytes.Buffer{})},
	} {
		if run.err == nil || !strings.HasPrefix(run.err.Error(), run.want) {
			t.Errorf("%s: %v, want %q", run.name, run.err, run.want)
		}
	}
}

// TestLogKeyVerifierFilesAndRecovery protects the verifier key an operator publishes: log-key
// generate --verifier-out writes it to a new file (an existing one, e.g. from a first run, is
// refused before any key is made, where a shell redirection would have emptied it), and log-key
// verifier prints it again from the signing key alone.
func TestLogKeyVerifierFilesAndRecovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	key, verifier := filepath.Join(dir, "log.key"), filepath.Join(dir, "verifier.key")
	var printed bytes.Buffer
	args := []string{"generate", "--origin", "ledger.test/fund", "--out", key, "--verifier-out", verifier}
	if err := logKeyMain(ctx, args, &printed, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(verifier)
	if err != nil || string(written) != printed.String() || !strings.HasPrefix(string(written), "ledger.test/fund+") {
		t.Fatalf("--verifier-out holds %q (%v), stdout %q", written, err, printed.String())
	}
	// The same command again: both files exist, both are kept as they were.
	skey, _ := os.ReadFile(key)
	if err := logKeyMain(ctx, args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("a second log-key generate over the same files succeeded")
	}
	// A new key beside the kept verifier file: refused before the key is made.
	other := filepath.Join(dir, "other.key")
	err = logKeyMain(ctx, []string{"generate", "--origin", "ledger.test/fund", "--out", other, "--verifier-out", verifier}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--verifier-out") {
		t.Errorf("log-key generate over an existing --verifier-out: %v, want it refused", err)
	}
	if _, err := os.Lstat(other); !os.IsNotExist(err) {
		t.Errorf("a refused log-key generate left a signing key: %v", err)
	}
	if again, _ := os.ReadFile(key); string(again) != string(skey) {
		t.Error("the signing key changed")
	}
	if again, _ := os.ReadFile(verifier); string(again) != string(written) {
		t.Error("the verifier key file changed")
	}

	same := filepath.Join(dir, "same.key")
	if err := logKeyMain(ctx, []string{"generate", "--origin", "ledger.test/fund", "--out", same, "--verifier-out", same}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("log-key generate with --out and --verifier-out the same file succeeded")
	}
	if _, err := os.Lstat(same); !os.IsNotExist(err) {
		t.Errorf("a refused log-key generate left %s: %v", same, err)
	}

	var recovered bytes.Buffer
	if err := logKeyMain(ctx, []string{"verifier", "--key", key}, &recovered, &bytes.Buffer{}); err != nil || recovered.String() != string(written) {
		t.Errorf("log-key verifier = %q, %v; want %q", recovered.String(), err, written)
	}
	if err := logKeyMain(ctx, []string{"verifier", "--key", verifier}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("log-key verifier took a verifier key for a signing key")
	}
}

// TestStartNamesTheTransparencyLog protects what an operator reads at the start: the line that
// says ledgerd listens names the transparency log's origin when --log-key is given, or off.
func TestStartNamesTheTransparencyLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "log.key")
	if err := logKeyMain(context.Background(), []string{"generate", "--origin", "ledger.test/start", "--out", key}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	_, off := runLedgerd(t, "--listen", "127.0.0.1:0", "--database", filepath.Join(dir, "off.db"))
	_, on := runLedgerd(t, "--listen", "127.0.0.1:0", "--database", filepath.Join(dir, "on.db"), "--log-key", key)
	for _, c := range []struct{ logged, want string }{{off, "transparency_log=off"}, {on, "transparency_log=ledger.test/start"}} {
		line := ""
		for _, l := range strings.Split(c.logged, "\n") {
			if strings.Contains(l, `msg="ledgerd listening"`) {
				line = l
			}
		}
		if !strings.Contains(line, c.want) {
			t.Errorf("the start's line %q does not say %s", line, c.want)
		}
	}
}
