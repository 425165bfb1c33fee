package generate

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/audit"
	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// GeneratedSource is the Source of generated policies added to an inventory for verification.
var GeneratedSource = inventory.Source{File: "<imdsguard generate>"}

// Policies are generated policies the evaluator understands.
type Policies struct {
	NetworkPolicies        []*networkingv1.NetworkPolicy
	AdminNetworkPolicies   []*anpv1alpha1.AdminNetworkPolicy
	ClusterNetworkPolicies []*cnpv1beta1.ClusterNetworkPolicy
}

// Scope says which pods and workload templates generated policies must keep away from every
// credential endpoint. hostNetwork subjects are never in scope: no network policy applies to
// them.
type Scope struct {
	// Namespaces, when not nil, are the only namespaces in scope (the NetworkPolicy layer
	// protects the namespaces it generated a policy for). Nil means every namespace.
	Namespaces []string
	// ExemptNamespaces are never in scope.
	ExemptNamespaces []string
	// ExemptionLabel, when set, takes pods whose label of that key has the value
	// ExemptionValue out of scope.
	ExemptionLabel string
}

// Protects reports whether the policies must deny subject s every credential endpoint.
func (sc Scope) Protects(s policy.Subject) bool {
	switch {
	case s.HostNetwork:
		return false
	case sc.Namespaces != nil && !slices.Contains(sc.Namespaces, s.Namespace):
		return false
	case slices.Contains(sc.ExemptNamespaces, s.Namespace):
		return false
	case sc.ExemptionLabel != "" && s.Labels[sc.ExemptionLabel] == ExemptionValue:
		return false
	}
	return true
}

// Probes are the destinations besides the credential endpoints whose verdicts a generated
// policy must leave exactly as they were: public addresses of both families, cluster DNS, a
// node-local DNS cache on a link-local address, and the selected keep-reachable endpoints (the
// EKS Pod Identity agent, Azure DNS). A change from denied to allowed widens someone's egress;
// a change from allowed to denied breaks something.
func Probes(eps []endpoint.Endpoint) []endpoint.Endpoint {
	probe := func(name, addr string, proto corev1.Protocol, port int32, desc string) endpoint.Endpoint {
		return endpoint.Endpoint{Name: name, Address: netip.MustParseAddr(addr), Protocol: proto, Port: port,
			Role: endpoint.KeepReachable, Description: desc}
	}
	out := []endpoint.Endpoint{
		probe("public-ipv4", "203.0.113.10", corev1.ProtocolTCP, 443, "a public IPv4 address"),
		probe("public-ipv6", "2001:db8::10", corev1.ProtocolTCP, 443, "a public IPv6 address"),
		probe("cluster-dns", "10.96.0.10", corev1.ProtocolUDP, 53, "the cluster DNS service"),
		probe("cluster-dns-tcp", "10.96.0.10", corev1.ProtocolTCP, 53, "the cluster DNS service over TCP"),
		probe("node-local-dns", "169.254.20.10", corev1.ProtocolUDP, 53, "a node-local DNS cache on a link-local address"),
	}
	return append(out, keepReachable(eps)...)
}

// Violation is one way generated policies failed verification.
type Violation struct {
	// Subject names the pod or workload ("Deployment shop/web"); empty for a problem with a
	// policy itself.
	Subject string
	// Destination is the endpoint or probe concerned.
	Destination string
	Problem     string
}

func (v Violation) String() string {
	if v.Subject == "" {
		return v.Problem
	}
	return fmt.Sprintf("%s, %s: %s", v.Subject, v.Destination, v.Problem)
}

// VerificationError says generated policies do not do what they must. Generate never returns
// policies that fail verification.
type VerificationError struct {
	// What names the policies verified, e.g. "networkpolicy layer".
	What       string
	Violations []Violation
}

// maxShownViolations bounds how many violations Error lists.
const maxShownViolations = 10

