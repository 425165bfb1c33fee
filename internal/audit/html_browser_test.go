package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
)

// chromiumPath is Debian's Chromium, which hack/browser-deps.sh installs.
const chromiumPath = "/usr/bin/chromium"

// artifactDir keeps the screenshots the browser tests take (git-ignored).
const artifactDir = "../../_output/test-artifacts"

// browserPage is the report open in a headless Chromium, with what the page reported that a
// person would notice: console errors and warnings, uncaught exceptions, dialogs.
type browserPage struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func (p *browserPage) record(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// checkQuiet fails the test for every console error or warning, exception and dialog so far.
func (p *browserPage) checkQuiet() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, problem := range p.problems {
		p.t.Errorf("the page reported: %s", problem)
	}
	p.problems = nil
}

func (p *browserPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

func evaluate[T any](p *browserPage, expression string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it holds.
func (p *browserPage) waitFor(predicate string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		p.t.Fatalf("waiting for %s: %v", predicate, err)
	}
}

// openInBrowser serves the report's HTML from a local test server and opens it in headless
// Chromium, driven over the DevTools protocol.
func openInBrowser(t *testing.T, html []byte) *browserPage {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the HTML report is tested in Debian's Chromium: %v (hack/browser-deps.sh installs the chromium package)", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(html)
	}))
	t.Cleanup(srv.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(browserCtx, 2*time.Minute)
	t.Cleanup(cancel)

	p := &browserPage{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == "error" || e.Type == "warning" || e.Type == "assert" {
				p.record("console.%s: %s", e.Type, describeArgs(e.Args))
			}
		case *runtime.EventExceptionThrown:
			what := e.ExceptionDetails.Text
			if x := e.ExceptionDetails.Exception; x != nil {
				what += " " + x.Description
			}
			p.record("exception: %s", what)
		case *log.EventEntryAdded:
			if e.Entry.Level == "error" || e.Entry.Level == "warning" {
				p.record("browser log %s (%s): %s %s", e.Entry.Level, e.Entry.Source, e.Entry.Text, e.Entry.URL)
			}
		case *page.EventJavascriptDialogOpening:
			p.record("a %s dialog opened: %q", e.Type, e.Message)
			// The dialog blocks the page until answered; answer it outside the event loop.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	})
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the browser log: %v", err)
	}
	p.do(chromedp.Navigate(srv.URL), chromedp.WaitReady(chromedp.CSS(`body[data-rendered="true"]`)))
	return p
}

func describeArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if len(a.Value) > 0 {
			parts = append(parts, string(a.Value))
		} else {
			parts = append(parts, a.Description)
		}
	}
	return strings.Join(parts, " ")
}

// screenshot keeps a PNG of the whole page as a test artifact.
func (p *browserPage) screenshot(name string) {
	p.t.Helper()
	// Sticky headers follow the scroll position: capture from the top, as the page opens.
	p.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(artifactDir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// setFilter sets a filter control as a person would and waits for the lists to render again.
func (p *browserPage) setFilter(id, value string) {
	p.t.Helper()
	if id != "filter-namespace" {
		p.do(chromedp.SetValue(chromedp.ID(id), value), chromedp.Evaluate[chromedp.Void](
			fmt.Sprintf(`document.getElementById(%q).dispatchEvent(new Event("change"))`, id)))
		return
	}
	if value == "" {
		// Select the text and delete it, as a person clears a search box.
		p.do(chromedp.Focus(chromedp.ID(id)), chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-namespace").select()`),
			chromedp.KeyEvent("\b"))
	} else {
		p.do(chromedp.SendKeys(chromedp.ID(id), value))
	}
	// The namespace filter applies once typing pauses, and says so on the filter bar.
	p.waitFor(fmt.Sprintf(`document.getElementById("filters").dataset.namespace === %q`, strings.ToLower(value)))
}

func listed(p *browserPage, list string) int {
	return evaluate[int](p, fmt.Sprintf(`Number(document.getElementById(%q).getAttribute("data-count"))`, list+"-status"))
}

// jsonReport is what the browser test compares with the JSON report.
type jsonReport struct {
	Summary struct {
		Exposures int            `json:"exposures"`
		Reachable int            `json:"reachable"`
		DeniedBy  map[string]int `json:"deniedBy"`
		Findings  map[string]int `json:"findings"`
	} `json:"summary"`
	Exposure []struct {
		Namespace string `json:"namespace"`
		Layers    struct {
			Node     string `json:"node"`
			Instance string `json:"instance"`
		} `json:"layers"`
	} `json:"exposure"`
}

func reportOf(t *testing.T, dir string) (*audit.Report, []byte, jsonReport) {
	t.Helper()
	inv, err := inventory.Load([]string{dir}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := audit.Run(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}))
	var html, js bytes.Buffer
	if err := r.WriteHTML(&html, "test"); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js, "test"); err != nil {
		t.Fatal(err)
	}
	var parsed jsonReport
	if err := json.Unmarshal(js.Bytes(), &parsed); err != nil {
		t.Fatal(err)
	}
	return r, html.Bytes(), parsed
}

