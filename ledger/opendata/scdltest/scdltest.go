// Package scdltest helps the tests of the SCDL export (package opendata, the ReportService RPC,
// ledgerd export scdl): a small programme built through the ledger, and the schema's rules
// checked on an exported file. Tests only.
package scdltest

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/opendata"
)

// What the small programme says of itself.
const (
	ProgrammeName     = "Programme d'aide aux projets culturels"
	GrantingBodyName  = "Région Exemple"
	GrantingBodySIRET = "13000000000013"
	// UnpaidPurpose and UnpaidAmount are those of the award without any payment.
	UnpaidPurpose = "Festival des arts de la rue, édition 2022"
	UnpaidAmount  = 3_000_000
)

// Programme is what Build made: the ids of the awards that cannot be published as they are.
type Programme struct {
	// Unpaid has every publication field and no payment; Anonymous has no publication field.
	Unpaid, Anonymous string
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Build records the small programme of the golden file through l: a root envelope "programme"
// (its granting body given) and a child "programme-culture"; six awards from March 2021 to
// February 2023 (one decided at 23:30 UTC, the next day in Paris; one to an association known by
// its RNA number only, partly released, whose purpose needs CSV quoting; one without any payment;
// one without any publication field; one after 2022), and payments in one or several instalments,
// one of them in 2023.
func Build(t testing.TB, l *ledger.Ledger) Programme {
	t.Helper()
	ctx := t.Context()
	for _, cmd := range []ledger.CreateEnvelope{
		{RequestID: "programme", Caller: "test", EnvelopeID: "programme", DisplayName: ProgrammeName, Allocation: 100_000_000,
			Effective: at("2021-01-15T00:00:00Z"), GrantingBody: ledger.GrantingBody{GrantingBodyName: GrantingBodyName, GrantingBodySIRET: GrantingBodySIRET}},
		{RequestID: "programme-culture", Caller: "test", EnvelopeID: "programme-culture", ParentID: "programme",
			DisplayName: "Spectacle vivant", Allocation: 20_000_000, Effective: at("2021-01-15T00:00:00Z")},
	} {
		if _, err := l.CreateEnvelope(ctx, cmd); err != nil {
			t.Fatalf("CreateEnvelope(%s): %v", cmd.EnvelopeID, err)
		}
	}
	commit := func(envelope, project string, amount int64, when string, p ledger.Publication) string {
		t.Helper()
		res, err := l.Commit(ctx, ledger.Commit{RequestID: "award-" + project, Caller: "test", EnvelopeID: envelope,
			Beneficiary: "b-" + project, Project: project, Amount: amount, Effective: at(when), Publication: p})
		if err != nil {
			t.Fatalf("Commit(%s): %v", project, err)
		}
		return res.Commitment.ID
	}
	pay := func(c string, amount int64, when string) {
		t.Helper()
		if _, err := l.CreatePayment(ctx, ledger.CreatePayment{RequestID: "pay-" + c + "-" + when, Caller: "test",
			CommitmentID: c, Amount: amount, Effective: at(when)}); err != nil {
			t.Fatalf("CreatePayment(%s, %s): %v", c, when, err)
		}
	}
	var p Programme
	mediatheque := commit("programme", "mediatheque", 12_000_000, "2021-03-11T10:00:00Z", ledger.Publication{
		DecisionReference: "2021-03-103", BeneficiaryLegalName: "Commune de Saint-Exemple", BeneficiarySIRET: "21750001600019",
		Purpose: "Rénovation de la médiathèque, tranche 1"})
	association := commit("programme", "animations", 4_780_020, "2021-05-06T23:30:00Z", ledger.Publication{
		DecisionReference: "2021-05-07", BeneficiaryLegalName: `Association "Les Petits Débrouillards"`, BeneficiaryRNA: "W380475558",
		Purpose: `Animations "climat-énergie", dans les lycées`})
	theatre := commit("programme-culture", "theatre", 1_500_000, "2021-06-10T08:00:00Z", ledger.Publication{
		BeneficiaryLegalName: "Compagnie du Théâtre", BeneficiarySIRET: "38047555800058", BeneficiaryRNA: "W123456789",
		Purpose: "Création 2021"})
	p.Unpaid = commit("programme", "festival", UnpaidAmount, "2021-09-16T09:00:00Z", ledger.Publication{
		DecisionReference: "2021-09-12", BeneficiaryLegalName: "Ville d'Exemple", BeneficiarySIRET: "20054781000016", Purpose: UnpaidPurpose})
	p.Anonymous = commit("programme-culture", "anonyme", 250_000, "2021-10-01T09:00:00Z", ledger.Publication{})
	if _, err := l.Release(ctx, ledger.Release{RequestID: "release-animations", Caller: "test", CommitmentID: association,
		Amount: 500_000, Reason: "coût final moindre", Effective: at("2021-11-30T00:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	pay(theatre, 500_000, "2021-09-01T08:00:00Z")
	pay(theatre, 1_000_000, "2021-09-01T15:00:00Z")
	pay(association, 2_000_000, "2022-01-10T00:00:00Z")
	pay(mediatheque, 8_000_000, "2022-03-15T00:00:00Z")
	pay(association, 1_000_000, "2022-06-30T00:00:00Z")
	commit("programme", "apres", 1_000_000, "2023-02-01T09:00:00Z", ledger.Publication{
		BeneficiaryLegalName: "Commune de Saint-Exemple", BeneficiarySIRET: "21750001600019", Purpose: "Tranche 2"})
	pay(mediatheque, 4_000_000, "2023-03-01T00:00:00Z")
	return p
}

// The schema's patterns and values (SCDL subventions 2.1.1).
var (
	siret   = regexp.MustCompile(`^\d{14}$`)
	rna     = regexp.MustCompile(`^W\d{9}$`)
	period  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(/[0-9]{4}-[0-9]{2}-[0-9]{2})?$`)
	montant = regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)
	share   = regexp.MustCompile(`^(0\.[0-9]{2}|1\.00)$`)
)

// CheckRules parses an exported file and checks it against every rule of the schema the export
// promises (docs/opendata.md): UTF-8 without a byte-order mark, comma-separated, the header
// exactly, and in every row each column's rule. It returns the rows by column (the header
// first) and one message per broken rule.
func CheckRules(data []byte) ([]map[string]string, []string) {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !utf8.Valid(data) {
		fail("the file is not UTF-8")
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		fail("the file starts with a byte-order mark")
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(opendata.Header)
	records, err := r.ReadAll()
	if err != nil {
		return nil, append(problems, "not a CSV of 16 comma-separated columns: "+err.Error())
	}
	if len(records) == 0 || !slices.Equal(records[0], opendata.Header) {
		return nil, append(problems, fmt.Sprintf("header %v, want %v", records[0:min(1, len(records))], opendata.Header))
	}
	isDate := func(s string) bool {
		d, err := time.Parse(time.DateOnly, s)
		return err == nil && d.Format(time.DateOnly) == s
	}
	var rows []map[string]string
	for i, rec := range records {
		row := map[string]string{}
		for j, col := range opendata.Header {
			row[col] = rec[j]
		}
		rows = append(rows, row)
		if i == 0 {
			continue
		}
		bad := func(col, rule string) { fail("row %d: %s %q: %s", i, col, row[col], rule) }
		for _, col := range []string{"nomAttribuant", "nomBeneficiaire", "objet", "montant", "nature", "conditionsVersement",
			"datesPeriodeVersement", "notificationUE", "pourcentageSubvention", "dateConvention", "idAttribuant"} {
			if row[col] == "" {
				bad(col, "required, empty")
			}
		}
		if !siret.MatchString(row["idAttribuant"]) {
			bad("idAttribuant", "not 14 digits")
		}
		if !isDate(row["dateConvention"]) {
			bad("dateConvention", "not a date AAAA-MM-JJ")
		}
		if v := row["idBeneficiaire"]; v != "" && !siret.MatchString(v) {
			bad("idBeneficiaire", "not 14 digits")
		}
		if v := row["rnaBeneficiaire"]; v != "" && !rna.MatchString(v) {
			bad("rnaBeneficiaire", "not W and 9 digits")
		}
		if row["idBeneficiaire"] == "" && row["rnaBeneficiaire"] == "" {
			bad("idBeneficiaire", "empty, and no rnaBeneficiaire")
		}
		if n := utf8.RuneCountInString(row["objet"]); n >= 256 {
			bad("objet", "256 characters or more")
		}
		if !montant.MatchString(row["montant"]) {
			bad("montant", "not euros with a point and two decimals")
		}
		if !slices.Contains(opendata.Natures, row["nature"]) {
			bad("nature", "not one of the four values")
		}
		if !slices.Contains([]string{"unique", "échelonné", "autre"}, row["conditionsVersement"]) {
			bad("conditionsVersement", "not unique, échelonné or autre")
		}
		if v := row["datesPeriodeVersement"]; !period.MatchString(v) {
			bad("datesPeriodeVersement", "not a date or date/date")
		} else if from, to, ok := strings.Cut(v, "/"); !isDate(from) || (ok && (!isDate(to) || to < from)) {
			bad("datesPeriodeVersement", "not real dates in order")
		}
		if row["idRAE"] != "" {
			bad("idRAE", "not empty")
		}
		if v := row["notificationUE"]; v != "oui" && v != "non" {
			bad("notificationUE", "not oui or non")
		}
		if v := row["pourcentageSubvention"]; !share.MatchString(v) || v == "0.00" {
			bad("pourcentageSubvention", "not a decimal between 0.01 and 1")
		}
	}
	return rows, problems
}

// Cents reads a montant ("47800.20") as cents, with integer arithmetic.
func Cents(s string) (int64, error) {
	units, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 {
		return 0, fmt.Errorf("montant %q: not euros with two decimals", s)
	}
	u, err := strconv.ParseInt(units, 10, 64)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	return u*100 + f, nil
}

// CheckAmounts checks an export's amounts to the cent: the rows' montants add up to the summary's
// published amount and their count to its published count, the unpublishable awards' amounts to
// its unpublishable amount, and both to its total.
func CheckAmounts(data []byte, sum opendata.Summary) error {
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return err
	}
	var published int64
	for _, rec := range records[1:] {
		c, err := Cents(rec[8])
		if err != nil {
			return err
		}
		published += c
	}
	var unpublishable int64
	for _, u := range sum.Unpublishable {
		unpublishable += u.Amount
	}
	switch {
	case len(records)-1 != sum.Published:
		return fmt.Errorf("%d rows, the summary says %d published", len(records)-1, sum.Published)
	case published != sum.PublishedAmount:
		return fmt.Errorf("the rows add up to %d cents, the summary says %d published", published, sum.PublishedAmount)
	case unpublishable != sum.UnpublishableAmount:
		return fmt.Errorf("the unpublishable awards add up to %d cents, the summary says %d", unpublishable, sum.UnpublishableAmount)
	case published+unpublishable != sum.Total:
		return fmt.Errorf("published %d + unpublishable %d = %d cents, the total is %d", published, unpublishable, published+unpublishable, sum.Total)
	}
	return nil
}

// SIRET completes 13 digits with the Luhn check digit the ledger checks: a valid SIRET.
func SIRET(digits13 string) string {
	for c := '0'; c <= '9'; c++ {
		s := digits13 + string(c)
		sum := 0
		for i := range len(s) {
			d := int(s[len(s)-1-i] - '0')
			if i%2 == 1 {
				if d *= 2; d > 9 {
					d -= 9
				}
			}
			sum += d
		}
		if sum%10 == 0 {
			return s
		}
	}
	panic("unreachable: one of ten digits completes a Luhn sum")
}
