package policy_test

// A reference evaluator, written from the specification of egress to destinations outside the
// cluster, independently of the product's evaluator. It is deliberately naive: no compilation,
// no indexes, no caching; every question is answered by walking the inventory's objects again.
// Each function implements one paragraph of the specification, quoted in its comment, so that a
// reader can check it against the specification line by line. The differential test
// (differential_test.go) compares it with policy.Model on random clusters.

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// refNoRule is the rule index of a reference answer that no single rule decided.
const refNoRule = -1

// refRule names one egress rule of one policy: "namespace/name" for a NetworkPolicy, "name"
// for an AdminNetworkPolicy or BaselineAdminNetworkPolicy.
type refRule struct {
	Policy string
	Rule   int
}

// refAnswer is the reference evaluator's verdict for one pod and one endpoint.
type refAnswer struct {
	Allowed bool
	Tier    policy.Tier
	// Policy and Rule name the deciding rule of an AdminNetworkPolicy or
	// BaselineAdminNetworkPolicy; Rule is refNoRule otherwise.
	Policy string
	Rule   int
	// Isolating lists the NetworkPolicies that select the pod for egress (tier NetworkPolicy).
	Isolating []string
	// Allowing lists every NetworkPolicy rule that matches the endpoint (tier NetworkPolicy):
	// the union of rules, any of which allows the traffic.
	Allowing []refRule
	// Passed is set when an AdminNetworkPolicy Pass rule sent the decision on to the
	// NetworkPolicy tier.
	Passed bool
}

// refEvaluate is the whole specification:
//
//	"hostNetwork pods: no policy applies → allowed, tier hostNetwork."
//	"Tiers in order: AdminNetworkPolicy (ANP) → NetworkPolicy → BaselineAdminNetworkPolicy
//	(BANP) → default allow (tier Default)."
//	"ClusterNetworkPolicy (CNP): Policy tiers are evaluated in the following order: Admin tier,
//	NetworkPolicy tier, Baseline tier. Where both generations are present: ANP, CNP Admin,
//	NetworkPolicy, CNP Baseline, BANP (docs/design/evaluator.md)."
func refEvaluate(inv *inventory.Inventory, pod policy.Subject, ep endpoint.Endpoint) refAnswer {
	if pod.HostNetwork {
		return refAnswer{Allowed: true, Tier: policy.TierHostNetwork, Rule: refNoRule}
	}
	nsLabels := refNamespaceLabels(inv, pod.Namespace)
	a, decided := refAdminTier(inv, nsLabels, pod.Labels, ep)
	if decided {
		return a
	}
	passed := a.Passed
	if a, decided = refClusterTier(inv, cnpv1beta1.AdminTier, nsLabels, pod.Labels, ep); decided {
		a.Passed = passed
		return a
	}
	passed = passed || a.Passed
	if a, decided = refNetworkPolicyTier(inv, pod, ep); !decided {
		if a, decided = refClusterTier(inv, cnpv1beta1.BaselineTier, nsLabels, pod.Labels, ep); !decided {
			if a, decided = refBaselineTier(inv, nsLabels, pod.Labels, ep); !decided {
				a = refAnswer{Allowed: true, Tier: policy.TierDefault, Rule: refNoRule}
			}
		}
	}
	a.Passed = passed
	return a
}

// refNamespaceLabels returns a namespace's labels. The API server sets
// kubernetes.io/metadata.name on every namespace; the generator already puts it in Labels, and
// it is added here too so that the reference does not depend on that.
func refNamespaceLabels(inv *inventory.Inventory, name string) map[string]string {
	labels := map[string]string{"kubernetes.io/metadata.name": name}
	if ns := inv.Namespaces[name]; ns != nil {
		for k, v := range ns.Labels {
			labels[k] = v
		}
	}
	return labels
}

// ---------------------------------------------------------------------------------------------
// AdminNetworkPolicy

