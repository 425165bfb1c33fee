package policy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"k8s.io/apimachinery/pkg/labels"
)

// With Calico, every policy lives in a Calico tier, and the tiers are consulted by their order:
//
//	kube-admin     order 1,000       AdminNetworkPolicies (order = priority), default action Pass
//	your tiers     by their order    Calico policies
//	default        order 1,000,000   Calico policies without a tier, and every Kubernetes
//	                                 NetworkPolicy at order 1000; default action Deny
//	kube-baseline  order 10,000,000  the BaselineAdminNetworkPolicy, default action Pass
//
// Only tiers with a policy that selects the pod take part. Within a tier, policies go by order
// (missing = after every ordered one; ties by name) and within a policy rules in order: Allow
// and Deny are final, Pass skips to the next tier, Log goes on. A tier whose policies select
// the pod but do not decide applies its default action: Deny, or Pass to the next tier. When no
// tier decides, the pod's namespace profile allows the traffic, as Kubernetes would.
//
// Without Calico objects in the input the same order holds (kube-admin, default, kube-baseline),
// and the evaluator uses the three plain tiers instead, which give the same verdicts.

// calicoMember is one policy of a Calico tier: a Calico policy, a Kubernetes NetworkPolicy, or
// an AdminNetworkPolicy or BaselineAdminNetworkPolicy bound to the namespace.
type calicoMember struct {
	tier     *calicoTier
	order    float64
	sortName string
	calico   *calicoPolicy
	netpol   *netpol
	admin    *adminBinding
	// adminTier is TierAdmin or TierBaseline for an admin member.
	adminTier Tier
}

func (c *calicoMember) name() string {
	switch {
	case c.calico != nil:
		return c.calico.name
	case c.netpol != nil:
		return c.netpol.name
	}
	return c.admin.policy.name
}

// compareMembers orders members by tier (order, then name), then by order, then by name.
func compareMembers(a, b *calicoMember) int {
	return cmp.Or(
		cmp.Compare(a.tier.order, b.tier.order),
		cmp.Compare(a.tier.name, b.tier.name),
		cmp.Compare(a.order, b.order),
		cmp.Compare(a.sortName, b.sortName),
	)
}

// bindCalicoNamespace lists, in evaluation order, the members that may select pods of a
// namespace: its Kubernetes NetworkPolicies and Calico NetworkPolicies, the
// GlobalNetworkPolicies whose namespaceSelector selects it, and the admin policies bound to it.
func (m *Model) bindCalicoNamespace(ns *namespaceIndex) {
	var out []calicoMember
	for i := range ns.anps {
		a := &ns.anps[i]
		out = append(out, calicoMember{tier: m.calicoTiers[calicoTierKubeAdmin], order: float64(a.policy.priority),
			sortName: a.policy.name, admin: a, adminTier: TierAdmin})
	}
	for i := range ns.banps {
		a := &ns.banps[i]
		out = append(out, calicoMember{tier: m.calicoTiers[calicoTierKubeBaseline], sortName: a.policy.name, admin: a, adminTier: TierBaseline})
	}
	out = m.appendCalicoClusterNetworkPolicies(out, ns)
	for _, p := range ns.netpols {
		_, name, _ := strings.Cut(p.name, "/")
		out = append(out, calicoMember{tier: m.calicoTiers["default"], order: calicoOrderKubernetesNetworkPolicy,
			sortName: ns.name + "/knp.default." + name, netpol: p})
	}
	nsLabels := &calicoNamedLabels{ns.labels, ns.name}
	for _, p := range m.calicoGlobal {
		if p.namespaceSelector != nil && !p.namespaceSelector.Matches(nsLabels) {
			continue
		}
		out = append(out, calicoMember{tier: m.calicoTiers[p.tier], order: p.order, sortName: p.sortName, calico: p})
	}
	for _, p := range ns.calicoPolicies {
		out = append(out, calicoMember{tier: m.calicoTiers[p.tier], order: p.order, sortName: p.sortName, calico: p})
	}
	slices.SortStableFunc(out, func(a, b calicoMember) int { return compareMembers(&a, &b) })
	ns.calicoMembers = out
}

// calicoEngine is every policy as Calico evaluates it, in place of the three plain tiers.
type calicoEngine struct{ m *Model }

type calicoBound struct {
	pod       *calicoEndpoint
	selecting []*calicoMember
	// denials caches, per tier, the reason of its default Deny when no except entry is
	// involved: it depends on the selecting policies only, not on the endpoint.
	denials []tierDenial
}

