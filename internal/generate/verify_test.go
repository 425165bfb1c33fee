package generate

import (
	"errors"
	"strings"
	"testing"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// TestVerifyCatchesBrokenPolicies breaks generated policies on purpose: each row must fail
// verification with the problem named.
func TestVerifyCatchesBrokenPolicies(t *testing.T) {
	web := namespace("web")
	all := eps(endpoint.All)
	np := func(mutate func(*networkingv1.NetworkPolicy)) Policies {
		p := buildNetworkPolicy("web", all, DefaultExemptionLabel)
		mutate(p)
		return Policies{NetworkPolicies: []*networkingv1.NetworkPolicy{p}}
	}
	anp := func(mutate func(*anpv1alpha1.AdminNetworkPolicy)) Policies {
		o := DefaultOptions(all)
		p := buildAdminNetworkPolicy(&o)
		mutate(p)
		return Policies{AdminNetworkPolicies: []*anpv1alpha1.AdminNetworkPolicy{p}}
	}
	webOnly := Scope{Namespaces: []string{"web"}, ExemptionLabel: DefaultExemptionLabel}
	for _, tc := range []struct {
		sentence string
		cluster  string
		policies Policies
		scope    Scope
		want     string
	}{
		{"an IPv4-only except leaves the IPv6 endpoint reachable",
			web, np(func(p *networkingv1.NetworkPolicy) { p.Spec.Egress[0].To[1].IPBlock.Except = nil }), webOnly,
			"aws-imds-ipv6 ([fd00:ec2::254]:80/TCP): still allowed"},
		{"a policy that selects no pod protects nobody",
			web, np(func(p *networkingv1.NetworkPolicy) {
				p.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "nobody"}}
			}), webOnly, "Deployment web/app, imds (169.254.169.254:80/TCP): still allowed"},
		{"a narrowed block breaks public destinations",
			web, np(func(p *networkingv1.NetworkPolicy) {
				p.Spec.Egress[0].To[0].IPBlock.CIDR = "10.0.0.0/8"
				p.Spec.Egress[0].To[0].IPBlock.Except = nil
			}), webOnly,
			"public-ipv4 (203.0.113.10:443/TCP): broken: was allowed, now denied"},
		{"excepting the WireServer address without the DNS rule breaks Azure DNS",
			web, np(func(p *networkingv1.NetworkPolicy) { p.Spec.Egress = p.Spec.Egress[:2] }), webOnly,
			"azure-dns (168.63.129.16:53/UDP): broken"},
		{"a policy the API server would reject is reported, not trusted",
			web, np(func(p *networkingv1.NetworkPolicy) { p.Spec.Egress[0].To[0].IPBlock.Except = []string{"fd00::1/128"} }), webOnly,
			"generated <imdsguard generate>: NetworkPolicy web/imdsguard-deny-metadata: spec.egress[0].to[0].ipBlock.except[0]"},
		{"an allow-all-except policy in a default-deny namespace widens egress",
			namespace("web", strings.Replace(defaultDenyEgress, "namespace: ns", "namespace: web", 1)), np(func(*networkingv1.NetworkPolicy) {}), webOnly,
			"public-ipv4 (203.0.113.10:443/TCP): widened: was denied"},
		{"an AdminNetworkPolicy that allows instead of denying",
			web, anp(func(p *anpv1alpha1.AdminNetworkPolicy) {
				p.Spec.Egress[0].Action = anpv1alpha1.AdminNetworkPolicyRuleActionAllow
			}), Scope{},
			"imds (169.254.169.254:80/TCP): still allowed: AdminNetworkPolicy imdsguard-deny-metadata rule 0 (deny-metadata-tcp-80): Allow"},
		{"an AdminNetworkPolicy on the wrong port",
			web, anp(func(p *anpv1alpha1.AdminNetworkPolicy) { (*p.Spec.Egress[0].Ports)[0].PortNumber.Port = 443 }), Scope{},
			"imds (169.254.169.254:80/TCP): still allowed"},
		{"an AdminNetworkPolicy denying a whole block breaks the EKS Pod Identity agent",
			web, anp(func(p *anpv1alpha1.AdminNetworkPolicy) {
				p.Spec.Egress[0].To[0].Networks = append(p.Spec.Egress[0].To[0].Networks, "169.254.0.0/16")
			}), Scope{}, "aws-pod-identity (169.254.170.23:80/TCP): broken"},
		{"an AdminNetworkPolicy sharing its priority with another",
			namespace("web", `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-monitoring}
spec:
  priority: 10
  subject: {namespaces: {}}
  egress: [{name: prometheus, action: Allow, to: [{networks: [10.0.0.0/8]}]}]
`), anp(func(*anpv1alpha1.AdminNetworkPolicy) {}), Scope{}, "share priority 10"},
		{"an AdminNetworkPolicy decided before ours that allows the endpoint wins",
			namespace("web", `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-imds}
spec:
  priority: 5
  subject: {namespaces: {}}
  egress: [{name: imds, action: Allow, to: [{networks: [169.254.169.254/32]}]}]
`), anp(func(*anpv1alpha1.AdminNetworkPolicy) {}), Scope{}, "still allowed: AdminNetworkPolicy allow-imds rule 0 (imds): Allow"},
	} {
		t.Run(tc.sentence, func(t *testing.T) {
			err := Verify(loadYAML(t, tc.cluster), all, tc.policies, tc.scope)
			var v *VerificationError
			if !errors.As(err, &v) {
				t.Fatalf("got %v, want a *VerificationError", err)
			}
			found := false
			for _, violation := range v.Violations {
				found = found || strings.Contains(violation.String(), tc.want)
			}
			if !found {
				t.Errorf("no violation says %q:\n%s", tc.want, err)
			}
		})
	}
}

