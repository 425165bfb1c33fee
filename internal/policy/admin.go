package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// adminPolicy is a compiled AdminNetworkPolicy or BaselineAdminNetworkPolicy.
type adminPolicy struct {
	tier Tier
	// kind is the Reason.Kind of a ClusterNetworkPolicy (network-policy-api's or AWS's); empty
	// for the v1alpha1 kinds, whose tier names them.
	kind     string
	name     string
	priority int32
	subject  adminSubject
	rules    []adminRule
}

// adminSubject selects namespaces, and optionally pods within them.
type adminSubject struct {
	namespaces labels.Selector
	pods       labels.Selector // nil: every pod of the selected namespaces
	// nsSelector indexes namespaces in Model.nsSelectors.
	nsSelector int
}

type adminRule struct {
	name    string
	action  Action // Allow, Deny, or "Pass"
	cidrs   []cidrPeer
	domains []string
	// clusterPeers counts namespaces/pods/nodes peers, which never match the endpoints.
	clusterPeers int
	ports        ports
}

const actionPass Action = "Pass"

func compileSubject(s anpv1alpha1.AdminNetworkPolicySubject, errs *fieldErrors) adminSubject {
	switch {
	case s.Namespaces != nil && s.Pods != nil:
		errs.add("spec.subject", "exactly one of namespaces or pods must be set")
	case s.Namespaces != nil:
		sel, err := metav1.LabelSelectorAsSelector(s.Namespaces)
		if err != nil {
			errs.add("spec.subject.namespaces", "invalid selector: %v", err)
		}
		return adminSubject{namespaces: sel}
	case s.Pods != nil:
		nsSel, err := metav1.LabelSelectorAsSelector(&s.Pods.NamespaceSelector)
		if err != nil {
			errs.add("spec.subject.pods.namespaceSelector", "invalid selector: %v", err)
		}
		podSel, err := metav1.LabelSelectorAsSelector(&s.Pods.PodSelector)
		if err != nil {
			errs.add("spec.subject.pods.podSelector", "invalid selector: %v", err)
		}
		return adminSubject{namespaces: nsSel, pods: podSel}
	default:
		errs.add("spec.subject", "exactly one of namespaces or pods must be set")
	}
	return adminSubject{}
}

func compileAdminPorts(in *[]anpv1alpha1.AdminNetworkPolicyPort, field string, errs *fieldErrors) ports {
	if in == nil {
		return ports{all: true}
	}
	if len(*in) == 0 {
		errs.add(field, "ports must not be empty when set")
	}
	var out ports
	for i, p := range *in {
		pf := fmt.Sprintf("%s[%d]", field, i)
		set := 0
		for _, b := range []bool{p.PortNumber != nil, p.NamedPort != nil, p.PortRange != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			errs.add(pf, "exactly one of portNumber, namedPort or portRange must be set")
			continue
		}
		var r portRange
		switch {
		case p.PortNumber != nil:
			r = portRange{protocol: defaultProtocol(p.PortNumber.Protocol), start: p.PortNumber.Port, end: p.PortNumber.Port}
			if !validPort(r.start) {
				errs.add(pf+".portNumber.port", "port %d is out of range 1-65535", r.start)
				continue
			}
		case p.NamedPort != nil:
			r = portRange{protocol: corev1.ProtocolTCP, named: *p.NamedPort}
		default:
			r = portRange{protocol: defaultProtocol(p.PortRange.Protocol), start: p.PortRange.Start, end: p.PortRange.End}
			if !validPort(r.start) || !validPort(r.end) || r.end < r.start {
				errs.add(pf+".portRange", "range %d-%d is not within 1-65535 with start <= end", r.start, r.end)
				continue
			}
		}
		if !validProtocol(r.protocol) {
			errs.add(pf, "unsupported protocol %q (want TCP, UDP or SCTP)", r.protocol)
			continue
		}
		out.ranges = append(out.ranges, r)
	}
	return out
}

func defaultProtocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// compilePeers compiles ANP/BANP egress peers.
func compilePeers(rule *adminRule, peers []anpv1alpha1.AdminNetworkPolicyEgressPeer, field string, errs *fieldErrors) {
	if len(peers) == 0 {
		errs.add(field+".to", "at least one peer is required")
	}
	for j, peer := range peers {
		pf := fmt.Sprintf("%s.to[%d]", field, j)
		set := 0
		if peer.Namespaces != nil {
			set++
			validateSelector(peer.Namespaces, pf+".namespaces", errs)
			rule.clusterPeers++
		}
		if peer.Pods != nil {
			set++
			validateSelector(&peer.Pods.NamespaceSelector, pf+".pods.namespaceSelector", errs)
			validateSelector(&peer.Pods.PodSelector, pf+".pods.podSelector", errs)
			rule.clusterPeers++
		}
		if peer.Nodes != nil {
			set++
			validateSelector(peer.Nodes, pf+".nodes", errs)
			rule.clusterPeers++
		}
		if len(peer.Networks) > 0 {
			set++
			for k, n := range peer.Networks {
				if !strings.Contains(string(n), "/") {
					errs.add(fmt.Sprintf("%s.networks[%d]", pf, k), "invalid CIDR %q: a prefix length is required", n)
					continue
				}
				p, err := parseCIDR(string(n))
				if err != nil {
					errs.add(fmt.Sprintf("%s.networks[%d]", pf, k), "%v", err)
					continue
				}
				rule.cidrs = append(rule.cidrs, cidrPeer{prefix: p, label: "networks " + p.String()})
			}
		}
		if len(peer.DomainNames) > 0 {
			set++
			if rule.action != ActionAllow {
				errs.add(pf+".domainNames", "domainNames peers are only allowed in Allow rules")
			}
			for _, d := range peer.DomainNames {
				rule.domains = append(rule.domains, string(d))
			}
		}
		if set != 1 {
			errs.add(pf, "exactly one of namespaces, pods, nodes, networks or domainNames must be set")
		}
	}
	if rule.ports.hasNamed() && (len(rule.cidrs) > 0 || len(rule.domains) > 0) {
		errs.add(field+".ports", "networks/nodes/domainNames peers cannot be combined with named ports")
	}
}

func compileANP(in *anpv1alpha1.AdminNetworkPolicy) (*adminPolicy, fieldErrors) {
	var errs fieldErrors
	p := &adminPolicy{tier: TierAdmin, name: in.Name, priority: in.Spec.Priority}
	if in.Spec.Priority < 0 || in.Spec.Priority > 1000 {
		errs.add("spec.priority", "priority %d is out of range 0-1000", in.Spec.Priority)
	}
	p.subject = compileSubject(in.Spec.Subject, &errs)
	for i, r := range in.Spec.Egress {
		field := fmt.Sprintf("spec.egress[%d]", i)
		rule := adminRule{name: r.Name, action: Action(r.Action)}
		switch r.Action {
		case anpv1alpha1.AdminNetworkPolicyRuleActionAllow, anpv1alpha1.AdminNetworkPolicyRuleActionDeny, anpv1alpha1.AdminNetworkPolicyRuleActionPass:
		default:
			errs.add(field+".action", "unknown action %q (want Allow, Deny or Pass)", r.Action)
		}
		rule.ports = compileAdminPorts(r.Ports, field+".ports", &errs)
		compilePeers(&rule, r.To, field, &errs)
		p.rules = append(p.rules, rule)
	}
	return p, errs
}

func compileBANP(in *anpv1alpha1.BaselineAdminNetworkPolicy) (*adminPolicy, fieldErrors) {
	var errs fieldErrors
	p := &adminPolicy{tier: TierBaseline, name: in.Name}
	if in.Name != "default" {
		errs.add("metadata.name", "a BaselineAdminNetworkPolicy must be named \"default\" (it is a singleton)")
	}
	p.subject = compileSubject(in.Spec.Subject, &errs)
	for i, r := range in.Spec.Egress {
		field := fmt.Sprintf("spec.egress[%d]", i)
		rule := adminRule{name: r.Name, action: Action(r.Action)}
		switch r.Action {
		case anpv1alpha1.BaselineAdminNetworkPolicyRuleActionAllow, anpv1alpha1.BaselineAdminNetworkPolicyRuleActionDeny:
		default:
			errs.add(field+".action", "unknown action %q (want Allow or Deny)", r.Action)
		}
		rule.ports = compileAdminPorts(r.Ports, field+".ports", &errs)
		peers := make([]anpv1alpha1.AdminNetworkPolicyEgressPeer, len(r.To))
		for j, t := range r.To {
			peers[j] = anpv1alpha1.AdminNetworkPolicyEgressPeer{Namespaces: t.Namespaces, Pods: t.Pods, Nodes: t.Nodes, Networks: t.Networks}
		}
		compilePeers(&rule, peers, field, &errs)
		p.rules = append(p.rules, rule)
	}
	return p, errs
}

