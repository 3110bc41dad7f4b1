// Package web serves the public transparency page of ledgerd's HTTP listener (issue 15 §2): the
// envelopes' tree with what each committed, paid, held and has available, the latest awards, the
// latest signed checkpoint, and links to the open data and the JSON API, as of an effective date
// chosen in the page. Server-rendered with html/template, its stylesheet embedded: the page loads
// nothing from another site and needs no JavaScript. See docs/http.md.
package web

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris wherever the binary runs

	"github.com/budgetledger/budgetledger/ledger"
)

//go:embed page.html
var pageHTML string

//go:embed static
var static embed.FS

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"euros": Euros,
	"money": Money,
	"width": func(part, whole int64) template.CSS { return template.CSS("width:" + share(part, whole)) },
	"pct":   frenchShare,
	"date":  func(t time.Time) string { return t.In(paris).Format(time.DateOnly) },
	"indent": func(depth int) template.CSS {
		return template.CSS("padding-left:" + []string{"0.5", "1.75", "3", "4.25", "5.5"}[min(depth, 4)] + "em")
	},
}).Parse(pageHTML))

// LatestAwards is how many awards the page lists.
const LatestAwards = 20

// Handler serves the page at "/" and its stylesheet under "/static/", reading l directly as the
// read RPCs do: the funding report, the awards report and the latest checkpoint.
func Handler(l *ledger.Ledger, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	// The stylesheet only: a folder's listing is no page of this site.
	mux.Handle("GET /static/style.css", http.FileServerFS(static))
	mux.Handle("GET /{$}", &page{ledger: l, log: log})
	return mux
}

type page struct {
	ledger *ledger.Ledger
	log    *slog.Logger
}

// line is one envelope of the page.
type line struct {
	ledger.ReportLine
	Unpaid int64 // committed, not yet paid
}

type award struct {
	ledger.Award // Committed: what it held as of the page's date
	EnvelopeName string
}

type view struct {
	AsOf       string // the date asked for, "2021-12-31", or ""
	AsOfShown  string // the report's effective date, in French
	Root       string // the envelope asked for, by name ("envelopes/fund"), or ""
	Error      string
	Lines      []line
	Roots      []line
	Awards     []award
	Checkpoint string
	Query      string // the as_of and envelope query of the links, "?as_of=…"
	AsOfTime   string // the report's as_of_time for the API links (RFC 3339, to the microsecond)
}

// paris is the zone of the dates readers choose, the SCDL export's (package opendata).
var paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err) // time/tzdata is embedded: it cannot be missing
	}
	return loc
}()

// AsOfTime is the effective time of the page as of date (AAAA-MM-JJ): the last instant of that day
// in Europe/Paris, to the microsecond the ledger keeps, so that what took effect during that day
// counts — the instant the SCDL export takes for the same as_of.
func AsOfTime(date string) (time.Time, error) {
	d, err := time.ParseInLocation(time.DateOnly, date, paris)
	if err != nil || d.Format(time.DateOnly) != date {
		return time.Time{}, fmt.Errorf("%q is not a date AAAA-MM-JJ", date)
	}
	return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, paris).Add(-time.Microsecond), nil
}

var frenchMonths = []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
	"septembre", "octobre", "novembre", "décembre"}

