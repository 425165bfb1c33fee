package generate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// networkPolicyLayer builds one NetworkPolicy per namespace where it cannot widen anything,
// and a Refusal for every other namespace in scope.
func networkPolicyLayer(opts *Options, c *cluster) ([]*networkingv1.NetworkPolicy, []Refusal) {
	enf := opts.enforcement()
	model := policy.CompileFor(c.own, enf)
	unmodelled := unmodelledPolicies(c.inv)
	var policies []*networkingv1.NetworkPolicy
	var refusals []Refusal
	for _, ns := range c.inv.NamespaceNames() {
		if slices.Contains(opts.ExemptNamespaces, ns) || (len(opts.Namespaces) > 0 && !slices.Contains(opts.Namespaces, ns)) {
			continue
		}
		reasons := unsafeForNetworkPolicy(ns, model, c)
		if here := unmodelledIn(ns, unmodelled); len(here) > 0 {
			reasons = append(reasons, fmt.Sprintf("the input holds network policies the evaluator does not model yet (%s): it cannot tell whether a NetworkPolicy here would widen egress they restrict",
				listSome(here, 3)))
		}
		if len(reasons) > 0 {
			if slices.ContainsFunc(c.networkPoliciesIn[ns], func(np *inventory.NetworkPolicy) bool { return isGenerated(&np.Policy.ObjectMeta) }) {
				reasons = append(reasons, fmt.Sprintf("the %s policy an earlier run generated is still in place here and now widens those policies: delete it (kubectl delete networkpolicy -n %s %s)",
					PolicyName, ns, PolicyName))
			}
			refusals = append(refusals, Refusal{Layer: NetworkPolicy, Namespace: ns, Reasons: reasons, Instead: denyCapableFor(&enf)})
			continue
		}
		policies = append(policies, buildNetworkPolicy(ns, opts.Endpoints, opts.ExemptionLabel))
	}
	return policies, refusals
}

// unsafeForNetworkPolicy returns why an allow-all-except-metadata NetworkPolicy could widen
// egress in a namespace; none means it cannot.
func unsafeForNetworkPolicy(ns string, model *policy.Model, c *cluster) []string {
	var reasons []string
	for _, np := range c.networkPoliciesIn[ns] {
		if p := np.Policy; p.Name == PolicyName && !isGenerated(&p.ObjectMeta) {
			reasons = append(reasons, fmt.Sprintf("a NetworkPolicy named %s that imdsguard did not generate (no label %s=%s) exists here (%s): applying would replace it",
				PolicyName, ManagedByLabel, ManagedBy, np.Source))
		}
	}
	control := model.EgressControl(ns)
	if len(control.Isolating) > 0 {
		var isolated []string
		for _, i := range c.subjectsIn[ns] {
			if c.reportable(i) && model.Isolated(c.policySubjects[i]) {
				isolated = append(isolated, c.subjects[i].Label())
			}
		}
		what := "isolating no pod or workload in the input yet, but every pod they will select"
		if len(isolated) > 0 {
			what = "isolating " + listSome(isolated, 3)
		}
		reasons = append(reasons, fmt.Sprintf("egress policies govern this namespace (%s), %s: next to them, a NetworkPolicy allowing all egress except the metadata endpoints would widen those pods' egress, and could not take away what they already allow",
			strings.Join(control.Isolating, ", "), what))
	}
	if len(control.Baseline) > 0 {
		reasons = append(reasons, fmt.Sprintf("BaselineAdminNetworkPolicy %s restricts egress here, and any NetworkPolicy takes precedence over it: allowing all egress except the metadata endpoints would override its denials",
			strings.Join(control.Baseline, ", ")))
	}
	if len(control.ClusterBaseline) > 0 {
		reasons = append(reasons, fmt.Sprintf("Baseline tier ClusterNetworkPolicy %s restricts egress here, and any NetworkPolicy takes precedence over it: allowing all egress except the metadata endpoints would override its denials",
			strings.Join(control.ClusterBaseline, ", ")))
	}
	return reasons
}

// unmodelled is a policy of the input the evaluator does not model: a NetworkPolicy of an API
// version that is not served any more. It may restrict egress where the evaluator sees
// nothing. (Calico and Cilium policies are modelled: the engine answers for them.)
type unmodelled struct {
	// namespace is empty for skipped documents, whose namespace the loader did not read: they
	// concern every namespace.
	namespace string
	what      string
}

