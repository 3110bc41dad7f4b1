package opendata_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/opendata"
	"github.com/budgetledger/budgetledger/ledger/opendata/scdltest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.csv from the export")

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m))
}

func open(t *testing.T, database string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(t.Context(), database, ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func day(s string) *time.Time {
	t, err := opendata.EndOfDay(s)
	if err != nil {
		panic(err)
	}
	return &t
}

// TestGolden protects the file itself: the export of a small programme (testdata/programme.csv)
// byte for byte, on every engine: header, column order, quoting, euros from cents, Paris dates,
// the payment columns, the defaults. go test ./ledger/opendata/ -run Golden -update rewrites it.
func TestGolden(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		l := open(t, database)
		scdltest.Build(t, l)
		var buf bytes.Buffer
		sum, err := opendata.Export(t.Context(), l, "programme", day("2022-12-31"), opendata.Options{}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "programme.csv")
		if *update && strings.HasSuffix(t.Name(), "/sqlite") {
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("the export differs from %s (run with -update if the change is meant):\n%s", golden, buf.String())
		}
		checkRules(t, buf.Bytes())
		if sum.Published != 3 || len(sum.Unpublishable) != 2 {
			t.Fatalf("%d published, %d unpublishable; want 3 and 2: %+v", sum.Published, len(sum.Unpublishable), sum.Unpublishable)
		}
		checkTotal(t, l, "programme", day("2022-12-31"), buf.Bytes(), sum)
	})
}

// TestUnpublishable protects "never silently dropped": an award without a value the schema
// requires is listed with its amount and every column at fault, and the options that supply the
// missing payment columns make the unpaid award publishable.
func TestUnpublishable(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		l := open(t, database)
		p := scdltest.Build(t, l)
		var buf bytes.Buffer
		sum, err := opendata.Export(t.Context(), l, "programme", day("2022-12-31"), opendata.Options{}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		for _, u := range sum.Unpublishable {
			for _, pr := range u.Problems {
				got[u.Commitment] = append(got[u.Commitment], pr.Column)
			}
		}
		want := map[string][]string{
			ledger.CommitmentName(p.Unpaid):    {"conditionsVersement", "datesPeriodeVersement"},
			ledger.CommitmentName(p.Anonymous): {"nomBeneficiaire", "idBeneficiaire", "objet", "conditionsVersement", "datesPeriodeVersement"},
		}
		for c, cols := range want {
			if strings.Join(got[c], ",") != strings.Join(cols, ",") {
				t.Errorf("%s: columns at fault %v, want %v", c, got[c], cols)
			}
		}
		if len(got) != len(want) {
			t.Errorf("unpublishable: %v, want %v", got, want)
		}
		for _, u := range sum.Unpublishable {
			if u.Commitment == ledger.CommitmentName(p.Unpaid) && u.Amount != scdltest.UnpaidAmount {
				t.Errorf("the unpaid award is listed with %d, want %d", u.Amount, scdltest.UnpaidAmount)
			}
		}

		// With the agreements' payment terms given, the unpaid award is published with them.
		buf.Reset()
		opt := opendata.Options{ConditionsVersement: "échelonné", PaymentPeriod: "2023-01-01/2024-12-31",
			Nature: "aide en numéraire;aide en nature", NotificationUE: true, DispositifAide: "appel-2021"}
		sum, err = opendata.Export(t.Context(), l, "programme", day("2022-12-31"), opt, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Published != 4 || len(sum.Unpublishable) != 1 {
			t.Fatalf("with options: %d published, %d unpublishable; want 4 and 1", sum.Published, len(sum.Unpublishable))
		}
		rows := checkRules(t, buf.Bytes())
		for _, r := range rows[1:] {
			if r["conditionsVersement"] != "échelonné" || r["nature"] != opt.Nature || r["notificationUE"] != "oui" ||
				r["dispositifAide"] != "appel-2021" {
				t.Errorf("the options are not in row %v", r)
			}
			if r["objet"] == scdltest.UnpaidPurpose && r["datesPeriodeVersement"] != opt.PaymentPeriod {
				t.Errorf("the unpaid award's period is %q, want the one given", r["datesPeriodeVersement"])
			}
		}
		checkTotal(t, l, "programme", day("2022-12-31"), buf.Bytes(), sum)

		// A bad option is refused before anything is read.
		for _, bad := range []opendata.Options{{Nature: "subvention"}, {ConditionsVersement: "mensuel"},
			{PaymentPeriod: "2023-02-30"}, {PaymentPeriod: "2024-01-01/2023-01-01"}, {DispositifAide: "a\nb"}} {
			if _, err := opendata.Export(t.Context(), l, "programme", nil, bad, io.Discard); !isReason(err, ledger.ReasonInvalidArgument) {
				t.Errorf("options %+v: %v, want INVALID_ARGUMENT", bad, err)
			}
		}
	})
}

