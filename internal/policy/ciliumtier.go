package policy

import (
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"k8s.io/apimachinery/pkg/labels"
)

// With Cilium, every policy that selects a pod joins one set per pod (Cilium's policy
// repository): CiliumNetworkPolicies of its namespace, CiliumClusterwideNetworkPolicies, and
// Kubernetes NetworkPolicies, which Cilium enforces too.
//
//	1. an egressDeny rule of any selecting policy that matches denies: deny wins over every allow
//	2. a pod no selecting policy puts into egress default-deny is not isolated: allowed
//	3. an egress rule of any selecting Cilium policy, or a NetworkPolicy rule, that matches allows
//	4. otherwise the pod's default-deny denies
//
// Cilium does not implement AdminNetworkPolicy or BaselineAdminNetworkPolicy (v1alpha1): with
// Cilium policies in the input they take no part and are listed in NotEnforced.

// ciliumEngine is every policy as Cilium evaluates it, in place of the three plain tiers.
type ciliumEngine struct{ m *Model }

type ciliumBound struct {
	specs   []*ciliumSpec
	netpols []*netpol
	// isolating names the first Cilium rule that puts the pod into egress default-deny.
	isolating *ciliumSpec
	// open names the first selecting Cilium rule that does not isolate the pod.
	open *ciliumSpec
	// denial caches the reason of the default deny, which depends on the pod only.
	denial *Reason
}

func (e ciliumEngine) bind(ns *namespaceIndex, s Subject, tr *tracer) boundTier {
	id := ciliumIdentity(s.Labels, s.Namespace, ns.labels, s.serviceAccount())
	b := &ciliumBound{}
	for _, list := range [][]*ciliumSpec{e.m.ciliumClusterwide, ns.ciliumSpecs} {
		for _, sp := range list {
			if sp.namespace != "" && sp.namespace != s.Namespace {
				continue
			}
			if !sp.selector.matches(id) {
				continue
			}
			b.specs = append(b.specs, sp)
			switch {
			case sp.defaultDeny:
				if b.isolating == nil {
					b.isolating = sp
				}
				tr.add(TierCilium, sp.policy, NoRule, "%s %s selects the pod: egress default-deny", sp.kind, sp.field)
			default:
				if b.open == nil {
					b.open = sp
				}
				tr.add(TierCilium, sp.policy, NoRule, "%s %s selects the pod; enableDefaultDeny.egress is false: it does not isolate", sp.kind, sp.field)
			}
		}
	}
	set := labels.Set(s.Labels)
	for _, p := range ns.netpols {
		if p.selector.Matches(set) {
			b.netpols = append(b.netpols, p)
			tr.add(TierNetworkPolicy, p.name, NoRule, "selects the pod for egress (enforced by Cilium): egress default-deny")
		}
	}
	if len(b.specs) == 0 && len(b.netpols) == 0 {
		tr.add(TierCilium, "", NoRule, "no Cilium policy or NetworkPolicy selects the pod for egress")
	}
	return b
}

func (b *ciliumBound) reason(sp *ciliumSpec, r *ciliumRule, action Action, peer string) Reason {
	return Reason{Tier: TierCilium, Kind: sp.kind, Policy: sp.policy, Rule: r.index, RuleName: r.name, Action: action, Peer: peer}
}

