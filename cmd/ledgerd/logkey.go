package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// The transparency log's side of ledgerd (issue 14, docs/transparency.md): the signing flags of
// the server, and the commands log-key generate, export-journal and verify-log.

// logSubcommands are the commands of this file, by their first argument.
var logSubcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"log-key":        logKeyMain,
	"export-journal": exportJournalMain,
	"verify-log":     verifyLogMain,
	"backup":         backupMain, // copy.go
	"copy":           copyMain,   // copy.go
	// The open-data export (issue 15 §1, export.go): `ledgerd export scdl`.
	"export": exportMain,
}

// logFlags are the server's flags of the transparency log.
type logFlags struct {
	keyFile  string
	every    int64
	interval time.Duration
}

func (f *logFlags) register(fs *flag.FlagSet, envErrs envErrors) {
	fs.StringVar(&f.keyFile, "log-key", env("LEDGER_LOG_KEY", ""),
		"file holding the transparency log's signing key (ledgerd log-key generate); empty: no log, its RPCs answer LOG_DISABLED (LEDGER_LOG_KEY)")
	every, err := envInt("LEDGER_CHECKPOINT_EVERY", 1000)
	envErrs.note("checkpoint-every", err)
	fs.Int64Var(&f.every, "checkpoint-every", int64(every), "sign a checkpoint once the log has grown by this many entries (LEDGER_CHECKPOINT_EVERY)")
	interval, err := envDuration("LEDGER_CHECKPOINT_INTERVAL", 10*time.Second)
	envErrs.note("checkpoint-interval", err)
	fs.DurationVar(&f.interval, "checkpoint-interval", interval, "sign a checkpoint this often when the log has grown (LEDGER_CHECKPOINT_INTERVAL)")
}

// apply reads the signing key into cfg.
// transparencyLog is how the start's log line names the transparency log: "off", or its origin.
func transparencyLog(c ledger.LogConfig) string {
	if !c.Enabled || c.Signer == nil {
		return "off"
	}
	return c.Signer.Origin()
}

func (f *logFlags) apply(cfg *ledger.Config) error {
	if f.keyFile == "" {
		return nil
	}
	if f.every <= 0 || f.interval <= 0 {
		return errors.New("--checkpoint-every and --checkpoint-interval must be positive")
	}
	skey, err := os.ReadFile(f.keyFile)
	if err != nil {
		return fmt.Errorf("--log-key: %w", err)
	}
	signer, err := translog.NewSigner(string(skey))
	if err != nil {
		return fmt.Errorf("--log-key %s: %w", f.keyFile, err)
	}
	cfg.Log = ledger.LogConfig{Enabled: true, Signer: signer, CheckpointEvery: f.every, CheckpointInterval: f.interval}
	return nil
}

// logKeyUsage is the usage of ledgerd log-key.
const logKeyUsage = "usage: ledgerd log-key generate --origin NAME --out FILE [--verifier-out FILE]\n" +
	"       ledgerd log-key verifier --key FILE"

