package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// netpol is a compiled NetworkPolicy that isolates for egress.
type netpol struct {
	name     string // namespace/name
	selector labels.Selector
	rules    []npRule
}

type npRule struct {
	allPeers bool // no "to": every destination
	cidrs    []cidrPeer
	// selectorPeers counts podSelector/namespaceSelector peers, which never match an address
	// outside the cluster.
	selectorPeers int
	ports         ports
}

// EgressTypes returns whether a NetworkPolicy applies to egress, with Kubernetes' defaulting:
// when policyTypes is empty, Egress is included only if the policy has egress rules.
func EgressTypes(spec *networkingv1.NetworkPolicySpec) bool {
	if len(spec.PolicyTypes) == 0 {
		return len(spec.Egress) > 0
	}
	for _, t := range spec.PolicyTypes {
		if t == networkingv1.PolicyTypeEgress {
			return true
		}
	}
	return false
}

// compileNetworkPolicy validates a NetworkPolicy as the API server would and compiles its
// egress side. It returns nil (and no errors) for a policy that does not govern egress.
func compileNetworkPolicy(np *networkingv1.NetworkPolicy) (*netpol, fieldErrors) {
	var errs fieldErrors
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		errs.add("spec.podSelector", "invalid selector: %v", err)
	}
	for i, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeEgress && t != networkingv1.PolicyTypeIngress {
			errs.add(fmt.Sprintf("spec.policyTypes[%d]", i), "unknown policy type %q (want Ingress or Egress)", t)
		}
	}
	out := &netpol{name: np.Namespace + "/" + np.Name, selector: sel}
	for i := range np.Spec.Egress {
		out.rules = append(out.rules, compileNPRule(&np.Spec.Egress[i], fmt.Sprintf("spec.egress[%d]", i), &errs))
	}
	if len(errs) > 0 || !EgressTypes(&np.Spec) {
		return nil, errs
	}
	return out, nil
}

func compileNPRule(r *networkingv1.NetworkPolicyEgressRule, field string, errs *fieldErrors) npRule {
	rule := npRule{allPeers: len(r.To) == 0}
	for j, peer := range r.To {
		pf := fmt.Sprintf("%s.to[%d]", field, j)
		hasSel := peer.PodSelector != nil || peer.NamespaceSelector != nil
		switch {
		case peer.IPBlock != nil && hasSel:
			errs.add(pf, "may not specify both ipBlock and a selector")
		case peer.IPBlock != nil:
			if c, ok := compileIPBlock(peer.IPBlock, pf+".ipBlock", errs); ok {
				rule.cidrs = append(rule.cidrs, c)
			}
		case hasSel:
			validateSelector(peer.PodSelector, pf+".podSelector", errs)
			validateSelector(peer.NamespaceSelector, pf+".namespaceSelector", errs)
			rule.selectorPeers++
		default:
			errs.add(pf, "must specify a peer (ipBlock, podSelector or namespaceSelector)")
		}
	}
	rule.ports = compileNPPorts(r.Ports, field+".ports", errs)
	return rule
}

func compileIPBlock(b *networkingv1.IPBlock, field string, errs *fieldErrors) (cidrPeer, bool) {
	prefix, err := parseCIDR(b.CIDR)
	if err != nil {
		errs.add(field+".cidr", "%v", err)
		return cidrPeer{}, false
	}
	c := cidrPeer{prefix: prefix}
	ok := true
	for k, e := range b.Except {
		ef := fmt.Sprintf("%s.except[%d]", field, k)
		ex, err := parseCIDR(e)
		if err != nil {
			errs.add(ef, "%v", err)
			ok = false
			continue
		}
		if ex.Addr().Is4() != prefix.Addr().Is4() || !prefix.Contains(ex.Addr()) || ex.Bits() <= prefix.Bits() {
			errs.add(ef, "%s is not a strict subset of cidr %s", e, b.CIDR)
			ok = false
			continue
		}
		c.except = append(c.except, ex)
	}
	c.label = "ipBlock " + prefix.String()
	if len(c.except) > 0 {
		ex := make([]string, len(c.except))
		for i, e := range c.except {
			ex[i] = e.String()
		}
		c.label += " except " + strings.Join(ex, ", ")
	}
	return c, ok
}