// refAdminTier:
//
//	"ANP: policies whose subject selects the pod […], ordered by spec.priority ascending (ties:
//	by name). Within a policy, egress rules in order; the first rule that matches decides:
//	Allow → allowed (final), Deny → denied (final), Pass → skip all remaining ANP
//	rules/policies and go to the NetworkPolicy tier."
func refAdminTier(inv *inventory.Inventory, nsLabels, podLabels map[string]string, ep endpoint.Endpoint) (refAnswer, bool) {
	var selecting []*anpv1alpha1.AdminNetworkPolicy
	for _, p := range inv.AdminNetworkPolicies {
		if refSubjectSelects(p.Policy.Spec.Subject, nsLabels, podLabels) {
			selecting = append(selecting, p.Policy)
		}
	}
	slices.SortStableFunc(selecting, func(a, b *anpv1alpha1.AdminNetworkPolicy) int {
		if a.Spec.Priority != b.Spec.Priority {
			return int(a.Spec.Priority) - int(b.Spec.Priority)
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, p := range selecting {
		for i, rule := range p.Spec.Egress {
			if !refAdminPortsMatch(rule.Ports, ep) || !refAdminPeersMatch(rule.To, ep) {
				continue
			}
			switch rule.Action {
			case anpv1alpha1.AdminNetworkPolicyRuleActionAllow:
				return refAnswer{Allowed: true, Tier: policy.TierAdmin, Policy: p.Name, Rule: i}, true
			case anpv1alpha1.AdminNetworkPolicyRuleActionDeny:
				return refAnswer{Allowed: false, Tier: policy.TierAdmin, Policy: p.Name, Rule: i}, true
			case anpv1alpha1.AdminNetworkPolicyRuleActionPass:
				return refAnswer{Passed: true}, false
			}
		}
	}
	return refAnswer{}, false
}

// refSubjectSelects:
//
//	"subject.namespaces: namespace labels match; subject.pods: namespaceSelector matches the
//	namespace labels AND podSelector matches pod labels"
func refSubjectSelects(subject anpv1alpha1.AdminNetworkPolicySubject, nsLabels, podLabels map[string]string) bool {
	switch {
	case subject.Namespaces != nil:
		return refSelectorMatches(*subject.Namespaces, nsLabels)
	case subject.Pods != nil:
		return refSelectorMatches(subject.Pods.NamespaceSelector, nsLabels) &&
			refSelectorMatches(subject.Pods.PodSelector, podLabels)
	}
	return false
}

// refAdminPortsMatch:
//
//	"its ports match (nil ports = all; portNumber{protocol default TCP, port}, portRange{protocol
//	default TCP, start..end}; namedPort never matches an external address)"
func refAdminPortsMatch(ports *[]anpv1alpha1.AdminNetworkPolicyPort, ep endpoint.Endpoint) bool {
	if ports == nil {
		return true
	}
	for _, p := range *ports {
		switch {
		case p.PortNumber != nil:
			if refProtocol(p.PortNumber.Protocol) == ep.Protocol && p.PortNumber.Port == ep.Port {
				return true
			}
		case p.PortRange != nil:
			if refProtocol(p.PortRange.Protocol) == ep.Protocol && p.PortRange.Start <= ep.Port && ep.Port <= p.PortRange.End {
				return true
			}
		case p.NamedPort != nil:
			// never matches an external address
		}
	}
	return false
}

// refAdminPeersMatch:
//
//	"AND a peer matches: only networks CIDRs can contain the address (namespaces/pods/nodes
//	peers never match an address outside the cluster); domainNames peers match the endpoint's
//	Hostnames (exact, or "*.suffix" wildcard)"
func refAdminPeersMatch(peers []anpv1alpha1.AdminNetworkPolicyEgressPeer, ep endpoint.Endpoint) bool {
	for _, peer := range peers {
		for _, cidr := range peer.Networks {
			if refCIDRContains(string(cidr), ep.Address) {
				return true
			}
		}
		for _, name := range peer.DomainNames {
			for _, host := range ep.Hostnames {
				if refDomainMatches(string(name), host) {
					return true
				}
			}
		}
	}
	return false
}

// refDomainMatches: "exact, or "*.suffix" wildcard"; the wildcard stands for one or more whole
// labels, so "*.example.com" matches "a.example.com" and "a.b.example.com" but not
// "example.com". "Exact" is DNS name equality: case-insensitive (RFC 4343), and a trailing
// dot (which the DomainName pattern allows) names the same fully-qualified name.
func refDomainMatches(pattern, host string) bool {
	pattern = strings.TrimSuffix(strings.ToLower(pattern), ".")
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return pattern == host
}

// ---------------------------------------------------------------------------------------------
// ClusterNetworkPolicy

// refClusterTier is one ClusterNetworkPolicy tier (network-policy-api v0.3.0,
// apis/v1beta1/clusternetworkpolicy_types.go):
//
//	"Policies with lower priority values have higher precedence, and are checked before
//	policies with higher priority values in the same tier" (ties: by name).
//	"a rule that appears at the top of the egress rules would take the highest precedence"
//	"Accept: Accepts the selected traffic ... No further egress ClusterNetworkPolicy or
//	NetworkPolicy rules will be processed"; "Deny: Drops the selected traffic. No further
//	ClusterNetworkPolicy or NetworkPolicy rules will be processed"; "Pass: Skips all further
//	ClusterNetworkPolicy rules in the current tier for the selected traffic, and passes
//	evaluation to the next tier."
//
// A pass is returned as not decided with Passed set.
func refClusterTier(inv *inventory.Inventory, tier cnpv1beta1.Tier, nsLabels, podLabels map[string]string, ep endpoint.Endpoint) (refAnswer, bool) {
	var selecting []*cnpv1beta1.ClusterNetworkPolicy
	for _, c := range inv.ClusterNetworkPolicies {
		if c.Policy.Spec.Tier == tier && refClusterSubjectSelects(c.Policy.Spec.Subject, nsLabels, podLabels) {
			selecting = append(selecting, c.Policy)
		}
	}
	slices.SortStableFunc(selecting, func(a, b *cnpv1beta1.ClusterNetworkPolicy) int {
		if a.Spec.Priority != b.Spec.Priority {
			return int(a.Spec.Priority) - int(b.Spec.Priority)
		}
		return strings.Compare(a.Name, b.Name)
	})
	answerTier := policy.TierClusterAdmin
	if tier == cnpv1beta1.BaselineTier {
		answerTier = policy.TierClusterBaseline
	}
	for _, p := range selecting {
		for i, rule := range p.Spec.Egress {
			if !refClusterProtocolsMatch(rule.Protocols, ep) || !refClusterPeersMatch(rule.To, ep) {
				continue
			}
			switch rule.Action {
			case cnpv1beta1.ClusterNetworkPolicyRuleActionAccept:
				return refAnswer{Allowed: true, Tier: answerTier, Policy: p.Name, Rule: i}, true
			case cnpv1beta1.ClusterNetworkPolicyRuleActionDeny:
				return refAnswer{Allowed: false, Tier: answerTier, Policy: p.Name, Rule: i}, true
			case cnpv1beta1.ClusterNetworkPolicyRuleActionPass:
				return refAnswer{Passed: true}, false
			}
		}
	}
	return refAnswer{}, false
}

// refClusterSubjectSelects: "Namespaces is used to select pods via namespace selectors";
// "Pods is used to select pods via namespace AND pod selectors".
func refClusterSubjectSelects(subject cnpv1beta1.ClusterNetworkPolicySubject, nsLabels, podLabels map[string]string) bool {
	switch {
	case subject.Namespaces != nil:
		return refSelectorMatches(*subject.Namespaces, nsLabels)
	case subject.Pods != nil:
		return refSelectorMatches(subject.Pods.NamespaceSelector, nsLabels) && refSelectorMatches(subject.Pods.PodSelector, podLabels)
	}
	return false
}

// refClusterProtocolsMatch: "Protocols ... If unspecified, protocol-specific attributes will
// not be used to match traffic"; otherwise one entry must match: tcp, udp or sctp with a
// destinationPort number or an inclusive range ("from the assigned Start value to End value");
// destinationNamedPort "selects a destination port on a pod", never an address outside the
// cluster.
func refClusterProtocolsMatch(protocols []cnpv1beta1.ClusterNetworkPolicyProtocol, ep endpoint.Endpoint) bool {
	if len(protocols) == 0 {
		return true
	}
	for _, p := range protocols {
		var proto corev1.Protocol
		var port *cnpv1beta1.Port
		switch {
		case p.TCP != nil:
			proto, port = corev1.ProtocolTCP, p.TCP.DestinationPort
		case p.UDP != nil:
			proto, port = corev1.ProtocolUDP, p.UDP.DestinationPort
		case p.SCTP != nil:
			proto, port = corev1.ProtocolSCTP, p.SCTP.DestinationPort
		default:
			continue // destinationNamedPort
		}
		if proto != ep.Protocol || port == nil {
			continue
		}
		if port.Range != nil {
			if port.Range.Start <= ep.Port && ep.Port <= port.Range.End {
				return true
			}
		} else if port.Number == ep.Port {
			return true
		}
	}
	return false
}

// refClusterPeersMatch: "If any element matches the destination of outgoing traffic then the
// specified action is applied": only networks (by CIDR, per address family) and domainNames (the
// endpoint's hostnames) can match an address outside the cluster.
func refClusterPeersMatch(peers []cnpv1beta1.ClusterNetworkPolicyEgressPeer, ep endpoint.Endpoint) bool {
	for _, peer := range peers {
		for _, cidr := range peer.Networks {
			if refCIDRContains(string(cidr), ep.Address) {
				return true
			}
		}
		for _, name := range peer.DomainNames {
			for _, host := range ep.Hostnames {
				if refDomainMatches(string(name), host) {
					return true
				}
			}
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// BaselineAdminNetworkPolicy

// refBaselineTier:
//
//	"BANP (named "default"): if its subject selects the pod, rules in order, first match
//	decides Allow/Deny (same matching as ANP). No match → default allow."
func refBaselineTier(inv *inventory.Inventory, nsLabels, podLabels map[string]string, ep endpoint.Endpoint) (refAnswer, bool) {
	for _, p := range inv.BaselineAdminNetworkPolicies {
		if p.Policy.Name != "default" || !refSubjectSelects(p.Policy.Spec.Subject, nsLabels, podLabels) {
			continue
		}
		for i, rule := range p.Policy.Spec.Egress {
			peers := make([]anpv1alpha1.AdminNetworkPolicyEgressPeer, len(rule.To))
			for j, peer := range rule.To {
				peers[j] = anpv1alpha1.AdminNetworkPolicyEgressPeer{
					Namespaces: peer.Namespaces, Pods: peer.Pods, Nodes: peer.Nodes, Networks: peer.Networks,
				}
			}
			if !refAdminPortsMatch(rule.Ports, ep) || !refAdminPeersMatch(peers, ep) {
				continue
			}
			allowed := rule.Action == anpv1alpha1.BaselineAdminNetworkPolicyRuleActionAllow
			return refAnswer{Allowed: allowed, Tier: policy.TierBaseline, Policy: p.Policy.Name, Rule: i}, true
		}
	}
	return refAnswer{}, false
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicy

// refNetworkPolicyTier:
//
//	"a pod is egress-isolated if any NetworkPolicy in ITS namespace selects it (podSelector;
//	empty selects all) and that policy's effective policyTypes include Egress. […] If
//	isolated: allowed iff some egress rule of some selecting egress policy matches (union); else
//	denied. If not isolated: no decision, go to BANP."
func refNetworkPolicyTier(inv *inventory.Inventory, pod policy.Subject, ep endpoint.Endpoint) (refAnswer, bool) {
	a := refAnswer{Tier: policy.TierNetworkPolicy, Rule: refNoRule}
	for _, p := range refEgressPolicies(inv, pod) {
		name := p.Namespace + "/" + p.Name
		a.Isolating = append(a.Isolating, name)
		for i, rule := range p.Spec.Egress {
			if refNetpolPortsMatch(rule.Ports, ep) && refNetpolPeersMatch(rule.To, ep) {
				a.Allowing = append(a.Allowing, refRule{Policy: name, Rule: i})
			}
		}
	}
	if len(a.Isolating) == 0 {
		return refAnswer{}, false
	}
	a.Allowed = len(a.Allowing) > 0
	return a, true
}

// refEgressPolicies returns the policies that egress-isolate a pod:
//
//	"a pod is egress-isolated if any NetworkPolicy in ITS namespace selects it (podSelector;
//	empty selects all) and that policy's effective policyTypes include Egress."
func refEgressPolicies(inv *inventory.Inventory, pod policy.Subject) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, np := range inv.NetworkPolicies {
		p := np.Policy
		if p.Namespace == pod.Namespace && refSelectorMatches(p.Spec.PodSelector, pod.Labels) && refEffectiveEgress(p.Spec) {
			out = append(out, p)
		}
	}
	return out
}

// refEffectiveEgress:
//
//	"Effective policyTypes: if spec.policyTypes is empty → Ingress, plus Egress only if
//	spec.egress has at least one rule; otherwise as listed."
func refEffectiveEgress(spec networkingv1.NetworkPolicySpec) bool {
	if len(spec.PolicyTypes) == 0 {
		return len(spec.Egress) > 0
	}
	return slices.Contains(spec.PolicyTypes, networkingv1.PolicyTypeEgress)
}

// refNetpolPortsMatch:
//
//	"ports match (empty list = all ports/protocols; each entry protocol default TCP, port nil =
//	all ports of that protocol, numeric port with optional endPort range inclusive, a named port
//	never matches an external address)"
func refNetpolPortsMatch(ports []networkingv1.NetworkPolicyPort, ep endpoint.Endpoint) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != ep.Protocol {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			// a named port never matches an external address
		default:
			last := p.Port.IntVal
			if p.EndPort != nil {
				last = *p.EndPort
			}
			if p.Port.IntVal <= ep.Port && ep.Port <= last {
				return true
			}
		}
	}
	return false
}

// refNetpolPeersMatch:
//
//	"AND a peer matches (empty `to` = all destinations; ipBlock: cidr contains the address and
//	no `except` entry contains it; podSelector/namespaceSelector peers never match an external
//	address)"
func refNetpolPeersMatch(peers []networkingv1.NetworkPolicyPeer, ep endpoint.Endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, peer := range peers {
		if peer.IPBlock == nil {
			continue // podSelector / namespaceSelector
		}
		if !refCIDRContains(peer.IPBlock.CIDR, ep.Address) {
			continue
		}
		excluded := false
		for _, except := range peer.IPBlock.Except {
			if refCIDRContains(except, ep.Address) {
				excluded = true
			}
		}
		if !excluded {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// Shared

// refCIDRContains: "IPv4 and IPv6 are separate: 0.0.0.0/0 never contains an IPv6 address and
// vice versa." The comparison is done bit by bit on the address bytes rather than with
// netip.Prefix.Contains, to stay independent of the library the product uses.
func refCIDRContains(cidr string, addr netip.Addr) bool {
	ip, bitsText, ok := strings.Cut(cidr, "/")
	if !ok {
		return false
	}
	network, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	bits := 0
	for _, c := range bitsText {
		if c < '0' || c > '9' {
			return false
		}
		bits = bits*10 + int(c-'0')
	}
	if network.Is4() != addr.Is4() || bits > addr.BitLen() {
		return false
	}
	a, n := addr.AsSlice(), network.AsSlice()
	for i := 0; i < bits; i++ {
		mask := byte(0x80) >> (i % 8)
		if a[i/8]&mask != n[i/8]&mask {
			return false
		}
	}
	return true
}

// refProtocol: "protocol default TCP".
func refProtocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// refSelectorMatches: "Kubernetes metav1.LabelSelector semantics (matchLabels AND
// matchExpressions with In, NotIn, Exists, DoesNotExist)". An empty selector selects
// everything.
func refSelectorMatches(sel metav1.LabelSelector, labels map[string]string) bool {
	for k, v := range sel.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		got, has := labels[e.Key]
		var ok bool
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			ok = has && slices.Contains(e.Values, got)
		case metav1.LabelSelectorOpNotIn:
			ok = !has || !slices.Contains(e.Values, got)
		case metav1.LabelSelectorOpExists:
			ok = has
		case metav1.LabelSelectorOpDoesNotExist:
			ok = !has
		}
		if !ok {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------------------------
// Tests of the reference itself, against hand-computed answers, so that a differential
// agreement means something.

func TestReferenceSelector(t *testing.T) {
	labels := map[string]string{"app": "web", "env": "prod"}
	expr := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	cases := []struct {
		name string
		sel  metav1.LabelSelector
		want bool
	}{
		{"empty", metav1.LabelSelector{}, true},
		{"matchLabels", metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, true},
		{"matchLabels wrong value", metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, false},
		{"matchLabels missing key", metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}, false},
		{"In", expr("env", metav1.LabelSelectorOpIn, "dev", "prod"), true},
		{"In absent", expr("team", metav1.LabelSelectorOpIn, "a"), false},
		{"NotIn", expr("env", metav1.LabelSelectorOpNotIn, "prod"), false},
		{"NotIn absent", expr("team", metav1.LabelSelectorOpNotIn, "a"), true},
		{"Exists", expr("app", metav1.LabelSelectorOpExists), true},
		{"Exists absent", expr("team", metav1.LabelSelectorOpExists), false},
		{"DoesNotExist", expr("app", metav1.LabelSelectorOpDoesNotExist), false},
		{"DoesNotExist absent", expr("team", metav1.LabelSelectorOpDoesNotExist), true},
		{"AND", metav1.LabelSelector{
			MatchLabels:      map[string]string{"app": "web"},
			MatchExpressions: expr("env", metav1.LabelSelectorOpNotIn, "prod").MatchExpressions,
		}, false},
	}
	for _, c := range cases {
		if got := refSelectorMatches(c.sel, labels); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestReferenceCIDR(t *testing.T) {
	cases := []struct {
		cidr, addr string
		want       bool
	}{
		{"169.254.169.254/32", "169.254.169.254", true},
		{"169.254.169.254/32", "169.254.169.253", false},
		{"169.254.0.0/16", "169.254.170.23", true},
		{"169.254.0.0/16", "168.63.129.16", false},
		{"0.0.0.0/0", "169.254.169.254", true},
		{"0.0.0.0/0", "fd00:ec2::254", false},
		{"::/0", "169.254.169.254", false},
		{"::/0", "fd00:ec2::254", true},
		{"fd00:ec2::/64", "fd00:ec2::23", true},
		{"fd00:ec2::254/128", "fd00:ec2::23", false},
		{"168.63.129.0/25", "168.63.129.16", true},
		{"168.63.129.128/25", "168.63.129.16", false},
	}
	for _, c := range cases {
		if got := refCIDRContains(c.cidr, netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("%s contains %s: got %v, want %v", c.cidr, c.addr, got, c.want)
		}
	}
}

func TestReferenceDomain(t *testing.T) {
	cases := []struct {
		pattern, host string
		want          bool
	}{
		{"metadata.google.internal", "metadata.google.internal", true},
		{"google.internal", "metadata.google.internal", false},
		{"*.google.internal", "metadata.google.internal", true},
		{"*.internal", "metadata.google.internal", true},
		{"*.google.internal", "google.internal", false},
		{"*.google.internal", "xgoogle.internal", false},
		{"*.oogle.internal", "metadata.google.internal", false},
		{"Metadata.Google.Internal", "metadata.google.internal", true},
		{"metadata.google.internal.", "metadata.google.internal", true},
		{"*.google.internal.", "metadata.google.internal", true},
	}
	for _, c := range cases {
		if got := refDomainMatches(c.pattern, c.host); got != c.want {
			t.Errorf("%s matches %s: got %v, want %v", c.pattern, c.host, got, c.want)
		}
	}
}

// TestReferenceTiers checks the reference on a small hand-written cluster whose answers were
// worked out from the specification by hand.
func TestReferenceTiers(t *testing.T) {
	udp := corev1.ProtocolUDP
	port := func(p int32) *intstr.IntOrString { v := intstr.FromInt32(p); return &v }
	inv := &inventory.Inventory{
		Namespaces: map[string]*inventory.Namespace{
			"a": {Name: "a", Labels: map[string]string{"kubernetes.io/metadata.name": "a", "env": "prod"}},
			"b": {Name: "b", Labels: map[string]string{"kubernetes.io/metadata.name": "b"}},
			"c": {Name: "c", Labels: map[string]string{"kubernetes.io/metadata.name": "c"}},
		},
		NetworkPolicies: []*inventory.NetworkPolicy{
			// b: every pod isolated; DNS anywhere, and IPv4 except the link-local range.
			{Policy: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "egress"},
				Spec: networkingv1.NetworkPolicySpec{
					Egress: []networkingv1.NetworkPolicyEgressRule{
						{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: port(53)}}},
						{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"169.254.0.0/16"}}}}},
					},
				},
			}},
			// c: policyTypes omitted and no egress rules: ingress only, not isolated.
			{Policy: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "ingress-only"},
			}},
			// c: app=locked pods isolated with no rules: denied everything.
			{Policy: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "deny"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "locked"}},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				},
			}},
		},
		AdminNetworkPolicies: []*inventory.AdminNetworkPolicy{
			// Priority 20: deny IMDS to env=prod namespaces.
			{Policy: &anpv1alpha1.AdminNetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "z-deny-imds"},
				Spec: anpv1alpha1.AdminNetworkPolicySpec{
					Priority: 20,
					Subject:  anpv1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
					Egress: []anpv1alpha1.AdminNetworkPolicyEgressRule{
						{Action: "Deny", To: []anpv1alpha1.AdminNetworkPolicyEgressPeer{{Networks: []anpv1alpha1.CIDR{"169.254.169.254/32"}}}},
					},
				},
			}},
			// Priority 10: app=agent pods pass TCP/80 to the NetworkPolicy tier.
			{Policy: &anpv1alpha1.AdminNetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "a-pass-agent"},
				Spec: anpv1alpha1.AdminNetworkPolicySpec{
					Priority: 10,
					Subject: anpv1alpha1.AdminNetworkPolicySubject{Pods: &anpv1alpha1.NamespacedPod{
						PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
					}},
					Egress: []anpv1alpha1.AdminNetworkPolicyEgressRule{
						{Action: "Pass", To: []anpv1alpha1.AdminNetworkPolicyEgressPeer{{Namespaces: &metav1.LabelSelector{}}}},
						{Action: "Pass", To: []anpv1alpha1.AdminNetworkPolicyEgressPeer{{Networks: []anpv1alpha1.CIDR{"0.0.0.0/0"}}}},
					},
				},
			}},
		},
		BaselineAdminNetworkPolicies: []*inventory.BaselineAdminNetworkPolicy{
			{Policy: &anpv1alpha1.BaselineAdminNetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "default"},
				Spec: anpv1alpha1.BaselineAdminNetworkPolicySpec{
					Subject: anpv1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
					Egress: []anpv1alpha1.BaselineAdminNetworkPolicyEgressRule{
						{Action: "Allow", Ports: &[]anpv1alpha1.AdminNetworkPolicyPort{{PortRange: &anpv1alpha1.PortRange{Start: 53, End: 80}}},
							To: []anpv1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Networks: []anpv1alpha1.CIDR{"::/0"}}}},
						{Action: "Deny", To: []anpv1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Networks: []anpv1alpha1.CIDR{"169.254.0.0/16", "fd00:ec2::/64"}}}},
					},
				},
			}},
		},
	}
	ep := func(s string) endpoint.Endpoint {
		e, err := endpoint.ParseCustom(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	pod := func(ns string, labels map[string]string) policy.Subject {
		return policy.Subject{Namespace: ns, Labels: labels}
	}
	cases := []struct {
		name string
		pod  policy.Subject
		ep   endpoint.Endpoint
		want refAnswer
	}{
		{"hostNetwork", policy.Subject{Namespace: "a", HostNetwork: true}, ep("169.254.169.254"),
			refAnswer{Allowed: true, Tier: policy.TierHostNetwork, Rule: refNoRule}},
		{"ANP deny", pod("a", nil), ep("169.254.169.254"),
			refAnswer{Allowed: false, Tier: policy.TierAdmin, Policy: "z-deny-imds", Rule: 0}},
		{"ANP no match, BANP deny", pod("a", nil), ep("169.254.170.2"),
			refAnswer{Allowed: false, Tier: policy.TierBaseline, Policy: "default", Rule: 1}},
		{"ANP pass beats later deny, BANP deny", pod("a", map[string]string{"app": "agent"}), ep("169.254.169.254"),
			refAnswer{Allowed: false, Tier: policy.TierBaseline, Policy: "default", Rule: 1, Passed: true}},
		{"ANP pass without ports covers every port", pod("a", map[string]string{"app": "agent"}), ep("169.254.169.254:9/UDP"),
			refAnswer{Allowed: false, Tier: policy.TierBaseline, Policy: "default", Rule: 1, Passed: true}},
		{"ANP pass does not cover IPv6", pod("a", map[string]string{"app": "agent"}), ep("[fd00:ec2::254]:80"),
			refAnswer{Allowed: true, Tier: policy.TierBaseline, Policy: "default", Rule: 0}},
		{"BANP allow IPv6 in range", pod("a", nil), ep("[fd00:ec2::254]:80"),
			refAnswer{Allowed: true, Tier: policy.TierBaseline, Policy: "default", Rule: 0}},
		{"BANP range is TCP by default", pod("a", nil), ep("[fd00:ec2::254]:53/UDP"),
			refAnswer{Allowed: false, Tier: policy.TierBaseline, Policy: "default", Rule: 1}},
		{"BANP no match: default", pod("a", nil), ep("[fd00::1]:443"),
			refAnswer{Allowed: true, Tier: policy.TierDefault, Rule: refNoRule}},
		{"NP except", pod("b", nil), ep("169.254.169.254"),
			refAnswer{Allowed: false, Tier: policy.TierNetworkPolicy, Rule: refNoRule, Isolating: []string{"b/egress"}}},
		{"NP DNS rule with empty to", pod("b", nil), ep("169.254.169.254:53/UDP"),
			refAnswer{Allowed: true, Tier: policy.TierNetworkPolicy, Rule: refNoRule, Isolating: []string{"b/egress"},
				Allowing: []refRule{{"b/egress", 0}}}},
		{"NP union", pod("b", nil), ep("168.63.129.16:53/UDP"),
			refAnswer{Allowed: true, Tier: policy.TierNetworkPolicy, Rule: refNoRule, Isolating: []string{"b/egress"},
				Allowing: []refRule{{"b/egress", 0}, {"b/egress", 1}}}},
		{"NP 0.0.0.0/0 says nothing of IPv6", pod("b", nil), ep("[fd00:ec2::254]:80"),
			refAnswer{Allowed: false, Tier: policy.TierNetworkPolicy, Rule: refNoRule, Isolating: []string{"b/egress"}}},
		{"NP ingress-only does not isolate", pod("c", nil), ep("168.63.129.16"),
			refAnswer{Allowed: true, Tier: policy.TierDefault, Rule: refNoRule}},
		{"NP deny all", pod("c", map[string]string{"app": "locked"}), ep("168.63.129.16"),
			refAnswer{Allowed: false, Tier: policy.TierNetworkPolicy, Rule: refNoRule, Isolating: []string{"c/deny"}}},
	}
	for _, c := range cases {
		got := refEvaluate(inv, c.pod, c.ep)
		if !refAnswerEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func refAnswerEqual(a, b refAnswer) bool {
	return a.Allowed == b.Allowed && a.Tier == b.Tier && a.Policy == b.Policy && a.Rule == b.Rule && a.Passed == b.Passed &&
		slices.Equal(a.Isolating, b.Isolating) && slices.Equal(a.Allowing, b.Allowing)
}

// TestReferenceClusterNetworkPolicy checks the reference's CNP tiers against hand-computed
// answers.
func TestReferenceClusterNetworkPolicy(t *testing.T) {
	nets := func(cidrs ...cnpv1beta1.CIDR) []cnpv1beta1.ClusterNetworkPolicyEgressPeer {
		return []cnpv1beta1.ClusterNetworkPolicyEgressPeer{{Networks: cidrs}}
	}
	all := cnpv1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}
	cnp := func(name string, tier cnpv1beta1.Tier, priority int32, rules ...cnpv1beta1.ClusterNetworkPolicyEgressRule) *inventory.ClusterNetworkPolicy {
		return &inventory.ClusterNetworkPolicy{Policy: &cnpv1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: cnpv1beta1.ClusterNetworkPolicySpec{Tier: tier, Priority: priority, Subject: all, Egress: rules}}}
	}
	udp53 := []cnpv1beta1.ClusterNetworkPolicyProtocol{{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &cnpv1beta1.Port{Number: 53}}}}
	inv := &inventory.Inventory{
		Namespaces: map[string]*inventory.Namespace{"a": {Name: "a", Labels: map[string]string{"kubernetes.io/metadata.name": "a"}}},
		ClusterNetworkPolicies: []*inventory.ClusterNetworkPolicy{
			// Admin 20: deny IMDS. Admin 10: pass IMDS on TCP 80, deny UDP 53 to IMDS.
			cnp("deny", cnpv1beta1.AdminTier, 20, cnpv1beta1.ClusterNetworkPolicyEgressRule{Action: "Deny", To: nets("169.254.169.254/32")}),
			cnp("pass", cnpv1beta1.AdminTier, 10,
				cnpv1beta1.ClusterNetworkPolicyEgressRule{Action: "Deny", To: nets("169.254.169.254/32"), Protocols: udp53},
				cnpv1beta1.ClusterNetworkPolicyEgressRule{Action: "Pass", To: nets("169.254.169.254/32")}),
			// Baseline 0: accept everything IPv4.
			cnp("base", cnpv1beta1.BaselineTier, 0, cnpv1beta1.ClusterNetworkPolicyEgressRule{Action: "Accept", To: nets("0.0.0.0/0")}),
		},
	}
	ep := func(s string) endpoint.Endpoint {
		e, err := endpoint.ParseCustom(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	pod := policy.Subject{Namespace: "a"}
	cases := []struct {
		name string
		ep   endpoint.Endpoint
		want refAnswer
	}{
		{"priority 10 first: its Pass skips the Admin tier's deny at 20; Baseline accepts", ep("169.254.169.254:80/TCP"),
			refAnswer{Allowed: true, Tier: policy.TierClusterBaseline, Policy: "base", Rule: 0, Passed: true}},
		{"rules in order: the UDP 53 Deny before the Pass", ep("169.254.169.254:53/UDP"),
			refAnswer{Tier: policy.TierClusterAdmin, Policy: "pass", Rule: 0}},
		{"no Admin rule matches another address; Baseline accepts IPv4", ep("10.1.2.3:80/TCP"),
			refAnswer{Allowed: true, Tier: policy.TierClusterBaseline, Policy: "base", Rule: 0}},
		{"0.0.0.0/0 does not hold IPv6: the default allows", ep("[fd00:ec2::254]:80/TCP"),
			refAnswer{Allowed: true, Tier: policy.TierDefault, Rule: refNoRule}},
	}
	for _, c := range cases {
		if got := refEvaluate(inv, pod, c.ep); !refAnswerEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