func TestHTMLReportInChromium(t *testing.T) {
	r, html, want := reportOf(t, exampleDir)
	p := openInBrowser(t, html)

	// The summary's numbers are the JSON report's.
	got := evaluate[map[string]int](p, `Object.fromEntries(Array.from(document.querySelectorAll("#summary [data-value]"), e => [e.id, Number(e.dataset.value)]))`)
	wantSummary := map[string]int{
		"sum-exposures":             want.Summary.Exposures,
		"sum-reachable":             want.Summary.Reachable,
		"sum-denied-cluster-policy": want.Summary.DeniedBy["cluster-policy"],
		"sum-denied-node":           want.Summary.DeniedBy["node"],
		"sum-denied-instance":       want.Summary.DeniedBy["instance"],
	}
	for sev, n := range want.Summary.Findings {
		wantSummary["sum-findings-"+sev] = n
	}
	for _, e := range want.Exposure {
		if e.Layers.Node == "unknown" {
			wantSummary["sum-unknown-node"]++
		}
		if e.Layers.Instance == "unknown" {
			wantSummary["sum-unknown-instance"]++
		}
	}
	for id, n := range wantSummary {
		if got[id] != n {
			t.Errorf("summary #%s = %d, the JSON report says %d", id, got[id], n)
		}
	}
	shownText := evaluate[map[string]string](p, `Object.fromEntries(Array.from(document.querySelectorAll("#summary [data-value]"), e => [e.id, e.textContent]))`)
	for id, n := range wantSummary {
		if shownText[id] != fmt.Sprint(n) {
			t.Errorf("summary #%s shows %q, want %d", id, shownText[id], n)
		}
	}

	// Every exposure row of the unfiltered report is on the first page.
	all := listed(p, "verdicts")
	if rows := evaluate[int](p, `document.querySelectorAll("#verdicts-body tr").length`); rows != all || all == 0 {
		t.Errorf("%d verdict rows rendered, the status counts %d", rows, all)
	}
	if n := listed(p, "findings"); n != len(r.Findings) {
		t.Errorf("%d findings listed, the report has %d", n, len(r.Findings))
	}

	// The namespace filter narrows every list to the namespaces it matches.
	p.setFilter("filter-namespace", "analyt")
	narrowed := listed(p, "verdicts")
	if narrowed == 0 || narrowed >= all {
		t.Errorf("the namespace filter left %d of %d exposure rows", narrowed, all)
	}
	namespaces := evaluate[[]string](p, `Array.from(document.querySelectorAll("#verdicts-body tr.first td:first-child"), td => td.textContent)`)
	for _, ns := range namespaces {
		if ns != "analytics" {
			t.Errorf("namespace filter %q shows a row of namespace %q", "analyt", ns)
		}
	}
	if nsRows := evaluate[[]string](p, `Array.from(document.querySelectorAll("#namespaces-body tr td:first-child"), td => td.textContent)`); len(nsRows) != 1 || nsRows[0] != "analytics" {
		t.Errorf("namespace summary under filter %q: %q, want [analytics]", "analyt", nsRows)
	}

	// The verdict filter keeps reachable rows only.
	p.setFilter("filter-verdict", "reachable")
	verdicts := evaluate[[]string](p, `Array.from(document.querySelectorAll("#verdicts-body tr td:nth-child(4)"), td => td.textContent)`)
	if len(verdicts) == 0 || len(verdicts) >= narrowed {
		t.Errorf("the reachable filter left %d of the namespace's %d rows", len(verdicts), narrowed)
	}
	for _, v := range verdicts {
		if v != "reachable" {
			t.Errorf("the reachable filter shows a %q row", v)
		}
	}

	// The severity filter lists the findings of that severity, as many as the JSON counts.
	p.setFilter("filter-namespace", "")
	p.setFilter("filter-verdict", "")
	p.setFilter("filter-severity", "high")
	if n := listed(p, "findings"); n != want.Summary.Findings["high"] {
		t.Errorf("the high filter lists %d findings, the JSON report counts %d", n, want.Summary.Findings["high"])
	}
	for _, sev := range evaluate[[]string](p, `Array.from(document.querySelectorAll("#findings-list li"), li => li.dataset.severity)`) {
		if sev != "high" {
			t.Errorf("the high filter lists a %s finding", sev)
		}
	}
	p.setFilter("filter-severity", "")

	// A subject's drill-down is its --explain trace.
	p.do(chromedp.Click(chromedp.JSPath(`Array.from(document.querySelectorAll("button.subject")).find(b => b.textContent === "StatefulSet/checkout")`)),
		chromedp.WaitVisible(chromedp.CSS("pre.trace")))
	trace := evaluate[string](p, `document.querySelector("pre.trace").textContent`)
	var explain bytes.Buffer
	if _, err := r.WriteExplain(&explain, "payments/StatefulSet/checkout"); err != nil {
		t.Fatal(err)
	}
	if trace != explain.String() {
		t.Errorf("the drill-down differs from --explain:\n--- page\n%s\n--- --explain\n%s", trace, explain.String())
	}
	p.screenshot("audit-report.png")
	p.checkQuiet()
}