func compileNPPorts(in []networkingv1.NetworkPolicyPort, field string, errs *fieldErrors) ports {
	if len(in) == 0 {
		return ports{all: true}
	}
	var out ports
	for i, p := range in {
		pf := fmt.Sprintf("%s[%d]", field, i)
		r := portRange{protocol: corev1.ProtocolTCP}
		if p.Protocol != nil {
			r.protocol = *p.Protocol
		}
		if !validProtocol(r.protocol) {
			errs.add(pf+".protocol", "unsupported protocol %q (want TCP, UDP or SCTP)", r.protocol)
			continue
		}
		switch {
		case p.Port == nil:
			if p.EndPort != nil {
				errs.add(pf+".endPort", "endPort requires port")
				continue
			}
		case p.Port.Type == intstr.String:
			r.named = p.Port.StrVal
			if p.EndPort != nil {
				errs.add(pf+".endPort", "endPort may not be set with a named port")
				continue
			}
		default:
			r.start, r.end = p.Port.IntVal, p.Port.IntVal
			if !validPort(r.start) {
				errs.add(pf+".port", "port %d is out of range 1-65535", r.start)
				continue
			}
			if p.EndPort != nil {
				r.end = *p.EndPort
				if r.end < r.start || !validPort(r.end) {
					errs.add(pf+".endPort", "endPort %d must be between port %d and 65535", r.end, r.start)
					continue
				}
			}
		}
		out.ranges = append(out.ranges, r)
	}
	return out
}

// matchRule reports whether a NetworkPolicy egress rule allows the endpoint, and which peer did.
// When it does not, excludedBy names an except entry that removed the destination, if any.
func (r *npRule) match(ep *endpoint.Endpoint) (ok bool, peer string, broad bool, excludedBy string) {
	if !r.ports.match(ep) {
		return false, "", false, ""
	}
	if r.allPeers {
		return true, "all destinations (rule has no 'to')", true, ""
	}
	for i := range r.cidrs {
		m, ex := r.cidrs[i].match(ep.Address)
		if m {
			return true, r.cidrs[i].label, r.cidrs[i].broad(), ""
		}
		if ex != "" {
			excludedBy = r.cidrs[i].label
		}
	}
	return false, "", false, excludedBy
}

// npTier is the Kubernetes NetworkPolicy tier.
type npTier struct{}

type npBound struct {
	selecting []*netpol
}

func (npTier) bind(ns *namespaceIndex, s Subject, tr *tracer) boundTier {
	var b npBound
	set := labels.Set(s.Labels)
	for _, p := range ns.netpols {
		if p.selector.Matches(set) {
			b.selecting = append(b.selecting, p)
			tr.add(TierNetworkPolicy, p.name, NoRule, "selects the pod for egress: the pod is egress-isolated")
		}
	}
	if len(b.selecting) == 0 {
		tr.add(TierNetworkPolicy, "", NoRule, "no egress NetworkPolicy in namespace %q selects the pod: not isolated", s.Namespace)
	}
	return &b
}

func (b *npBound) decide(ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	if len(b.selecting) == 0 {
		return next, Reason{}
	}
	var excepted *Reason
	for _, p := range b.selecting {
		allowed, r, ex := p.allows(ep, tr)
		if allowed {
			return allow, r
		}
		if excepted == nil {
			excepted = ex
		}
	}
	tr.add(TierNetworkPolicy, "", NoRule, "the pod is egress-isolated and no rule of the %d selecting policies allows %s: denied", len(b.selecting), ep.Destination())
	return deny, npDenyReason(b.selecting, excepted)
}

