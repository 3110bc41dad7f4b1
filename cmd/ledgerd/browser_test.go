package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/internal/seed"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server/web"
)

var updateScreenshot = flag.Bool("update-screenshot", false,
	"rewrite docs/transparency-page.png from the browser test (also LEDGER_UPDATE_SCREENSHOT=1)")

// chromium is the path of a Chromium or Chrome, or "" when none is installed.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestTransparencyPageInBrowser protects issue 15's "the page, opened by headless Chromium, shows
// each axis's committed and available amounts equal to GetFundingReport": ledgerd (with its
// transparency log) serves the France Relance replay; Chromium opens the page, picks the date
// 31 December 2021 through the page's form (a plain GET, no JavaScript of the page's own), and
// every envelope's committed, paid, held and available amounts shown equal the report's as of
// that date, formatted for French readers; the page loads nothing from another site; the SCDL
// link answers 200 with text/csv and the 16-column header; the screenshot is saved (to docs/ with
// -update-screenshot). Skipped without a browser, except in CI (CI=true), where it fails.
func TestTransparencyPageInBrowser(t *testing.T) {
	browser := chromium()
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium installed: CI must run the browser test (.ci/run installs the Debian package chromium)")
		}
		t.Skip("no Chromium installed (apt-get install chromium): the browser test is skipped")
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "log.key")
	if err := realMain(context.Background(), []string{"log-key", "generate", "--origin", "ledger.test/france-relance", "--out", keyFile}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	addr, base := runHTTPLedgerd(t, "--log-key", keyFile, "--checkpoint-every", "100")
	ctx := context.Background()
	conn := dial(t, addr)
	if err := seed.FranceRelance(ctx, conn); err != nil {
		t.Fatal(err)
	}
	asOf, err := web.AsOfTime("2021-12-31")
	if err != nil {
		t.Fatal(err)
	}
	report, err := pb.NewReportServiceClient(conn).GetFundingReport(ctx, &pb.GetFundingReportRequest{
		Envelope: "envelopes/fund", AsOfTime: timestamppb.New(asOf)})
	if err != nil {
		t.Fatal(err)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(filepath.Join(dir, "chromium")), chromedp.WindowSize(1280, 1000))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// A bound on a stuck browser, not a measure of speed.
	bctx, cancel := context.WithTimeout(bctx, 10*time.Minute)
	defer cancel()

	type figures struct{ Committed, Paid, Held, Available string }
	// The page as a reader reaches it: the current figures, then 31 December 2021 picked in the
	// form; the new page's input carries the date in its markup.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/?envelope=envelopes/fund"),
		chromedp.WaitVisible(chromedp.CSS("#as_of")),
		chromedp.SetValue(chromedp.CSS("#as_of"), "2021-12-31"),
		chromedp.Click(chromedp.CSS("form.as-of button")),
		chromedp.WaitVisible(chromedp.CSS(`input#as_of[value="2021-12-31"]`)),
	); err != nil {
		t.Fatal(err)
	}
	run := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(bctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	location := run(chromedp.Location())
	asOfShown := run(chromedp.Text(chromedp.CSS("#as-of")))
	shown, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]figures](`Object.fromEntries([...document.querySelectorAll("tr[data-envelope]")].map(tr => [tr.dataset.envelope, {
		Committed: tr.querySelector("[data-figure=committed]").textContent,
		Paid: tr.querySelector("[data-figure=paid]").textContent,
		Held: tr.querySelector("[data-figure=held]").textContent,
		Available: tr.querySelector("[data-figure=available]").textContent}]))`))
	if err != nil {
		t.Fatal(err)
	}
	external, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`performance.getEntriesByType("resource").map(e => e.name).filter(n => !n.startsWith(location.origin))`))
	if err != nil {
		t.Fatal(err)
	}
	csvAttr, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.CSS("a.csv"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	csvHref := csvAttr.Value
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(location, "as_of=2021-12-31") {
		t.Errorf("the form led to %s, want a GET with as_of=2021-12-31", location)
	}
	if asOfShown != "31 décembre 2021" {
		t.Errorf("the page says it shows %q, want 31 décembre 2021", asOfShown)
	}
	if len(external) > 0 {
		t.Errorf("the page loaded from other sites: %v", external)
	}
	if len(report.GetEnvelopes()) != 6 || len(shown) != len(report.GetEnvelopes()) {
		t.Fatalf("the page shows %d envelopes, the report %d (want 6)", len(shown), len(report.GetEnvelopes()))
	}
	var axes int
	for _, e := range report.GetEnvelopes() {
		got, ok := shown[e.GetEnvelope()]
		want := figures{web.Euros(e.GetTotal().GetCommitted()), web.Euros(e.GetTotal().GetPaid()),
			web.Euros(e.GetTotal().GetHeld()), web.Euros(e.GetTotal().GetAvailable())}
		if !ok || got != want {
			t.Errorf("%s: the page shows %+q, GetFundingReport %+q", e.GetEnvelope(), got, want)
		}
		if e.GetDepth() == 1 {
			axes++
		}
	}
	// The replay is not empty where the page must show it: committed, paid and held amounts.
	if axes != 3 || shown["envelopes/axis-1"].Committed != web.Euros(1_330_000_000) ||
		shown["envelopes/axis-1"].Paid != web.Euros(1_330_000_000) || shown["envelopes/axis-3"].Held == web.Euros(0) {
		t.Errorf("the replay's figures are not what it made: %d axes, %+q", axes, shown)
	}

	// The open data link, followed from the page.
	link, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	csvURL, err := link.Parse(csvHref)
	if err != nil {
		t.Fatal(err)
	}
	if q := csvURL.Query(); csvURL.Path != "/opendata/subventions.csv" || q.Get("envelope") != "envelopes/fund" || q.Get("as_of") != "2021-12-31" {
		t.Errorf("the SCDL link is %s, want /opendata/subventions.csv?envelope=envelopes/fund&as_of=2021-12-31", csvURL)
	}
	code, hdr, body := httpDo(t, "GET", csvURL.String(), "", "")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(string(body), "nomAttribuant,idAttribuant,dateConvention,referenceDecision,nomBeneficiaire,idBeneficiaire,"+
			"rnaBeneficiaire,objet,montant,nature,conditionsVersement,datesPeriodeVersement,idRAE,notificationUE,pourcentageSubvention,dispositifAide") {
		t.Errorf("GET %s: %d %s, want 200, text/csv and the SCDL header; got %.200s", csvURL, code, hdr.Get("Content-Type"), body)
	}

	out := filepath.Join(dir, "transparency-page.png")
	if *updateScreenshot || os.Getenv("LEDGER_UPDATE_SCREENSHOT") == "1" {
		out = filepath.Join("..", "..", "docs", "transparency-page.png")
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}