func TestHTMLReportRendersHostileNamesInert(t *testing.T) {
	_, html, want := reportOf(t, "testdata/hostile")
	p := openInBrowser(t, html)
	if want.Summary.Reachable == 0 {
		t.Fatal("the hostile fixture should have reachable rows")
	}
	p.setFilter("filter-namespace", "<script>")
	if n := listed(p, "verdicts"); n == 0 {
		t.Error("the namespace filter on a name with markup matches nothing")
	}
	// Open every drill-down: the traces hold the labels and policy names too.
	evaluate[chromedp.Void](p, `document.querySelectorAll("button.subject").forEach(b => b.click())`)
	p.waitFor(`document.querySelectorAll("pre.trace").length === document.querySelectorAll("button.subject").length`)

	injected := evaluate[int](p, `document.querySelectorAll("img, svg, b, iframe, object, embed").length + document.querySelectorAll("[onerror], [onload], [onmouseover]").length`)
	if injected != 0 {
		t.Errorf("%d elements or handlers from the input are in the page", injected)
	}
	if scripts := evaluate[int](p, `document.scripts.length`); scripts != 2 {
		t.Errorf("%d script elements in the page, want the report's data and its script", scripts)
	}
	text := evaluate[string](p, `document.body.innerText`)
	for _, s := range []string{
		"<script>alert(1)</script>",
		`"><img src=x onerror=alert(2)>`,
		"<svg onload=alert(6)>",
		"<b onmouseover=alert(5)>np</b>",
		"'single' \"double\" \u202ertl-override\u202c \u200fmark ünïcødé 日本語",
		"{{constructor.constructor('alert(7)')()}}",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("the page does not show %q as text", s)
		}
	}
	p.screenshot("audit-report-hostile.png")
	p.checkQuiet()
}
