package policy_test

// A reference evaluator for clusters with Calico policies, written from Calico's documentation
// independently of the product's evaluator, in the naive style of reference_test.go: every
// question is answered by walking the inventory again. Selectors are evaluated from the
// structured form the generator builds them in (refSel), not by the product's parser.

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	"github.com/imdsguard/imdsguard/internal/policy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// refTerm is one comparison of a selector.
type refTerm struct {
	Key, Op string // ==, !=, has, !has, in, not in, contains, starts with, ends with
	Values  []string
}

// refSel is a selector in disjunctive normal form: any of the conjunctions; none is all().
type refSel [][]refTerm

func (s refSel) String() string {
	if len(s) == 0 {
		return "all()"
	}
	var ors []string
	for _, and := range s {
		var terms []string
		for _, t := range and {
			q := func(v string) string { return "'" + v + "'" }
			switch t.Op {
			case "has":
				terms = append(terms, "has("+t.Key+")")
			case "!has":
				terms = append(terms, "!has("+t.Key+")")
			case "in", "not in":
				vs := make([]string, len(t.Values))
				for i, v := range t.Values {
					vs[i] = q(v)
				}
				terms = append(terms, t.Key+" "+t.Op+" {"+strings.Join(vs, ", ")+"}")
			default:
				terms = append(terms, t.Key+" "+t.Op+" "+q(t.Values[0]))
			}
		}
		ors = append(ors, "("+strings.Join(terms, " && ")+")")
	}
	return strings.Join(ors, " || ")
}

