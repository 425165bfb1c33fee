package audit_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
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
