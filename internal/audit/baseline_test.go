package audit_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
)

func auditObjects(kind, ns, name string) []inventory.ObjectRef {
	return []inventory.ObjectRef{{Kind: kind, Namespace: ns, Name: name}}
}

func TestFingerprint(t *testing.T) {
	base := audit.Finding{Rule: audit.RuleReach, Severity: audit.High, Objects: auditObjects("Pod", "shop", "web"), Endpoints: []string{"aws-imds", "aws-imds-ipv6"}, Message: "one"}
	for _, tc := range []struct {
		sentence string
		change   func(f *audit.Finding)
		same     bool
	}{
		{"the message may change", func(f *audit.Finding) { f.Message = "reworded"; f.Remediation = "other" }, true},
		{"the severity may change", func(f *audit.Finding) { f.Severity = audit.Critical }, true},
		{"the source position may change", func(f *audit.Finding) { f.Objects[0].Source = inventory.Source{File: "b.yaml", Line: 9} }, true},
		{"the endpoints' order may change", func(f *audit.Finding) { f.Endpoints = []string{"aws-imds-ipv6", "aws-imds"} }, true},
		{"another rule is another finding", func(f *audit.Finding) { f.Rule = audit.RuleIPv6Gap }, false},
		{"another object is another finding", func(f *audit.Finding) { f.Objects[0].Name = "api" }, false},
		{"another namespace is another finding", func(f *audit.Finding) { f.Objects[0].Namespace = "cart" }, false},
		{"another kind is another finding", func(f *audit.Finding) { f.Objects[0].Kind = "Deployment" }, false},
		{"fewer endpoints is another finding", func(f *audit.Finding) { f.Endpoints = []string{"aws-imds"} }, false},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			f := base
			f.Objects = auditObjects("Pod", "shop", "web")
			tc.change(&f)
			if same := f.Fingerprint() == base.Fingerprint(); same != tc.same {
				t.Errorf("%q vs %q: same %v, want %v", f.Fingerprint(), base.Fingerprint(), same, tc.same)
			}
		})
	}
}

func TestParseBaselineRefusesOtherMajorVersions(t *testing.T) {
	for _, tc := range []struct{ report, err string }{
		{`{"schemaVersion": "1.3", "findings": []}`, "baseline main.json: schemaVersion 1.3: want 2.x"},
		{`{"schemaVersion": "3.0", "findings": []}`, "baseline main.json: schemaVersion 3.0: want 2.x"},
		{`{"findings": []}`, "baseline main.json: no schemaVersion"},
		{`{"version": "2.1.0", "runs": []}`, "baseline main.json: no schemaVersion"},
		{`not json`, "baseline main.json: not a JSON report"},
		{`{"schemaVersion": "2.1", "findings": [{"id": "IMDS001", "severity": "severe", "objects": []}]}`, `findings[0].severity "severe"`},
	} {
		_, err := audit.ParseBaseline("main.json", []byte(tc.report))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.report, err, tc.err)
		}
	}
	if _, err := audit.ParseBaseline("main.json", []byte(`{"schemaVersion": "2.0", "findings": []}`)); err != nil {
		t.Errorf("a 2.0 report: %v", err)
	}
}

// TestBaselineOfItself: against its own JSON report every finding is unchanged, and none counts.
func TestBaselineOfItself(t *testing.T) {
	r := runExample(t, endpoint.All)
	var js bytes.Buffer
	if err := r.WriteJSON(&js, "test"); err != nil {
		t.Fatal(err)
	}
	b, err := audit.ParseBaseline("main.json", js.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	r.ApplyBaseline(b)
	for _, f := range r.Findings {
		if f.Baseline != audit.BaselineUnchanged || f.Counts() {
			t.Errorf("%s %s: baseline %q, counts %v", f.Rule.ID, f.Objects, f.Baseline, f.Counts())
		}
	}
}
