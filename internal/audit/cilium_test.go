package audit_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// TestCiliumFindings: a Cilium allow rule that lets pods reach the metadata address is the
// reason of the finding and of its fix; the seeds-equivalent Cilium deny leaves no reachable
// credential endpoint; AdminNetworkPolicies beside Cilium policies are warned about; the report
// is complete.
func TestCiliumFindings(t *testing.T) {
	open := pod("shop", "web", "") + `---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: open, namespace: shop}
spec:
  endpointSelector: {}
  egress: [{toEntities: [world]}]
`
	r := auditYAML(t, open, endpoint.AWS)
	if !r.Complete() {
		t.Fatalf("report incomplete: %v", r.Problems)
	}
	reach := slices.ContainsFunc(r.Findings, func(f audit.Finding) bool {
		return f.Rule.ID == audit.RuleReach.ID && strings.Contains(f.Message, "CiliumNetworkPolicy shop/open egress[0]: Allow (toEntities world)") &&
			strings.Contains(f.Remediation, "add an egressDeny rule")
	})
	if !reach {
		t.Errorf("want IMDS001 naming CiliumNetworkPolicy shop/open egress[0]: %v", findingIDs(r))
	}

	denied := auditYAML(t, open+`---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: deny-instance-metadata}
spec:
  endpointSelector: {}
  egressDeny: [{toCIDR: [169.254.169.254/32, 'fd00:ec2::254/128']}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: unused}
spec:
  priority: 1
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{networks: [169.254.169.254/32]}]}]
`, endpoint.AWS)
	for _, f := range denied.Findings {
		if f.Rule.ID == audit.RuleReach.ID {
			t.Errorf("the Cilium deny should leave no reachable credential endpoint: %s", f.Message)
		}
	}
	if !slices.ContainsFunc(denied.Findings, func(f audit.Finding) bool {
		return f.Rule.ID == audit.RuleNotEnforced.ID && strings.Contains(f.Message, "AdminNetworkPolicy unused") && strings.Contains(f.Message, "Cilium does not implement")
	}) {
		t.Errorf("findings lack the unenforced AdminNetworkPolicy (%s)", audit.RuleNotEnforced.ID)
	}
}
