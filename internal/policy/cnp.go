package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// ClusterNetworkPolicy (policy.networking.k8s.io v1alpha2 and v1beta1, network-policy-api
// v0.2.0 and later) merges AdminNetworkPolicy and BaselineAdminNetworkPolicy into one kind with a
// tier field. Its semantics are those of the admin policies (the spec's Tier doc comment: "Admin
// tier, NetworkPolicy tier, Baseline tier"; Accept and Deny are final, Pass "Skips all further
// ClusterNetworkPolicy rules in the current tier ... and passes evaluation to the next tier"), so a
// CNP is compiled into an adminPolicy and evaluated by the same code, in two tiers of its own:
//
//	AdminNetworkPolicy           (v1alpha1)
//	ClusterNetworkPolicy Admin   by priority, lower first
//	NetworkPolicy
//	ClusterNetworkPolicy Baseline by priority, lower first
//	BaselineAdminNetworkPolicy   (v1alpha1)
//
// A cluster runs one generation of the API; where an input holds both, the older kinds wrap the
// newer ones: no implementation documents the mix, and this order keeps each kind's own tier
// order. A Pass in an AdminNetworkPolicy ends that tier only, so the CNP Admin tier is still
// consulted.

// isClusterTier reports whether t is a ClusterNetworkPolicy tier.
func isClusterTier(t Tier) bool { return t == TierClusterAdmin || t == TierClusterBaseline }

// plainTiers returns the tiers evaluated without a Calico or Cilium engine. The
// ClusterNetworkPolicy tiers are present only when the input holds ClusterNetworkPolicies, so
// traces of inputs without them are unchanged.
func plainTiers(withCNP bool) []tier {
	if !withCNP {
		return []tier{adminTier{TierAdmin}, npTier{}, adminTier{TierBaseline}}
	}
	return []tier{adminTier{TierAdmin}, adminTier{TierClusterAdmin}, npTier{}, adminTier{TierClusterBaseline}, adminTier{TierBaseline}}
}

// Limits and patterns of the ClusterNetworkPolicy CRD (network-policy-api v0.3.0,
// apis/v1beta1/clusternetworkpolicy_types.go and config/crd/*/
// policy.networking.k8s.io_clusternetworkpolicies.yaml).
const (
	cnpMaxRules      = 25  // +kubebuilder:validation:MaxItems=25 on spec.ingress and spec.egress
	cnpMaxPeers      = 25  // MaxItems=25 on to and from
	cnpMaxItems      = 25  // MaxItems=25 on networks, domainNames and protocols
	cnpMaxRuleName   = 100 // MaxLength=100 on a rule's name
	cnpMaxCIDRLength = 43  // MaxLength=43 on CIDR
	cnpMaxPriority   = 1000
)

// TieAdminAndClusterAdmin is the PriorityTie.Kind of an AdminNetworkPolicy (Policies[0]) and an
// Admin tier ClusterNetworkPolicy (Policies[1]) with the same priority, which Calico's kube-admin
// tier orders together.
const TieAdminAndClusterAdmin = "AdminNetworkPolicy and ClusterNetworkPolicy (Calico tier kube-admin)"

// kindCNP is the kind of ClusterNetworkPolicy in object references and reasons.
const kindCNP = string(KindClusterNetworkPolicy)

// cnpDomainName is the DomainName pattern of the CRD (v0.2.1 and later).
var cnpDomainName = regexp.MustCompile(`^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$`)