// refSelMatches: "k == 'v' matches resources with label k and value v; k != 'v' those without
// label k or with another value; has(k) those with label k; k in {…} those with label k and a
// value in the set; k not in {…} those without label k or with a value outside it; contains,
// starts with, ends with those with label k whose value contains, starts or ends with it."
func refSelMatches(s refSel, labels map[string]string) bool {
	if len(s) == 0 {
		return true
	}
	for _, and := range s {
		ok := true
		for _, t := range and {
			v, has := labels[t.Key]
			var m bool
			switch t.Op {
			case "==":
				m = has && v == t.Values[0]
			case "!=":
				m = !has || v != t.Values[0]
			case "has":
				m = has
			case "!has":
				m = !has
			case "in":
				m = has && slices.Contains(t.Values, v)
			case "not in":
				m = !has || !slices.Contains(t.Values, v)
			case "contains":
				m = has && strings.Contains(v, t.Values[0])
			case "starts with":
				m = has && strings.HasPrefix(v, t.Values[0])
			case "ends with":
				m = has && strings.HasSuffix(v, t.Values[0])
			}
			if !m {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// refCalicoSelectors maps each selector string the generator wrote to its structured form.
type refCalicoSelectors map[string]refSel

func (r refCalicoSelectors) matches(src string, labels map[string]string) bool {
	if strings.TrimSpace(src) == "" || src == "all()" {
		return true
	}
	s, ok := r[src]
	if !ok {
		panic("selector not from the generator: " + src)
	}
	return refSelMatches(s, labels)
}

// refCalicoEndpointLabels: "Calico adds projectcalico.org/namespace, projectcalico.org/orchestrator
// and projectcalico.org/serviceaccount to a pod's labels, and its namespace's and service
// account's labels with the pcns. and pcsa. prefixes."
func refCalicoEndpointLabels(pod policy.Subject, nsLabels, saLabels map[string]string) map[string]string {
	sa := pod.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	out := map[string]string{}
	for k, v := range pod.Labels {
		out[k] = v
	}
	for k, v := range nsLabels {
		out["pcns."+k] = v
	}
	out["pcns.projectcalico.org/name"] = pod.Namespace
	for k, v := range saLabels {
		out["pcsa."+k] = v
	}
	out["pcsa.projectcalico.org/name"] = sa
	out["projectcalico.org/namespace"] = pod.Namespace
	out["projectcalico.org/orchestrator"] = "k8s"
	out["projectcalico.org/serviceaccount"] = sa
	return out
}

// refEntry is one policy of a Calico tier that selects the pod.
type refEntry struct {
	tier     string
	order    float64
	name     string
	netpol   bool
	calico   bool
	policy   string // as the product names it
	rules    func() (action string, rule int, matching []refRule)
	tierKind policy.Tier
}

// refCalicoEvaluate:
//
//	"Each tier that contains a policy that applies to the endpoint processes the packet, tiers
//	sorted by order, smallest first (no order: last; ties by name). Policies in each tier are
//	processed in order (no order: last; ties by name). Allow or Deny: done. Pass: the next tier
//	containing a policy that applies to the endpoint. If the tier applies to the endpoint but
//	takes no action, its default action: Deny, or Pass. AdminNetworkPolicies are in tier
//	kube-admin (order 1000, Pass) with order = priority; Kubernetes NetworkPolicies in tier
//	default (order 1,000,000, Deny) at order 1000; the BaselineAdminNetworkPolicy in
//	kube-baseline (order 10,000,000, Pass). No decision: the namespace profile allows."
//	ClusterNetworkPolicies (Calico v3.32+): Admin tier in kube-admin, Baseline tier in
//	kube-baseline, order = priority.
func refCalicoEvaluate(inv *inventory.Inventory, sels refCalicoSelectors, pod policy.Subject, ep endpoint.Endpoint) refAnswer {
	if pod.HostNetwork {
		return refAnswer{Allowed: true, Tier: policy.TierHostNetwork, Rule: refNoRule}
	}
	type tierInfo struct {
		order float64
		pass  bool
	}
	tiers := map[string]tierInfo{"kube-admin": {1000, true}, "default": {1_000_000, false}, "kube-baseline": {10_000_000, true}}
	for _, t := range inv.CalicoTiers {
		o := math.Inf(1)
		if t.Tier.Spec.Order != nil {
			o = *t.Tier.Spec.Order
		}
		tiers[t.Tier.Name] = tierInfo{o, t.Tier.Spec.DefaultAction == "Pass"}
	}
	nsLabels := refNamespaceLabels(inv, pod.Namespace)
	sa := pod.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	var saLabels map[string]string
	if s := inv.ServiceAccounts[pod.Namespace+"/"+sa]; s != nil {
		saLabels = s.ServiceAccount.Labels
	}
	labels := refCalicoEndpointLabels(pod, nsLabels, saLabels)
	nsNamed := map[string]string{"projectcalico.org/name": pod.Namespace}
	for k, v := range nsLabels {
		nsNamed[k] = v
	}
	saNamed := map[string]string{"projectcalico.org/name": sa}
	for k, v := range saLabels {
		saNamed[k] = v
	}
	var networkSets []refCalicoNetworkSet
	sets := func() []refCalicoNetworkSet { // read once, when a rule first needs them
		if networkSets == nil {
			networkSets = refCalicoNetworkSets(inv)
		}
		return networkSets
	}

	var entries []refEntry
	for _, p := range inv.AdminNetworkPolicies {
		if !refSubjectSelects(p.Policy.Spec.Subject, nsLabels, pod.Labels) {
			continue
		}
		a := p.Policy
		entries = append(entries, refEntry{tier: "kube-admin", order: float64(a.Spec.Priority), name: a.Name, policy: a.Name, tierKind: policy.TierAdmin,
			rules: func() (string, int, []refRule) {
				for i, r := range a.Spec.Egress {
					if refAdminPortsMatch(r.Ports, ep) && refAdminPeersMatch(r.To, ep) {
						return string(r.Action), i, nil
					}
				}
				return "", refNoRule, nil
			}})
	}
	for _, p := range inv.BaselineAdminNetworkPolicies {
		if p.Policy.Name != "default" || !refSubjectSelects(p.Policy.Spec.Subject, nsLabels, pod.Labels) {
			continue
		}
		// The baseline's rules are matched as refBaselineTier does.
		entries = append(entries, refEntry{tier: "kube-baseline", name: "default", policy: "default", tierKind: policy.TierBaseline,
			rules: func() (string, int, []refRule) {
				sub := &inventory.Inventory{Namespaces: inv.Namespaces, BaselineAdminNetworkPolicies: []*inventory.BaselineAdminNetworkPolicy{p}}
				if a, decided := refBaselineTier(sub, nsLabels, pod.Labels, ep); decided {
					if a.Allowed {
						return "Allow", a.Rule, nil
					}
					return "Deny", a.Rule, nil
				}
				return "", refNoRule, nil
			}})
	}
	// ClusterNetworkPolicies: Calico v3.32 and later puts the Admin tier in kube-admin and the
	// Baseline tier in kube-baseline, order = priority; Accept is Allow. Their rules are matched
	// as refClusterTier does, one policy at a time.
	for _, c := range inv.ClusterNetworkPolicies {
		cp := c.Policy
		if !refClusterSubjectSelects(cp.Spec.Subject, nsLabels, pod.Labels) {
			continue
		}
		tier, kind := "kube-admin", policy.TierClusterAdmin
		if cp.Spec.Tier == "Baseline" {
			tier, kind = "kube-baseline", policy.TierClusterBaseline
		}
		entries = append(entries, refEntry{tier: tier, order: float64(cp.Spec.Priority), name: cp.Name, policy: cp.Name, tierKind: kind,
			rules: func() (string, int, []refRule) {
				for i, r := range cp.Spec.Egress {
					if !refClusterProtocolsMatch(r.Protocols, ep) || !refClusterPeersMatch(r.To, ep) {
						continue
					}
					if r.Action == "Accept" {
						return "Allow", i, nil
					}
					return string(r.Action), i, nil
				}
				return "", refNoRule, nil
			}})
	}
	for _, np := range refEgressPolicies(inv, pod) {
		name := np.Namespace + "/" + np.Name
		entries = append(entries, refEntry{tier: "default", order: 1000, name: np.Namespace + "/knp.default." + np.Name, netpol: true, policy: name, tierKind: policy.TierNetworkPolicy,
			rules: func() (string, int, []refRule) {
				var matching []refRule
				for i, r := range np.Spec.Egress {
					if refNetpolPortsMatch(r.Ports, ep) && refNetpolPeersMatch(r.To, ep) {
						matching = append(matching, refRule{Policy: name, Rule: i})
					}
				}
				if len(matching) > 0 {
					return "Allow", matching[0].Rule, matching
				}
				return "", refNoRule, nil
			}})
	}
	addCalico := func(name, namespace, tier string, order *float64, selector, nsSelector, saSelector string, types []string, egress []calicov3.Rule) {
		if namespace != "" && namespace != pod.Namespace {
			return
		}
		if !refCalicoEgress(types, len(egress)) || !sels.matches(selector, labels) || !sels.matches(nsSelector, nsNamed) || !sels.matches(saSelector, saNamed) {
			return
		}
		if tier == "" {
			tier = "default"
		}
		o := math.Inf(1)
		if order != nil {
			o = *order
		}
		full := name
		if namespace != "" {
			full = namespace + "/" + name
		}
		entries = append(entries, refEntry{tier: tier, order: o, name: full, calico: true, policy: full, tierKind: policy.TierCalico,
			rules: func() (string, int, []refRule) {
				for i := range egress {
					if !refCalicoRuleMatches(&egress[i], sets, sels, namespace, labels, ep) {
						continue
					}
					if egress[i].Action == "Log" {
						continue
					}
					return egress[i].Action, i, nil
				}
				return "", refNoRule, nil
			}})
	}
	for _, g := range inv.CalicoGlobalNetworkPolicies {
		s := g.Policy.Spec
		if s.DoNotTrack || s.PreDNAT {
			continue // "untracked and pre-DNAT policies apply to host endpoints only"
		}
		addCalico(g.Policy.Name, "", s.Tier, s.Order, s.Selector, s.NamespaceSelector, s.ServiceAccountSelector, s.Types, s.Egress)
	}
	for _, n := range inv.CalicoNetworkPolicies {
		s := n.Policy.Spec
		addCalico(n.Policy.Name, n.Policy.Namespace, s.Tier, s.Order, s.Selector, "", s.ServiceAccountSelector, s.Types, s.Egress)
	}
	slices.SortStableFunc(entries, func(a, b refEntry) int {
		return cmp.Or(cmp.Compare(tiers[a.tier].order, tiers[b.tier].order), cmp.Compare(a.tier, b.tier),
			cmp.Compare(a.order, b.order), cmp.Compare(a.name, b.name))
	})

	var passed bool
	for i := 0; i < len(entries); {
		tier := entries[i].tier
		j := i
		for j < len(entries) && entries[j].tier == tier {
			j++
		}
		group := entries[i:j]
		i = j
		var a *refAnswer
		pass := false
		for _, e := range group {
			action, rule, matching := e.rules()
			switch action {
			case "Allow", "Deny":
				ans := refAnswer{Allowed: action == "Allow", Tier: e.tierKind, Policy: e.policy, Rule: rule}
				if e.netpol {
					ans = refAnswer{Allowed: true, Tier: policy.TierNetworkPolicy, Rule: refNoRule, Isolating: []string{e.policy}, Allowing: matching}
				}
				a = &ans
			case "Pass":
				pass = true
			default:
				continue
			}
			break
		}
		if a != nil {
			a.Passed = passed
			return *a
		}
		if pass || tiers[tier].pass {
			passed = passed || pass
			continue
		}
		// The tier's default action denies.
		ans := refAnswer{Tier: policy.TierCalico, Rule: refNoRule, Passed: passed}
		allNetpols := true
		for _, e := range group {
			if e.netpol {
				ans.Isolating = append(ans.Isolating, e.policy)
			} else if e.calico && allNetpols {
				allNetpols = false
				ans.Policy = e.policy
			}
		}
		if allNetpols && len(ans.Isolating) > 0 {
			ans.Tier = policy.TierNetworkPolicy
		}
		return ans
	}
	return refAnswer{Allowed: true, Tier: policy.TierDefault, Rule: refNoRule, Passed: passed}
}

// refCalicoEgress: "types: if not specified, Egress is included only if egress rules are present".
func refCalicoEgress(types []string, egressRules int) bool {
	if len(types) == 0 {
		return egressRules > 0
	}
	return slices.Contains(types, "Egress")
}

// refCalicoRuleMatches: "ipVersion: only that IP version; protocol / notProtocol: TCP, UDP,
// ICMP, ICMPv6, SCTP, UDPLite or 1-255; destination nets: any of them contains the address;
// notNets: none does; ports / notPorts: numbers, 'first:last' ranges or named ports (named
// ports are pods' ports); selector, namespaceSelector and serviceAccounts select endpoints;
// notSelector excludes them; the source of an egress rule is the pod." The dataplane renders a
// rule per IP version with only that version's nets, and drops it for a version that a nets or
// notNets list has no entry of. The destination's selectors are matched against the network
// sets by refCalicoDestinationSelected; namespace is the policy's ("" for a global policy).
func refCalicoRuleMatches(r *calicov3.Rule, sets func() []refCalicoNetworkSet, sels refCalicoSelectors, namespace string, labels map[string]string, ep endpoint.Endpoint) bool {
	family := 4
	if ep.Address.Is6() {
		family = 6
	}
	if r.IPVersion != nil && *r.IPVersion != family {
		return false
	}
	protoNumber := map[corev1.Protocol]int{corev1.ProtocolTCP: 6, corev1.ProtocolUDP: 17, corev1.ProtocolSCTP: 132}[ep.Protocol]
	isProto := func(p intstr.IntOrString) bool {
		if p.Type == intstr.Int {
			return int(p.IntVal) == protoNumber
		}
		return strings.EqualFold(p.StrVal, string(ep.Protocol))
	}
	if r.Protocol != nil && !isProto(*r.Protocol) {
		return false
	}
	if r.NotProtocol != nil && isProto(*r.NotProtocol) {
		return false
	}
	if r.ICMP != nil {
		return false
	}
	d := &r.Destination
	sameFamily := func(nets []string) (out []string, droppedAll bool) {
		for _, n := range nets {
			if strings.Contains(n, ":") == (family == 6) {
				out = append(out, n)
			}
		}
		return out, len(nets) > 0 && len(out) == 0
	}
	nets, dropped := sameFamily(d.Nets)
	if dropped {
		return false
	}
	notNets, dropped := sameFamily(d.NotNets)
	if dropped {
		return false
	}
	if len(nets) > 0 && !slices.ContainsFunc(nets, func(n string) bool { return refCIDRContains(n, ep.Address) }) {
		return false
	}
	if slices.ContainsFunc(notNets, func(n string) bool { return refCIDRContains(n, ep.Address) }) {
		return false
	}
	if d.Services != nil {
		return false // "services: the endpoints of a Kubernetes Service", all inside the cluster
	}
	if !refCalicoDestinationSelected(d, sets, sels, namespace, ep.Address) {
		return false
	}
	portIn := func(p intstr.IntOrString) bool {
		if p.Type == intstr.Int {
			return p.IntVal == ep.Port
		}
		if a, b, ok := strings.Cut(p.StrVal, ":"); ok {
			lo, _ := strconv.Atoi(a)
			hi, _ := strconv.Atoi(b)
			return int(ep.Port) >= lo && int(ep.Port) <= hi
		}
		n, err := strconv.Atoi(p.StrVal)
		return err == nil && n == int(ep.Port)
	}
	if len(d.Ports) > 0 && !slices.ContainsFunc(d.Ports, portIn) {
		return false
	}
	if slices.ContainsFunc(d.NotPorts, portIn) {
		return false
	}
	s := &r.Source
	if s.Selector != "" && !sels.matches(s.Selector, labels) {
		return false
	}
	if s.NotSelector != "" && sels.matches(s.NotSelector, labels) {
		return false
	}
	return true
}

// refCalicoNetworkSet is a GlobalNetworkSet or NetworkSet with its labels as selectors see them.
type refCalicoNetworkSet struct {
	name   string
	labels map[string]string
	nets   []string
}

// refCalicoNetworkSets: "A GlobalNetworkSet carries its own labels. A NetworkSet carries its own
// labels plus projectcalico.org/namespace: <namespace>, and inherits its namespace profile's
// labels: pcns.<key> for each label of the namespace and pcns.projectcalico.org/name:
// <namespace> (its own labels win over inherited ones)."
func refCalicoNetworkSets(inv *inventory.Inventory) []refCalicoNetworkSet {
	out := []refCalicoNetworkSet{}
	for _, g := range inv.CalicoGlobalNetworkSets {
		labels := map[string]string{}
		for k, v := range g.Set.Labels {
			labels[k] = v
		}
		out = append(out, refCalicoNetworkSet{name: g.Set.Name, labels: labels, nets: g.Set.Spec.Nets})
	}
	for _, n := range inv.CalicoNetworkSets {
		ns := n.Set.Namespace
		labels := map[string]string{}
		for k, v := range refNamespaceLabels(inv, ns) {
			labels["pcns."+k] = v
		}
		labels["pcns.projectcalico.org/name"] = ns
		for k, v := range n.Set.Labels {
			labels[k] = v
		}
		labels["projectcalico.org/namespace"] = ns
		out = append(out, refCalicoNetworkSet{name: ns + "/" + n.Set.Name, labels: labels, nets: n.Set.Spec.Nets})
	}
	return out
}

// refCalicoNetContains: "nets: IP addresses or CIDRs"; an address is its own /32 or /128.
func refCalicoNetContains(n string, addr netip.Addr) bool {
	if !strings.Contains(n, "/") {
		a, err := netip.ParseAddr(n)
		if err != nil {
			return false
		}
		n += "/" + strconv.Itoa(a.BitLen())
	}
	return refCIDRContains(n, addr)
}

// refCalicoPrefixedMatches evaluates a selector written over namespace (pcns.) or service account
// (pcsa.) labels against an endpoint's labels: "the selector's labels are those of the
// endpoint's namespace / service account".
func refCalicoPrefixedMatches(sels refCalicoSelectors, src, prefix string, labels map[string]string) bool {
	view := map[string]string{}
	for k, v := range labels {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			view[rest] = v
		}
	}
	return sels.matches(src, view)
}

// refCalicoDestinationSelected decides an egress rule's destination selectors for an address
// outside the cluster, which only a network set can hold (pods never have a metadata address):
//
//	"namespaceSelector: the endpoints in the namespaces it selects; all() selects every
//	namespaced endpoint, global() only non-namespaced ones (global network sets). In a
//	NetworkPolicy, no namespaceSelector means the policy's namespace; in a
//	GlobalNetworkPolicy, any namespace and non-namespaced resources. serviceAccounts: the
//	endpoints running as those service accounts (names AND selector). selector: the endpoints
//	it selects. The namespace condition joins the others as soon as any selector field
//	(selector, serviceAccounts, notSelector or namespaceSelector) is set. notSelector: the
//	endpoints it selects are excluded, in any namespace."
func refCalicoDestinationSelected(d *calicov3.EntityRule, networkSets func() []refCalicoNetworkSet, sels refCalicoSelectors, namespace string, addr netip.Addr) bool {
	if d.Selector == "" && d.NotSelector == "" && d.NamespaceSelector == "" && d.ServiceAccounts == nil {
		return true // no selector field: no condition (the shortcut only saves reading the sets)
	}
	sets := networkSets()
	holds := func(s refCalicoNetworkSet) bool {
		return slices.ContainsFunc(s.nets, func(n string) bool { return refCalicoNetContains(n, addr) })
	}
	// notSelector (rule 5): raw, never namespaced.
	if d.NotSelector != "" {
		for _, s := range sets {
			if sels.matches(d.NotSelector, s.labels) && holds(s) {
				return false
			}
		}
	}
	// The namespace condition (rule 1).
	var nsCond func(map[string]string) bool
	switch {
	case d.NamespaceSelector != "":
		nsCond = func(l map[string]string) bool {
			_, namespaced := l["projectcalico.org/namespace"]
			switch strings.TrimSpace(d.NamespaceSelector) {
			case "all()":
				return namespaced
			case "global()":
				return !namespaced
			}
			return refCalicoPrefixedMatches(sels, d.NamespaceSelector, "pcns.", l)
		}
	case namespace != "":
		nsCond = func(l map[string]string) bool { return l["projectcalico.org/namespace"] == namespace }
	}
	// The endpoint conditions (rule 2): service accounts, then the selector.
	var conds []func(map[string]string) bool
	if sa := d.ServiceAccounts; sa != nil && (sa.Selector != "" || len(sa.Names) > 0) {
		conds = append(conds, func(l map[string]string) bool {
			if sa.Selector != "" && !refCalicoPrefixedMatches(sels, sa.Selector, "pcsa.", l) {
				return false
			}
			if len(sa.Names) > 0 {
				v, ok := l["projectcalico.org/serviceaccount"]
				return ok && slices.Contains(sa.Names, v)
			}
			return true
		})
	}
	if d.Selector != "" {
		conds = append(conds, func(l map[string]string) bool { return sels.matches(d.Selector, l) })
	}
	// The combined selector (rule 3).
	if nsCond != nil && (len(conds) > 0 || d.NotSelector != "" || d.NamespaceSelector != "") {
		conds = append(conds, nsCond)
	}
	if len(conds) == 0 {
		return true // no selector condition
	}
	// Rule 4: any network set the combined selector selects holds the address.
	for _, s := range sets {
		if holds(s) && !slices.ContainsFunc(conds, func(c func(map[string]string) bool) bool { return !c(s.labels) }) {
			return true
		}
	}
	return false
}