func (e *VerificationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verification of the %s failed: %d problems", e.What, len(e.Violations))
	for i, v := range e.Violations {
		if i == maxShownViolations {
			fmt.Fprintf(&b, "; and %d more", len(e.Violations)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Verify adds generated policies to a copy of inv (replacing policies of the same kind,
// namespace and name, as applying them would), evaluates every pod and workload template
// before and after, and returns a *VerificationError when:
//   - a generated policy is one the API server would reject, or shares its AdminNetworkPolicy
//     priority with another one (their order is then up to the implementation);
//   - a subject in scope can still reach a credential endpoint of eps;
//   - any subject's verdict for a credential endpoint changed from denied to allowed;
//   - any subject's verdict for a probe destination (Probes) changed at all.
//
// "Before" is the cluster's own policies: those an earlier run of generate wrote are left out,
// as the new ones replace them. It is what Generate runs on everything it returns that the evaluator understands, exported
// so tests and a controller hold generated policies to the same standard.
func Verify(inv *inventory.Inventory, eps []endpoint.Endpoint, added Policies, scope Scope) error {
	return verify(inv, eps, added, scope, nil, "generated policies")
}

// VerifyFor is Verify with only the policy kinds enf enforces taking part, before and after.
func VerifyFor(inv *inventory.Inventory, eps []endpoint.Endpoint, added Policies, scope Scope, enf policy.Enforcement) error {
	return verify(inv, eps, added, scope, &enf, "generated policies")
}

// verify checks added against inv; enf nil assumes every kind of policy in the result is
// enforced (with the semantics the result implies).
func verify(inv *inventory.Inventory, eps []endpoint.Endpoint, added Policies, scope Scope, enf *policy.Enforcement, what string) error {
	inv = withoutGenerated(inv)
	after := withPolicies(inv, added)
	compile := func(i *inventory.Inventory) *policy.Model {
		if enf == nil {
			// The generated policies' own kinds must count too: assume from the result.
			return policy.CompileFor(i, policy.AssumedEnforcement(after))
		}
		return policy.CompileFor(i, *enf)
	}
	beforeModel, afterModel := compile(inv), compile(after)
	var violations []Violation
	for _, p := range afterModel.Rejected {
		if p.Source == GeneratedSource {
			violations = append(violations, Violation{Problem: "generated " + p.Error()})
		}
	}
	var addedNames []string
	for _, anp := range added.AdminNetworkPolicies {
		addedNames = append(addedNames, anp.Name)
	}
	for _, cnp := range added.ClusterNetworkPolicies {
		addedNames = append(addedNames, cnp.Name)
	}
	for _, tie := range afterModel.PriorityTies {
		for _, name := range addedNames {
			if slices.Contains(tie.Policies[:], name) {
				kind := cmp.Or(tie.Kind, "AdminNetworkPolicy")
				violations = append(violations, Violation{Problem: fmt.Sprintf(
					"%s %s and %s share priority %d: their order is up to the network plugin; choose another priority",
					kind, tie.Policies[0], tie.Policies[1], tie.Priority)})
			}
		}
	}
	creds := credentials(eps)
	probes := Probes(eps)
	dests := append(slices.Clone(creds), probes...)
	subjects := audit.Subjects(inv)
	ps := make([]policy.Subject, len(subjects))
	for i := range subjects {
		ps[i] = subjects[i].PolicySubject()
	}
	before, now := beforeModel.EvaluateAll(ps, dests), afterModel.EvaluateAll(ps, dests)
	for i := range subjects {
		name := subjects[i].Ref().String()
		protected := scope.Protects(ps[i])
		for j, d := range dests {
			b, a := before[i][j], now[i][j]
			isCredential := j < len(creds)
			switch {
			case isCredential && protected && a.Allowed:
				violations = append(violations, Violation{Subject: name, Destination: d.String(),
					Problem: "still allowed: " + a.DecidedBy.String()})
			case isCredential && !b.Allowed && a.Allowed:
				violations = append(violations, Violation{Subject: name, Destination: d.String(),
					Problem: "was denied, now allowed: " + a.DecidedBy.String()})
			case !isCredential && !b.Allowed && a.Allowed:
				violations = append(violations, Violation{Subject: name, Destination: d.String(),
					Problem: "widened: was denied (" + b.DecidedBy.String() + "), now allowed: " + a.DecidedBy.String()})
			case !isCredential && b.Allowed && !a.Allowed:
				violations = append(violations, Violation{Subject: name, Destination: d.String(),
					Problem: "broken: was allowed, now denied: " + a.DecidedBy.String()})
			}
		}
	}
	if len(violations) > 0 {
		return &VerificationError{What: what, Violations: violations}
	}
	return nil
}

// withPolicies returns a shallow copy of inv with the policies added, replacing those of the
// same namespace and name. inv is not modified.
func withPolicies(inv *inventory.Inventory, added Policies) *inventory.Inventory {
	out := *inv
	out.NetworkPolicies = nil
	for _, np := range inv.NetworkPolicies {
		if !slices.ContainsFunc(added.NetworkPolicies, func(a *networkingv1.NetworkPolicy) bool {
			return a.Namespace == np.Policy.Namespace && a.Name == np.Policy.Name
		}) {
			out.NetworkPolicies = append(out.NetworkPolicies, np)
		}
	}
	for _, np := range added.NetworkPolicies {
		out.NetworkPolicies = append(out.NetworkPolicies, &inventory.NetworkPolicy{Policy: np, Source: GeneratedSource})
	}
	out.AdminNetworkPolicies = nil
	for _, anp := range inv.AdminNetworkPolicies {
		if !slices.ContainsFunc(added.AdminNetworkPolicies, func(a *anpv1alpha1.AdminNetworkPolicy) bool { return a.Name == anp.Policy.Name }) {
			out.AdminNetworkPolicies = append(out.AdminNetworkPolicies, anp)
		}
	}
	for _, anp := range added.AdminNetworkPolicies {
		out.AdminNetworkPolicies = append(out.AdminNetworkPolicies, &inventory.AdminNetworkPolicy{Policy: anp, Source: GeneratedSource})
	}
	out.ClusterNetworkPolicies = nil
	for _, cnp := range inv.ClusterNetworkPolicies {
		if !slices.ContainsFunc(added.ClusterNetworkPolicies, func(a *cnpv1beta1.ClusterNetworkPolicy) bool { return a.Name == cnp.Policy.Name }) {
			out.ClusterNetworkPolicies = append(out.ClusterNetworkPolicies, cnp)
		}
	}
	for _, cnp := range added.ClusterNetworkPolicies {
		out.ClusterNetworkPolicies = append(out.ClusterNetworkPolicies, &inventory.ClusterNetworkPolicy{Policy: cnp, APIVersion: cnp.APIVersion, Source: GeneratedSource})
	}
	return &out
}

// SampleWorkload names the pod added to each namespace verification covers, so that it never
// passes for want of a pod to check.
const SampleWorkload = "imdsguard-sample"

// withSamples returns a copy of inv with one unlabelled-but-for-app pod in each namespace
// given, creating the namespaces that are not there (with only the label the API server
// sets). inv is not modified.
func withSamples(inv *inventory.Inventory, namespaces []string) *inventory.Inventory {
	out := *inv
	out.Namespaces = maps.Clone(inv.Namespaces)
	if out.Namespaces == nil {
		out.Namespaces = map[string]*inventory.Namespace{}
	}
	out.Pods = slices.Clone(inv.Pods)
	for _, ns := range namespaces {
		if out.Namespaces[ns] == nil {
			out.Namespaces[ns] = &inventory.Namespace{Name: ns, Labels: map[string]string{namespaceNameLabel: ns}, Source: GeneratedSource}
		}
		out.Pods = append(out.Pods, &inventory.Pod{
			Pod: &corev1.Pod{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{Name: SampleWorkload, Namespace: ns, Labels: map[string]string{"app": SampleWorkload}},
			},
			Source:   GeneratedSource,
			Workload: inventory.WorkloadRef{Kind: "Pod", Name: SampleWorkload},
		})
	}
	return &out
}
