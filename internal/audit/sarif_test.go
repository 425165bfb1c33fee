package audit_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// sarifLocations is the part of a SARIF log this test reads: each result's locations.
type sarifLocations struct {
	Runs []struct {
		Results []struct {
			RuleID    string `json:"ruleId"`
			Locations []struct {
				PhysicalLocation *struct {
					ArtifactLocation struct {
						URI string `json:"uri"`
					} `json:"artifactLocation"`
					Region struct {
						StartLine int `json:"startLine"`
					} `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
		} `json:"results"`
	} `json:"runs"`
}

// TestSARIFPhysicalLocations: every SARIF result whose finding names an object read from a file
// points at that file and line (GitHub code scanning shows only results with a physical
// location), including the broad-rule finding (IMDS005) of each policy kind, which names a
// policy rather than a pod. The log validates against the OASIS schema.
func TestSARIFPhysicalLocations(t *testing.T) {
	schema := compileSchema(t, "testdata/sarif-schema-2.1.0.json")
	cases := []struct {
		sentence string
		report   func(t *testing.T) *audit.Report
		broad    string // the kind of the policy IMDS005 must name
	}{
		{"the example cluster: a NetworkPolicy without 'to', namespaces without egress control", func(t *testing.T) *audit.Report {
			return runExample(t, endpoint.All)
		}, "NetworkPolicy"},
		{"a Calico NetworkPolicy allowing 0.0.0.0/0", func(t *testing.T) *audit.Report {
			return auditYAML(t, pod("shop", "web", "")+`apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: open, namespace: shop}
spec:
  egress:
  - action: Allow
    destination: {nets: [0.0.0.0/0]}
`, endpoint.AWS)
		}, "NetworkPolicy.projectcalico.org"},
		{"a CiliumClusterwideNetworkPolicy allowing 0.0.0.0/0", func(t *testing.T) *audit.Report {
			return auditYAML(t, pod("shop", "web", "")+`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: open}
spec:
  endpointSelector: {}
  egress: [{toCIDR: [0.0.0.0/0]}]
`, endpoint.AWS)
		}, "CiliumClusterwideNetworkPolicy"},
		{"an AdminNetworkPolicy allowing 0.0.0.0/0", func(t *testing.T) *audit.Report {
			return auditYAML(t, pod("shop", "web", "")+`apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: open}
spec:
  priority: 5
  subject: {namespaces: {}}
  egress: [{action: Allow, to: [{networks: [0.0.0.0/0]}]}]
`, endpoint.AWS)
		}, "AdminNetworkPolicy"},
	}
	for _, tc := range cases {
		t.Run(tc.sentence, func(t *testing.T) {
			r := tc.report(t)
			var out bytes.Buffer
			if err := r.WriteSARIF(&out, "v1.0.0"); err != nil {
				t.Fatal(err)
			}
			validate(t, schema, out.Bytes())
			var log sarifLocations
			if err := json.Unmarshal(out.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			results := log.Runs[0].Results
			if len(results) != len(r.Findings) {
				t.Fatalf("%d results for %d findings", len(results), len(r.Findings))
			}
			broad := false
			for i, f := range r.Findings {
				if f.Rule.ID == audit.RuleBroadAllow.ID && f.Objects[0].Kind == tc.broad {
					broad = true
					if f.Objects[0].Source.File == "" {
						t.Errorf("%s names %s %s without its position in the input", f.Rule.ID, f.Objects[0].Kind, f.Objects[0].Name)
					}
				}
				for j, o := range f.Objects {
					if o.Source.File == "" {
						continue
					}
					loc := results[i].Locations[j].PhysicalLocation
					switch {
					case loc == nil:
						t.Errorf("%s result for %s has no physical location although it was read at %s", f.Rule.ID, o, o.Source)
					case loc.ArtifactLocation.URI != filepath.ToSlash(o.Source.File) || loc.Region.StartLine != max(1, o.Source.Line):
						t.Errorf("%s result for %s points at %s:%d, want %s", f.Rule.ID, o, loc.ArtifactLocation.URI, loc.Region.StartLine, o.Source)
					}
				}
			}
			if !broad {
				t.Errorf("no %s finding names the %s", audit.RuleBroadAllow.ID, tc.broad)
			}
		})
	}
}