// match reports whether a rule matches the endpoint and which peer did.
func (r *adminRule) match(ep *endpoint.Endpoint) (ok bool, peer string, broad bool) {
	if !r.ports.match(ep) {
		return false, "", false
	}
	for i := range r.cidrs {
		if m, _ := r.cidrs[i].match(ep.Address); m {
			return true, r.cidrs[i].label, r.cidrs[i].broad()
		}
	}
	for _, d := range r.domains {
		for _, h := range ep.Hostnames {
			if matchDomain(d, h) {
				return true, "domainNames " + d, false
			}
		}
	}
	return false, "", false
}

func (r *adminRule) explainMiss(ep *endpoint.Endpoint) string {
	var why []string
	if !r.ports.match(ep) {
		why = append(why, fmt.Sprintf("ports [%s] do not include %s %d", r.ports.String(), ep.Protocol, ep.Port))
	}
	if len(r.cidrs) > 0 {
		var c []string
		for _, p := range r.cidrs {
			c = append(c, p.prefix.String())
		}
		why = append(why, fmt.Sprintf("networks %s", strings.Join(c, ", ")))
	}
	if len(r.domains) > 0 {
		why = append(why, fmt.Sprintf("domainNames %s", strings.Join(r.domains, ", ")))
	}
	if r.clusterPeers > 0 {
		why = append(why, "namespaces/pods/nodes peers never match an address outside the cluster")
	}
	return strings.Join(why, "; ")
}

// adminBinding is an admin policy that selects a namespace, with the pod selector still to
// apply (nil: every pod).
type adminBinding struct {
	policy *adminPolicy
	pods   labels.Selector
}

// adminTier is the AdminNetworkPolicy tier, or the BaselineAdminNetworkPolicy tier.
type adminTier struct{ tier Tier }

type adminBound struct {
	tier      Tier
	selecting []*adminPolicy
}

func (t adminTier) bind(ns *namespaceIndex, s Subject, tr *tracer) boundTier {
	b := &adminBound{tier: t.tier}
	var bindings []adminBinding
	switch t.tier {
	case TierAdmin:
		bindings = ns.anps
	case TierBaseline:
		bindings = ns.banps
	case TierClusterAdmin:
		bindings = ns.cnpAdmin
	case TierClusterBaseline:
		bindings = ns.cnpBaseline
	}
	set := labels.Set(s.Labels)
	for _, a := range bindings {
		if a.pods == nil || a.pods.Matches(set) {
			b.selecting = append(b.selecting, a.policy)
			switch {
			case t.tier == TierBaseline:
				tr.add(t.tier, a.policy.name, NoRule, "subject selects the pod")
			case a.policy.kind == kindAWSCNP:
				tr.add(t.tier, a.policy.name, NoRule, "%s, priority %d: subject selects the pod", kindAWSCNP, a.policy.priority)
			default:
				tr.add(t.tier, a.policy.name, NoRule, "priority %d: subject selects the pod", a.policy.priority)
			}
		}
	}
	if len(b.selecting) == 0 {
		if isClusterTier(t.tier) {
			tr.add(t.tier, "", NoRule, "no ClusterNetworkPolicy of the %s tier selects the pod", t.tier)
		} else {
			tr.add(t.tier, "", NoRule, "no %s selects the pod", t.tier)
		}
	}
	return b
}

