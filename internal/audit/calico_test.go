package audit_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// TestCalicoExample: the Calico example cluster audits cleanly, its reasons name the Calico
// tier, policy and rule, and its JSON validates against the contract.
func TestCalicoExample(t *testing.T) {
	inv, err := inventory.Load([]string{"../../examples/calico"}, inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Problems) > 0 {
		t.Fatalf("problems: %v", inv.Problems)
	}
	r := audit.Run(inv, endpoint.Select([]endpoint.Cloud{endpoint.AWS}))
	// The example has no nodes: cluster policy is its only layer (IMDS014).
	for _, f := range r.Findings {
		if f.Rule.ID != audit.RuleSingleLayer.ID || !strings.Contains(f.Message, "by the cluster-policy layer alone") {
			t.Errorf("finding %s %s: want only IMDS014 for the cluster-policy layer", f.Rule.ID, f.Message)
		}
	}
	if !r.Complete() || len(r.Findings) == 0 {
		t.Errorf("findings %v, complete %t: want IMDS014 and complete", findingIDs(r), r.Complete())
	}
	for i, s := range r.Subjects {
		for j, ep := range r.Endpoints {
			v := r.Verdict(i, j)
			if ep.Name == "aws-imds" && (v.Allowed || v.DecidedBy.Tier != policy.TierCalico || v.DecidedBy.Kind != "GlobalNetworkPolicy" ||
				v.DecidedBy.Policy != "allow-all-egress-except-metadata-api" || v.DecidedBy.Rule != 0 || v.DecidedBy.CalicoTier != "default") {
				t.Errorf("%s → aws-imds: %v", s.Label(), v)
			}
			if ep.Name == "aws-pod-identity" && s.Workload.Name == "checkout" && (!v.Allowed || v.DecidedBy.Policy != "shop/pod-identity") {
				t.Errorf("checkout must reach the Pod Identity agent through shop/pod-identity: %v", v)
			}
		}
	}
	var out bytes.Buffer
	if err := r.WriteJSON(&out, "test"); err != nil {
		t.Fatal(err)
	}
	validate(t, compileSchema(t, "../../docs/audit-report.schema.json"), out.Bytes())
	var doc struct {
		Namespaces []struct {
			EgressControl struct {
				CalicoPolicies []string `json:"calicoPolicies"`
			} `json:"egressControl"`
		} `json:"namespaces"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Namespaces[0].EgressControl.CalicoPolicies; len(got) != 3 {
		t.Errorf("calicoPolicies = %v, want the 3 policies that select pods of shop", got)
	}
	if !strings.Contains(out.String(), `"tier":"Calico","kind":"GlobalNetworkPolicy","calicoTier":"default","policy":"allow-all-egress-except-metadata-api","rule":0`) {
		t.Errorf("the JSON reason does not name the Calico tier, kind, policy and rule")
	}
}

// TestCalicoFindings: a Calico rule that lets pods reach the metadata address is the reason
// of the finding and of its fix; a host endpoint policy is a warning; Cilium policies beside Calico make the
// report incomplete.
func TestCalicoFindings(t *testing.T) {
	r := auditYAML(t, pod("shop", "web", "")+`---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: open, namespace: shop}
spec:
  egress:
  - action: Allow
    destination: {nets: [0.0.0.0/0]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: untracked}
spec: {doNotTrack: true, applyOnForward: true, selector: all(), egress: [{action: Deny}]}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: shop}
spec: {endpointSelector: {}, egressDeny: [{toCIDR: [169.254.169.254/32]}]}
`, endpoint.AWS)
	var reach, broad bool
	for _, f := range r.Findings {
		switch f.Rule.ID {
		case audit.RuleReach.ID:
			if strings.Contains(f.Message, "Calico tier default NetworkPolicy.projectcalico.org shop/open rule 0: Allow") &&
				strings.Contains(f.Remediation, "NetworkPolicy.projectcalico.org shop/open (Calico tier default) egress rule 0") {
				reach = true
			}
		case audit.RuleBroadAllow.ID:
			if f.Objects[0].Kind == "NetworkPolicy.projectcalico.org" && f.Objects[0].Namespace == "shop" && f.Objects[0].Name == "open" {
				broad = true
			}
		}
	}
	if !reach || !broad {
		t.Errorf("want IMDS001 and IMDS005 naming shop/open: %v", findingIDs(r))
	}
	if !slices.ContainsFunc(r.Warnings, func(w string) bool {
		return strings.Contains(w, "GlobalNetworkPolicy/untracked") && strings.Contains(w, "host endpoints only")
	}) {
		t.Errorf("warnings lack the doNotTrack policy: %v", r.Warnings)
	}
	if r.Complete() || !slices.ContainsFunc(findingIDs(r), func(id string) bool { return strings.HasPrefix(id, audit.RuleInput.ID+" CiliumNetworkPolicy shop/c") }) {
		t.Errorf("a Cilium policy must make the report incomplete: %v", findingIDs(r))
	}
}

// TestCalicoIsolationShapesTheFix: a Calico NetworkPolicy that isolates shop/web makes the
// namespace isolated, so the fix offered for another reachable pod of shop must not propose an
// allow-all-except-metadata NetworkPolicy (it would open web to the internet).
func TestCalicoIsolationShapesTheFix(t *testing.T) {
	r := auditYAML(t, `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: api, image: api}]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: internal-only, namespace: shop}
spec:
  selector: app == 'web'
  types: [Egress]
  egress: [{action: Allow, destination: {nets: [10.0.0.0/8]}}]
`, endpoint.AWS)
	if len(r.Namespaces) != 1 || !r.Namespaces[0].Isolated {
		t.Fatalf("namespace shop should be isolated: %+v", r.Namespaces)
	}
	found := false
	for _, f := range r.Findings {
		if f.Rule.ID != audit.RuleReach.ID || !strings.Contains(f.Message, "shop/api") {
			continue
		}
		found = true
		if strings.Contains(f.Remediation, "No pod in namespace shop is egress-isolated") || !strings.Contains(f.Remediation, "already egress-isolated") {
			t.Errorf("fix for shop/api: %q", f.Remediation)
		}
	}
	if !found {
		t.Fatal("no reachable finding for shop/api")
	}
}