// TestGeneratedPoliciesProtect checks, with the evaluator and independently of Verify, that
// the generated NetworkPolicies and AdminNetworkPolicy deny every targeted pod and template
// every credential endpoint of both address families, and leave every other destination's
// verdict as it was, for every subject.
func TestGeneratedPoliciesProtect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		input  string
		clouds []endpoint.Cloud
	}{
		{"mixed, every cloud", mixedDir, []endpoint.Cloud{endpoint.All}},
		{"mixed, AWS", mixedDir, []endpoint.Cloud{endpoint.AWS}},
		{"mixed, Azure", mixedDir, []endpoint.Cloud{endpoint.Azure}},
		{"example, every cloud", exampleDir, []endpoint.Cloud{endpoint.All}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := load(t, tc.input)
			selected := eps(tc.clouds...)
			out := mustGenerate(t, options(inv, []Layer{NetworkPolicy, AdminNetworkPolicy}, tc.clouds...))
			var nps []*networkingv1.NetworkPolicy
			var anps []*anpv1alpha1.AdminNetworkPolicy
			for _, m := range out.Manifests {
				switch p := m.Object.(type) {
				case *networkingv1.NetworkPolicy:
					nps = append(nps, p)
				case *anpv1alpha1.AdminNetworkPolicy:
					anps = append(anps, p)
				}
			}
			if len(anps) != 1 {
				t.Fatalf("got %d AdminNetworkPolicies, want 1", len(anps))
			}
			protectedNamespaces := map[string]bool{}
			for _, np := range nps {
				protectedNamespaces[np.Namespace] = true
			}
			own := withoutGenerated(inv)
			for _, layer := range []struct {
				name     string
				added    Policies
				protects func(policy.Subject) bool
			}{
				{"networkpolicy", Policies{NetworkPolicies: nps}, func(s policy.Subject) bool {
					return protectedNamespaces[s.Namespace] && s.Labels[DefaultExemptionLabel] != ExemptionValue
				}},
				{"adminnetworkpolicy", Policies{AdminNetworkPolicies: anps}, func(s policy.Subject) bool { return s.Namespace != "kube-system" }},
			} {
				if len(layer.added.NetworkPolicies)+len(layer.added.AdminNetworkPolicies) == 0 {
					continue // every namespace refused (the example cluster): nothing to check
				}
				checkProtects(t, layer.name, own, layer.added, selected, layer.protects)
			}
		})
	}
}

func checkProtects(t *testing.T, layer string, inv *inventory.Inventory, added Policies, eps []endpoint.Endpoint, protects func(policy.Subject) bool) {
	t.Helper()
	var creds, others []endpoint.Endpoint
	families := map[bool]bool{}
	for _, ep := range eps {
		if ep.Role == endpoint.Credentials {
			creds = append(creds, ep)
			families[ep.Address.Is6()] = true
		}
	}
	others = Probes(eps)
	before, after := policy.Compile(inv), policy.Compile(withPolicies(inv, added))
	if len(after.Rejected) > 0 {
		t.Fatalf("%s: generated policies rejected: %v", layer, after.Rejected)
	}
	protected := 0
	for _, s := range audit.Subjects(inv) {
		ps := s.PolicySubject()
		if ps.HostNetwork {
			continue
		}
		if protects(ps) {
			protected++
			got := make([]policy.Verdict, len(creds))
			after.Evaluate(ps, creds, got)
			for j, v := range got {
				if v.Allowed {
					t.Errorf("%s: %s can reach %s: %s", layer, s.Ref(), creds[j], v)
				}
			}
		}
		b, a := make([]policy.Verdict, len(others)), make([]policy.Verdict, len(others))
		before.Evaluate(ps, others, b)
		after.Evaluate(ps, others, a)
		for j := range others {
			if b[j].Allowed != a[j].Allowed {
				t.Errorf("%s: %s, %s: %s before, %s after", layer, s.Ref(), others[j], b[j], a[j])
			}
		}
	}
	if protected == 0 {
		t.Errorf("%s: no subject is protected: the test checks nothing", layer)
	}
	if len(families) == 2 && !t.Failed() {
		t.Logf("%s: %d subjects denied %d credential endpoints, IPv4 and IPv6", layer, protected, len(creds))
	}
}

func TestVerifyReplacesSameNamedPolicies(t *testing.T) {
	// A policy of the same name that allowed everything is replaced, not unioned: were it
	// kept, the pods would still reach every endpoint.
	inv := loadYAML(t, namespace("web", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: imdsguard-deny-metadata, namespace: web}
spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}
`))
	all := eps(endpoint.All)
	added := Policies{NetworkPolicies: []*networkingv1.NetworkPolicy{buildNetworkPolicy("web", all, "")}}
	if err := Verify(inv, all, added, Scope{Namespaces: []string{"web"}}); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
