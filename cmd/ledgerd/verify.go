package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/budgetledger/budgetledger/ledger"
)

// errDiscrepancies is what `ledgerd verify` returns when the ledger breaks an invariant: main
// then exits with status 1.
var errDiscrepancies = errors.New("the ledger breaks its invariants")

// verifyMain is `ledgerd verify --database URL`: it opens the ledger, recomputes every balance
// from the journal and checks the invariants (ledger.Verify), prints each discrepancy and a
// summary to stdout, and returns errDiscrepancies when it found any.
func verifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerd verify [--database URL] [--log-verifier-key KEY|@FILE]\n\n"+
			"Recomputes every balance from the journal and checks the ledger's invariants; prints each\n"+
			"discrepancy and a summary. Exits 1 when any is found, 0 otherwise.")
		fs.PrintDefaults()
	}
	vkey := fs.String("log-verifier-key", env("LEDGER_LOG_VERIFIER_KEY", ""),
		"the transparency log's verifier key, or @FILE holding it, to check the signatures of its checkpoints too (LEDGER_LOG_VERIFIER_KEY)")
	database := fs.String("database", env("LEDGER_DATABASE", "ledger.db"),
		"a SQLite file path, or a postgres:// URL for PostgreSQL or CockroachDB (LEDGER_DATABASE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("verify: unexpected argument %q", fs.Arg(0))
	}
	key, err := verifierKey("verify: --log-verifier-key", *vkey)
	if err != nil {
		return err
	}
	// Verify never creates a database: opening a missing SQLite file (however it is spelt: a bare
	// path, sqlite:PATH, sqlite:///PATH, file:PATH) would create an empty ledger and call it sound.
	l, err := ledger.Open(ctx, *database, ledger.Config{DisableBatching: true, MustExist: true})
	if errors.Is(err, ledger.ErrNoDatabase) {
		return fmt.Errorf("verify: no ledger at %s; check --database: %w", describe(*database), err)
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer l.Close()
	rep, err := l.Verify(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, d := range rep.Discrepancies {
		fmt.Fprintln(stdout, d)
	}
	fmt.Fprintf(stdout, "%s (%s): checked %d envelopes, %d commitments, %d journal entries: %d discrepancies\n",
		describe(*database), l.Engine(), rep.Envelopes, rep.Commitments, rep.Entries, len(rep.Discrepancies))
	// The transparency log: the tree rebuilt from the journal against the stored leaves and
	// every signed checkpoint.
	logRep, err := l.VerifyLog(ctx, key)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, d := range logRep.Discrepancies {
		fmt.Fprintln(stdout, "transparency log:", d)
	}
	if logRep.LegacyEffectiveUntil > 0 {
		fmt.Fprintf(stdout, "transparency log: the leaves of entries 1 to %d were written by a release that left their effective time out (docs/transparency.md)\n",
			logRep.LegacyEffectiveUntil)
	}
	fmt.Fprintf(stdout, "transparency log: %d leaves, %d checkpoints: %d discrepancies\n",
		logRep.TreeSize, logRep.Checkpoints, len(logRep.Discrepancies))
	if n := len(rep.Discrepancies) + len(logRep.Discrepancies); n > 0 {
		return fmt.Errorf("%w: %d discrepancies", errDiscrepancies, n)
	}
	return nil
}
