package policy_test

import (
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/policy"
)

const egressOnlyTo10 = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: internal-only, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
---
`

// TestIsolatedFollowsTheEngine: a pod is isolated when the engine's policies restrict its
// egress so that an added allow-all NetworkPolicy would widen it. Each engine answers for its
// own kinds.
func TestIsolatedFollowsTheEngine(t *testing.T) {
	web := policy.Subject{Namespace: "shop", Labels: map[string]string{"app": "web"}}
	api := policy.Subject{Namespace: "shop", Labels: map[string]string{"app": "api"}}
	for _, c := range []struct {
		name      string
		policies  string
		subject   policy.Subject
		isolated  bool
		semantics policy.Semantics
	}{
		{"a NetworkPolicy selecting the pod for egress isolates it", egressOnlyTo10, web, true, policy.SemanticsKubernetes},
		{"a pod no NetworkPolicy selects is not isolated", egressOnlyTo10, api, false, policy.SemanticsKubernetes},
		{"a Calico NetworkPolicy in the default tier (default action Deny) isolates the pods it selects",
			cnp("internal-only", "  selector: app == 'web'\n  types: [Egress]\n  egress:\n  - action: Allow\n    destination: {nets: [10.0.0.0/8]}"),
			web, true, policy.SemanticsCalico},
		{"a Calico NetworkPolicy does not isolate pods it does not select",
			cnp("internal-only", "  selector: app == 'web'\n  types: [Egress]\n  egress:\n  - action: Allow\n    destination: {nets: [10.0.0.0/8]}"),
			api, false, policy.SemanticsCalico},
		{"a Calico policy in a tier whose default action is Pass, consulted before the default tier, does not isolate",
			tier("security", "{order: 100, defaultAction: Pass}") + gnp("deny-imds", "  tier: security\n  selector: all()\n  types: [Egress]\n  egress:\n  - action: Deny\n    destination: {nets: [169.254.169.254/32]}"),
			web, false, policy.SemanticsCalico},
		{"a Calico policy in a Pass tier consulted after the default tier isolates: a NetworkPolicy's allow would come first",
			tier("late", "{order: 2000000, defaultAction: Pass}") + gnp("deny-net", "  tier: late\n  selector: all()\n  types: [Egress]\n  egress:\n  - action: Deny\n    destination: {nets: [192.0.2.0/24]}"),
			web, true, policy.SemanticsCalico},
		{"a Kubernetes NetworkPolicy isolates next to Calico policies too",
			egressOnlyTo10 + tier("security", "{order: 100}"),
			web, true, policy.SemanticsCalico},
		{"a Cilium rule with egress rules puts the pod into default deny",
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: internal-only, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  egress:\n  - toCIDR: [10.0.0.0/8]\n---\n",
			web, true, policy.SemanticsCilium},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := policy.Compile(load(t, namespaces+c.policies))
			if m.Enforcement.Semantics != c.semantics {
				t.Fatalf("semantics %q, want %q", m.Enforcement.Semantics, c.semantics)
			}
			if got := m.Isolated(c.subject); got != c.isolated {
				t.Errorf("Isolated = %t, want %t", got, c.isolated)
			}
		})
	}
}

// TestCompileForLeavesOutWhatIsNotEnforced: objects of a kind the engine does not enforce take
// no part in the verdict and are listed with the engine's reason.
func TestCompileForLeavesOutWhatIsNotEnforced(t *testing.T) {
	const denyIMDS = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-except-metadata, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-imds}
spec:
  priority: 10
  subject: {namespaces: {}}
  egress:
  - name: deny
    action: Deny
    to: [{networks: [169.254.169.254/32]}]
---
`
	inv := load(t, namespaces+denyIMDS)
	pod := policy.Subject{Namespace: "shop", Labels: map[string]string{"app": "web"}}
	imds := endpointNamed(t, "aws-imds")
	const agentOff = "the AWS VPC CNI's network policy agent is off"

	for _, c := range []struct {
		name        string
		enf         policy.Enforcement
		allowed     bool
		tier        policy.Tier
		notEnforced []string // object and reason fragments
	}{
		{"assumed: both kinds enforced; the admin policy decides first",
			policy.AssumedEnforcement(inv), false, policy.TierAdmin, nil},
		{"NetworkPolicy enforced, AdminNetworkPolicy not: the NetworkPolicy's except entry denies",
			policy.Enforcement{Engine: "Calico v3.32.1", Semantics: policy.SemanticsKubernetes, Kinds: map[policy.Kind]policy.KindEnforcement{
				policy.KindNetworkPolicy: {Enforced: true}}},
			false, policy.TierNetworkPolicy, []string{"AdminNetworkPolicy/deny-imds", "Calico v3.32.1 does not enforce AdminNetworkPolicy"}},
		{"nothing enforced: allowed by default, every policy listed",
			policy.Enforcement{Engine: "AWS VPC CNI", Semantics: policy.SemanticsKubernetes, Kinds: map[policy.Kind]policy.KindEnforcement{
				policy.KindNetworkPolicy: {Reason: agentOff}}},
			true, policy.TierDefault, []string{"NetworkPolicy shop/allow-all-except-metadata", agentOff, "AdminNetworkPolicy/deny-imds"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := policy.CompileFor(inv, c.enf)
			v := make([]policy.Verdict, 1)
			m.Evaluate(pod, []endpoint.Endpoint{imds}, v)
			if v[0].Allowed != c.allowed || v[0].DecidedBy.Tier != c.tier {
				t.Errorf("verdict %v, want allowed=%t by tier %s", v[0], c.allowed, c.tier)
			}
			var notes []string
			for _, n := range m.NotEnforced {
				notes = append(notes, n.String())
			}
			all := strings.Join(notes, "\n")
			for _, want := range c.notEnforced {
				if !strings.Contains(all, want) {
					t.Errorf("NotEnforced %q lacks %q", all, want)
				}
			}
			if len(c.notEnforced) == 0 && len(notes) > 0 {
				t.Errorf("NotEnforced = %q, want none", all)
			}
		})
	}
}

// TestEnforcementString names the engine and what it enforces, or says the enforcement is
// assumed.
func TestEnforcementString(t *testing.T) {
	e := policy.Enforcement{Engine: "Calico v3.32.1", Semantics: policy.SemanticsCalico, Kinds: map[policy.Kind]policy.KindEnforcement{
		policy.KindNetworkPolicy: {Enforced: true}, policy.KindCalico: {Enforced: true}, policy.KindAdminNetworkPolicy: {Reason: "removed in v3.32"}}}
	if got, want := e.String(), "Calico v3.32.1 (calico semantics): enforces NetworkPolicy, Calico"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if ok, why := e.Enforces(policy.KindAdminNetworkPolicy); ok || why != "removed in v3.32" {
		t.Errorf("Enforces(ANP) = %t, %q", ok, why)
	}
	if ok, why := e.Enforces(policy.KindCilium); ok || !strings.Contains(why, "Calico v3.32.1 does not enforce Cilium") {
		t.Errorf("Enforces(Cilium) = %t, %q", ok, why)
	}
	assumed := policy.Enforcement{Assumed: true}
	if ok, _ := assumed.Enforces(policy.KindCilium); !ok || !strings.Contains(assumed.String(), "assumed") {
		t.Errorf("assumed enforcement: Enforces=%t String=%q", ok, assumed.String())
	}
}
