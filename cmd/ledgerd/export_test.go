package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/opendata/scdltest"
)

// TestExportSCDLCommand protects `ledgerd export scdl`: it writes the golden file of the small
// programme to --out (or stdout), lists each award that cannot be published on stderr and still
// exits 0; it exits 1 (realMain returns an error) on a bad flag, an unknown envelope or a missing
// database, and then leaves no file behind.
func TestExportSCDLCommand(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := context.Background()
		l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		p := scdltest.Build(t, l)
		l.Close()
		golden, err := os.ReadFile(filepath.Join("..", "..", "ledger", "opendata", "testdata", "programme.csv"))
		if err != nil {
			t.Fatal(err)
		}

		out := filepath.Join(t.TempDir(), "subventions.csv")
		var stderr bytes.Buffer
		if err := realMain(ctx, []string{"export", "scdl", "--database", database, "--envelope", "envelopes/programme",
			"--as-of", "2022-12-31", "--out", out}, &stderr); err != nil {
			t.Fatalf("ledgerd export scdl --out: %v, want exit 0 (unpublishable awards are reported, not an error)", err)
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, golden) {
			t.Errorf("--out wrote %q, %v; want the golden file", got, err)
		}
		for _, want := range []string{"not published: " + ledger.CommitmentName(p.Unpaid) + " (envelopes/programme, 30000.00 €): conditionsVersement: missing",
			"not published: " + ledger.CommitmentName(p.Anonymous) + " (envelopes/programme-culture, 2500.00 €): nomBeneficiaire: missing",
			"envelopes/programme as of 2022-12-31: 3 awards published (177800.20 €), 2 not published (32500.00 €), 210300.20 € in all"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
		}

		var stdout bytes.Buffer
		if err := exportMain(ctx, []string{"scdl", "--database", database, "--envelope", "envelopes/programme", "--as-of", "2022-12-31"},
			&stdout, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stdout.Bytes(), golden) {
			t.Errorf("stdout:\n%s\nwant the golden file", stdout.String())
		}

		failed := filepath.Join(t.TempDir(), "failed.csv")
		for name, args := range map[string][]string{
			"no export named":     {"export"},
			"an unknown export":   {"export", "csv"},
			"no envelope":         {"export", "scdl", "--database", database},
			"a malformed name":    {"export", "scdl", "--database", database, "--envelope", "programme"},
			"a bad date":          {"export", "scdl", "--database", database, "--envelope", "envelopes/programme", "--as-of", "31/12/2022"},
			"a bad option":        {"export", "scdl", "--database", database, "--envelope", "envelopes/programme", "--nature", "subvention"},
			"an unknown envelope": {"export", "scdl", "--database", database, "--envelope", "envelopes/nowhere", "--out", failed},
			"no ledger":           {"export", "scdl", "--database", filepath.Join(t.TempDir(), "none.db"), "--envelope", "envelopes/programme"},
		} {
			if err := realMain(ctx, args, &bytes.Buffer{}); err == nil {
				t.Errorf("%s (%v): exit 0, want 1", name, args)
			}
		}
		if entries, _ := os.ReadDir(filepath.Dir(failed)); len(entries) != 0 {
			t.Errorf("a failed export left %v behind", entries)
		}
	})
}