// logKeyMain is `ledgerd log-key generate --origin NAME --out FILE`: it writes a new Ed25519
// signing key to FILE (mode 0600, never overwritten) and prints the verifier key to publish (and
// writes it to the new file --verifier-out); `ledgerd log-key verifier --key FILE` prints the
// verifier key of a signing key again.
func logKeyMain(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stderr, logKeyUsage+"\n(ledgerd log-key generate -h, ledgerd log-key verifier -h for the flags)")
		return flag.ErrHelp
	}
	if len(args) > 0 && args[0] == "verifier" {
		return logKeyVerifier(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "generate" {
		return errors.New("log-key: " + logKeyUsage)
	}
	fs := flag.NewFlagSet("ledgerd log-key generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), logKeyUsage+"\n\n"+
			"Writes a new Ed25519 signing key for the transparency log to the new file --out (mode 0600;\n"+
			"an existing file is refused) and prints its verifier key, to publish, on stdout. See\n"+
			"docs/transparency.md.")
		fs.PrintDefaults()
	}
	origin := fs.String("origin", "", "the log's name, first line of its checkpoints: no spaces and no '+' (e.g. budgetledger.example.org/fund-2021)")
	out := fs.String("out", "", "file to write the signing key to (created, mode 0600)")
	verifierOut := fs.String("verifier-out", "", "also write the verifier key to this new file (an existing file is refused, not replaced: prefer it to a shell redirection, which empties its file before ledgerd runs)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *origin == "" || *out == "" || fs.NArg() > 0 {
		return errors.New("log-key generate: " + logKeyUsage)
	}
	if *verifierOut == *out {
		return errors.New("log-key generate: --out and --verifier-out name the same file")
	}
	// The origin is the key's name, and golang.org/x/mod/sumdb/note, which signs and verifies the
	// checkpoints, reads back only a name that is valid UTF-8 without any space or '+'; its
	// GenerateKey does not check, so a bad origin made a key that --log-key then refused.
	if !utf8.ValidString(*origin) || strings.IndexFunc(*origin, unicode.IsSpace) >= 0 || strings.Contains(*origin, "+") {
		return fmt.Errorf("log-key generate: --origin %q cannot name a log: it must hold no space, newline or '+' (e.g. budgetledger.example.org/fund-2021)", *origin)
	}
	skey, vkey, err := translog.GenerateKey(*origin)
	if err != nil {
		return fmt.Errorf("log-key generate: %w", err)
	}
	if _, err := translog.NewSigner(skey); err != nil {
		return fmt.Errorf("log-key generate: the key made cannot be read back: %w", err)
	}
	f, err := createNewFile(*out, 0o600)
	if err != nil {
		return fmt.Errorf("log-key generate: --out: %w", err)
	}
	defer f.abort()
	// The verifier key's file is refused, like the key's, before either is put in place.
	var v *newFile
	if *verifierOut != "" {
		if v, err = createNewFile(*verifierOut, 0o644); err != nil {
			return fmt.Errorf("log-key generate: --verifier-out: %w", err)
		}
		defer v.abort()
		if _, err := fmt.Fprintln(v, vkey); err != nil {
			return fmt.Errorf("log-key generate: writing %s: %w", *verifierOut, err)
		}
	}
	if _, err := fmt.Fprintln(f, skey); err != nil {
		return fmt.Errorf("log-key generate: writing %s: %w", *out, err)
	}
	if err := f.commit(); err != nil {
		return fmt.Errorf("log-key generate: writing %s: %w", *out, err)
	}
	if v != nil {
		if err := v.commit(); err != nil {
			return fmt.Errorf("log-key generate: writing %s (the signing key is in %s: ledgerd log-key verifier --key %s prints its verifier key): %w",
				*verifierOut, *out, *out, err)
		}
	}
	fmt.Fprintln(stdout, vkey)
	return nil
}

// logKeyVerifier is `ledgerd log-key verifier --key FILE`: the verifier key of the signing key in
// FILE, on stdout, to publish again (when the one printed at generation is lost).
func logKeyVerifier(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd log-key verifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerd log-key verifier --key FILE\n\n"+
			"Prints the verifier key of the transparency log's signing key in FILE (ledgerd log-key\n"+
			"generate --out), the key to publish. See docs/transparency.md.")
		fs.PrintDefaults()
	}
	keyFile := fs.String("key", env("LEDGER_LOG_KEY", ""), "the file holding the signing key (LEDGER_LOG_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" || fs.NArg() > 0 {
		return errors.New("log-key verifier: usage: ledgerd log-key verifier --key FILE")
	}
	skey, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("log-key verifier: %w", err)
	}
	vkey, err := translog.VerifierKey(string(skey))
	if err != nil {
		return fmt.Errorf("log-key verifier: %s: %w", *keyFile, err)
	}
	fmt.Fprintln(stdout, vkey)
	return nil
}

// isHelp reports whether arg asks for help, as the flag package reads it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help":
		return true
	}
	return false
}