// compileCNP validates a ClusterNetworkPolicy as the API server validates it with the CRD's
// schema and CEL rules (errs), and compiles its egress rules. Ingress rules are validated only
// (an object with an invalid ingress rule cannot exist). undefined lists what the API server
// stores but the API leaves undefined.
func compileCNP(in *cnpv1beta1.ClusterNetworkPolicy) (p *adminPolicy, errs, undefined fieldErrors) {
	p = &adminPolicy{kind: kindCNP, name: in.Name, priority: in.Spec.Priority}
	switch in.Spec.Tier {
	case cnpv1beta1.AdminTier:
		p.tier = TierClusterAdmin
	case cnpv1beta1.BaselineTier:
		p.tier = TierClusterBaseline
	default:
		errs.add("spec.tier", "unknown tier %q (want Admin or Baseline)", in.Spec.Tier)
	}
	if in.Spec.Priority < 0 || in.Spec.Priority > cnpMaxPriority {
		errs.add("spec.priority", "priority %d is out of range 0-%d", in.Spec.Priority, cnpMaxPriority)
	}
	// The CRD's schema does not check label selectors (an operator is any string), so an
	// invalid one can exist; what an implementation selects with it is not defined.
	var subjectErrs fieldErrors
	p.subject = compileSubject(cnpSubject(in.Spec.Subject), &subjectErrs)
	for _, e := range subjectErrs {
		if strings.HasPrefix(e.message, "invalid selector") {
			undefined = append(undefined, e)
		} else {
			errs = append(errs, e)
		}
	}
	if len(in.Spec.Egress) > cnpMaxRules {
		errs.add("spec.egress", "%d rules; at most %d are allowed", len(in.Spec.Egress), cnpMaxRules)
	}
	if len(in.Spec.Ingress) > cnpMaxRules {
		errs.add("spec.ingress", "%d rules; at most %d are allowed", len(in.Spec.Ingress), cnpMaxRules)
	}
	for i := range in.Spec.Egress {
		p.rules = append(p.rules, compileCNPEgressRule(&in.Spec.Egress[i], fmt.Sprintf("spec.egress[%d]", i), &errs, &undefined))
	}
	for i := range in.Spec.Ingress {
		validateCNPIngressRule(&in.Spec.Ingress[i], fmt.Sprintf("spec.ingress[%d]", i), &errs, &undefined)
	}
	return p, errs, undefined
}

// cnpSubject converts a CNP subject to the admin policies' subject type: the fields are the
// same.
func cnpSubject(s cnpv1beta1.ClusterNetworkPolicySubject) anpv1alpha1.AdminNetworkPolicySubject {
	out := anpv1alpha1.AdminNetworkPolicySubject{Namespaces: s.Namespaces}
	if s.Pods != nil {
		out.Pods = &anpv1alpha1.NamespacedPod{NamespaceSelector: s.Pods.NamespaceSelector, PodSelector: s.Pods.PodSelector}
	}
	return out
}

// cnpAction maps a CNP action to the evaluator's: Accept is Allow.
func cnpAction(a cnpv1beta1.ClusterNetworkPolicyRuleAction, field string, errs *fieldErrors) Action {
	switch a {
	case cnpv1beta1.ClusterNetworkPolicyRuleActionAccept:
		return ActionAllow
	case cnpv1beta1.ClusterNetworkPolicyRuleActionDeny:
		return ActionDeny
	case cnpv1beta1.ClusterNetworkPolicyRuleActionPass:
		return actionPass
	}
	errs.add(field, "unknown action %q (want Accept, Deny or Pass)", a)
	return ""
}

func validateCNPRuleName(name, field string, errs *fieldErrors) {
	if len(name) > cnpMaxRuleName {
		errs.add(field, "rule name is %d characters; at most %d are allowed", len(name), cnpMaxRuleName)
	}
}

func compileCNPEgressRule(r *cnpv1beta1.ClusterNetworkPolicyEgressRule, field string, errs, undefined *fieldErrors) adminRule {
	validateCNPRuleName(r.Name, field+".name", errs)
	rule := adminRule{name: r.Name, action: cnpAction(r.Action, field+".action", errs)}
	rule.ports = compileCNPProtocols(r.Protocols, field+".protocols", errs)
	switch {
	case len(r.To) == 0:
		errs.add(field+".to", "at least one peer is required")
	case len(r.To) > cnpMaxPeers:
		errs.add(field+".to", "%d peers; at most %d are allowed", len(r.To), cnpMaxPeers)
	}
	outside := false // a networks, nodes or domainNames peer: no named ports there
	for j := range r.To {
		peer := &r.To[j]
		pf := fmt.Sprintf("%s.to[%d]", field, j)
		set := 0
		if peer.Namespaces != nil {
			set++
			validateSelector(peer.Namespaces, pf+".namespaces", undefined)
			rule.clusterPeers++
		}
		if peer.Pods != nil {
			set++
			validateSelector(&peer.Pods.NamespaceSelector, pf+".pods.namespaceSelector", undefined)
			validateSelector(&peer.Pods.PodSelector, pf+".pods.podSelector", undefined)
			rule.clusterPeers++
		}
		if peer.Nodes != nil {
			set++
			outside = true
			validateSelector(peer.Nodes, pf+".nodes", undefined)
			rule.clusterPeers++
		}
		if peer.Networks != nil {
			set++
			outside = true
			rule.cidrs = append(rule.cidrs, compileCNPNetworks(peer.Networks, pf+".networks", errs)...)
		}
		if peer.DomainNames != nil {
			set++
			outside = true
			compileCNPDomainNames(&rule, peer.DomainNames, r.Action, pf+".domainNames", errs, undefined)
		}
		if set != 1 {
			errs.add(pf, "exactly one of namespaces, pods, nodes, networks or domainNames must be set")
		}
	}
	if outside && rule.ports.hasNamed() {
		// The egress rule's CEL rule (experimental channel): "networks/nodes/domainNames peer
		// cannot be set with namedPorts since there are no namedPorts for
		// networks/nodes/domainNames".
		errs.add(field, "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames")
	}
	return rule
}

