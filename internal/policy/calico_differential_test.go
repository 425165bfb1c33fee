package policy_test

// Differential test for Calico: random clusters of the differential generator with Calico
// tiers, GlobalNetworkPolicies, NetworkPolicies, service accounts, GlobalNetworkSets and
// NetworkSets added, evaluated by policy.Model and by the Calico reference evaluator (calico_reference_test.go).

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	"github.com/imdsguard/imdsguard/internal/policy"
)

type calicoCluster struct {
	base   *diffCluster
	podSAs []string
	sas    []*corev1.ServiceAccount
	tiers  []*calicov3.Tier
	gnps   []*calicov3.GlobalNetworkPolicy
	nps    []*calicov3.NetworkPolicy
	gnss   []*calicov3.GlobalNetworkSet
	nss    []*calicov3.NetworkSet
	sels   refCalicoSelectors
}

func (c *calicoCluster) inventory() *inventory.Inventory {
	inv := c.base.inventory()
	inv.ServiceAccounts = map[string]*inventory.ServiceAccount{}
	for _, sa := range c.sas {
		inv.ServiceAccounts[sa.Namespace+"/"+sa.Name] = &inventory.ServiceAccount{ServiceAccount: sa}
	}
	for _, t := range c.tiers {
		inv.CalicoTiers = append(inv.CalicoTiers, &inventory.CalicoTier{Tier: t})
	}
	for _, p := range c.gnps {
		inv.CalicoGlobalNetworkPolicies = append(inv.CalicoGlobalNetworkPolicies, &inventory.CalicoGlobalNetworkPolicy{Policy: p})
	}
	for _, p := range c.nps {
		inv.CalicoNetworkPolicies = append(inv.CalicoNetworkPolicies, &inventory.CalicoNetworkPolicy{Policy: p})
	}
	for _, s := range c.gnss {
		inv.CalicoGlobalNetworkSets = append(inv.CalicoGlobalNetworkSets, &inventory.CalicoGlobalNetworkSet{Set: s})
	}
	for _, s := range c.nss {
		inv.CalicoNetworkSets = append(inv.CalicoNetworkSets, &inventory.CalicoNetworkSet{Set: s})
	}
	return inv
}

func (c *calicoCluster) subject(i int) policy.Subject {
	s := c.base.Pods[i].subject()
	s.ServiceAccount = c.podSAs[i]
	return s
}

var (
	calicoSAs      = []string{"", "default", "builder", "runner"}
	calicoOrders   = []float64{1, 500, 999, 1000, 1001, 2000}
	calicoTierDefs = []struct {
		name  string
		order *float64
	}{{"security", ptr(100.0)}, {"platform", ptr(2_000_000.0)}, {"early", ptr(10.0)}, {"unordered", nil}}
	calicoSelectorVocab = diffVocab{
		{"app", []string{"web", "db", "agent"}},
		{"role", []string{"frontend", "backend"}},
		{"imds", []string{"allow", "deny"}},
		{"projectcalico.org/namespace", []string{"default", "team-a", "prod"}},
		{"pcns.env", []string{"prod", "dev"}},
		{"pcsa.role", []string{"ci"}},
		{"projectcalico.org/serviceaccount", []string{"default", "builder"}},
	}
	calicoNamespaceVocab = diffVocab{{"env", []string{"prod", "dev"}}, {"team", []string{"a", "b"}}, {"projectcalico.org/name", []string{"prod", "team-a"}}}
	calicoSAVocab        = diffVocab{{"role", []string{"ci"}}, {"projectcalico.org/name", []string{"default", "runner"}}}
	// calicoNetworkSetVocab is what network sets are labelled with: keys of calicoSelectorVocab
	// that are not reserved for what Calico adds.
	calicoNetworkSetVocab = calicoSelectorVocab[:3]
	// calicoNetworkSetNets are the nets of network sets: the metadata addresses (as CIDRs and as
	// bare addresses), their ranges, a whole family and ranges that hold no metadata address.
	calicoNetworkSetNets = []string{
		"169.254.169.254/32", "169.254.0.0/16", "169.254.170.2/32", "fd00:ec2::254/128", "0.0.0.0/0",
		"10.0.0.0/8", "203.0.113.0/24", "169.254.169.254", "fd00:ec2::254", "168.63.129.16/32", "fd00:ec2::/64",
	}
)

