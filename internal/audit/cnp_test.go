package audit_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// TestClusterNetworkPolicyFindings: a ClusterNetworkPolicy that accepts the metadata address is
// the reason of the finding and of its fix, in the words of its kind; one that denies it leaves
// nothing reachable; equal priorities in a tier are IMDS010; the JSON report holds the CNP tiers
// and egress control and validates against the published schema.
func TestClusterNetworkPolicyFindings(t *testing.T) {
	accept := pod("shop", "web", "") + `---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: accept-imds}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress:
  - {name: metadata, action: Accept, to: [{networks: [169.254.169.254/32]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: also-5}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress:
  - {name: other, action: Deny, to: [{networks: [10.0.0.0/8]}]}
`
	r := auditYAML(t, accept, endpoint.AWS)
	if !r.Complete() {
		t.Fatalf("report incomplete: %v", r.Problems)
	}
	if !slices.ContainsFunc(r.Findings, func(f audit.Finding) bool {
		return f.Rule.ID == audit.RuleReach.ID &&
			strings.Contains(f.Message, "ClusterNetworkPolicy accept-imds (Admin tier) rule 0 (metadata): Accept (networks 169.254.169.254/32)") &&
			strings.Contains(f.Remediation, "ClusterNetworkPolicy accept-imds (Admin tier) rule 0 accepts")
	}) {
		t.Errorf("want IMDS001 naming the accepting ClusterNetworkPolicy rule and its fix: %v", findingIDs(r))
	}
	if !slices.ContainsFunc(r.Findings, func(f audit.Finding) bool {
		return f.Rule.ID == audit.RulePriorityTie.ID && strings.Contains(f.Message, "ClusterNetworkPolicy (Admin tier) policies accept-imds and also-5 both have priority 5")
	}) {
		t.Errorf("want IMDS010 for accept-imds and also-5: %v", findingIDs(r))
	}

	var out bytes.Buffer
	if err := r.WriteJSON(&out, "test"); err != nil {
		t.Fatal(err)
	}
	validate(t, compileSchema(t, "../../docs/audit-report.schema.json"), out.Bytes())
	var doc struct {
		Namespaces []struct {
			Name          string `json:"name"`
			EgressControl struct {
				Admin []string `json:"adminClusterNetworkPolicies"`
			} `json:"egressControl"`
		} `json:"namespaces"`
		Exposure []exposure `json:"exposure"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Namespaces) != 1 || !slices.Equal(doc.Namespaces[0].EgressControl.Admin, []string{"accept-imds", "also-5"}) {
		t.Errorf("namespaces %+v, want shop with Admin tier CNPs accept-imds and also-5", doc.Namespaces)
	}
	var decided bool
	for _, e := range doc.Exposure {
		if e.Endpoint.Name == "aws-imds" {
			decided = e.Allowed && e.DecidedBy.Tier == "Admin" && e.DecidedBy.Policy == "accept-imds" && e.DecidedBy.Rule != nil && *e.DecidedBy.Rule == 0
		}
	}
	if !decided {
		t.Errorf("aws-imds exposure: want allowed by Admin accept-imds rule 0: %+v", doc.Exposure)
	}

	denied := auditYAML(t, strings.Replace(accept, "action: Accept", "action: Deny", 1), endpoint.AWS)
	for _, f := range denied.Findings {
		if f.Rule.ID == audit.RuleReach.ID && strings.Contains(f.Message, "169.254.169.254") {
			t.Errorf("the ClusterNetworkPolicy Deny should leave the IPv4 metadata address unreachable: %s", f.Message)
		}
	}
}
