// Package opendata exports the awards of the ledger as open data: the SCDL "subventions" schema,
// version 2.1.1 (schema.data.gouv.fr/scdl/subventions), which French administrations use to
// publish the essential data of their grant agreements (décret n° 2017-779). One CSV row per award
// (commitment) of an envelope and its descendants, as of an effective date; an award that lacks a
// value the schema requires is not written but listed in the summary's report of what cannot be
// published, so that published and unpublishable amounts always add up to the awards' total.
// docs/opendata.md maps every column.
package opendata

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris wherever the binary runs, without the system's zone files
	"unicode/utf8"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// SchemaVersion is the version of the SCDL "subventions" schema the export follows.
const SchemaVersion = "2.1.1"

// Header is the CSV header: the schema's 16 columns, in its order.
var Header = []string{"nomAttribuant", "idAttribuant", "dateConvention", "referenceDecision", "nomBeneficiaire",
	"idBeneficiaire", "rnaBeneficiaire", "objet", "montant", "nature", "conditionsVersement", "datesPeriodeVersement",
	"idRAE", "notificationUE", "pourcentageSubvention", "dispositifAide"}

// The values the schema allows.
const (
	NatureNumeraire = "aide en numéraire"
	// ConditionsUnique, ConditionsEchelonne and ConditionsAutre are conditionsVersement's values.
	ConditionsUnique    = "unique"
	ConditionsEchelonne = "échelonné"
	ConditionsAutre     = "autre"
)

// Natures are the four values of nature the schema allows.
var Natures = []string{NatureNumeraire, "aide en nature", "aide en numéraire;aide en nature", "aide en nature;aide en numéraire"}

// Paris is the programme's time zone: dates (dateConvention, datesPeriodeVersement) are the
// calendar dates of the effective times there, and a date given as the export's as-of date ends
// at midnight there.
var Paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err) // time/tzdata is embedded: it cannot be missing
	}
	return loc
}