// compileCNPNetworks validates networks with the CRD's rules: 1 to 25 entries, each at most 43
// characters and accepted by the CEL rule `isCIDR(self) && cidr(self) == cidr(self).masked()`
// (canonical since v0.2.1; the CEL cidr library refuses IPv4-mapped IPv6,
// k8s.io/apiserver/pkg/cel/library/cidr.go).
func compileCNPNetworks(nets []cnpv1beta1.CIDR, field string, errs *fieldErrors) []cidrPeer {
	switch {
	case len(nets) == 0:
		errs.add(field, "at least one CIDR is required")
	case len(nets) > cnpMaxItems:
		errs.add(field, "%d CIDRs; at most %d are allowed", len(nets), cnpMaxItems)
	}
	var out []cidrPeer
	for k, n := range nets {
		f := fmt.Sprintf("%s[%d]", field, k)
		if slices.Contains(nets[:k], n) {
			errs.add(f, "duplicate value %q (networks is a set: +listType=set)", n)
			continue
		}
		if len(n) > cnpMaxCIDRLength {
			errs.add(f, "%q is longer than %d characters", n, cnpMaxCIDRLength)
			continue
		}
		p, err := netip.ParsePrefix(string(n))
		switch {
		case err != nil:
			errs.add(f, "invalid CIDR %q: %v", n, err)
			continue
		case p.Addr().Is4In6():
			errs.add(f, "invalid CIDR %q: IPv4-mapped IPv6 prefixes are not allowed", n)
			continue
		case p != p.Masked():
			errs.add(f, "invalid CIDR %q: host bits are set (the canonical form is %s)", n, p.Masked())
			continue
		}
		out = append(out, cidrPeer{prefix: p, label: "networks " + p.String()})
	}
	return out
}

// compileCNPDomainNames validates domainNames: 1 to 25 names matching the CRD's pattern, in
// Accept rules only ("DomainNames is only supported for Accept rules"). The CRD has no rule for
// the last, so a Deny or Pass rule with domainNames can exist; what an implementation does with
// it is not defined, and it goes to undefined.
func compileCNPDomainNames(rule *adminRule, names []cnpv1beta1.DomainName, action cnpv1beta1.ClusterNetworkPolicyRuleAction, field string, errs, undefined *fieldErrors) {
	switch {
	case len(names) == 0:
		errs.add(field, "at least one domain name is required")
	case len(names) > cnpMaxItems:
		errs.add(field, "%d domain names; at most %d are allowed", len(names), cnpMaxItems)
	}
	if action != cnpv1beta1.ClusterNetworkPolicyRuleActionAccept {
		undefined.add(field, "domainNames is only supported for Accept rules (the API's documentation; the CRD does not enforce it, so what an implementation does with this rule is not defined)")
	}
	for k, d := range names {
		if slices.Contains(names[:k], d) {
			errs.add(fmt.Sprintf("%s[%d]", field, k), "duplicate value %q (domainNames is a set: +listType=set)", d)
			continue
		}
		if !cnpDomainName.MatchString(string(d)) {
			errs.add(fmt.Sprintf("%s[%d]", field, k), "%q is not a domain name (an optional leading \"*.\" and DNS labels)", d)
			continue
		}
		rule.domains = append(rule.domains, string(d))
	}
}