// TestAsOfDates protects the date rule: an export as of a date counts what took effect by the end
// of that day in Europe/Paris (the award decided at 23:30 UTC on 6 May 2021 is of 7 May in Paris),
// releases and payments after the date do not count, and an envelope that did not exist yet is
// ENVELOPE_NOT_FOUND.
func TestAsOfDates(t *testing.T) {
	t.Parallel()
	l := open(t, testdb.SQLite(t))
	scdltest.Build(t, l)
	// The payment columns given, so that awards not paid yet at the date are published too.
	opt := opendata.Options{ConditionsVersement: "échelonné", PaymentPeriod: "2021-01-01/2024-12-31"}
	export := func(date string) []map[string]string {
		var buf bytes.Buffer
		sum, err := opendata.Export(t.Context(), l, "programme", day(date), opt, &buf)
		if err != nil {
			t.Fatal(err)
		}
		checkTotal(t, l, "programme", day(date), buf.Bytes(), sum)
		return checkRules(t, buf.Bytes())[1:]
	}
	if rows := export("2021-05-06"); len(rows) != 1 {
		t.Errorf("as of 6 May 2021 (Paris): %d rows, want the one award of March", len(rows))
	}
	rows := export("2021-05-07")
	if len(rows) != 2 || rows[1]["dateConvention"] != "2021-05-07" {
		t.Fatalf("as of 7 May 2021: %v, want the association's award dated 2021-05-07 (23:30 UTC on the 6th)", rows)
	}
	// Before its release of 2021-11-30, the association's award is in force whole.
	if rows[1]["montant"] != "47800.20" {
		t.Errorf("as of 7 May 2021 the association's montant is %s, want 47800.20", rows[1]["montant"])
	}
	if rows := export("2022-12-31"); len(rows) != 4 || rows[1]["montant"] != "42800.20" {
		t.Errorf("as of 2022 the association's montant is %s, want 42800.20 (5,000.00 released)", rows[1]["montant"])
	}
	_, err := opendata.Export(t.Context(), l, "programme", day("2020-12-31"), opendata.Options{}, io.Discard)
	if !isReason(err, ledger.ReasonEnvelopeNotFound) {
		t.Errorf("as of 2020: %v, want ENVELOPE_NOT_FOUND", err)
	}
	_, err = opendata.Export(t.Context(), l, "nowhere", nil, opendata.Options{}, io.Discard)
	if !isReason(err, ledger.ReasonEnvelopeNotFound) {
		t.Errorf("an unknown envelope: %v, want ENVELOPE_NOT_FOUND", err)
	}
	// A subtree: the child's awards only, with the root's granting body.
	var buf bytes.Buffer
	if _, err := opendata.Export(t.Context(), l, "programme-culture", nil, opendata.Options{}, &buf); err != nil {
		t.Fatal(err)
	}
	sub := checkRules(t, buf.Bytes())[1:]
	if len(sub) != 1 || sub[0]["idAttribuant"] != scdltest.GrantingBodySIRET || sub[0]["dispositifAide"] != scdltest.ProgrammeName {
		t.Errorf("the subtree's export: %v, want its one published award under the root's granting body", sub)
	}
}

