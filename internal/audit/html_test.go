package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/synth"
)

// dataElement is the report's embedded JSON.
var dataElement = regexp.MustCompile(`(?s)<script type="application/json" id="report-data">(.*?)</script>`)

func TestHTMLReportEscapesTheInput(t *testing.T) {
	_, html, _ := reportOf(t, "testdata/hostile")
	page := string(html)
	if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
		t.Errorf("%d <script elements in the page, want the data and the report's script", n)
	}
	for _, raw := range []string{"<img", "<svg", "<b ", "\u2028", "\u2029", "</script><script>alert"} {
		if strings.Contains(page, raw) {
			t.Errorf("the page holds %q from the input unescaped", raw)
		}
	}
	if !strings.Contains(page, `<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;`) {
		t.Error("the page has no Content-Security-Policy forbidding other resources")
	}
	m := dataElement.FindSubmatch(html)
	if m == nil {
		t.Fatal("no embedded report data")
	}
	var data struct {
		Namespaces []struct{ Name string } `json:"namespaces"`
		Rows       []json.RawMessage       `json:"rows"`
	}
	if err := json.Unmarshal(m[1], &data); err != nil {
		t.Fatalf("the embedded data is not JSON: %v", err)
	}
	if len(data.Namespaces) != 1 || data.Namespaces[0].Name != "<script>alert(1)</script>" {
		t.Errorf("namespaces %v, want the hostile name back from the JSON", data.Namespaces)
	}
	if len(data.Rows) != 2 {
		t.Errorf("%d rows, want the Deployment and the Pod", len(data.Rows))
	}
}

func TestHTMLReportIsSelfContained(t *testing.T) {
	_, html, _ := reportOf(t, exampleDir)
	for _, external := range []string{`src="http`, `href="http`, `src="//`, `href="//`, "@import", "url("} {
		if bytes.Contains(html, []byte(external)) {
			t.Errorf("the page refers to an external resource: %q", external)
		}
	}
}

// htmlBytesPerSubject is the HTML report's size bound (docs/audit.md): bytes per pod or workload
// template, findings and traces included.
const htmlBytesPerSubject = 400

// TestHTMLReportSizeBound writes the report of a synthetic cluster shaped like the 100,000-pod
// benchmark's (namespaces, policies and nodes in the same ratios) and holds it to the bound.
func TestHTMLReportSizeBound(t *testing.T) {
	cfg := synth.Scaled(5000)
	cfg.Nodes, cfg.NodePools = 50, 20
	var input bytes.Buffer
	if _, err := synth.Generate(&input, cfg); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, input.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load([]string{path}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := audit.Run(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}))
	var html countingWriter
	if err := r.WriteHTML(&html, "test"); err != nil {
		t.Fatal(err)
	}
	perSubject := float64(html.n) / float64(len(r.Subjects))
	t.Logf("%d bytes for %d subjects: %.0f bytes per subject", html.n, len(r.Subjects), perSubject)
	if perSubject > htmlBytesPerSubject {
		t.Errorf("the HTML report takes %.0f bytes per pod or workload template, more than its bound of %d", perSubject, htmlBytesPerSubject)
	}
}

// countingWriter counts what is written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