// compileCNPProtocols compiles a rule's protocols. None means every port of every protocol
// ("If unspecified, protocol-specific attributes will not be used to match traffic"). Each entry
// holds exactly one of tcp, udp, sctp or destinationNamedPort; tcp, udp and sctp need a
// destinationPort (MinProperties=1) holding exactly one of number (1-65535) or range
// (start < end).
func compileCNPProtocols(in []cnpv1beta1.ClusterNetworkPolicyProtocol, field string, errs *fieldErrors) ports {
	if in == nil {
		return ports{all: true}
	}
	switch {
	case len(in) == 0:
		errs.add(field, "protocols must not be empty when set")
	case len(in) > cnpMaxItems:
		errs.add(field, "%d protocols; at most %d are allowed", len(in), cnpMaxItems)
	}
	var out ports
	for i := range in {
		p := &in[i]
		pf := fmt.Sprintf("%s[%d]", field, i)
		set := 0
		var protocol corev1.Protocol
		var port *cnpv1beta1.Port
		var sub string
		if p.TCP != nil {
			set, protocol, port, sub = set+1, corev1.ProtocolTCP, p.TCP.DestinationPort, "tcp"
		}
		if p.UDP != nil {
			set, protocol, port, sub = set+1, corev1.ProtocolUDP, p.UDP.DestinationPort, "udp"
		}
		if p.SCTP != nil {
			set, protocol, port, sub = set+1, corev1.ProtocolSCTP, p.SCTP.DestinationPort, "sctp"
		}
		if p.DestinationNamedPort != "" {
			set++
		}
		if set != 1 {
			errs.add(pf, "exactly one of tcp, udp, sctp or destinationNamedPort must be set")
			continue
		}
		if p.DestinationNamedPort != "" {
			// A named port names a container port of a pod: it never matches an address outside
			// the cluster.
			out.ranges = append(out.ranges, portRange{named: p.DestinationNamedPort})
			continue
		}
		pf += "." + sub
		if port == nil {
			errs.add(pf, "destinationPort is required")
			continue
		}
		pf += ".destinationPort"
		switch {
		case port.Number != 0 && port.Range != nil, port.Number == 0 && port.Range == nil:
			errs.add(pf, "exactly one of number or range must be set")
		case port.Number != 0:
			if !validPort(port.Number) {
				errs.add(pf+".number", "port %d is out of range 1-65535", port.Number)
				continue
			}
			out.ranges = append(out.ranges, portRange{protocol: protocol, start: port.Number, end: port.Number})
		default:
			r := port.Range
			if !validPort(r.Start) || !validPort(r.End) || r.Start >= r.End {
				errs.add(pf+".range", "range %d-%d is not within 1-65535 with start < end", r.Start, r.End)
				continue
			}
			out.ranges = append(out.ranges, portRange{protocol: protocol, start: r.Start, end: r.End})
		}
	}
	return out
}

// validateCNPIngressRule checks an ingress rule with the CRD's rules: a valid object has valid
// ingress rules too, even though the audit only evaluates egress.
func validateCNPIngressRule(r *cnpv1beta1.ClusterNetworkPolicyIngressRule, field string, errs, undefined *fieldErrors) {
	validateCNPRuleName(r.Name, field+".name", errs)
	cnpAction(r.Action, field+".action", errs)
	compileCNPProtocols(r.Protocols, field+".protocols", errs)
	switch {
	case len(r.From) == 0:
		errs.add(field+".from", "at least one peer is required")
	case len(r.From) > cnpMaxPeers:
		errs.add(field+".from", "%d peers; at most %d are allowed", len(r.From), cnpMaxPeers)
	}
	for j := range r.From {
		peer := &r.From[j]
		pf := fmt.Sprintf("%s.from[%d]", field, j)
		if (peer.Namespaces != nil) == (peer.Pods != nil) {
			errs.add(pf, "exactly one of namespaces or pods must be set")
		}
		validateSelector(peer.Namespaces, pf+".namespaces", undefined)
		if peer.Pods != nil {
			validateSelector(&peer.Pods.NamespaceSelector, pf+".pods.namespaceSelector", undefined)
			validateSelector(&peer.Pods.PodSelector, pf+".pods.podSelector", undefined)
		}
	}
}