type tierDenial struct {
	tier   *calicoTier
	reason Reason
}

func (t calicoEngine) bind(ns *namespaceIndex, s Subject, tr *tracer) boundTier {
	sa := s.serviceAccount()
	b := &calicoBound{pod: newCalicoEndpoint(s.Labels, s.Namespace, ns.labels, sa, t.m.serviceAccounts[s.Namespace+"/"+sa]),
		selecting: make([]*calicoMember, 0, len(ns.calicoMembers))}
	set := labels.Set(s.Labels)
	for i := range ns.calicoMembers {
		c := &ns.calicoMembers[i]
		switch {
		case c.calico != nil:
			if !c.calico.selects(b.pod) {
				continue
			}
			if tr != nil {
				tr.add(TierCalico, c.calico.name, NoRule, "%s in tier %s, order %s: selects the pod for egress", c.calico.kind, c.tier.name, orderText(c.order))
			}
		case c.netpol != nil:
			if !c.netpol.selector.Matches(set) {
				continue
			}
			if tr != nil {
				tr.add(TierNetworkPolicy, c.netpol.name, NoRule, "selects the pod for egress (Calico tier default, order 1000)")
			}
		default:
			if c.admin.pods != nil && !c.admin.pods.Matches(set) {
				continue
			}
			if tr != nil {
				tr.add(c.adminTier, c.admin.policy.name, NoRule, "subject selects the pod (Calico tier %s, order %s)", c.tier.name, orderText(c.order))
			}
		}
		b.selecting = append(b.selecting, c)
	}
	if len(b.selecting) == 0 {
		tr.add(TierCalico, "", NoRule, "no policy of any Calico tier selects the pod for egress")
	}
	return b
}

func orderText(o float64) string {
	if math.IsInf(o, 1) {
		return "none (last)"
	}
	return fmt.Sprint(o)
}

func (b *calicoBound) decide(ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	for i := 0; i < len(b.selecting); {
		tier := b.selecting[i].tier
		end := i
		for end < len(b.selecting) && b.selecting[end].tier == tier {
			end++
		}
		o, r, passed := b.decideTier(b.selecting[i:end], ep, tr)
		if !passed {
			return o, r
		}
		i = end
	}
	return next, Reason{}
}

// decideTier walks the selecting members of one tier. passed is set when the tier hands the
// traffic on to the next tier (a Pass rule, or the tier's default action Pass).
func (b *calicoBound) decideTier(members []*calicoMember, ep *endpoint.Endpoint, tr *tracer) (o outcome, r Reason, passed bool) {
	tier := members[0].tier
	var excepted *Reason
	for _, c := range members {
		switch {
		case c.calico != nil:
			o, r := b.decideCalico(c.calico, ep, tr)
			if o != next {
				return o, r, false
			}
			if r.Action == actionPass {
				if tr != nil {
					tr.add(TierCalico, c.calico.name, r.Rule, "Pass via %s: skip the rest of tier %s", r.Peer, tier.name)
				}
				return next, Reason{}, true
			}
		case c.netpol != nil:
			allowed, r, ex := c.netpol.allows(ep, tr)
			if allowed {
				return allow, r, false
			}
			if excepted == nil {
				excepted = ex
			}
		default:
			o, r := c.admin.policy.decide(c.adminTier, ep, tr)
			if o != next {
				return o, r, false
			}
			if r.Action == actionPass {
				if tr != nil {
					tr.add(c.adminTier, c.admin.policy.name, r.Rule, "Pass via %s: skip the rest of tier %s", r.Peer, tier.name)
				}
				return next, Reason{}, true
			}
		}
	}
	if tier.defaultAction == actionPass {
		if tr != nil {
			tr.add(TierCalico, "", NoRule, "end of tier %s: no policy decided %s; the tier's default action is Pass", tier.name, ep.Destination())
		}
		return next, Reason{}, true
	}
	if tr != nil {
		tr.add(TierCalico, "", NoRule, "end of tier %s: %d policies select the pod and none allowed %s; the tier's default action is Deny", tier.name, len(members), ep.Destination())
	}
	if excepted != nil {
		return deny, denial(tier, members, excepted), false
	}
	for _, d := range b.denials {
		if d.tier == tier {
			return deny, d.reason, false
		}
	}
	r = denial(tier, members, nil)
	b.denials = append(b.denials, tierDenial{tier, r})
	return deny, r, false
}