// unmodelledPolicies lists the input's policies the evaluator does not model.
func unmodelledPolicies(inv *inventory.Inventory) []unmodelled {
	var out []unmodelled
	for _, s := range inv.Skipped {
		if strings.Contains(s.Kind, "NetworkPolicy") {
			out = append(out, unmodelled{what: fmt.Sprintf("%s %s at %s", s.APIVersion, s.Kind, s.Source)})
		}
	}
	return out
}

// unmodelledIn names the unmodelled policies that concern a namespace.
func unmodelledIn(ns string, all []unmodelled) []string {
	var out []string
	for _, u := range all {
		if u.namespace == "" || u.namespace == ns {
			out = append(out, u.what)
		}
	}
	return out
}

// listSome renders up to n items and how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// buildNetworkPolicy is the seeds' allow-all-egress-except-metadata policy done right: both
// address families, in-cluster traffic kept with a namespaceSelector peer (CNIs such as Cilium
// do not match pod addresses with ipBlock), DNS kept on every destination, keep-reachable
// services on an excepted address kept, and pods carrying the exemption label left alone.
func buildNetworkPolicy(ns string, eps []endpoint.Endpoint, exemptionLabel string) *networkingv1.NetworkPolicy {
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dns := intstr.FromInt32(53)
	outside := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: prefixStrings(credentialPrefixes(eps, false))}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: prefixStrings(credentialPrefixes(eps, true))}},
	}}
	inCluster := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{}},
	}}
	anyDNS := networkingv1.NetworkPolicyEgressRule{Ports: []networkingv1.NetworkPolicyPort{
		{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns},
	}}
	egress := []networkingv1.NetworkPolicyEgressRule{outside, inCluster, anyDNS}
	egress = append(egress, keepReachableRules(eps)...)

	podSelector := metav1.LabelSelector{}
	if exemptionLabel != "" {
		podSelector.MatchExpressions = []metav1.LabelSelectorRequirement{
			{Key: exemptionLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{ExemptionValue}},
		}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: objectMeta(PolicyName, ns, "Allows all egress except the cloud instance metadata endpoints: "+strings.Join(endpointNames(credentials(eps)), ", ")),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: podSelector,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      egress,
		},
	}
}

// keepReachableRules allows the keep-reachable endpoints whose address the ipBlock excepts
// (because a credential endpoint shares it) on a port the DNS rule does not already cover.
func keepReachableRules(eps []endpoint.Endpoint) []networkingv1.NetworkPolicyEgressRule {
	excepted := append(credentialPrefixes(eps, false), credentialPrefixes(eps, true)...)
	var out []networkingv1.NetworkPolicyEgressRule
	for _, ep := range keepReachable(eps) {
		if !slices.Contains(excepted, ep.Prefix()) || ep.Port == 53 {
			continue
		}
		proto, port := ep.Protocol, intstr.FromInt32(ep.Port)
		out = append(out, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: ep.Prefix().String()}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &proto, Port: &port}},
		})
	}
	return out
}

// networkPolicyComment is written above each generated NetworkPolicy.
func networkPolicyComment(np *networkingv1.NetworkPolicy, exemptionLabel string) string {
	lines := []string{
		fmt.Sprintf("NetworkPolicy for namespace %s: all egress except the metadata endpoints, IPv4 and IPv6.", np.Namespace),
		fmt.Sprintf("Safe here: no NetworkPolicy or BaselineAdminNetworkPolicy restricts egress in %s today, so isolating its pods with everything but the metadata endpoints allowed widens nothing.", np.Namespace),
		"Rule 0: every address outside the cluster except the metadata endpoints.",
		"Rule 1: every pod of the cluster (an explicit peer: some CNIs, e.g. Cilium, do not match pod addresses with ipBlock).",
		"Rule 2: DNS (UDP and TCP 53) to any destination.",
	}
	if len(np.Spec.Egress) > 3 {
		lines = append(lines, "Rules 3 and on: keep-reachable services on an address excepted in rule 0.")
	}
	if exemptionLabel != "" {
		lines = append(lines, fmt.Sprintf("Pods labelled %s=%s are not selected and keep their egress.", exemptionLabel, ExemptionValue))
	}
	return strings.Join(lines, "\n")
}