// compileClusterNetworkPolicies compiles the CNPs (network-policy-api's and the AWS VPC CNI's)
// into the two CNP tiers, each sorted by priority then name, and records priority ties within a
// tier ("the implementation can apply any of the matching policies").
func compileClusterNetworkPolicies(inv *inventory.Inventory, m *Model) {
	add := func(p *adminPolicy) {
		if p.tier == TierClusterAdmin {
			m.cnpAdmin = append(m.cnpAdmin, p)
		} else {
			m.cnpBaseline = append(m.cnpBaseline, p)
		}
	}
	for _, c := range inv.ClusterNetworkPolicies {
		ref := inventory.ObjectRef{Kind: kindCNP, Name: c.Policy.Name, Source: c.Source}
		p, invalid, undefined := compileCNP(c.Policy)
		switch {
		case len(invalid) > 0:
			m.reject(ref, invalid)
		case len(undefined) > 0:
			m.unsupported(ref, undefined)
		default:
			add(p)
		}
	}
	// The same test as Compile's for Calico objects in the input.
	calico := len(inv.CalicoGlobalNetworkPolicies)+len(inv.CalicoNetworkPolicies)+len(inv.CalicoTiers) > 0
	for _, c := range inv.AWSClusterNetworkPolicies {
		ref := inventory.ObjectRef{Kind: kindAWSCNP, Name: c.Policy.Name, Source: c.Source}
		p, invalid, unsupported := compileAWSCNP(c.Policy)
		switch {
		case calico:
			// Calico implements network-policy-api's kinds, not the VPC CNI's; which engine
			// enforces pod egress beside the other is not in the input.
			m.unsupported(ref, fieldErrors{{"spec", "the input holds Calico policies too; Calico does not implement the AWS VPC CNI's ClusterNetworkPolicy, and a cluster enforces pod egress with one of them"}})
		case len(invalid) > 0:
			m.reject(ref, invalid)
		case len(unsupported) > 0:
			m.unsupported(ref, unsupported)
		default:
			add(p)
		}
	}
	for _, list := range [][]*adminPolicy{m.cnpAdmin, m.cnpBaseline} {
		sort.Slice(list, func(i, j int) bool {
			if list[i].priority != list[j].priority {
				return list[i].priority < list[j].priority
			}
			return list[i].name < list[j].name
		})
		for i := 1; i < len(list); i++ {
			if list[i].priority == list[i-1].priority {
				m.PriorityTies = append(m.PriorityTies, PriorityTie{Kind: "ClusterNetworkPolicy (" + string(list[i].tier) + " tier)",
					Priority: list[i].priority, Policies: [2]string{list[i-1].name, list[i].name}})
			}
		}
	}
	if calico {
		// In Calico's kube-admin tier AdminNetworkPolicies and Admin tier CNPs interleave by
		// priority, so equal priorities across the two kinds are ties too.
		for _, a := range m.anps {
			for _, c := range m.cnpAdmin {
				if a.priority == c.priority {
					m.PriorityTies = append(m.PriorityTies, PriorityTie{Kind: TieAdminAndClusterAdmin,
						Priority: a.priority, Policies: [2]string{a.name, c.name}})
				}
			}
		}
	}
}

// appendCalicoClusterNetworkPolicies adds the CNPs bound to a namespace as members of Calico's
// kube-admin (Admin tier) and kube-baseline (Baseline tier) tiers, ordered by priority, as
// Calico v3.32 and later places them.
func (m *Model) appendCalicoClusterNetworkPolicies(out []calicoMember, ns *namespaceIndex) []calicoMember {
	for i := range ns.cnpAdmin {
		a := &ns.cnpAdmin[i]
		out = append(out, calicoMember{tier: m.calicoTiers[calicoTierKubeAdmin], order: float64(a.policy.priority),
			sortName: a.policy.name, admin: a, adminTier: TierClusterAdmin})
	}
	for i := range ns.cnpBaseline {
		a := &ns.cnpBaseline[i]
		out = append(out, calicoMember{tier: m.calicoTiers[calicoTierKubeBaseline], order: float64(a.policy.priority),
			sortName: a.policy.name, admin: a, adminTier: TierClusterBaseline})
	}
	return out
}

// clusterControl lists the CNPs with egress rules whose subject includes the namespace, by tier.
func clusterControl(ns *namespaceIndex) (admin, baseline []string) {
	for _, a := range ns.cnpAdmin {
		if len(a.policy.rules) > 0 {
			admin = append(admin, a.policy.name)
		}
	}
	for _, a := range ns.cnpBaseline {
		if len(a.policy.rules) > 0 {
			baseline = append(baseline, a.policy.name)
		}
	}
	return admin, baseline
}

// reportClusterNetworkPoliciesBesideCilium leaves CNPs out when Cilium policies decide egress:
// Cilium v1.20 enforces ClusterNetworkPolicy (pkg/k8s/cluster_network_policy.go turns each rule
// into a policy entry with the CNP's tier and priority), but its combination with Cilium's own
// policies is not modelled by the Cilium engine yet, so the report says it is incomplete.
func reportClusterNetworkPoliciesBesideCilium(inv *inventory.Inventory, m *Model) {
	why := fieldErrors{{"spec", "the input holds Cilium policies; imdsguard does not yet evaluate ClusterNetworkPolicy together with Cilium's own policies"}}
	for _, c := range inv.ClusterNetworkPolicies {
		m.unsupported(inventory.ObjectRef{Kind: kindCNP, Name: c.Policy.Name, Source: c.Source}, why)
	}
	for _, c := range inv.AWSClusterNetworkPolicies {
		m.unsupported(inventory.ObjectRef{Kind: kindAWSCNP, Name: c.Policy.Name, Source: c.Source}, why)
	}
}