func ptr[T any](v T) *T { return &v }

// calicoSelector returns a random selector string, remembering its structured form.
func (g *diffGen) calicoSelector(sels refCalicoSelectors, v diffVocab) string {
	if g.chance(0.3) {
		return diffPick(g, []string{"", "all()"})
	}
	var s refSel
	for range g.n(1, 2) {
		var and []refTerm
		for range g.n(1, 2) {
			kv := diffPick(g, v)
			t := refTerm{Key: kv.key, Op: diffPick(g, []string{"==", "!=", "has", "!has", "in", "not in", "contains", "starts with", "ends with"})}
			switch t.Op {
			case "has", "!has":
			case "in", "not in":
				t.Values = diffPickDistinct(g, kv.values, g.n(0, 2))
			case "contains", "starts with", "ends with":
				val := diffPick(g, kv.values)
				t.Values = []string{val[:g.n(0, len(val))]}
			default:
				t.Values = []string{diffPick(g, kv.values)}
			}
			and = append(and, t)
		}
		s = append(s, and)
	}
	src := s.String()
	sels[src] = s
	return src
}

// calicoNamespaceSelector returns a random namespace selector of an entity rule.
func (g *diffGen) calicoNamespaceSelector(sels refCalicoSelectors) string {
	if g.chance(0.35) {
		return diffPick(g, []string{"global()", "all()"})
	}
	return g.calicoSelector(sels, calicoNamespaceVocab)
}

// calicoNets returns 1 to 3 distinct nets for a network set.
func (g *diffGen) calicoNets() []string {
	return diffPickDistinct(g, calicoNetworkSetNets, g.n(1, 3))
}