// TestEuros protects montant: euros with a point and two decimals, from cents, exactly (no
// floating point: the largest amounts keep their last cent).
func TestEuros(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 100: "1.00", 4780020: "47800.20",
		9223372036854775807: "92233720368547758.07", -9223372036854775808: "-92233720368547758.08"} {
		if got := opendata.Euros(cents); got != want {
			t.Errorf("Euros(%d) = %s, want %s", cents, got, want)
		}
	}
}

// TestEndOfDay protects the as-of date: the last microsecond of the day in Paris, summer and
// winter, and a date that does not exist is refused.
func TestEndOfDay(t *testing.T) {
	for date, want := range map[string]string{"2021-12-31": "2021-12-31T22:59:59.999999Z", "2021-07-14": "2021-07-14T21:59:59.999999Z",
		"2021-03-27": "2021-03-27T22:59:59.999999Z"} { // the night the clocks go forward: 23 hours
		got, err := opendata.EndOfDay(date)
		if err != nil || got.UTC().Format(time.RFC3339Nano) != want {
			t.Errorf("EndOfDay(%s) = %v, %v; want %s", date, got.UTC(), err, want)
		}
	}
	for _, bad := range []string{"2021-02-29", "31/12/2021", "2021-12-31T00:00:00Z", ""} {
		if _, err := opendata.EndOfDay(bad); !isReason(err, ledger.ReasonInvalidArgument) {
			t.Errorf("EndOfDay(%q): %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}

// TestHandler protects the HTTP contract the public page links to: GET
// /opendata/subventions.csv?envelope=…&as_of=… answers the same bytes as the export, as text/csv
// in UTF-8 with a file name; a bad query is 400, an unknown envelope 404, a POST 405.
func TestHandler(t *testing.T) {
	t.Parallel()
	l := open(t, testdb.SQLite(t))
	scdltest.Build(t, l)
	srv := httptest.NewServer(opendata.Handler(l))
	t.Cleanup(srv.Close)
	get := func(query string) (*http.Response, []byte) {
		t.Helper()
		res, err := http.Get(srv.URL + opendata.Path + query)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}
	res, body := get("?envelope=envelopes/programme&as_of=2022-12-31")
	want, err := os.ReadFile(filepath.Join("testdata", "programme.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET: %s\n%s\nwant the golden file", res.Status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := res.Header.Get("Content-Disposition"); cd != `attachment; filename="subventions-programme-2022-12-31.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v: want any origin allowed to read the open data, and nosniff", res.Header)
	}
	if n := res.Header.Get("X-Unpublishable-Count"); n != "2" {
		t.Errorf("X-Unpublishable-Count %q, want 2", n)
	}
	for query, code := range map[string]int{
		"":                              http.StatusBadRequest,
		"?envelope=programme":           http.StatusBadRequest,
		"?envelope=envelopes/Programme": http.StatusBadRequest,
		"?envelope=envelopes/programme&as_of=2022-13-01": http.StatusBadRequest,
		"?envelope=envelopes/nowhere":                    http.StatusNotFound,
		"?envelope=envelopes/programme&as_of=2020-01-01": http.StatusNotFound,
	} {
		if res, body := get(query); res.StatusCode != code {
			t.Errorf("GET %s: %s %s, want %d", query, res.Status, body, code)
		}
	}
	res, err = http.Post(srv.URL+opendata.Path+"?envelope=envelopes/programme", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", res.Status)
	}
}

// checkRules checks every row of an export against the schema's rules (scdltest.CheckRules) and
// returns the rows by column, the header first.
func checkRules(t *testing.T, data []byte) []map[string]string {
	t.Helper()
	rows, problems := scdltest.CheckRules(data)
	for _, p := range problems {
		t.Error(p)
	}
	return rows
}

// checkTotal checks the amounts: the rows' montants add up to the summary's published amount,
// published and unpublishable to the total, and the total is the funding report's committed
// figure of the envelope as of the same date, to the cent.
func checkTotal(t *testing.T, l *ledger.Ledger, envelope string, asOf *time.Time, data []byte, sum opendata.Summary) {
	t.Helper()
	if err := scdltest.CheckAmounts(data, sum); err != nil {
		t.Error(err)
	}
	rep, err := l.ReportKnown(context.Background(), envelope, asOf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines[0].Total.Committed != sum.Total {
		t.Errorf("the export's total is %d, the funding report's committed %d", sum.Total, rep.Lines[0].Total.Committed)
	}
}

func isReason(err error, reason ledger.Reason) bool {
	var e *ledger.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Reason == reason
}

// TestFormulasNotPublished protects the public file's readers from CSV injection: an award whose
// granting body, decision reference, beneficiary, purpose (once trimmed) or aid scheme begins
// with a character a spreadsheet reads as a formula (=, +, -, @) is not published; it is listed
// with the columns at fault. An aid scheme given as an option is refused so. A name with such a
// character inside is published as it is.
func TestFormulasNotPublished(t *testing.T) {
	t.Parallel()
	root := ledger.Envelope{ID: "programme", DisplayName: "Programme"}
	root.GrantingBodyName, root.GrantingBodySIRET = "=HYPERLINK(\"http://x\",\"y\")", "13000000000013"
	award := func(legal, reference, purpose string) *ledger.Award {
		a := &ledger.Award{Committed: 100, PaymentDates: []time.Time{day("2021-06-01").UTC()}}
		a.Currency, a.BeneficiaryLegalName, a.BeneficiarySIRET, a.DecisionReference, a.Purpose = "EUR", legal, "13000000000013", reference, purpose
		a.EffectiveAt = day("2021-05-01").UTC()
		return a
	}
	columns := func(ps []opendata.Problem) string {
		var cs []string
		for _, p := range ps {
			cs = append(cs, p.Column)
		}
		return strings.Join(cs, ",")
	}
	if _, ps := opendata.Row(root, award("@Association", "+1", "  =cmd|' /C calc'!A0"), opendata.Options{}); columns(ps) != "nomAttribuant,referenceDecision,nomBeneficiaire,objet" {
		t.Errorf("formulas published, or the columns at fault %q", columns(ps))
	}
	root.GrantingBodyName = "Région A=B"
	if row, ps := opendata.Row(root, award("Commune de Saint-Jean-de-Luz", "D-2021-1", "Rénovation - phase 2"), opendata.Options{}); len(ps) != 0 || row == nil {
		t.Errorf("names with =, -, + inside are refused: %v", ps)
	}
	if _, ps := opendata.Row(root, award("Commune", "", "Objet"), opendata.Options{DispositifAide: "-x"}); columns(ps) != "dispositifAide" {
		t.Errorf("an aid scheme beginning with -: columns at fault %q", columns(ps))
	}
	opt := opendata.Options{DispositifAide: "=1+1"}
	if err := opt.Validate(); !isReason(err, ledger.ReasonInvalidArgument) {
		t.Errorf("an aid scheme option beginning with =: %v, want INVALID_ARGUMENT", err)
	}
	opt = opendata.Options{PaymentPeriod: "0000-01-01"}
	if err := opt.Validate(); !isReason(err, ledger.ReasonInvalidArgument) {
		t.Errorf("a payment period in year 0: %v, want INVALID_ARGUMENT", err)
	}
}

// TestExportOfATreeWithoutAwards: a current export of a tree that has no award yet is dated now
// (the file's name, the summary), not 1970-01-01.
func TestExportOfATreeWithoutAwards(t *testing.T) {
	t.Parallel()
	l := open(t, testdb.SQLite(t))
	if _, err := l.CreateEnvelope(t.Context(), ledger.CreateEnvelope{RequestID: "e", EnvelopeID: "empty", Allocation: 1_000}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	sum, err := opendata.Export(t.Context(), l, "empty", nil, opendata.Options{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sum.AsOf.Before(before) || sum.AsOf.After(time.Now().Add(time.Second)) {
		t.Errorf("an export without awards is dated %v, want now", sum.AsOf)
	}
}
