package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/opendata"
)

// exportMain is `ledgerd export FORMAT …`; the one format is scdl.
func exportMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "scdl" {
		fmt.Fprintln(stderr, "usage: ledgerd export scdl [flags]   (ledgerd export scdl -h for the flags)")
		if len(args) > 0 && isHelp(args[0]) {
			return flag.ErrHelp
		}
		if len(args) == 0 {
			return errors.New("export: which export? the one there is: scdl")
		}
		return fmt.Errorf("export: unknown export %q; the one there is: scdl", args[0])
	}
	return exportSCDLMain(ctx, args[1:], stdout, stderr)
}

// exportSCDLMain is `ledgerd export scdl --database URL --envelope envelopes/x [--as-of DATE]
// [--out FILE]`: the SCDL "subventions" CSV of the envelope's awards (package opendata) to stdout
// or FILE, and the report of the awards that cannot be published to stderr. It exits 0 when the
// export was written, whether or not some awards could not be published (they are listed); 1 on an
// error (a bad flag, no ledger, an unknown envelope, a file that cannot be written).
func exportSCDLMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgerd export scdl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ledgerd export scdl [--database URL] --envelope envelopes/NAME [--as-of AAAA-MM-JJ] [--out FILE]\n\n"+
			"Writes the open data of the awards of the envelope and its descendants, in the SCDL \"subventions\"\n"+
			"schema "+opendata.SchemaVersion+" (CSV, UTF-8), to stdout or FILE; lists the awards that cannot be published\n"+
			"(a required value missing) on stderr. Exits 0 once the file is written, 1 on an error.\n"+
			"See docs/opendata.md.")
		fs.PrintDefaults()
	}
	database := fs.String("database", env("LEDGER_DATABASE", "ledger.db"),
		"a SQLite file path, or a postgres:// URL for PostgreSQL or CockroachDB (LEDGER_DATABASE)")
	envelope := fs.String("envelope", "", "the envelope whose awards, and its descendants', are exported: envelopes/NAME (required)")
	asOf := fs.String("as-of", "", "the effective date AAAA-MM-JJ: what took effect by the end of that day in Europe/Paris; empty: everything")
	out := fs.String("out", "", "the file to write (replaced once complete); empty: stdout")
	var opt opendata.Options
	fs.StringVar(&opt.Nature, "nature", "", `nature of every award: "aide en numéraire" (when empty), "aide en nature", or both joined by ";"`)
	fs.BoolVar(&opt.NotificationUE, "notification-ue", false, "notificationUE: the awards are state aid notified to the European Commission (oui); default non")
	fs.StringVar(&opt.DispositifAide, "dispositif-aide", "", "dispositifAide of every award; empty: the root envelope's display name")
	fs.StringVar(&opt.ConditionsVersement, "conditions-versement", "",
		"conditionsVersement of every award (unique, échelonné or autre); empty: from the payments recorded (one: unique, several: échelonné)")
	fs.StringVar(&opt.PaymentPeriod, "periode-versement", "",
		"datesPeriodeVersement of the awards without any payment yet (AAAA-MM-JJ or AAAA-MM-JJ/AAAA-MM-JJ); empty: they cannot be published")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export scdl: unexpected argument %q", fs.Arg(0))
	}
	envelopeID, ok := strings.CutPrefix(*envelope, "envelopes/")
	if !ok || core.CheckEnvelopeID("envelope", envelopeID) != nil {
		return fmt.Errorf("export scdl: --envelope must name an envelope, envelopes/NAME; got %q", *envelope)
	}
	var at *time.Time
	if *asOf != "" {
		t, err := opendata.EndOfDay(*asOf)
		if err != nil {
			return fmt.Errorf("export scdl: --as-of must be a date AAAA-MM-JJ; got %q", *asOf)
		}
		at = &t
	}
	if err := opt.Validate(); err != nil {
		return fmt.Errorf("export scdl: %w", err)
	}
	// An export never creates a database: a mistyped path would export an empty ledger.
	l, err := ledger.Open(ctx, *database, ledger.Config{DisableBatching: true, MustExist: true})
	if errors.Is(err, ledger.ErrNoDatabase) {
		return fmt.Errorf("export scdl: no ledger at %s; check --database: %w", describe(*database), err)
	}
	if err != nil {
		return fmt.Errorf("export scdl: %w", err)
	}
	defer l.Close()

	w, commit, abort := stdout, func() error { return nil }, func() {}
	if *out != "" {
		// Written beside the target and renamed once complete: a failed export leaves no
		// truncated file where the last good one was.
		f, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
		if err != nil {
			return fmt.Errorf("export scdl: %w", err)
		}
		w = f
		abort = func() { f.Close(); os.Remove(f.Name()) }
		commit = func() error {
			if err := f.Chmod(0o644); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(f.Name(), *out)
		}
	}
	sum, err := opendata.Export(ctx, l, envelopeID, at, opt, w)
	if err == nil {
		err = commit()
	}
	if err != nil {
		abort()
		return fmt.Errorf("export scdl: %w", err)
	}
	for _, u := range sum.Unpublishable {
		problems := make([]string, len(u.Problems))
		for i, p := range u.Problems {
			problems[i] = p.String()
		}
		fmt.Fprintf(stderr, "not published: %s (%s, %s €): %s\n", u.Commitment, u.Envelope, opendata.Euros(u.Amount),
			strings.Join(problems, "; "))
	}
	fmt.Fprintf(stderr, "%s as of %s: %d awards published (%s €), %d not published (%s €), %s € in all\n",
		*envelope, opendata.Date(sum.AsOf), sum.Published, opendata.Euros(sum.PublishedAmount), len(sum.Unpublishable),
		opendata.Euros(sum.UnpublishableAmount), opendata.Euros(sum.Total))
	return nil
}
