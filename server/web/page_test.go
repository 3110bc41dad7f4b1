package web_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/server/web"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func get(t *testing.T, h http.Handler, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

// TestPage protects the page's contract without a browser, on every engine: it answers in French
// (lang="fr") with the envelopes' figures formatted for French readers, its only resource is the
// embedded stylesheet (the Content-Security-Policy forbids every other origin and every script),
// a bad date or envelope is a 400/404 page saying what is wrong and no 500, a date before the
// award leaves it out, and without the transparency log there is no checkpoint section.
func TestPage(t *testing.T) {
	testdb.Each(t, func(t *testing.T, database string) {
		ctx := context.Background()
		l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		announced := time.Date(2021, 1, 15, 0, 0, 0, 0, time.UTC)
		for _, c := range []ledger.CreateEnvelope{
			{RequestID: "fund", EnvelopeID: "fund", DisplayName: "Fonds <b>", Allocation: 8_800_000_000, Effective: announced},
			{RequestID: "axis-1", EnvelopeID: "axis-1", ParentID: "fund", DisplayName: "Axe 1", Allocation: 3_000_000_000, Effective: announced},
		} {
			if _, err := l.CreateEnvelope(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Commit(ctx, ledger.Commit{RequestID: "a1", EnvelopeID: "axis-1", Beneficiary: "siren:200054781",
			Project: "guichet", Amount: 1_330_000_000, Effective: time.Date(2021, 3, 11, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
		h := web.Handler(l, slog.New(slog.NewTextHandler(io.Discard, nil)))

		resp, body := get(t, h, "/")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<html lang="fr">`) {
			t.Fatalf("GET /: %d\n%s", resp.StatusCode, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("Content-Security-Policy %q, want default-src 'none', no script, frame-ancestors 'none', and nosniff", csp)
		}
		// The stylesheet is served; the folder is not listed.
		if resp, _ := get(t, h, "/static/style.css"); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /static/style.css: %d", resp.StatusCode)
		}
		if resp, body := get(t, h, "/static/"); resp.StatusCode == http.StatusOK {
			t.Errorf("GET /static/ lists the folder: %s", body)
		}
		committed := regexp.MustCompile(`<tr data-envelope="envelopes/axis-1">[\s\S]*?data-figure="committed">([^<]*)<`).FindStringSubmatch(body)
		if committed == nil || committed[1] != web.Euros(1_330_000_000) || committed[1] != "13\u202f300\u202f000,00\u00a0€" {
			t.Errorf("axis 1's committed amount shown: %q, want 13 300 000,00 €", committed)
		}
		if strings.Contains(body, "Fonds <b>") || !strings.Contains(body, "Fonds &lt;b&gt;") {
			t.Error("a display name was not escaped")
		}
		for _, res := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
			if strings.Contains(res[1], "//") {
				t.Errorf("the page links to another site: %s", res[1])
			}
		}
		if strings.Contains(body, "<script") || strings.Contains(body, "point de contrôle") {
			t.Error("the page has a script, or a checkpoint section without the transparency log")
		}
		if resp, css := get(t, h, "/static/style.css"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, ".bar") {
			t.Errorf("GET /static/style.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}

		// Before the award, as of 1 March 2021: nothing committed, no award listed.
		resp, body = get(t, h, "/?as_of=2021-03-01&envelope=envelopes/fund")
		committed = regexp.MustCompile(`<tr data-envelope="envelopes/axis-1">[\s\S]*?data-figure="committed">([^<]*)<`).FindStringSubmatch(body)
		if resp.StatusCode != http.StatusOK || committed == nil || committed[1] != web.Euros(0) || strings.Contains(body, "siren:200054781") ||
			!strings.Contains(body, "1er mars 2021") || !strings.Contains(body, "subventions.csv?envelope=envelopes/fund&amp;as_of=2021-03-01") {
			t.Errorf("GET /?as_of=2021-03-01: %d, committed %q\n%s", resp.StatusCode, committed, body)
		}
		for target, want := range map[string]int{
			"/?as_of=31/12/2021":               http.StatusBadRequest,
			"/?envelope=envelopes/NOT%20VALID": http.StatusBadRequest,
			"/?envelope=fund":                  http.StatusBadRequest,
			"/?envelope=envelopes/nope":        http.StatusNotFound,
			"/?as_of=2021-02-30":               http.StatusBadRequest,
			"/?as_of=0001-01-01":               http.StatusOK,
			"/nothing-here":                    http.StatusNotFound,
		} {
			resp, body := get(t, h, target)
			if resp.StatusCode != want || (want == http.StatusBadRequest && !strings.Contains(body, `role="alert"`)) {
				t.Errorf("GET %s: %d, want %d\n%.300s", target, resp.StatusCode, want, body)
			}
		}
	})
}

// TestPageAwardsAsOfTheirDate protects the page's awards table as of a chosen date, as the README
// and docs/http.md promise it: an award's committed amount is what it held at that date (the open
// data's figure), so a release that took effect later does not reduce it; the current page shows
// it net of the release. And the link to the JSON report names the report's instant to the
// microsecond: cut to the second, it left out what took effect in that last second.
func TestPageAwardsAsOfTheirDate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, database string) {
		ctx := context.Background()
		l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if _, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: "fund", EnvelopeID: "fund", DisplayName: "Fonds",
			Allocation: 8_800_000_000, Effective: time.Date(2021, 1, 15, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
		c, err := l.Commit(ctx, ledger.Commit{RequestID: "a1", EnvelopeID: "fund", Beneficiary: "siren:200054781",
			Project: "guichet", Amount: 1_330_000_000, Effective: time.Date(2021, 3, 11, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		released := time.Date(2021, 6, 1, 10, 0, 0, 123456000, time.UTC)
		if _, err := l.Release(ctx, ledger.Release{RequestID: "r1", CommitmentID: c.Commitment.ID, Amount: 330_000_000,
			Reason: "travaux réduits", Effective: released}); err != nil {
			t.Fatal(err)
		}
		h := web.Handler(l, slog.New(slog.NewTextHandler(io.Discard, nil)))
		held := regexp.MustCompile(`data-figure="award-committed">([^<]*)<`)
		for target, want := range map[string]int64{"/?as_of=2021-04-30": 1_330_000_000, "/": 1_000_000_000} {
			resp, body := get(t, h, target)
			m := held.FindAllStringSubmatch(body, -1)
			if resp.StatusCode != http.StatusOK || len(m) != 1 || m[0][1] != web.Euros(want) {
				t.Errorf("GET %s: %d, the award's committed amount shown %q, want %s", target, resp.StatusCode, m, web.Euros(want))
			}
		}
		_, body := get(t, h, "/")
		href := regexp.MustCompile(`href="(/v1/fundingReport[^"]*)"`).FindStringSubmatch(body)
		if href == nil {
			t.Fatalf("no link to the JSON report:\n%s", body)
		}
		link, err := url.Parse(html.UnescapeString(href[1]))
		if err != nil || link.Query().Get("as_of_time") != released.Format(time.RFC3339Nano) {
			t.Errorf("the JSON report's link %s (%v) does not name the report's instant %s to the microsecond", href[1], err, released.Format(time.RFC3339Nano))
		}
	})
}

// TestPageWhenATreeOverflows: a tree whose report figure is beyond what a report holds (an
// envelope of 2⁶³−1 awarded twice) cannot be shown whole, which is no passing failure; the page
// says which envelope and figure, and that the other trees are read one by one, and they are.
func TestPageWhenATreeOverflows(t *testing.T) {
	ctx := context.Background()
	l, err := ledger.Open(ctx, testdb.SQLite(t), ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	const most = int64(1<<63 - 1)
	for _, c := range []ledger.CreateEnvelope{
		{RequestID: "huge", EnvelopeID: "huge", Allocation: most},
		{RequestID: "fund", EnvelopeID: "fund", Allocation: 1_000},
	} {
		if _, err := l.CreateEnvelope(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	first, err := l.Commit(ctx, ledger.Commit{RequestID: "c1", EnvelopeID: "huge", Beneficiary: "b", Project: "p", Amount: most})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Release(ctx, ledger.Release{RequestID: "r1", CommitmentID: first.Commitment.ID, Amount: most, Reason: "undone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx, ledger.Commit{RequestID: "c2", EnvelopeID: "huge", Beneficiary: "b", Project: "p", Amount: most}); err != nil {
		t.Fatal(err)
	}
	h := web.Handler(l, slog.New(slog.NewTextHandler(io.Discard, nil)))
	resp, body := get(t, h, "/")
	text := html.UnescapeString(body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(text, "envelopes/huge") || strings.Contains(text, "pour le moment") {
		t.Errorf("the page of every tree: %d, want 500 naming envelopes/huge, not a passing failure:\n%s", resp.StatusCode, body)
	}
	if resp, body := get(t, h, "/?envelope=envelopes/fund"); resp.StatusCode != http.StatusOK {
		t.Errorf("the page of the other tree: %d\n%s", resp.StatusCode, body)
	}
}

// TestPageLatestAwardsFirst protects the awards table's promise, "the latest awards, newest
// first": awards of one bulk call share their effective and recording times, and the last ones
// recorded are the latest. The table listed the first 20 of 30 such awards, oldest first.
func TestPageLatestAwardsFirst(t *testing.T) {
	testdb.Each(t, func(t *testing.T, database string) {
		ctx := context.Background()
		l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if _, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: "fund", EnvelopeID: "fund", DisplayName: "Fonds",
			Allocation: 8_800_000_000, Effective: time.Date(2021, 1, 15, 0, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
		const n = web.LatestAwards + 10
		cmd := ledger.BulkCommit{RequestID: "wave-1", EnvelopeID: "fund", Effective: time.Date(2021, 3, 11, 0, 0, 0, 0, time.UTC)}
		for i := range n {
			cmd.Items = append(cmd.Items, ledger.BulkItem{Beneficiary: fmt.Sprintf("commune-%02d", i), Project: "guichet", Amount: 1_000})
		}
		if _, err := l.BulkCommit(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		_, body := get(t, web.Handler(l, slog.New(slog.NewTextHandler(io.Discard, nil))), "/")
		var shown []string
		for _, m := range regexp.MustCompile(`commune-(\d\d)`).FindAllStringSubmatch(body, -1) {
			shown = append(shown, m[1])
		}
		var want []string
		for i := n - 1; i >= n-web.LatestAwards; i-- {
			want = append(want, fmt.Sprintf("%02d", i))
		}
		if !slices.Equal(shown, want) {
			t.Errorf("awards shown %v, want the %d recorded last, newest first: %v", shown, web.LatestAwards, want)
		}
	})
}