// denial is the reason of a tier's default Deny: the Kubernetes NetworkPolicies' reason when
// only they select the pod in the tier, else the tier and its selecting policies.
func denial(tier *calicoTier, members []*calicoMember, excepted *Reason) Reason {
	var netpols []*netpol
	var first *calicoPolicy
	for _, c := range members {
		if c.netpol != nil {
			netpols = append(netpols, c.netpol)
		} else if c.calico != nil && first == nil {
			first = c.calico
		}
	}
	if first == nil && len(netpols) > 0 {
		// Only Kubernetes NetworkPolicies select the pod in this tier: the denial is theirs.
		return npDenyReason(netpols, excepted)
	}
	names := make([]string, len(members))
	for i, c := range members {
		names[i] = c.name()
	}
	r := Reason{Tier: TierCalico, CalicoTier: tier.name, Rule: NoRule, Action: ActionDeny,
		Peer: fmt.Sprintf("end of tier %s: selected by %s and no rule allows it", tier.name, strings.Join(names, ", "))}
	if first != nil {
		r.Kind, r.Policy = first.kind, first.name
	}
	return r
}

// decideCalico walks a Calico policy's rules: the first Allow or Deny that matches decides, a
// Pass is returned as next with a reason whose Action is Pass, Log goes on.
func (b *calicoBound) decideCalico(p *calicoPolicy, ep *endpoint.Endpoint, tr *tracer) (outcome, Reason) {
	for i := range p.rules {
		r := &p.rules[i]
		ok, peer, broad, why := r.match(b.pod, ep, tr != nil)
		if !ok {
			if tr != nil {
				tr.add(TierCalico, p.name, i, "%s does not match: %s", r.action, why)
			}
			continue
		}
		reason := Reason{Tier: TierCalico, Kind: p.kind, CalicoTier: p.tier, Policy: p.name, Rule: i, Action: r.action, Peer: peer}
		switch r.action {
		case actionLog:
			if tr != nil {
				tr.add(TierCalico, p.name, i, "Log via %s: logged, evaluation goes on", peer)
			}
		case actionPass:
			return next, reason
		case ActionAllow:
			if tr != nil {
				tr.add(TierCalico, p.name, i, "Allow via %s: final", peer)
			}
			reason.Broad = broad
			return allow, reason
		default:
			if tr != nil {
				tr.add(TierCalico, p.name, i, "Deny via %s: final", peer)
			}
			return deny, reason
		}
	}
	return next, Reason{}
}

func (calicoEngine) semantics() Semantics { return SemanticsCalico }

// control lists, besides the namespace's Kubernetes NetworkPolicies, the admin policies bound to
// it and the Calico egress policies that may select its pods.
func (e calicoEngine) control(ns *namespaceIndex) EgressControl {
	c := kubernetesEngine{}.control(ns)
	c.Isolating = nil
	for i := range ns.calicoMembers {
		m := &ns.calicoMembers[i]
		if m.calico != nil {
			c.Calico = append(c.Calico, m.calico.name)
		}
		if (m.calico != nil || m.netpol != nil) && e.isolatingTier(m.tier) {
			c.Isolating = append(c.Isolating, m.name())
		}
	}
	return c
}

// isolatingTier reports whether the policies of a tier egress-isolate the pods they select:
// the tier denies what they do not allow, or Calico consults it after the default tier, where
// a NetworkPolicy's allow would come first and override its denials.
func (e calicoEngine) isolatingTier(t *calicoTier) bool {
	return t.defaultAction != actionPass || compareTiers(t, e.m.calicoTiers["default"]) > 0
}

// isolated: a pod is isolated when a Kubernetes NetworkPolicy or Calico policy selects it in a
// tier whose default action is Deny (what no rule allows is denied), or in a tier Calico
// consults after the default tier (a NetworkPolicy's allow in the default tier comes first and
// would override its denials).
func (e calicoEngine) isolated(ns *namespaceIndex, s Subject) bool {
	b := e.bind(ns, s, nil).(*calicoBound)
	for _, c := range b.selecting {
		if c.calico == nil && c.netpol == nil {
			continue // an admin policy: its tier passes what it does not decide
		}
		if e.isolatingTier(c.tier) {
			return true
		}
	}
	return false
}

// compareTiers orders Calico tiers as Calico consults them: by order, then by name.
func compareTiers(a, b *calicoTier) int {
	return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.name, b.name))
}
