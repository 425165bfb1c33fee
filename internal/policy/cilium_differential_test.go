package policy_test

// Differential test for Cilium: random clusters of the differential generator with
// CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies added, evaluated by policy.Model
// and by the Cilium reference evaluator (cilium_reference_test.go).

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/ciliumv2"
	"github.com/imdsguard/imdsguard/internal/policy"
)

type ciliumCluster struct {
	base   *diffCluster
	podSAs []string
	cnps   []*ciliumv2.CiliumNetworkPolicy
	ccnps  []*ciliumv2.CiliumClusterwideNetworkPolicy
}

func (c *ciliumCluster) inventory() *inventory.Inventory {
	inv := c.base.inventory()
	for _, p := range c.cnps {
		inv.CiliumNetworkPolicies = append(inv.CiliumNetworkPolicies, &inventory.CiliumNetworkPolicy{Policy: p})
	}
	for _, p := range c.ccnps {
		inv.CiliumClusterwideNetworkPolicies = append(inv.CiliumClusterwideNetworkPolicies, &inventory.CiliumClusterwideNetworkPolicy{Policy: p})
	}
	return inv
}

func (c *ciliumCluster) subject(i int) policy.Subject {
	s := c.base.Pods[i].subject()
	s.ServiceAccount = c.podSAs[i]
	return s
}

var (
	ciliumSelectorKeys = []struct {
		key    string
		values []string
	}{
		{"app", []string{"web", "db", "agent"}}, {"k8s:app", []string{"web", "db"}}, {"any:role", []string{"frontend", "backend"}},
		{"io.kubernetes.pod.namespace", []string{"default", "team-a", "prod"}}, {"k8s:io.kubernetes.pod.namespace", []string{"team-a"}},
		{"io.cilium.k8s.namespace.labels.env", []string{"prod", "dev"}}, {"io.cilium.k8s.policy.serviceaccount", []string{"default", "builder"}},
		{"reserved:host", []string{""}},
	}
	ciliumEntityNames = []string{"world", "world", "all", "world-ipv4", "world-ipv6", "cluster", "host", "remote-node", "kube-apiserver"}
	ciliumProtos      = []string{"", "TCP", "UDP", "ANY", "SCTP"}
	ciliumPatterns    = []ciliumv2.FQDNSelector{{MatchName: "metadata.google.internal"}, {MatchName: "Metadata.Google.Internal."}, {MatchPattern: "*.google.internal"},
		{MatchPattern: "*.internal"}, {MatchPattern: "*"}, {MatchPattern: "meta*.google.internal"}, {MatchName: "example.com"}}
)

func (g *diffGen) ciliumSelector() *ciliumv2.EndpointSelector {
	s := &ciliumv2.EndpointSelector{}
	if g.chance(0.35) {
		return s
	}
	for range g.n(1, 2) {
		kv := diffPick(g, ciliumSelectorKeys)
		if g.chance(0.5) {
			if s.MatchLabels == nil {
				s.MatchLabels = map[string]string{}
			}
			s.MatchLabels[kv.key] = diffPick(g, kv.values)
			continue
		}
		req := ciliumv2.SelectorRequirement{Key: kv.key, Operator: diffPick(g, []string{"In", "NotIn", "Exists", "DoesNotExist"})}
		if req.Operator == "In" || req.Operator == "NotIn" {
			req.Values = diffPickDistinct(g, kv.values, g.n(1, 2))
		}
		s.MatchExpressions = append(s.MatchExpressions, req)
	}
	return s
}