// exportJournalMain is `ledgerd export-journal --database URL`: every positioned journal entry,
// one JSON object a line, in order, to stdout (with --checkpoint FILE, the latest checkpoint is
// written to FILE too, taken before the entries are read).
func exportJournalMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd export-journal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	database := fs.String("database", env("LEDGER_DATABASE", "ledger.db"), "the ledger (LEDGER_DATABASE)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerd export-journal [--database URL] [--out FILE] [--checkpoint FILE]\n\n"+
			"Writes every journal entry, one JSON object a line, in order, to the new file --out (or to\n"+
			"stdout); with --checkpoint, the latest signed checkpoint (taken before the entries are read)\n"+
			"to the new FILE, once the journal is written. See docs/transparency.md.")
		fs.PrintDefaults()
	}
	cpFile := fs.String("checkpoint", "", "also write the latest signed checkpoint to this new file (an existing file is refused: an older checkpoint is evidence to keep)")
	outFile := fs.String("out", "", "write the journal to this new file, put in place once complete (an existing file is refused, not replaced: prefer it to a shell redirection, which empties its file before ledgerd runs); empty: stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export-journal: unexpected argument %q", fs.Arg(0))
	}
	if *outFile != "" && *outFile == *cpFile {
		return errors.New("export-journal: --out and --checkpoint name the same file")
	}
	// Both files are refused, if they exist, before the ledger is opened.
	var out *newFile
	if *outFile != "" {
		var err error
		if out, err = createNewFile(*outFile, 0o644); err != nil {
			return fmt.Errorf("export-journal: --out: %w", err)
		}
		defer out.abort()
		stdout = out
	}
	if *cpFile != "" {
		if _, err := os.Lstat(*cpFile); err == nil {
			return fmt.Errorf("export-journal: --checkpoint: %s already exists", *cpFile)
		}
	}
	l, err := ledger.Open(ctx, *database, ledger.Config{DisableBatching: true, MustExist: true})
	if err != nil {
		return fmt.Errorf("export-journal: %w", err)
	}
	defer l.Close()
	legacy, err := l.LogLegacyBound(ctx)
	if err != nil {
		return fmt.Errorf("export-journal: %w", err)
	}
	if legacy > 0 {
		fmt.Fprintf(stderr, "export-journal: the leaves of entries 1 to %d were written without their effective time (docs/transparency.md): verify with ledgerd verify-log --legacy-effective-until %d\n", legacy, legacy)
	}
	// The checkpoint is read before the entries, so that they cover it, but put in place only once
	// the journal is written: a failed export leaves no checkpoint without its journal.
	var cp *newFile
	if *cpFile != "" {
		note, err := l.LatestCheckpointNote(ctx)
		if err != nil {
			return fmt.Errorf("export-journal: %w", err)
		}
		if cp, err = createNewFile(*cpFile, 0o644); err != nil {
			return fmt.Errorf("export-journal: --checkpoint: %w", err)
		}
		defer cp.abort()
		if _, err := cp.WriteString(note); err != nil {
			return fmt.Errorf("export-journal: --checkpoint: %w", err)
		}
	}
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	var after int64
	for {
		entries, _, err := l.ListEntries(ctx, ledger.EntryFilter{AfterSequence: after}, ledger.Page{Size: 1000})
		if err != nil {
			return fmt.Errorf("export-journal: %w", err)
		}
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("export-journal: %w", err)
			}
			after = e.Sequence
		}
		if len(entries) < 1000 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("export-journal: %w", err)
			}
			if out != nil {
				if err := out.commit(); err != nil {
					return fmt.Errorf("export-journal: --out: %w", err)
				}
			}
			if cp != nil {
				if err := cp.commit(); err != nil {
					return fmt.Errorf("export-journal: --checkpoint: %w", err)
				}
			}
			return nil
		}
	}
}

// verifyLogUsage is the usage line of ledgerd verify-log.
const verifyLogUsage = "usage: ledgerd verify-log --journal FILE --checkpoint FILE --verifier-key KEY|@FILE [--legacy-effective-until N]"