func (g *diffGen) calicoRule(sels refCalicoSelectors) calicov3.Rule {
	r := calicov3.Rule{Action: diffPick(g, []string{"Allow", "Allow", "Deny", "Deny", "Pass", "Log"})}
	portsOK := false
	switch x := g.r.Float64(); {
	case x < 0.45:
	case x < 0.85:
		p := diffPick(g, []intstr.IntOrString{intstr.FromString("TCP"), intstr.FromString("UDP"), intstr.FromString("tcp"), intstr.FromInt32(6), intstr.FromInt32(17)})
		r.Protocol, portsOK = &p, true
	default:
		p := diffPick(g, []intstr.IntOrString{intstr.FromString("SCTP"), intstr.FromString("ICMP"), intstr.FromInt32(132)})
		r.Protocol = &p
	}
	if g.chance(0.1) {
		p := diffPick(g, []intstr.IntOrString{intstr.FromString("UDP"), intstr.FromInt32(6)})
		r.NotProtocol = &p
	}
	if g.chance(0.2) {
		r.IPVersion = ptr(diffPick(g, []int{4, 6}))
	}
	nets := func() []string {
		var out []string
		for range g.n(1, 2) {
			c := g.block()
			if r.IPVersion != nil && (*r.IPVersion == 6) != netip.MustParsePrefix(c).Addr().Is6() {
				continue
			}
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		return out
	}
	if g.chance(0.55) {
		r.Destination.Nets = nets()
	}
	if g.chance(0.25) {
		r.Destination.NotNets = nets()
	}
	if portsOK && g.chance(0.5) {
		for range g.n(1, 2) {
			switch x := g.r.Float64(); {
			case x < 0.5:
				r.Destination.Ports = append(r.Destination.Ports, intstr.FromInt32(diffPick(g, diffPorts)))
			case x < 0.8:
				lo := diffPick(g, diffPorts)
				r.Destination.Ports = append(r.Destination.Ports, intstr.FromString(fmt.Sprintf("%d:%d", lo, min(65535, lo+diffPick(g, []int32{0, 27, 400})))))
			default:
				r.Destination.Ports = append(r.Destination.Ports, intstr.FromString(diffPick(g, diffPortNames)))
			}
		}
	}
	if portsOK && g.chance(0.15) {
		r.Destination.NotPorts = []intstr.IntOrString{intstr.FromInt32(diffPick(g, diffPorts))}
	}
	if g.chance(0.3) {
		// The destination's selectors, which select network sets.
		d := &r.Destination
		if g.chance(0.55) {
			d.Selector = g.calicoSelector(sels, calicoSelectorVocab)
		}
		if g.chance(0.35) {
			d.NotSelector = g.calicoSelector(sels, calicoSelectorVocab)
		}
		if g.chance(0.3) {
			d.NamespaceSelector = g.calicoNamespaceSelector(sels)
		}
		if g.chance(0.1) {
			// Names, a selector or both; a selector alone is matched by Calico against a
			// network set's (absent) pcsa. labels.
			d.ServiceAccounts = &calicov3.ServiceAccountMatch{}
			if g.chance(0.6) {
				d.ServiceAccounts.Names = diffPickDistinct(g, calicoSAs[1:], g.n(1, 2))
			}
			if len(d.ServiceAccounts.Names) == 0 || g.chance(0.4) {
				d.ServiceAccounts.Selector = g.calicoSelector(sels, calicoSAVocab)
			}
		}
	}
	switch x := g.r.Float64(); {
	case x < 0.08:
		r.Source.Selector = g.calicoSelector(sels, calicoSelectorVocab)
	case x < 0.12:
		r.Source.NotSelector = g.calicoSelector(sels, calicoSelectorVocab)
	}
	return r
}

func (g *diffGen) calicoRules(sels refCalicoSelectors) ([]string, []calicov3.Rule) {
	var types []string
	switch x := g.r.Float64(); {
	case x < 0.6:
	case x < 0.85:
		types = []string{"Egress"}
	case x < 0.93:
		types = []string{"Ingress"}
	default:
		types = []string{"Ingress", "Egress"}
	}
	var rules []calicov3.Rule
	for range g.n(0, 3) {
		rules = append(rules, g.calicoRule(sels))
	}
	return types, rules
}

func diffCalicoGenerate(seed uint64) *calicoCluster {
	g := newDiffGen(seed ^ 0xca11c0)
	c := &calicoCluster{base: newDiffGen(seed).cluster(seed), sels: refCalicoSelectors{}}
	for range c.base.Pods {
		c.podSAs = append(c.podSAs, diffPick(g, calicoSAs))
	}
	for _, ns := range c.base.Namespaces {
		for _, name := range []string{"builder", "runner"} {
			if g.chance(0.5) {
				c.sas = append(c.sas, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name, Labels: g.labels(calicoSAVocab[:1])}})
			}
		}
	}
	var tierNames []string
	for _, t := range diffPickDistinct(g, calicoTierDefs, g.n(0, 2)) {
		tier := &calicov3.Tier{ObjectMeta: metav1.ObjectMeta{Name: t.name}, Spec: calicov3.TierSpec{Order: t.order}}
		if g.chance(0.4) {
			tier.Spec.DefaultAction = "Pass"
		}
		c.tiers = append(c.tiers, tier)
		tierNames = append(tierNames, t.name)
	}
	tierOf := func() string {
		if len(tierNames) == 0 || g.chance(0.4) {
			return diffPick(g, []string{"", "default"})
		}
		return diffPick(g, tierNames)
	}
	orderOf := func() *float64 {
		if g.chance(0.3) {
			return nil
		}
		return ptr(diffPick(g, calicoOrders))
	}
	for i := range g.n(1, 4) {
		p := &calicov3.GlobalNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gnp%d", i)}}
		p.Spec.Tier, p.Spec.Order = tierOf(), orderOf()
		p.Spec.Selector = g.calicoSelector(c.sels, calicoSelectorVocab)
		if g.chance(0.3) {
			p.Spec.NamespaceSelector = g.calicoSelector(c.sels, calicoNamespaceVocab)
		}
		if g.chance(0.15) {
			p.Spec.ServiceAccountSelector = g.calicoSelector(c.sels, calicoSAVocab)
		}
		p.Spec.Types, p.Spec.Egress = g.calicoRules(c.sels)
		c.gnps = append(c.gnps, p)
	}
	for i := range g.n(0, 3) {
		p := &calicov3.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cnp%d", i), Namespace: diffPick(g, c.base.Namespaces).Name}}
		p.Spec.Tier, p.Spec.Order = tierOf(), orderOf()
		p.Spec.Selector = g.calicoSelector(c.sels, calicoSelectorVocab)
		if g.chance(0.15) {
			p.Spec.ServiceAccountSelector = g.calicoSelector(c.sels, calicoSAVocab)
		}
		p.Spec.Types, p.Spec.Egress = g.calicoRules(c.sels)
		c.nps = append(c.nps, p)
	}
	for i := range g.n(0, 3) {
		s := &calicov3.GlobalNetworkSet{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gns%d", i), Labels: g.labels(calicoNetworkSetVocab)}}
		s.Spec.Nets = g.calicoNets()
		c.gnss = append(c.gnss, s)
	}
	for i := range g.n(0, 3) {
		s := &calicov3.NetworkSet{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns%d", i), Namespace: diffPick(g, c.base.Namespaces).Name, Labels: g.labels(calicoNetworkSetVocab)}}
		s.Spec.Nets = g.calicoNets()
		c.nss = append(c.nss, s)
	}
	return c
}

// calicoDisagreement compares a verdict with the reference: a Calico decision must name the same
// policy and rule; others are compared as in the plain differential test.
func calicoDisagreement(got policy.Verdict, want refAnswer) string {
	if want.Tier == policy.TierCalico {
		r := got.DecidedBy
		if got.Allowed != want.Allowed || r.Tier != want.Tier || r.Policy != want.Policy || r.Rule != want.Rule {
			return fmt.Sprintf("product %v by %s %s rule %d, reference %v by %s %s rule %d", got.Allowed, r.Tier, r.Policy, r.Rule, want.Allowed, want.Tier, want.Policy, want.Rule)
		}
		return ""
	}
	return diffDisagreement(got, want)
}

func TestCalicoDifferential(t *testing.T) {
	eps := diffEndpoints(t)
	st := &diffStats{Outcomes: map[string]int{}}
	failures := 0
	for seed := range uint64(diffClusterCount() / 2) {
		c := diffCalicoGenerate(seed)
		inv := c.inventory()
		m := policy.Compile(inv)
		if len(m.Rejected) > 0 {
			t.Fatalf("seed %d: the generator made an invalid cluster; the compiler rejected: %v", seed, m.Rejected)
		}
		st.Clusters++
		got := make([]policy.Verdict, len(eps))
		for i := range c.base.Pods {
			s := c.subject(i)
			m.Evaluate(s, eps, got)
			for j, ep := range eps {
				want := refCalicoEvaluate(inv, c.sels, s, ep)
				st.Comparisons++
				st.Outcomes[diffOutcome(want)]++
				if why := calicoDisagreement(got[j], want); why != "" {
					failures++
					if failures <= diffReported {
						_, steps := m.Explain(s, []endpoint.Endpoint{ep})
						t.Errorf("seed %d: pod %s (sa %q), endpoint %s: %s\nreference: %+v\ntrace:\n%v\nGNPs:\n%s\nNPs:\n%s\nnetwork sets and namespaces:\n%s", seed, c.base.Pods[i], s.ServiceAccount, ep, why, want, steps[0], describeCalico(c.gnps), describeCalico(c.nps), c.describeSets())
					}
				}
			}
		}
	}
	if failures > 0 {
		t.Errorf("%d disagreements", failures)
	}
	t.Logf("%d clusters, %d comparisons", st.Clusters, st.Comparisons)
	for _, k := range []string{"Calico/allow", "Calico/deny", "NetworkPolicy/allow", "NetworkPolicy/deny", "AdminNetworkPolicy/deny", "Default/allow", "hostNetwork/allow",
		"Admin/allow", "Admin/deny", "Baseline/allow", "Baseline/deny"} {
		if st.Outcomes[k] < max(1, st.Comparisons/20000) {
			t.Errorf("outcome %q reached %d times: the generator no longer exercises it (%v)", k, st.Outcomes[k], st.Outcomes)
		}
	}
}

// describeSets lists the network sets and the namespaces whose labels they inherit.
func (c *calicoCluster) describeSets() string {
	var out string
	for _, s := range c.gnss {
		out += fmt.Sprintf("  GlobalNetworkSet %s labels %v nets %v\n", s.Name, s.Labels, s.Spec.Nets)
	}
	for _, s := range c.nss {
		out += fmt.Sprintf("  NetworkSet %s/%s labels %v nets %v\n", s.Namespace, s.Name, s.Labels, s.Spec.Nets)
	}
	for _, ns := range c.base.Namespaces {
		out += fmt.Sprintf("  Namespace %s labels %v\n", ns.Name, ns.Labels)
	}
	return out
}

func describeCalico[T any](ps []T) string {
	var out string
	for _, p := range ps {
		out += fmt.Sprintf("  %+v\n", p)
	}
	return out
}