// allows reports whether a rule of the policy allows the endpoint, with the reason. When none
// does, excepted is the first rule whose except entry removed the destination, if any.
func (p *netpol) allows(ep *endpoint.Endpoint, tr *tracer) (ok bool, reason Reason, excepted *Reason) {
	for i := range p.rules {
		r := &p.rules[i]
		ok, peer, broad, excludedBy := r.match(ep)
		if ok {
			tr.add(TierNetworkPolicy, p.name, i, "allows %s via %s, %s", ep.Destination(), peer, r.ports.String())
			return true, Reason{Tier: TierNetworkPolicy, Policy: p.name, Rule: i, Action: ActionAllow, Peer: peer, Broad: broad}, nil
		}
		if tr != nil {
			tr.add(TierNetworkPolicy, p.name, i, "does not match: %s", r.explainMiss(ep, excludedBy))
		}
		if excludedBy != "" && excepted == nil {
			excepted = &Reason{Tier: TierNetworkPolicy, Policy: p.name, Rule: i, Action: ActionDeny, Peer: excludedBy}
		}
	}
	return false, Reason{}, excepted
}

// npDenyReason is the reason an egress-isolated pod is denied: the rule whose except entry
// removed the destination when there is one, else the isolation itself.
func npDenyReason(selecting []*netpol, excepted *Reason) Reason {
	if excepted != nil {
		return *excepted
	}
	names := make([]string, len(selecting))
	decider := selecting[0]
	for i, p := range selecting {
		names[i] = p.name
		if len(p.rules) == 0 && len(decider.rules) > 0 {
			decider = p // a policy with no egress rules is the default-deny a reader looks for
		}
	}
	return Reason{Tier: TierNetworkPolicy, Policy: decider.name, Rule: NoRule, Action: ActionDeny,
		Peer: "egress-isolated by " + strings.Join(names, ", ") + "; no rule allows it"}
}

func (r *npRule) explainMiss(ep *endpoint.Endpoint, excludedBy string) string {
	var why []string
	if !r.ports.match(ep) {
		w := fmt.Sprintf("ports [%s] do not include %s %d", r.ports.String(), ep.Protocol, ep.Port)
		if r.ports.hasNamed() {
			w += " (named ports never match an address outside the cluster)"
		}
		why = append(why, w)
	}
	if excludedBy != "" {
		why = append(why, fmt.Sprintf("%s excludes %s", excludedBy, ep.Address))
	} else if !r.allPeers {
		var cidrs []string
		for _, c := range r.cidrs {
			cidrs = append(cidrs, c.prefix.String())
		}
		if len(cidrs) > 0 {
			why = append(why, fmt.Sprintf("%s is not in ipBlock %s", ep.Address, strings.Join(cidrs, ", ")))
		}
		if r.selectorPeers > 0 {
			why = append(why, "pod/namespace selector peers never match an address outside the cluster")
		}
	}
	if len(why) == 0 {
		return "no peer matches"
	}
	return strings.Join(why, "; ")
}

// compileNetworkPolicies compiles and indexes egress NetworkPolicies by namespace, sorted by
// name within a namespace.
func compileNetworkPolicies(in []*inventory.NetworkPolicy, m *Model) {
	for _, np := range in {
		p, errs := compileNetworkPolicy(np.Policy)
		ref := inventory.ObjectRef{Kind: "NetworkPolicy", Namespace: np.Policy.Namespace, Name: np.Policy.Name, Source: np.Source}
		if len(errs) > 0 {
			m.reject(ref, errs)
			continue
		}
		if p != nil {
			ns := m.namespace(np.Policy.Namespace)
			ns.netpols = append(ns.netpols, p)
		}
	}
	for _, ns := range m.namespaces {
		sort.Slice(ns.netpols, func(i, j int) bool { return ns.netpols[i].name < ns.netpols[j].name })
	}
}