// verifyLogMain is `ledgerd verify-log --journal FILE --checkpoint FILE --verifier-key KEY`: with
// no database at all, it checks the checkpoint's signature, then that the first tree-size entries
// of an exported journal (JSON lines, in order) rebuild the checkpoint's root.
func verifyLogMain(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd verify-log", flag.ContinueOnError)
	fs.SetOutput(stderr)
	journal := fs.String("journal", "", "the exported journal (ledgerd export-journal); - for stdin")
	cpFile := fs.String("checkpoint", "", "a signed checkpoint (GetCheckpoint, or export-journal --checkpoint)")
	vkey := fs.String("verifier-key", env("LEDGER_LOG_VERIFIER_KEY", ""), "the log's verifier key, or @FILE holding it (LEDGER_LOG_VERIFIER_KEY)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), verifyLogUsage+"\n\n"+
			"With no database, checks the checkpoint's signature, then that the first tree-size entries of\n"+
			"the exported journal rebuild its root. Exits 1 on a discrepancy or an error, 0 otherwise. See\n"+
			"docs/transparency.md.")
		fs.PrintDefaults()
	}
	legacy := fs.Int64("legacy-effective-until", 0, "the last position whose leaf was written without its entry's effective time, by a release before migration 25 (ledgerd export-journal and ledgerd verify print it; 0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("verify-log: unexpected argument %q", fs.Arg(0))
	}
	if *legacy < 0 {
		return errors.New("verify-log: --legacy-effective-until must not be negative")
	}
	if *journal == "" || *cpFile == "" || *vkey == "" {
		return errors.New("verify-log: " + verifyLogUsage)
	}
	key, err := verifierKey("verify-log: --verifier-key", *vkey)
	if err != nil {
		return err
	}
	note, err := os.ReadFile(*cpFile)
	if err != nil {
		return fmt.Errorf("verify-log: --checkpoint: %w", err)
	}
	cp, err := translog.OpenCheckpoint(note, key)
	if err != nil {
		return fmt.Errorf("verify-log: %w", err)
	}
	var in io.Reader = os.Stdin
	if *journal != "-" {
		f, err := os.Open(*journal)
		if err != nil {
			return fmt.Errorf("verify-log: --journal: %w", err)
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 64<<20)
	b := translog.NewBuilder()
	var problems []string
	for sc.Scan() && b.Size() < cp.Size {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e ledger.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("verify-log: line %d: %w", b.Size()+1, err)
		}
		if e.Sequence != int64(b.Size())+1 {
			problems = append(problems, fmt.Sprintf("entry %s has position %d where %d was expected", e.ID, e.Sequence, b.Size()+1))
		}
		if e.Sequence <= *legacy {
			e.EffectiveAt = time.Time{} // logged with created_at in its place (docs/transparency.md)
		}
		b.Add(translog.EncodeLeaf(e))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("verify-log: --journal: %w", err)
	}
	switch {
	case b.Size() < cp.Size:
		problems = append(problems, fmt.Sprintf("the journal has %d entries, the checkpoint covers %d", b.Size(), cp.Size))
	case !translog.SameRoot(b.Root(), cp.Root):
		problems = append(problems, fmt.Sprintf("the journal's first %d entries do not rebuild the checkpoint's root: an entry was changed, deleted, inserted or moved", cp.Size))
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		return &logMismatch{n: len(problems)}
	}
	fmt.Fprintf(stdout, "checkpoint of %s verified: signature, and the root of the journal's first %d entries\n", cp.Origin, cp.Size)
	return nil
}

// verifierKey is the verifier key a flag names: the key, or @FILE holding it; empty stays empty
// (no key). A key that cannot be read is an error of the command line, told before any work.
func verifierKey(flagName, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	key := value
	if name, ok := strings.CutPrefix(value, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flagName, err)
		}
		key = strings.TrimSpace(string(b))
	}
	if err := translog.CheckVerifierKey(key); err != nil {
		return "", fmt.Errorf("%s: %w (want the key that ledgerd log-key generate printed, or @FILE holding it)", flagName, err)
	}
	return key, nil
}

// logMismatch is verify-log's failure: the exported journal does not match the checkpoint. It is
// errDiscrepancies (exit 1, as verify), worded for a file checked against a note rather than for
// a ledger's invariants.
type logMismatch struct{ n int }

func (e *logMismatch) Error() string {
	return fmt.Sprintf("the exported journal does not match the signed checkpoint (%d problems, above)", e.n)
}

func (e *logMismatch) Is(target error) bool { return target == errDiscrepancies }