func (g *diffGen) ciliumPorts(deny bool) []ciliumv2.PortRule {
	if g.chance(0.5) {
		return nil
	}
	var pr ciliumv2.PortRule
	for range g.n(1, 2) {
		p := ciliumv2.PortProtocol{Protocol: diffPick(g, ciliumProtos)}
		switch x := g.r.Float64(); {
		case x < 0.55:
			p.Port = strconv.Itoa(int(diffPick(g, diffPorts)))
		case x < 0.7:
			p.Port = "0"
		case x < 0.85:
			lo := diffPick(g, diffPorts)
			p.Port, p.EndPort = strconv.Itoa(int(lo)), min(65535, lo+diffPick(g, []int32{0, 27, 400}))
		default:
			p.Port = diffPick(g, diffPortNames)
		}
		pr.Ports = append(pr.Ports, p)
	}
	if !deny && g.chance(0.1) {
		pr.Rules = []byte(`{"dns":[{"matchPattern":"*"}]}`)
	}
	return []ciliumv2.PortRule{pr}
}

// ciliumEgress returns an egress (or, with deny, egressDeny) rule with one kind of peer.
func (g *diffGen) ciliumEgress(deny bool) ciliumv2.EgressRule {
	r := ciliumv2.EgressRule{ToPorts: g.ciliumPorts(deny)}
	switch x := g.r.Float64(); {
	case x < 0.12:
		if len(r.ToPorts) == 0 {
			r.ToPorts = []ciliumv2.PortRule{{Ports: []ciliumv2.PortProtocol{{Port: "80"}}}}
		}
	case x < 0.35:
		for range g.n(1, 2) {
			e := diffPick(g, ciliumEntityNames)
			if deny && (e == "world-ipv4" || e == "world-ipv6") {
				e = "world"
			}
			r.ToEntities = append(r.ToEntities, e)
		}
	case x < 0.55:
		for range g.n(1, 2) {
			r.ToCIDR = append(r.ToCIDR, g.block())
		}
	case x < 0.75:
		c := g.block()
		set := ciliumv2.CIDRRule{CIDR: c}
		if in, ok := g.inside(c); ok && g.chance(0.6) {
			set.Except = []string{in}
		}
		r.ToCIDRSet = append(r.ToCIDRSet, set)
	case x < 0.85 && !deny:
		r.ToFQDNs = diffPickDistinct(g, ciliumPatterns, g.n(1, 2))
	default:
		r.ToEndpoints = []ciliumv2.EndpointSelector{*g.ciliumSelector()}
	}
	return r
}

func (g *diffGen) ciliumRule() ciliumv2.Rule {
	r := ciliumv2.Rule{EndpointSelector: g.ciliumSelector()}
	for range g.n(0, 2) {
		r.Egress = append(r.Egress, g.ciliumEgress(false))
	}
	for range g.n(0, 2) {
		e := g.ciliumEgress(true)
		r.EgressDeny = append(r.EgressDeny, ciliumv2.EgressDenyRule{ToEndpoints: e.ToEndpoints, ToCIDR: e.ToCIDR, ToCIDRSet: e.ToCIDRSet, ToEntities: e.ToEntities, ToPorts: e.ToPorts})
	}
	if len(r.Egress)+len(r.EgressDeny) == 0 {
		r.Ingress = []byte(`[{}]`)
	}
	if g.chance(0.3) {
		r.EnableDefaultDeny = &ciliumv2.DefaultDenyConfig{Egress: ptr(g.chance(0.4))}
	}
	return r
}

func diffCiliumGenerate(seed uint64) *ciliumCluster {
	g := newDiffGen(seed ^ 0xc111)
	c := &ciliumCluster{base: newDiffGen(seed).cluster(seed)}
	// ClusterNetworkPolicies beside Cilium policies are reported, not evaluated
	// (TestClusterNetworkPolicyBesideCilium).
	c.base.CNPs = nil
	for range c.base.Pods {
		c.podSAs = append(c.podSAs, diffPick(g, []string{"", "default", "builder"}))
	}
	specs := func() (*ciliumv2.Rule, []ciliumv2.Rule) {
		if g.chance(0.8) {
			r := g.ciliumRule()
			return &r, nil
		}
		return nil, []ciliumv2.Rule{g.ciliumRule(), g.ciliumRule()}
	}
	for i := range g.n(0, 4) {
		p := &ciliumv2.CiliumNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cnp%d", i), Namespace: diffPick(g, c.base.Namespaces).Name}}
		p.Spec, p.Specs = specs()
		c.cnps = append(c.cnps, p)
	}
	for i := range g.n(0, 2) {
		p := &ciliumv2.CiliumClusterwideNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ccnp%d", i)}}
		p.Spec, p.Specs = specs()
		c.ccnps = append(c.ccnps, p)
	}
	if len(c.cnps)+len(c.ccnps) == 0 {
		r := g.ciliumRule()
		c.ccnps = append(c.ccnps, &ciliumv2.CiliumClusterwideNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "ccnp"}, Spec: &r})
	}
	return c
}