func frenchDate(t time.Time) string {
	t = t.In(paris)
	day := t.Format("2")
	if day == "1" {
		day = "1er"
	}
	return day + " " + frenchMonths[t.Month()-1] + " " + t.Format("2006")
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := view{AsOf: r.URL.Query().Get("as_of"), Root: r.URL.Query().Get("envelope")}
	status := http.StatusOK
	var asOf time.Time
	rootID, named := strings.CutPrefix(v.Root, "envelopes/")
	if v.Root != "" && !named {
		v.Error, status = "L'enveloppe se désigne par son nom, envelopes/ID, par exemple envelopes/fund.", http.StatusBadRequest
	}
	if v.AsOf != "" && v.Error == "" {
		t, err := AsOfTime(v.AsOf)
		if err != nil {
			v.Error, status = "La date doit s'écrire AAAA-MM-JJ, par exemple 2021-12-31.", http.StatusBadRequest
		} else {
			asOf = t
		}
	}
	q := url.Values{}
	if v.AsOf != "" && v.Error == "" {
		q.Set("as_of", v.AsOf)
	}
	if v.Root != "" {
		q.Set("envelope", v.Root)
	}
	if len(q) > 0 {
		v.Query = "?" + q.Encode()
	}
	if v.Error == "" {
		if err := p.load(ctx, &v, rootID, asOf); err != nil {
			status = http.StatusInternalServerError
			var lerr *ledger.Error
			if errors.As(err, &lerr) && (lerr.Reason == ledger.ReasonInvalidArgument || lerr.Reason == ledger.ReasonEnvelopeNotFound) {
				status = http.StatusBadRequest
				if lerr.Reason == ledger.ReasonEnvelopeNotFound {
					status = http.StatusNotFound
				}
				v.Error = lerr.Message
			} else if errors.As(err, &lerr) && lerr.Reason == ledger.ReasonAmountOverflow && lerr.Metadata["envelope"] != "" {
				// Not "for the moment": a figure of one tree is beyond what a report holds (it
				// stays so); the other trees are still read one by one.
				p.log.ErrorContext(ctx, "transparency page", "error", err)
				v.Error = fmt.Sprintf("Le rapport ne peut pas s'afficher : un montant de l'enveloppe %s (%s) dépasse le plus grand qu'il sait écrire. "+
					"Les autres arbres d'enveloppes se consultent un à un : ?envelope=envelopes/ID.", lerr.Metadata["envelope"], lerr.Metadata["figure"])
			} else {
				p.log.ErrorContext(ctx, "transparency page", "error", err)
				v.Error = "Les données ne sont pas disponibles pour le moment."
			}
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// No other site may frame the page (frame-ancestors: default-src does not cover it), and no
	// browser guesses another type than the one sent.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, v); err != nil {
		p.log.ErrorContext(ctx, "transparency page: template", "error", err)
	}
}

func (p *page) load(ctx context.Context, v *view, rootID string, asOf time.Time) error {
	rep, err := p.ledger.Report(ctx, rootID, asOf)
	if err != nil {
		return err
	}
	if !rep.AsOf.IsZero() {
		v.AsOfShown = frenchDate(rep.AsOf)
		v.AsOfTime = rep.AsOf.UTC().Format(time.RFC3339Nano) // to the microsecond: a second cut would leave its last awards out
	}
	inTree := map[string]bool{}
	for _, l := range rep.Lines {
		ln := line{ReportLine: l, Unpaid: l.Total.Committed - l.Total.Paid}
		v.Lines = append(v.Lines, ln)
		if l.Depth == 0 {
			v.Roots = append(v.Roots, ln)
		}
		inTree[l.EnvelopeID] = true
	}
	names := map[string]string{}
	for _, l := range rep.Lines {
		names[l.EnvelopeID] = l.DisplayName
	}
	// The latest awards that took effect by the report's date, newest first, with what each held
	// at that date (the awards report of the open data: releases and closings that took effect
	// after it do not count). Every award of each tree is read: fine for a programme's thousands
	// of awards, not for millions (docs/http.md).
	var at *time.Time
	if !asOf.IsZero() {
		at = &asOf
	}
	var awards []award
	for _, root := range v.Roots {
		aw, err := p.ledger.Awards(ctx, root.EnvelopeID, at)
		if err != nil {
			return err
		}
		for _, a := range aw.Awards {
			if inTree[a.EnvelopeID] {
				awards = append(awards, award{Award: a, EnvelopeName: names[a.EnvelopeID]})
			}
		}
	}
	// Newest first: by effective time, then recording time, then id, each descending. The awards
	// of one bulk call share both times; their ids (UUIDv7, made in the order of the items) say
	// which were recorded last.
	slices.SortStableFunc(awards, func(a, b award) int {
		return cmp.Or(b.EffectiveAt.Compare(a.EffectiveAt), b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	v.Awards = awards[:min(len(awards), LatestAwards)]

	note, err := p.ledger.Checkpoint(ctx)
	var lerr *ledger.Error
	switch {
	case err == nil:
		v.Checkpoint = note
	case errors.As(err, &lerr) && lerr.Reason == ledger.ReasonLogDisabled:
		// No log: no checkpoint section.
	default:
		return err
	}
	return nil
}