func (b *ciliumBound) decide(ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	if len(b.specs) == 0 && len(b.netpols) == 0 {
		return next, Reason{}
	}
	for _, sp := range b.specs {
		for i := range sp.denies {
			r := &sp.denies[i]
			ok, peer, _, _ := r.match(ep)
			if ok {
				if tr != nil {
					tr.add(TierCilium, sp.policy, r.index, "%s denies %s via %s: deny wins over every allow", r.name, ep.Destination(), peer)
				}
				return deny, b.reason(sp, r, ActionDeny, peer)
			}
			if tr != nil {
				tr.add(TierCilium, sp.policy, r.index, "%s does not match: %s", r.name, r.explainMiss(ep, ""))
			}
		}
	}
	if b.isolating == nil && len(b.netpols) == 0 {
		if tr != nil {
			tr.add(TierCilium, b.open.policy, NoRule, "no selecting policy puts the pod into egress default-deny and no egressDeny rule matches: allowed")
		}
		return allow, Reason{Tier: TierCilium, Kind: b.open.kind, Policy: b.open.policy, Rule: NoRule, Action: ActionAllow,
			Peer: "enableDefaultDeny.egress: false: the pod is not egress-isolated and no egressDeny rule matches " + ep.Destination()}
	}
	var excepted *Reason
	for _, sp := range b.specs {
		for i := range sp.allows {
			r := &sp.allows[i]
			ok, peer, broad, excluded := r.match(ep)
			if ok {
				if tr != nil {
					tr.add(TierCilium, sp.policy, r.index, "%s allows %s via %s", r.name, ep.Destination(), peer)
				}
				reason := b.reason(sp, r, ActionAllow, peer)
				reason.Broad = broad
				return allow, reason
			}
			if tr != nil {
				tr.add(TierCilium, sp.policy, r.index, "%s does not match: %s", r.name, r.explainMiss(ep, excluded))
			}
			if excluded != "" && excepted == nil {
				ex := b.reason(sp, r, ActionDeny, excluded)
				excepted = &ex
			}
		}
	}
	var npExcepted *Reason
	for _, p := range b.netpols {
		allowed, r, ex := p.allows(ep, tr)
		if allowed {
			return allow, r
		}
		if npExcepted == nil {
			npExcepted = ex
		}
	}
	if tr != nil {
		tr.add(TierCilium, "", NoRule, "the pod is egress-isolated and no rule of the %d selecting policies allows %s: denied", len(b.specs)+len(b.netpols), ep.Destination())
	}
	switch {
	case excepted != nil:
		return deny, *excepted
	case b.isolating == nil:
		return deny, npDenyReason(b.netpols, npExcepted)
	case npExcepted != nil:
		return deny, *npExcepted
	}
	if b.denial == nil { // the same for every endpoint of the pod
		var names []string
		for _, sp := range b.specs {
			if sp.defaultDeny {
				names = append(names, sp.kind+" "+sp.policy)
			}
		}
		for _, p := range b.netpols {
			names = append(names, "NetworkPolicy "+p.name)
		}
		b.denial = &Reason{Tier: TierCilium, Kind: b.isolating.kind, Policy: b.isolating.policy, Rule: NoRule, Action: ActionDeny,
			Peer: "egress default-deny by " + strings.Join(names, ", ") + "; no rule allows it"}
	}
	return deny, *b.denial
}

// ciliumControl lists the Cilium policies that may select pods of a namespace: its
// CiliumNetworkPolicies, and the CiliumClusterwideNetworkPolicies whose selector's namespace
// requirements the namespace meets; and appends to isolating those that put pods into egress
// default-deny.
func (m *Model) ciliumControl(ns *namespaceIndex, isolating []string) (control, isolatingOut []string) {
	id := ciliumIdentity(nil, ns.name, ns.labels, "")
	seen := map[string]bool{}
	isolates := map[string]bool{}
	for _, list := range [][]*ciliumSpec{m.ciliumClusterwide, ns.ciliumSpecs} {
		for _, sp := range list {
			if !sp.selector.mayMatchNamespace(id) {
				continue
			}
			if !seen[sp.policy] {
				seen[sp.policy] = true
				control = append(control, sp.policy)
			}
			if sp.defaultDeny && !isolates[sp.policy] {
				isolates[sp.policy] = true
				isolating = append(isolating, sp.policy)
			}
		}
	}
	return control, isolating
}

// mayMatchNamespace reports whether the selector's requirements on the namespace and its labels
// hold for a namespace's identity labels; requirements on other labels are not checked.
func (s *ciliumSelector) mayMatchNamespace(id map[string]string) bool {
	for _, r := range s.reqs {
		if r.key != ciliumNamespaceLabel && !strings.HasPrefix(r.key, ciliumNamespaceLabelPrefix) {
			continue
		}
		only := ciliumSelector{reqs: []ciliumRequirement{r}}
		if !only.matches(id) {
			return false
		}
	}
	return true
}

func (ciliumEngine) semantics() Semantics { return SemanticsCilium }

// control lists the namespace's Kubernetes NetworkPolicies and the Cilium policies that may
// select its pods; Cilium enforces no admin policy.
func (e ciliumEngine) control(ns *namespaceIndex) EgressControl {
	c := EgressControl{NetworkPolicies: netpolNames(ns), Isolating: netpolNames(ns)}
	c.Cilium, c.Isolating = e.m.ciliumControl(ns, c.Isolating)
	return c
}

// isolated: a pod in egress default-deny by a Cilium rule, or selected by a NetworkPolicy.
func (e ciliumEngine) isolated(ns *namespaceIndex, s Subject) bool {
	b := e.bind(ns, s, nil).(*ciliumBound)
	return b.isolating != nil || len(b.netpols) > 0
}