// ciliumDisagreement compares a verdict with the reference: the verdict must agree, and the
// reason must be one the reference found (a matching deny, a matching allow), or of the kind it
// found (not isolated, default deny, no policy).
func ciliumDisagreement(got policy.Verdict, want refCiliumAnswer) string {
	r := got.DecidedBy
	name := r.Policy + " " + r.RuleName
	if r.Tier == policy.TierNetworkPolicy && r.Rule != policy.NoRule {
		name = fmt.Sprintf("%s rule %d", r.Policy, r.Rule)
	}
	ok := got.Allowed == want.Allowed
	switch want.How {
	case "hostNetwork":
		ok = ok && r.Tier == policy.TierHostNetwork
	case "no policy":
		ok = ok && r.Tier == policy.TierDefault
	case "not isolated":
		ok = ok && r.Tier == policy.TierCilium && r.Rule == policy.NoRule
	case "denied by rule", "allowed by rule":
		ok = ok && slices.Contains(want.Rules, name)
	case "default deny":
		// The reason is the isolation, or an except entry that removed the destination.
		ok = ok && (r.Rule == policy.NoRule || r.Action == policy.ActionDeny)
	}
	if ok {
		return ""
	}
	return fmt.Sprintf("product %v by %s %q (%s), reference %v (%s %v)", got.Allowed, r.Tier, name, r.Peer, want.Allowed, want.How, want.Rules)
}

func TestCiliumDifferential(t *testing.T) {
	eps := diffEndpoints(t)
	outcomes := map[string]int{}
	comparisons, failures := 0, 0
	for seed := range uint64(diffClusterCount() / 2) {
		c := diffCiliumGenerate(seed)
		inv := c.inventory()
		m := policy.Compile(inv)
		if len(m.Rejected) > 0 {
			t.Fatalf("seed %d: the generator made a policy Cilium refuses; the compiler rejected: %v", seed, m.Rejected)
		}
		got := make([]policy.Verdict, len(eps))
		for i := range c.base.Pods {
			s := c.subject(i)
			m.Evaluate(s, eps, got)
			for j, ep := range eps {
				want := refCiliumEvaluate(inv, s, ep)
				comparisons++
				outcomes[want.How]++
				if why := ciliumDisagreement(got[j], want); why != "" {
					failures++
					if failures <= diffReported {
						_, steps := m.Explain(s, []endpoint.Endpoint{ep})
						t.Errorf("seed %d: pod %s (sa %q), endpoint %s: %s\ntrace:\n%v\nCNPs:\n%s\nCCNPs:\n%s\nNPs:\n%s", seed, c.base.Pods[i], s.ServiceAccount, ep, why,
							steps[0], describeCalico(c.cnps), describeCalico(c.ccnps), describeCalico(c.base.NPs))
					}
				}
			}
		}
	}
	if failures > 0 {
		t.Errorf("%d disagreements in %d comparisons", failures, comparisons)
	}
	t.Logf("%d comparisons: %v", comparisons, outcomes)
	for _, k := range []string{"hostNetwork", "no policy", "not isolated", "denied by rule", "allowed by rule", "default deny"} {
		if outcomes[k] < max(1, comparisons/20000) {
			t.Errorf("outcome %q reached %d times: the generator no longer exercises it (%v)", k, outcomes[k], outcomes)
		}
	}
}
