package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// Backups and moves (issue 20, docs/operations.md): `ledgerd backup` and `ledgerd copy`.

// backupMain is `ledgerd backup --database FILE --out FILE`: an online, consistent copy of a
// SQLite ledger (VACUUM INTO), then verified.
func backupMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerd backup --database FILE --out FILE\n\n"+
			"Writes a consistent copy of the SQLite ledger FILE to the new file --out while ledgerd may be\n"+
			"serving it, then verifies the copy. Never overwrites a file. PostgreSQL: use pg_dump or\n"+
			"pg_basebackup (docs/operations.md).")
		fs.PrintDefaults()
	}
	database := fs.String("database", env("LEDGER_DATABASE", "ledger.db"), "the SQLite ledger file (LEDGER_DATABASE)")
	out := fs.String("out", "", "the backup file to write; it must not exist")
	vkey := fs.String("log-verifier-key", env("LEDGER_LOG_VERIFIER_KEY", ""),
		"the transparency log's verifier key, or @FILE holding it, to check its checkpoints' signatures too (LEDGER_LOG_VERIFIER_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backup: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("backup: --out FILE is required")
	}
	key, err := verifierKey("backup: --log-verifier-key", *vkey)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := ledger.Backup(ctx, *database, *out, key)
	if errors.Is(err, ledger.ErrNoDatabase) {
		return fmt.Errorf("backup: no ledger at %s; check --database: %w", describe(*database), err)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup %s of %s in %s, verified: %d envelopes, %d commitments, %d journal entries (last position %d), transparency log %d leaves, root %s, %d checkpoints: 0 discrepancies\n",
		*out, describe(*database), time.Since(start).Round(time.Millisecond), rep.Verify.Envelopes, rep.Verify.Commitments,
		rep.Verify.Entries, rep.LastSequence, rep.LogSize, hex.EncodeToString(rep.LogRoot), rep.Log.Checkpoints)
	return nil
}

// copyMain is `ledgerd copy --from DATABASE --to DATABASE`: moves a whole ledger into an empty
// database of any engine (ledger.Copy).
func copyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerd copy --from DATABASE --to DATABASE [--force]\n\n"+
			"Moves the whole ledger at --from into the empty database --to (a SQLite file path, or a\n"+
			"postgres:// URL for PostgreSQL or CockroachDB), with its history, request ids and\n"+
			"transparency log, in one snapshot of the source; then verifies the target. Run it again\n"+
			"after an interruption: it resumes where it stopped. See docs/operations.md.")
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "the source ledger: a SQLite file path or a postgres:// URL")
	to := fs.String("to", "", "the target: an empty database (a SQLite file path or a postgres:// URL)")
	force := fs.Bool("force", false, "copy a source that fails verification (its discrepancies are printed)")
	batch := fs.Int("batch-rows", 5000, "rows written per target transaction")
	vkey := fs.String("log-verifier-key", env("LEDGER_LOG_VERIFIER_KEY", ""),
		"the transparency log's verifier key, or @FILE holding it, to check its checkpoints' signatures too (LEDGER_LOG_VERIFIER_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("copy: unexpected argument %q", fs.Arg(0))
	}
	if *from == "" || *to == "" {
		return errors.New("copy: --from and --to are required")
	}
	if *batch <= 0 {
		return errors.New("copy: --batch-rows must be at least 1")
	}
	key, err := verifierKey("copy: --log-verifier-key", *vkey)
	if err != nil {
		return err
	}
	progress, done := copyProgress(stderr)
	start := time.Now()
	rep, err := ledger.Copy(ctx, *from, *to, ledger.CopyOptions{Force: *force, VerifierKey: key, BatchRows: *batch, Progress: progress})
	done()
	if bad := rep.SourceDiscrepancies(); len(bad) > 0 && *force {
		fmt.Fprintf(stdout, "the source fails verification (%d discrepancies), copied as it is (--force):\n", len(bad))
		for _, d := range bad {
			fmt.Fprintln(stdout, " ", d)
		}
	}
	if errors.Is(err, ledger.ErrNoDatabase) {
		return fmt.Errorf("copy: no ledger at %s; check --from: %w", describe(*from), err)
	}
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	elapsed := time.Since(start)
	resumed := ""
	if rep.Copy.Resumed {
		resumed = " (resumed an interrupted copy)"
	}
	fmt.Fprintf(stdout, "copied %s to %s in %s%s: %d rows written\n", describe(*from), describe(*to), elapsed.Round(time.Millisecond), resumed, rep.Copy.Rows)
	for _, t := range rep.Copy.Tables {
		fmt.Fprintf(stdout, "  %-22s %d rows\n", t.Table, t.Rows)
	}
	fmt.Fprintf(stdout, "journal: %d entries, last position %d; the copy itself took %s: %.0f entries/s, %.0f rows/s (verifications excluded)\n",
		rep.Target.Entries, rep.LastSequence, rep.CopyTime.Round(time.Millisecond),
		float64(rep.Target.Entries)/rep.CopyTime.Seconds(), float64(rep.Copy.Rows)/rep.CopyTime.Seconds())
	fmt.Fprintf(stdout, "transparency log: size %d, root %s\n", rep.LogSize, hex.EncodeToString(rep.LogRoot))
	fmt.Fprintf(stdout, "target verified: %d envelopes, %d commitments, %d journal entries, %d checkpoints: %d discrepancies\n",
		rep.Target.Envelopes, rep.Target.Commitments, rep.Target.Entries, rep.TargetLog.Checkpoints,
		len(rep.Target.Discrepancies)+len(rep.TargetLog.Discrepancies))
	return nil
}

// copyProgress is a progress bar on a terminal, a line every 10% otherwise.
func copyProgress(w io.Writer) (func(store.CopyProgress), func()) {
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		var bar *progressbar.ProgressBar
		return func(p store.CopyProgress) {
				if bar == nil {
					bar = progressbar.NewOptions64(p.TotalRows, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("copying"),
						progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
				}
				bar.Describe("copying " + p.Table)
				_ = bar.Set64(p.Rows)
			}, func() {
				if bar != nil {
					_ = bar.Finish()
				}
			}
	}
	last := int64(-1)
	return func(p store.CopyProgress) {
		if p.TotalRows == 0 {
			return
		}
		if tenth := p.Rows * 10 / p.TotalRows; tenth != last {
			last = tenth
			fmt.Fprintf(w, "copy: %d of %d rows (%d%%), table %s\n", p.Rows, p.TotalRows, p.Rows*100/p.TotalRows, p.Table)
		}
	}, func() {}
}
