package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadString(t *testing.T, name, manifest string) *Inventory {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := Load([]string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestLoadCalicoAndCilium: Calico's and Cilium's policy kinds are decoded into their own lists,
// in both of Calico's API groups, with namespaces defaulted as for every namespaced kind.
func TestLoadCalicoAndCilium(t *testing.T) {
	inv := loadString(t, "policies.yaml", `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-imds, namespace: ignored}
spec:
  tier: security
  order: 10.5
  selector: all()
  egress:
  - action: Deny
    protocol: TCP
    destination: {nets: [169.254.169.254/32], ports: [80, "1000:2000", http]}
---
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: local, namespace: shop}
spec: {selector: app == 'web', types: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: local, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-imds}
spec:
  endpointSelector: {matchLabels: {"k8s:app": web}}
  egressDeny:
  - toCIDR: [169.254.169.254/32]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: world, namespace: ignored}
specs:
- endpointSelector: {}
  egress:
  - toEntities: [world]
  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [169.254.169.254/32]}]
`)
	if len(inv.Problems) > 0 || len(inv.Skipped) > 0 {
		t.Fatalf("problems %v, skipped %v", inv.Problems, inv.Skipped)
	}
	if len(inv.CalicoGlobalNetworkPolicies) != 1 || len(inv.CalicoNetworkPolicies) != 1 || len(inv.CalicoTiers) != 1 ||
		len(inv.NetworkPolicies) != 1 || len(inv.CiliumNetworkPolicies) != 1 || len(inv.CiliumClusterwideNetworkPolicies) != 1 {
		t.Fatalf("lists: %d GNP, %d Calico NP, %d tiers, %d NP, %d CNP, %d CCNP", len(inv.CalicoGlobalNetworkPolicies), len(inv.CalicoNetworkPolicies),
			len(inv.CalicoTiers), len(inv.NetworkPolicies), len(inv.CiliumNetworkPolicies), len(inv.CiliumClusterwideNetworkPolicies))
	}
	g := inv.CalicoGlobalNetworkPolicies[0]
	if g.Policy.Namespace != "" || g.Policy.Spec.Tier != "security" || *g.Policy.Spec.Order != 10.5 || g.Source.Document != 1 {
		t.Errorf("GlobalNetworkPolicy decoded as %+v at %v", g.Policy, g.Source)
	}
	ports := g.Policy.Spec.Egress[0].Destination.Ports
	if len(ports) != 3 || ports[0].IntVal != 80 || ports[1].StrVal != "1000:2000" || ports[2].StrVal != "http" || g.Policy.Spec.Egress[0].Protocol.StrVal != "TCP" {
		t.Errorf("ports decoded as %+v", ports)
	}
	if n := inv.CalicoNetworkPolicies[0]; n.Policy.Namespace != "shop" || n.Policy.Spec.Types[0] != "Egress" {
		t.Errorf("Calico NetworkPolicy decoded as %+v", n.Policy)
	}
	if tr := inv.CalicoTiers[0]; *tr.Tier.Spec.Order != 100 || tr.Tier.Spec.DefaultAction != "Pass" {
		t.Errorf("Tier decoded as %+v", tr.Tier)
	}
	c := inv.CiliumNetworkPolicies[0]
	if c.Policy.Namespace != "default" || c.Policy.Spec.EndpointSelector.MatchLabels["k8s:app"] != "web" || c.Policy.Spec.EgressDeny[0].ToPorts[0].Ports[0].Port != "80" {
		t.Errorf("CiliumNetworkPolicy decoded as %+v", c.Policy)
	}
	cc := inv.CiliumClusterwideNetworkPolicies[0]
	if cc.Policy.Namespace != "" || len(cc.Policy.Specs) != 1 || cc.Policy.Specs[0].Egress[1].ToCIDRSet[0].Except[0] != "169.254.169.254/32" {
		t.Errorf("CiliumClusterwideNetworkPolicy decoded as %+v", cc.Policy)
	}
	if ns := inv.Namespaces["shop"]; ns == nil || !ns.Synthesized {
		t.Errorf("the Calico NetworkPolicy's namespace was not synthesized: %+v", ns)
	}
	if inv.Objects() != 6 {
		t.Errorf("Objects() = %d, want 6", inv.Objects())
	}
}

// TestLoadCalicoDuplicateAcrossGroups: the same Calico policy read from projectcalico.org/v3 and
// from crd.projectcalico.org/v1 (a dump of both APIs) is one object: the later one is used.
func TestLoadCalicoDuplicateAcrossGroups(t *testing.T) {
	inv := loadString(t, "dup.yaml", `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-imds}
spec: {order: 1}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: deny-imds}
spec: {order: 2}
`)
	if len(inv.CalicoGlobalNetworkPolicies) != 1 || *inv.CalicoGlobalNetworkPolicies[0].Policy.Spec.Order != 2 {
		t.Fatalf("want the later copy only: %+v", inv.CalicoGlobalNetworkPolicies)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "GlobalNetworkPolicy/deny-imds read twice") {
		t.Errorf("warnings = %v", inv.Warnings)
	}
}

// TestLoadCalicoAndCiliumProblems: a document that does not decode is a problem naming the
// object, as kubectl names it, and the field.
func TestLoadCalicoAndCiliumProblems(t *testing.T) {
	inv := loadString(t, "bad.yaml", `apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  egress:
  - action: Deny
    destination: {nets: 169.254.169.254/32}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  endpointSelector: {}
  egress:
  - toPorts: [{ports: [{port: "80", endPort: "90"}]}]
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: bad}
spec: {order: first}
---
apiVersion: projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: old, namespace: shop}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumNetworkPolicy
metadata: {name: old, namespace: shop}
`)
	want := []struct{ kind, name, field, message string }{
		{"NetworkPolicy.projectcalico.org", "bad", "spec.egress[0].destination.nets", "got a string, want a list"},
		{"CiliumNetworkPolicy", "bad", "spec.egress[0].toPorts[0].ports[0].endPort", "got a string, want an integer"},
		{"Tier", "bad", "spec.order", "got a string, want a number"},
	}
	if len(inv.Problems) != len(want) {
		t.Fatalf("problems = %v", inv.Problems)
	}
	for i, w := range want {
		p := inv.Problems[i]
		if p.Object == nil || p.Object.Kind != w.kind || p.Object.Name != w.name || p.Field != w.field || !strings.Contains(p.Message, w.message) || p.Source.Document != i+1 {
			t.Errorf("problem %d = %+v (object %+v), want %s %s field %s %q in document %d", i, p, p.Object, w.kind, w.name, w.field, w.message, i+1)
		}
	}
	if len(inv.Skipped) != 2 ||
		inv.Skipped[0].Reason != "apiVersion projectcalico.org/v1 is not supported for NetworkPolicy (use projectcalico.org/v3 or crd.projectcalico.org/v1)" ||
		inv.Skipped[1].Reason != "apiVersion cilium.io/v2alpha1 is not supported for CiliumNetworkPolicy (use cilium.io/v2)" {
		t.Errorf("skipped = %+v", inv.Skipped)
	}
}