func (b *adminBound) decide(ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	for _, p := range b.selecting {
		o, r := p.decide(b.tier, ep, tr)
		if o == next && r.Action == actionPass {
			if isClusterTier(b.tier) {
				tr.add(b.tier, p.name, r.Rule, "Pass via %s: skip the rest of the %s tier, go on to the next tier", r.Peer, b.tier)
			} else {
				tr.add(b.tier, p.name, r.Rule, "Pass via %s: skip the remaining AdminNetworkPolicies, go on to NetworkPolicy", r.Peer)
			}
			return next, Reason{}
		}
		if o != next {
			return o, r
		}
	}
	return next, Reason{}
}

// decide walks the policy's rules: the first that matches decides. A Pass is returned as next
// with a reason whose Action is Pass; no match is next with an empty reason.
func (p *adminPolicy) decide(tier Tier, ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	for i := range p.rules {
		r := &p.rules[i]
		ok, peer, broad := r.match(ep)
		if !ok {
			if tr != nil {
				tr.add(tier, p.name, i, "%s does not match: %s", actionText(tier, r.action), r.explainMiss(ep))
			}
			continue
		}
		switch r.action {
		case actionPass:
			return next, Reason{Tier: tier, Kind: p.kind, Policy: p.name, Rule: i, RuleName: r.name, Action: actionPass, Peer: peer}
		case ActionAllow:
			tr.add(tier, p.name, i, "%s via %s: final", actionText(tier, ActionAllow), peer)
			return allow, Reason{Tier: tier, Kind: p.kind, Policy: p.name, Rule: i, RuleName: r.name, Action: ActionAllow, Peer: peer, Broad: broad}
		default:
			tr.add(tier, p.name, i, "Deny via %s: final", peer)
			return deny, Reason{Tier: tier, Kind: p.kind, Policy: p.name, Rule: i, RuleName: r.name, Action: ActionDeny, Peer: peer}
		}
	}
	return next, Reason{}
}

// compileAdminPolicies compiles ANPs (sorted by priority, then name) and the BANP, and records
// priority ties, which the API leaves to the implementation to order.
func compileAdminPolicies(anps []*inventory.AdminNetworkPolicy, banps []*inventory.BaselineAdminNetworkPolicy, m *Model) {
	for _, a := range anps {
		p, errs := compileANP(a.Policy)
		if len(errs) > 0 {
			m.reject(inventory.ObjectRef{Kind: "AdminNetworkPolicy", Name: a.Policy.Name, Source: a.Source}, errs)
			continue
		}
		m.anps = append(m.anps, p)
	}
	sort.Slice(m.anps, func(i, j int) bool {
		if m.anps[i].priority != m.anps[j].priority {
			return m.anps[i].priority < m.anps[j].priority
		}
		return m.anps[i].name < m.anps[j].name
	})
	for i := 1; i < len(m.anps); i++ {
		if m.anps[i].priority == m.anps[i-1].priority {
			m.PriorityTies = append(m.PriorityTies, PriorityTie{Priority: m.anps[i].priority, Policies: [2]string{m.anps[i-1].name, m.anps[i].name}})
		}
	}
	for _, b := range banps {
		p, errs := compileBANP(b.Policy)
		if len(errs) > 0 {
			m.reject(inventory.ObjectRef{Kind: "BaselineAdminNetworkPolicy", Name: b.Policy.Name, Source: b.Source}, errs)
			continue
		}
		m.banps = append(m.banps, p)
	}
}

// PriorityTie is two AdminNetworkPolicies (or ClusterNetworkPolicies of one tier) with the same
// priority: their relative order is
// implementation-defined, so verdicts may differ between CNIs.
type PriorityTie struct {
	// Kind is empty for AdminNetworkPolicies, "ClusterNetworkPolicy (Admin tier)" or
	// "ClusterNetworkPolicy (Baseline tier)" for ClusterNetworkPolicies.
	Kind     string
	Priority int32
	Policies [2]string
}

// actionText names an action as the policy's kind does: ClusterNetworkPolicy says Accept where
// the evaluator says Allow.
func actionText(t Tier, a Action) string {
	if a == ActionAllow && isClusterTier(t) {
		return string(cnpv1beta1.ClusterNetworkPolicyRuleActionAccept)
	}
	return string(a)
}