// The schema's patterns.
var (
	siretPattern  = regexp.MustCompile(`^\d{14}$`)
	rnaPattern    = regexp.MustCompile(`^W\d{9}$`)
	periodPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(/[0-9]{4}-[0-9]{2}-[0-9]{2})?$`)
)

// MaxObjet bounds objet: the schema wants fewer than 256 characters.
const MaxObjet = 255

// maxOption bounds the free-text options (dispositifAide, conditionsVersement "autre").
const maxOption = 256

// Options are what the schema needs and the ledger does not keep: given with each export, the
// same for every row.
type Options struct {
	// Nature is the nature of the awards, one of Natures; empty: "aide en numéraire".
	Nature string
	// NotificationUE says that the awards are state aid notified to the European Commission
	// (notificationUE "oui"); false: "non".
	NotificationUE bool
	// DispositifAide identifies the aid scheme; empty: the root envelope's display name.
	DispositifAide string
	// ConditionsVersement, when given (unique, échelonné or autre), is every award's
	// conditionsVersement; empty: derived from the payments recorded by the date (one: unique;
	// several: échelonné; none: empty, and the award cannot be published).
	ConditionsVersement string
	// PaymentPeriod, when given (AAAA-MM-JJ or AAAA-MM-JJ/AAAA-MM-JJ), is the
	// datesPeriodeVersement of the awards without any payment by the date (the period their
	// agreements plan); empty: theirs is empty, and they cannot be published.
	PaymentPeriod string
}

// Validate checks the options; a bad one is INVALID_ARGUMENT naming its field (the RPC's name).
func (o *Options) Validate() error {
	if o.Nature != "" && !contains(Natures, o.Nature) {
		return core.InvalidArgument("nature", "must be one of %s", quoteAll(Natures))
	}
	if o.ConditionsVersement != "" && !contains([]string{ConditionsUnique, ConditionsEchelonne, ConditionsAutre}, o.ConditionsVersement) {
		return core.InvalidArgument("payment_terms", `must be "unique", "échelonné" or "autre"`)
	}
	if err := core.CheckText("aid_scheme", o.DispositifAide, 0, maxOption); err != nil {
		return err
	}
	if formulaLike(o.DispositifAide) {
		return core.InvalidArgument("aid_scheme", "must not begin with =, +, - or @, which a spreadsheet reads as a formula")
	}
	if o.PaymentPeriod != "" {
		if err := checkPeriod(o.PaymentPeriod); err != nil {
			return core.InvalidArgument("payment_period", "%s", err)
		}
	}
	return nil
}

// checkPeriod checks a date or a period AAAA-MM-JJ/AAAA-MM-JJ whose dates exist and come in order.
func checkPeriod(s string) error {
	if !periodPattern.MatchString(s) {
		return fmt.Errorf("must be a date AAAA-MM-JJ or a period AAAA-MM-JJ/AAAA-MM-JJ")
	}
	from, to, _ := strings.Cut(s, "/")
	a, err := time.Parse(time.DateOnly, from)
	if err != nil || a.Year() < 1 {
		return fmt.Errorf("%q is not a date of the years 0001 to 9999", from)
	}
	if to != "" {
		b, err := time.Parse(time.DateOnly, to)
		if err != nil || b.Year() < 1 {
			return fmt.Errorf("%q is not a date of the years 0001 to 9999", to)
		}
		if b.Before(a) {
			return fmt.Errorf("the period ends before it starts")
		}
	}
	return nil
}

// Problem is one column of an award that cannot be published: missing, or not what the schema
// allows.
type Problem struct {
	Column string
	Reason string
}

func (p Problem) String() string { return p.Column + ": " + p.Reason }

// Unpublishable is an award that cannot be published, and why.
type Unpublishable struct {
	// Commitment is the award's name, "commitments/{commitment}"; Envelope its envelope's.
	Commitment, Envelope string
	// Amount is its montant in minor units: what it holds as of the date.
	Amount   int64
	Problems []Problem
}

// Summary is what an export wrote and what it could not.
type Summary struct {
	// AsOf is the effective date of the export (see ledger.Awards).
	AsOf time.Time
	// Total is the montant of every award of the export, published or not, in minor units: the
	// funding report's committed total of the envelope as of the date.
	Total int64
	// Published and PublishedAmount count the rows written; Unpublishable lists the rest, whose
	// montants add up to UnpublishableAmount. PublishedAmount + UnpublishableAmount = Total.
	Published           int
	PublishedAmount     int64
	UnpublishableAmount int64
	Unpublishable       []Unpublishable
}

// Export writes the SCDL CSV of the awards of the envelope envelopeID ("axis-1") and its
// descendants, as of the effective date *asOf (everything when nil), to w, and returns the
// summary. The header comes first even when no award can be published.
func Export(ctx context.Context, l *ledger.Ledger, envelopeID string, asOf *time.Time, opt Options, w io.Writer) (Summary, error) {
	if err := opt.Validate(); err != nil {
		return Summary{}, err
	}
	aw, err := l.Awards(ctx, envelopeID, asOf)
	if err != nil {
		return Summary{}, err
	}
	return Write(aw, opt, w)
}

// Write writes the CSV of awards read with ledger.Awards and returns the summary.
func Write(aw ledger.Awards, opt Options, w io.Writer) (Summary, error) {
	if err := opt.Validate(); err != nil {
		return Summary{}, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return Summary{}, err
	}
	sum := Summary{AsOf: aw.AsOf}
	if sum.AsOf.IsZero() {
		// A current export of a tree without an award: as of now, not of 1970-01-01.
		sum.AsOf = time.Now().UTC().Truncate(time.Microsecond)
	}
	for i := range aw.Awards {
		a := &aw.Awards[i]
		row, problems := Row(aw.Root, a, opt)
		var err error
		if sum.Total, err = core.AddAmount("total", sum.Total, a.Committed); err != nil {
			return sum, err
		}
		if len(problems) > 0 {
			sum.Unpublishable = append(sum.Unpublishable, Unpublishable{Commitment: core.CommitmentName(a.ID),
				Envelope: core.EnvelopeName(a.EnvelopeID), Amount: a.Committed, Problems: problems})
			sum.UnpublishableAmount += a.Committed // ≤ Total, which did not overflow
			continue
		}
		if err := cw.Write(row); err != nil {
			return sum, err
		}
		sum.Published++
		sum.PublishedAmount += a.Committed
	}
	cw.Flush()
	return sum, cw.Error()
}

// Row is the CSV row of one award of the tree whose root is root, and what keeps it from being
// published (nil when nothing does).
func Row(root ledger.Envelope, a *ledger.Award, opt Options) ([]string, []Problem) {
	var problems []Problem
	miss := func(column, reason string) { problems = append(problems, Problem{column, reason}) }

	if root.GrantingBodyName == "" {
		miss("nomAttribuant", "missing: the root envelope "+core.EnvelopeName(root.ID)+" has no granting_body_name")
	}
	if !siretPattern.MatchString(root.GrantingBodySIRET) {
		miss("idAttribuant", "missing: the root envelope "+core.EnvelopeName(root.ID)+" has no granting_body_siret")
	}
	if a.BeneficiaryLegalName == "" {
		miss("nomBeneficiaire", "missing: the award has no beneficiary_legal_name")
	}
	switch {
	case a.BeneficiarySIRET != "" && !siretPattern.MatchString(a.BeneficiarySIRET):
		miss("idBeneficiaire", "not 14 digits")
	case a.BeneficiaryRNA != "" && !rnaPattern.MatchString(a.BeneficiaryRNA):
		miss("rnaBeneficiaire", "not W and 9 digits")
	case a.BeneficiarySIRET == "" && a.BeneficiaryRNA == "":
		miss("idBeneficiaire", "missing: the award has neither beneficiary_siret nor beneficiary_rna")
	}
	objet := strings.TrimSpace(a.Purpose)
	switch n := utf8.RuneCountInString(objet); {
	case n == 0:
		miss("objet", "missing: the award has no purpose")
	case n > MaxObjet:
		miss("objet", fmt.Sprintf("%d characters, the schema allows fewer than 256", n))
	}
	montant := ""
	if a.Currency != "EUR" {
		miss("montant", "the award is in "+a.Currency+", the schema wants euros")
	} else {
		montant = Euros(a.Committed)
	}
	conditions, period := opt.ConditionsVersement, ""
	switch n := len(a.PaymentDates); {
	case n == 0:
		period = opt.PaymentPeriod
	case n == 1:
		period = Date(a.PaymentDates[0])
	default:
		period = Date(a.PaymentDates[0])
		if last := Date(a.PaymentDates[n-1]); last != period {
			period += "/" + last
		}
	}
	if conditions == "" {
		switch len(a.PaymentDates) {
		case 0:
			miss("conditionsVersement", "missing: no payment recorded by the date, and no payment_terms given")
		case 1:
			conditions = ConditionsUnique
		default:
			conditions = ConditionsEchelonne
		}
	}
	if period == "" {
		miss("datesPeriodeVersement", "missing: no payment recorded by the date, and no payment_period given")
	}
	nature := opt.Nature
	if nature == "" {
		nature = NatureNumeraire
	}
	notification := "non"
	if opt.NotificationUE {
		notification = "oui"
	}
	dispositif := opt.DispositifAide
	if dispositif == "" {
		dispositif = root.DisplayName
	}
	// A value a spreadsheet would run as a formula (CSV injection) is not published: the file is
	// public, opened by anyone, and the schema's data must not be altered to defuse it (a quote
	// in front would change the name). The award is listed with the column at fault instead.
	for _, v := range []struct{ column, value string }{{"nomAttribuant", root.GrantingBodyName},
		{"referenceDecision", a.DecisionReference}, {"nomBeneficiaire", a.BeneficiaryLegalName},
		{"objet", objet}, {"dispositifAide", dispositif}} {
		if formulaLike(v.value) {
			miss(v.column, fmt.Sprintf("begins with %q, which a spreadsheet reads as a formula", v.value[:1]))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return []string{
		root.GrantingBodyName,  // nomAttribuant
		root.GrantingBodySIRET, // idAttribuant
		Date(a.EffectiveAt),    // dateConvention
		a.DecisionReference,    // referenceDecision
		a.BeneficiaryLegalName, // nomBeneficiaire
		a.BeneficiarySIRET,     // idBeneficiaire
		a.BeneficiaryRNA,       // rnaBeneficiaire
		objet,                  // objet
		montant,                // montant
		nature,                 // nature
		conditions,             // conditionsVersement
		period,                 // datesPeriodeVersement
		"",                     // idRAE
		notification,           // notificationUE
		"1.00",                 // pourcentageSubvention: one beneficiary per award
		dispositif,             // dispositifAide
	}, nil
}

// Euros writes an amount of euro cents in euros with a point and two decimals ("47800.20"), with
// integer arithmetic only.
func Euros(cents int64) string {
	sign, u := "", uint64(cents)
	if cents < 0 {
		sign, u = "-", uint64(-(cents+1))+1 // -MinInt64 does not fit an int64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// Date is the calendar date of t in Europe/Paris, AAAA-MM-JJ.
func Date(t time.Time) string { return t.In(Paris).Format(time.DateOnly) }

// EndOfDay is the last instant of the date AAAA-MM-JJ in Europe/Paris, to the microsecond the
// ledger keeps: an export as of a date counts everything that took effect during that day there.
func EndOfDay(date string) (time.Time, error) {
	d, err := time.ParseInLocation(time.DateOnly, date, Paris)
	if err != nil || d.Format(time.DateOnly) != date {
		return time.Time{}, core.InvalidArgument("as_of", "%q is not a date AAAA-MM-JJ", date)
	}
	next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, Paris)
	return next.Add(-time.Microsecond), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, v := range list {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// formulaLike reports whether s begins with a character that makes a spreadsheet read a cell as
// a formula (=, +, -, @; tab and carriage return cannot occur in the ledger's text).
func formulaLike(s string) bool {
	return s != "" && strings.ContainsRune("=+-@", rune(s[0]))
}
