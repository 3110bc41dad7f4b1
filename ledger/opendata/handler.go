package opendata

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// Path is where Handler serves the CSV.
const Path = "/opendata/subventions.csv"

// Handler serves the SCDL CSV over HTTP, for the public page's link (issue 15 §2):
//
//	GET /opendata/subventions.csv?envelope=envelopes/fund&as_of=2021-12-31
//
// envelope is required; as_of, a date AAAA-MM-JJ, means the end of that day in Europe/Paris
// (everything when absent). The options take their defaults (nature "aide en numéraire",
// notificationUE "non", dispositifAide the root's display name, conditionsVersement from the
// payments), so that the file is the one anyone gets. The answer is text/csv; charset=utf-8 with a
// Content-Disposition filename, and the count of the awards that cannot be published in the header
// X-Unpublishable-Count (their list: `ledgerd export scdl` or ReportService.ExportSubventions). A
// bad query is 400, an unknown envelope 404, any other method than GET or HEAD 405. The data is
// public by law: the handler asks for no credential; whoever mounts it decides who reaches it.
func Handler(l *ledger.Ledger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		name := q.Get("envelope")
		envelopeID, ok := strings.CutPrefix(name, "envelopes/")
		if !ok || core.CheckEnvelopeID("envelope", envelopeID) != nil {
			http.Error(w, fmt.Sprintf("envelope: must be an envelope's name, envelopes/{envelope}; got %q", name), http.StatusBadRequest)
			return
		}
		var asOf *time.Time
		date := q.Get("as_of")
		if date != "" {
			t, err := EndOfDay(date)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			asOf = &t
		}
		// The file is built whole before it is sent, so that an error is an error status, not
		// a truncated file.
		var buf bytes.Buffer
		sum, err := Export(r.Context(), l, envelopeID, asOf, Options{}, &buf)
		if err != nil {
			var e *core.Error
			switch {
			case errors.As(err, &e) && e.Reason == core.ReasonEnvelopeNotFound:
				http.Error(w, e.Message, http.StatusNotFound)
			case errors.As(err, &e) && e.Reason == core.ReasonInvalidArgument:
				http.Error(w, e.Message, http.StatusBadRequest)
			default:
				http.Error(w, "the export failed", http.StatusServiceUnavailable)
			}
			return
		}
		if date == "" {
			date = Date(sum.AsOf)
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="subventions-%s-%s.csv"`, envelopeID, date))
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		h.Set("X-Unpublishable-Count", strconv.Itoa(len(sum.Unpublishable)))
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// Open data: any site's page may read it from a browser (no credential goes with such a
		// read, and where the listener asks for one, the browser's request is refused as any).
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = buf.WriteTo(w)
	})
}
