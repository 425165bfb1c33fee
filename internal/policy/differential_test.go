package policy_test

// Differential test: random small clusters, evaluated by policy.Model and by the reference
// evaluator of reference_test.go, must get the same verdict for every pod and endpoint. The
// clusters are generated from fixed seeds, so a failure names a seed that reproduces it; the
// failing cluster is also shrunk and printed as a manifest.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	anpv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	cnpv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// diffClusters is how many random clusters the differential tests evaluate (diffShortClusters
// with -short).
const (
	diffClusters      = 3000
	diffShortClusters = 300
	// diffReported is how many failing clusters are shrunk and printed in full.
	diffReported = 3
)

// diffClusterCount is the number of clusters to evaluate; IMDSGUARD_DIFF_CLUSTERS overrides it
// for a longer search (seeds 0 to N-1).
func diffClusterCount() int {
	if n, err := strconv.Atoi(os.Getenv("IMDSGUARD_DIFF_CLUSTERS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return diffShortClusters
	}
	return diffClusters
}

// ---------------------------------------------------------------------------------------------
// The cluster

type diffPod struct {
	Namespace   string
	Name        string
	Labels      map[string]string
	HostNetwork bool
}

func (p diffPod) subject() policy.Subject {
	return policy.Subject{Namespace: p.Namespace, Labels: p.Labels, HostNetwork: p.HostNetwork}
}

func (p diffPod) String() string {
	s := fmt.Sprintf("pod %s/%s labels %v", p.Namespace, p.Name, p.Labels)
	if p.HostNetwork {
		s += " hostNetwork"
	}
	return s
}

type diffCluster struct {
	Seed       uint64
	Namespaces []*inventory.Namespace
	Pods       []diffPod
	NPs        []*networkingv1.NetworkPolicy
	ANPs       []*anpv1alpha1.AdminNetworkPolicy
	BANP       *anpv1alpha1.BaselineAdminNetworkPolicy
	// CNPs are ClusterNetworkPolicies of both tiers; their TypeMeta holds the apiVersion they
	// are written at (v1alpha2 or v1beta1, identical schemas).
	CNPs []*cnpv1beta1.ClusterNetworkPolicy
}

func (c *diffCluster) inventory() *inventory.Inventory {
	inv := &inventory.Inventory{Namespaces: map[string]*inventory.Namespace{}}
	for _, ns := range c.Namespaces {
		inv.Namespaces[ns.Name] = ns
	}
	for _, p := range c.Pods {
		inv.Pods = append(inv.Pods, &inventory.Pod{Pod: p.pod(), Workload: inventory.WorkloadRef{Kind: "Pod", Name: p.Name}})
	}
	for _, np := range c.NPs {
		inv.NetworkPolicies = append(inv.NetworkPolicies, &inventory.NetworkPolicy{Policy: np})
	}
	for _, anp := range c.ANPs {
		inv.AdminNetworkPolicies = append(inv.AdminNetworkPolicies, &inventory.AdminNetworkPolicy{Policy: anp})
	}
	if c.BANP != nil {
		inv.BaselineAdminNetworkPolicies = []*inventory.BaselineAdminNetworkPolicy{{Policy: c.BANP}}
	}
	for _, cnp := range c.CNPs {
		inv.ClusterNetworkPolicies = append(inv.ClusterNetworkPolicies, &inventory.ClusterNetworkPolicy{Policy: cnp, APIVersion: cnp.APIVersion})
	}
	return inv
}

func (p diffPod) pod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec: corev1.PodSpec{
			HostNetwork: p.HostNetwork,
			Containers:  []corev1.Container{{Name: "main", Image: "busybox"}},
		},
	}
}

func (c *diffCluster) clone() *diffCluster {
	out := &diffCluster{Seed: c.Seed}
	for _, ns := range c.Namespaces {
		n := *ns
		n.Labels = diffCloneLabels(ns.Labels)
		out.Namespaces = append(out.Namespaces, &n)
	}
	for _, p := range c.Pods {
		p.Labels = diffCloneLabels(p.Labels)
		out.Pods = append(out.Pods, p)
	}
	for _, np := range c.NPs {
		out.NPs = append(out.NPs, np.DeepCopy())
	}
	for _, anp := range c.ANPs {
		out.ANPs = append(out.ANPs, anp.DeepCopy())
	}
	if c.BANP != nil {
		out.BANP = c.BANP.DeepCopy()
	}
	for _, cnp := range c.CNPs {
		out.CNPs = append(out.CNPs, cnp.DeepCopy())
	}
	return out
}

func diffCloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// yaml renders the cluster as a multi-document manifest.
func (c *diffCluster) yaml() string {
	var docs []any
	for _, ns := range c.Namespaces {
		docs = append(docs, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels},
		})
	}
	for _, p := range c.Pods {
		docs = append(docs, p.pod())
	}
	for _, np := range c.NPs {
		docs = append(docs, np)
	}
	for _, anp := range c.ANPs {
		docs = append(docs, anp)
	}
	if c.BANP != nil {
		docs = append(docs, c.BANP)
	}
	for _, cnp := range c.CNPs {
		docs = append(docs, cnp)
	}
	var b strings.Builder
	for _, d := range docs {
		// Drop the empty status and creationTimestamp the Go types always carry.
		raw, err := json.Marshal(d)
		if err != nil {
			return "cannot render: " + err.Error()
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return "cannot render: " + err.Error()
		}
		delete(m, "status")
		if meta, ok := m["metadata"].(map[string]any); ok {
			delete(meta, "creationTimestamp")
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			return "cannot render: " + err.Error()
		}
		b.WriteString("---\n")
		b.Write(out)
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// The generator

type diffVocab []struct {
	key    string
	values []string
}

var (
	diffNamespaceNames = []string{"default", "kube-system", "team-a", "team-b", "prod", "dev"}
	diffNamespaceVocab = diffVocab{
		{"env", []string{"prod", "dev"}},
		{"team", []string{"a", "b"}},
		{"imds", []string{"allow", "deny", ""}},
	}
	// diffNamespaceSelectorVocab is what namespace selectors use: diffNamespaceVocab plus the name label.
	diffNamespaceSelectorVocab = append(slices.Clone(diffNamespaceVocab), struct {
		key    string
		values []string
	}{"kubernetes.io/metadata.name", diffNamespaceNames})
	diffPodVocab = diffVocab{
		{"app", []string{"web", "db", "agent"}},
		{"role", []string{"frontend", "backend"}},
		{"imds", []string{"allow", "deny", ""}},
		{"example.com/tier", []string{"a", "a.b"}},
	}
	// diffCIDRs are the interesting blocks: the metadata addresses, their ranges, whole families,
	// and cluster-ish ranges that contain none of them.
	diffCIDRs = []string{
		"169.254.169.254/32", "169.254.0.0/16", "0.0.0.0/0", "168.63.129.16/32", "::/0",
		"fd00:ec2::/64", "fd00:ec2::254/128", "10.0.0.0/8", "169.254.170.0/24", "100.64.0.0/10",
		"168.63.129.0/24", "fd00::/8",
	}
	// diffPoints are addresses worth carving out of a block.
	diffPoints = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("169.254.170.2"),
		netip.MustParseAddr("169.254.170.23"), netip.MustParseAddr("168.63.129.16"),
		netip.MustParseAddr("100.100.100.200"), netip.MustParseAddr("10.1.2.3"),
		netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("fd00:ec2::23"),
	}
	diffPorts       = []int32{1, 53, 80, 443, 8080, 32526, 65535}
	diffProtocols   = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	diffPortNames   = []string{"http", "dns", "metrics"}
	diffDomainNames = []anpv1alpha1.DomainName{
		"metadata.google.internal", "*.google.internal", "*.internal", "google.internal", "example.com",
		"Metadata.Google.Internal", "metadata.google.internal.", "*.google.internal.", "*.oogle.internal",
	}
	diffANPNames = []string{"alpha", "bravo", "charlie", "delta", "echo"}
	diffCNPNames = []string{"cnp-a", "cnp-b", "cnp-c", "cnp-d", "cnp-e"}
)

// diffEndpoints is the catalogue plus destinations on other protocols and ports.
func diffEndpoints(t testing.TB) []endpoint.Endpoint {
	var custom []endpoint.Endpoint
	for _, s := range []string{
		"169.254.169.254:53/UDP", "169.254.169.254:80/SCTP", "[fd00:ec2::254]:443", "168.63.129.16:32526/UDP",
		"10.1.2.3:65535/TCP", "[fd00::1]:1/SCTP", "100.100.100.200:8080", "169.254.170.23:80/UDP",
	} {
		ep, err := endpoint.ParseCustom(s)
		if err != nil {
			t.Fatal(err)
		}
		custom = append(custom, ep)
	}
	return endpoint.Merge(endpoint.Select([]endpoint.Cloud{endpoint.All}), custom)
}

type diffGen struct{ r *rand.Rand }

func newDiffGen(seed uint64) *diffGen { return &diffGen{rand.New(rand.NewPCG(seed, 0x1de5_9a4d))} }

func (g *diffGen) chance(p float64) bool   { return g.r.Float64() < p }
func (g *diffGen) n(lo, hi int) int        { return lo + g.r.IntN(hi-lo+1) }
func diffPick[T any](g *diffGen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// diffPickDistinct returns k distinct elements of xs (fewer if xs is shorter).
func diffPickDistinct[T any](g *diffGen, xs []T, k int) []T {
	perm := g.r.Perm(len(xs))
	var out []T
	for _, i := range perm[:min(k, len(xs))] {
		out = append(out, xs[i])
	}
	return out
}

func (g *diffGen) labels(v diffVocab) map[string]string {
	m := map[string]string{}
	for _, kv := range v {
		if g.chance(0.5) {
			m[kv.key] = diffPick(g, kv.values)
		}
	}
	return m
}

func (g *diffGen) selector(v diffVocab) metav1.LabelSelector {
	var sel metav1.LabelSelector
	if g.chance(0.35) {
		return sel
	}
	nLabels, nExprs := g.n(0, 2), g.n(0, 2)
	if nLabels+nExprs == 0 {
		nLabels = 1
	}
	for range nLabels {
		kv := diffPick(g, v)
		if sel.MatchLabels == nil {
			sel.MatchLabels = map[string]string{}
		}
		sel.MatchLabels[kv.key] = diffPick(g, kv.values)
	}
	for range nExprs {
		kv := diffPick(g, v)
		req := metav1.LabelSelectorRequirement{Key: kv.key}
		switch g.r.IntN(4) {
		case 0:
			req.Operator = metav1.LabelSelectorOpIn
			req.Values = diffPickDistinct(g, kv.values, g.n(1, 2))
		case 1:
			req.Operator = metav1.LabelSelectorOpNotIn
			req.Values = diffPickDistinct(g, kv.values, g.n(1, 2))
		case 2:
			req.Operator = metav1.LabelSelectorOpExists
		case 3:
			req.Operator = metav1.LabelSelectorOpDoesNotExist
		}
		sel.MatchExpressions = append(sel.MatchExpressions, req)
	}
	return sel
}

// inside returns a block strictly inside cidr, around an interesting address when one lies in
// it.
func (g *diffGen) inside(cidr string) (string, bool) {
	p := netip.MustParsePrefix(cidr)
	if p.Bits() == p.Addr().BitLen() {
		return "", false
	}
	var in []netip.Addr
	for _, a := range diffPoints {
		if p.Contains(a) {
			in = append(in, a)
		}
	}
	var a netip.Addr
	if len(in) > 0 && g.chance(0.8) {
		a = diffPick(g, in)
	} else { // a random address in the block
		b := p.Addr().AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			if g.chance(0.5) {
				b[i/8] |= 0x80 >> (i % 8)
			}
		}
		a, _ = netip.AddrFromSlice(b)
	}
	max := p.Addr().BitLen()
	bits := diffPick(g, []int{p.Bits() + 1, p.Bits() + 1 + g.r.IntN(max-p.Bits()), max, max})
	prefix := netip.PrefixFrom(a, bits)
	if g.chance(0.75) {
		prefix = prefix.Masked()
	} // else non-canonical, e.g. 169.254.169.254/16: the API server accepts it and means 169.254.0.0/16
	return prefix.String(), true
}

// block returns one of the interesting blocks, or a block inside one.
func (g *diffGen) block() string {
	c := diffPick(g, diffCIDRs)
	if g.chance(0.2) {
		if in, ok := g.inside(c); ok {
			return in
		}
	}
	return c
}

func (g *diffGen) cluster(seed uint64) *diffCluster {
	c := &diffCluster{Seed: seed}
	for _, name := range diffPickDistinct(g, diffNamespaceNames, g.n(1, 4)) {
		labels := g.labels(diffNamespaceVocab)
		labels["kubernetes.io/metadata.name"] = name
		c.Namespaces = append(c.Namespaces, &inventory.Namespace{Name: name, Labels: labels})
		for i := range g.n(1, 6) {
			c.Pods = append(c.Pods, diffPod{
				Namespace: name, Name: fmt.Sprintf("p%d", i), Labels: g.labels(diffPodVocab), HostNetwork: g.chance(0.12),
			})
		}
	}
	for i := range g.n(0, 6) {
		c.NPs = append(c.NPs, g.networkPolicy(diffPick(g, c.Namespaces).Name, fmt.Sprintf("np%d", i)))
	}
	for _, name := range diffPickDistinct(g, diffANPNames, g.n(0, 3)) {
		c.ANPs = append(c.ANPs, g.adminPolicy(name))
	}
	if g.chance(0.45) {
		c.BANP = g.baselinePolicy()
	}
	// Generated last, so the rest of a seed's cluster is what it was before CNPs existed.
	if g.chance(0.6) {
		for _, name := range diffPickDistinct(g, diffCNPNames, g.n(1, 4)) {
			c.CNPs = append(c.CNPs, g.clusterPolicy(name))
		}
	}
	return c
}

func (g *diffGen) networkPolicy(ns, name string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
	}
	np.Spec.PodSelector = g.selector(diffPodVocab)
	switch x := g.r.Float64(); {
	case x < 0.40: // omitted
	case x < 0.55:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case x < 0.75:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case x < 0.90:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	default:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress}
	}
	if g.chance(0.3) {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
	}
	n := g.n(0, 3)
	if n == 0 && g.chance(0.2) {
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{} // present but empty
	}
	for range n {
		var rule networkingv1.NetworkPolicyEgressRule
		switch x := g.r.Float64(); {
		case x < 0.40: // all ports
		case x < 0.45:
			rule.Ports = []networkingv1.NetworkPolicyPort{}
		default:
			for range g.n(1, 3) {
				rule.Ports = append(rule.Ports, g.netpolPort())
			}
		}
		if !g.chance(0.25) {
			for range g.n(1, 3) {
				rule.To = append(rule.To, g.netpolPeer())
			}
		}
		np.Spec.Egress = append(np.Spec.Egress, rule)
	}
	return np
}

func (g *diffGen) netpolPort() networkingv1.NetworkPolicyPort {
	var p networkingv1.NetworkPolicyPort
	if !g.chance(0.3) {
		proto := diffPick(g, diffProtocols)
		p.Protocol = &proto
	}
	switch x := g.r.Float64(); {
	case x < 0.25: // every port of the protocol
	case x < 0.40:
		v := intstr.FromString(diffPick(g, diffPortNames))
		p.Port = &v
	default:
		port := diffPick(g, diffPorts)
		v := intstr.FromInt32(port)
		p.Port = &v
		if g.chance(0.35) {
			end := min(65535, port+diffPick(g, []int32{0, 1, 27, 400, 40000, 65535}))
			p.EndPort = &end
		}
	}
	return p
}

func (g *diffGen) netpolPeer() networkingv1.NetworkPolicyPeer {
	switch x := g.r.Float64(); {
	case x < 0.12:
		sel := g.selector(diffPodVocab)
		return networkingv1.NetworkPolicyPeer{PodSelector: &sel}
	case x < 0.24:
		sel := g.selector(diffNamespaceSelectorVocab)
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &sel}
	case x < 0.35:
		pods, nss := g.selector(diffPodVocab), g.selector(diffNamespaceSelectorVocab)
		return networkingv1.NetworkPolicyPeer{PodSelector: &pods, NamespaceSelector: &nss}
	}
	block := &networkingv1.IPBlock{CIDR: g.block()}
	for range diffPick(g, []int{0, 0, 1, 1, 2}) {
		if except, ok := g.inside(block.CIDR); ok {
			block.Except = append(block.Except, except)
		}
	}
	return networkingv1.NetworkPolicyPeer{IPBlock: block}
}

func (g *diffGen) subject() anpv1alpha1.AdminNetworkPolicySubject {
	if g.chance(0.5) {
		sel := g.selector(diffNamespaceSelectorVocab)
		return anpv1alpha1.AdminNetworkPolicySubject{Namespaces: &sel}
	}
	return anpv1alpha1.AdminNetworkPolicySubject{Pods: &anpv1alpha1.NamespacedPod{
		NamespaceSelector: g.selector(diffNamespaceSelectorVocab),
		PodSelector:       g.selector(diffPodVocab),
	}}
}

// adminPeer returns a random egress peer; domainNames only when allowed (ANP Allow rules).
func (g *diffGen) adminPeer(domains bool) anpv1alpha1.AdminNetworkPolicyEgressPeer {
	switch x := g.r.Float64(); {
	case x < 0.08:
		sel := g.selector(diffNamespaceSelectorVocab)
		return anpv1alpha1.AdminNetworkPolicyEgressPeer{Namespaces: &sel}
	case x < 0.16:
		return anpv1alpha1.AdminNetworkPolicyEgressPeer{Pods: &anpv1alpha1.NamespacedPod{
			NamespaceSelector: g.selector(diffNamespaceSelectorVocab), PodSelector: g.selector(diffPodVocab),
		}}
	case x < 0.23:
		sel := metav1.LabelSelector{MatchLabels: map[string]string{"node-role.kubernetes.io/worker": ""}}
		return anpv1alpha1.AdminNetworkPolicyEgressPeer{Nodes: &sel}
	case x < 0.30 && domains:
		return anpv1alpha1.AdminNetworkPolicyEgressPeer{DomainNames: diffPickDistinct(g, diffDomainNames, g.n(1, 2))}
	}
	var networks []anpv1alpha1.CIDR
	for range g.n(1, 3) {
		if c := anpv1alpha1.CIDR(g.block()); !slices.Contains(networks, c) {
			networks = append(networks, c)
		}
	}
	return anpv1alpha1.AdminNetworkPolicyEgressPeer{Networks: networks}
}

// adminPorts returns nil (all ports) or a list; namedPort only when the rule has no networks,
// nodes or domainNames peer, as the CRD requires.
func (g *diffGen) adminPorts(named bool) *[]anpv1alpha1.AdminNetworkPolicyPort {
	if g.chance(0.5) {
		return nil
	}
	var out []anpv1alpha1.AdminNetworkPolicyPort
	for range g.n(1, 3) {
		proto := diffPick(g, append([]corev1.Protocol{""}, diffProtocols...))
		switch x := g.r.Float64(); {
		case x < 0.15 && named:
			name := diffPick(g, diffPortNames)
			out = append(out, anpv1alpha1.AdminNetworkPolicyPort{NamedPort: &name})
		case x < 0.55:
			out = append(out, anpv1alpha1.AdminNetworkPolicyPort{PortNumber: &anpv1alpha1.Port{Protocol: proto, Port: diffPick(g, diffPorts)}})
		default:
			start := diffPick(g, diffPorts[:len(diffPorts)-1])
			end := min(65535, start+diffPick(g, []int32{1, 27, 400, 40000, 65535}))
			out = append(out, anpv1alpha1.AdminNetworkPolicyPort{PortRange: &anpv1alpha1.PortRange{Protocol: proto, Start: start, End: end}})
		}
	}
	return &out
}

func diffOnlyPodPeers(peers []anpv1alpha1.AdminNetworkPolicyEgressPeer) bool {
	for _, p := range peers {
		if p.Networks != nil || p.Nodes != nil || p.DomainNames != nil {
			return false
		}
	}
	return true
}

func diffRuleName(g *diffGen, i int) string {
	if g.chance(0.5) {
		return ""
	}
	return fmt.Sprintf("rule-%d", i)
}

func (g *diffGen) adminPolicy(name string) *anpv1alpha1.AdminNetworkPolicy {
	anp := &anpv1alpha1.AdminNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1alpha1", Kind: "AdminNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	anp.Spec.Priority = diffPick(g, []int32{0, 10, 10, 20, 1000, int32(g.r.IntN(1001))})
	anp.Spec.Subject = g.subject()
	for i := range g.n(0, 4) {
		action := diffPick(g, []anpv1alpha1.AdminNetworkPolicyRuleAction{
			anpv1alpha1.AdminNetworkPolicyRuleActionAllow, anpv1alpha1.AdminNetworkPolicyRuleActionDeny, anpv1alpha1.AdminNetworkPolicyRuleActionPass,
		})
		rule := anpv1alpha1.AdminNetworkPolicyEgressRule{Name: diffRuleName(g, i), Action: action}
		for range g.n(1, 3) {
			rule.To = append(rule.To, g.adminPeer(action == anpv1alpha1.AdminNetworkPolicyRuleActionAllow))
		}
		rule.Ports = g.adminPorts(diffOnlyPodPeers(rule.To))
		anp.Spec.Egress = append(anp.Spec.Egress, rule)
	}
	return anp
}

func (g *diffGen) baselinePolicy() *anpv1alpha1.BaselineAdminNetworkPolicy {
	banp := &anpv1alpha1.BaselineAdminNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy.networking.k8s.io/v1alpha1", Kind: "BaselineAdminNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
	}
	banp.Spec.Subject = g.subject()
	for i := range g.n(0, 4) {
		action := diffPick(g, []anpv1alpha1.BaselineAdminNetworkPolicyRuleAction{
			anpv1alpha1.BaselineAdminNetworkPolicyRuleActionAllow, anpv1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
		})
		rule := anpv1alpha1.BaselineAdminNetworkPolicyEgressRule{Name: diffRuleName(g, i), Action: action}
		var peers []anpv1alpha1.AdminNetworkPolicyEgressPeer
		for range g.n(1, 3) {
			p := g.adminPeer(false)
			peers = append(peers, p)
			rule.To = append(rule.To, anpv1alpha1.BaselineAdminNetworkPolicyEgressPeer{
				Namespaces: p.Namespaces, Pods: p.Pods, Nodes: p.Nodes, Networks: p.Networks,
			})
		}
		rule.Ports = g.adminPorts(diffOnlyPodPeers(peers))
		banp.Spec.Egress = append(banp.Spec.Egress, rule)
	}
	return banp
}

// clusterPolicy returns a random ClusterNetworkPolicy of either tier, valid for the CRD:
// canonical networks without duplicates, domainNames only in Accept rules, named ports only
// beside pod peers, ranges with start < end.
func (g *diffGen) clusterPolicy(name string) *cnpv1beta1.ClusterNetworkPolicy {
	cnp := &cnpv1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: diffPick(g, []string{inventory.ClusterNetworkPolicyV1Alpha2, inventory.ClusterNetworkPolicyV1Beta1}), Kind: "ClusterNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	cnp.Spec.Tier = diffPick(g, []cnpv1beta1.Tier{cnpv1beta1.AdminTier, cnpv1beta1.BaselineTier})
	cnp.Spec.Priority = diffPick(g, []int32{0, 10, 10, 20, 1000, int32(g.r.IntN(1001))})
	s := g.subject()
	cnp.Spec.Subject.Namespaces = s.Namespaces
	if s.Pods != nil {
		cnp.Spec.Subject.Pods = &cnpv1beta1.NamespacedPod{NamespaceSelector: s.Pods.NamespaceSelector, PodSelector: s.Pods.PodSelector}
	}
	for i := range g.n(0, 4) {
		action := diffPick(g, []cnpv1beta1.ClusterNetworkPolicyRuleAction{
			cnpv1beta1.ClusterNetworkPolicyRuleActionAccept, cnpv1beta1.ClusterNetworkPolicyRuleActionDeny, cnpv1beta1.ClusterNetworkPolicyRuleActionPass,
		})
		rule := cnpv1beta1.ClusterNetworkPolicyEgressRule{Name: diffRuleName(g, i), Action: action}
		onlyPods := true
		for range g.n(1, 3) {
			p := g.adminPeer(action == cnpv1beta1.ClusterNetworkPolicyRuleActionAccept)
			peer := cnpv1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: p.Namespaces, Nodes: p.Nodes}
			if p.Pods != nil {
				peer.Pods = &cnpv1beta1.NamespacedPod{NamespaceSelector: p.Pods.NamespaceSelector, PodSelector: p.Pods.PodSelector}
			}
			for _, n := range p.Networks {
				c := cnpv1beta1.CIDR(netip.MustParsePrefix(string(n)).Masked().String())
				if !slices.Contains(peer.Networks, c) {
					peer.Networks = append(peer.Networks, c)
				}
			}
			for _, d := range p.DomainNames {
				// The CNP DomainName pattern wants at least two labels after "*.": "*.internal"
				// is refused (ANP's pattern allowed it).
				if d == "*.internal" {
					d = "*.google.internal"
				}
				if !slices.Contains(peer.DomainNames, cnpv1beta1.DomainName(d)) {
					peer.DomainNames = append(peer.DomainNames, cnpv1beta1.DomainName(d))
				}
			}
			onlyPods = onlyPods && p.Networks == nil && p.Nodes == nil && p.DomainNames == nil
			rule.To = append(rule.To, peer)
		}
		rule.Protocols = g.clusterProtocols(onlyPods)
		cnp.Spec.Egress = append(cnp.Spec.Egress, rule)
	}
	return cnp
}

// clusterProtocols returns nil (every port) or 1 to 3 protocol entries; destinationNamedPort
// only when named is set.
func (g *diffGen) clusterProtocols(named bool) []cnpv1beta1.ClusterNetworkPolicyProtocol {
	if g.chance(0.5) {
		return nil
	}
	var out []cnpv1beta1.ClusterNetworkPolicyProtocol
	for range g.n(1, 3) {
		if named && g.chance(0.15) {
			out = append(out, cnpv1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: diffPick(g, diffPortNames)})
			continue
		}
		var port cnpv1beta1.Port
		if g.chance(0.5) {
			port.Number = diffPick(g, diffPorts)
		} else {
			start := diffPick(g, diffPorts[:len(diffPorts)-1])
			port.Range = &cnpv1beta1.PortRange{Start: start, End: min(65535, start+diffPick(g, []int32{1, 27, 400, 40000, 65535}))}
		}
		switch diffPick(g, diffProtocols) {
		case corev1.ProtocolTCP:
			out = append(out, cnpv1beta1.ClusterNetworkPolicyProtocol{TCP: &cnpv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &port}})
		case corev1.ProtocolUDP:
			out = append(out, cnpv1beta1.ClusterNetworkPolicyProtocol{UDP: &cnpv1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &port}})
		default:
			out = append(out, cnpv1beta1.ClusterNetworkPolicyProtocol{SCTP: &cnpv1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: &port}})
		}
	}
	return out
}

func diffGenerate(seed uint64) *diffCluster { return newDiffGen(seed).cluster(seed) }

// ---------------------------------------------------------------------------------------------
// The comparison

type diffMismatch struct {
	Pod  diffPod
	EP   endpoint.Endpoint
	Got  policy.Verdict
	Want refAnswer
	Why  string
}

// diffStats counts the reference's answers by tier and outcome, to show (and assert) that the
// random clusters reach every tier both ways.
type diffStats struct {
	Clusters, Comparisons int
	Outcomes              map[string]int
}

func diffOutcome(a refAnswer) string {
	s := string(a.Tier) + "/" + map[bool]string{true: "allow", false: "deny"}[a.Allowed]
	if a.Passed {
		s += " after Pass"
	}
	return s
}

// diffCompare evaluates every pod and endpoint of a cluster with the product and the reference.
// It returns the problems the compiler found (which the generator must never cause) and the
// disagreements.
func diffCompare(c *diffCluster, eps []endpoint.Endpoint, st *diffStats) (*policy.Model, []inventory.Problem, []diffMismatch) {
	inv := c.inventory()
	m := policy.Compile(inv)
	if len(m.Rejected) > 0 {
		return m, m.Rejected, nil
	}
	var out []diffMismatch
	got := make([]policy.Verdict, len(eps))
	for _, pod := range c.Pods {
		m.Evaluate(pod.subject(), eps, got)
		if !pod.HostNetwork {
			if isolated := len(refEgressPolicies(inv, pod.subject())) > 0; m.Isolated(pod.subject()) != isolated {
				out = append(out, diffMismatch{Pod: pod, Want: refAnswer{Rule: refNoRule},
					Why: fmt.Sprintf("Isolated: product %v, reference %v", !isolated, isolated)})
			}
		}
		for i, ep := range eps {
			want := refEvaluate(inv, pod.subject(), ep)
			if st != nil {
				st.Comparisons++
				st.Outcomes[diffOutcome(want)]++
			}
			if why := diffDisagreement(got[i], want); why != "" {
				out = append(out, diffMismatch{Pod: pod, EP: ep, Got: got[i], Want: want, Why: why})
			}
		}
	}
	return m, nil, out
}

// diffDisagreement says how the product's verdict differs from the reference's answer, or "".
func diffDisagreement(got policy.Verdict, want refAnswer) string {
	r := got.DecidedBy
	if got.Allowed != want.Allowed {
		return fmt.Sprintf("allowed: product %v, reference %v", got.Allowed, want.Allowed)
	}
	if r.Tier != want.Tier {
		return fmt.Sprintf("tier: product %q, reference %q", r.Tier, want.Tier)
	}
	if r.Action != "" && (r.Action == policy.ActionAllow) != got.Allowed {
		return fmt.Sprintf("action %q contradicts allowed=%v", r.Action, got.Allowed)
	}
	switch want.Tier {
	case policy.TierClusterAdmin, policy.TierClusterBaseline:
		if r.Kind != "ClusterNetworkPolicy" {
			return fmt.Sprintf("kind: product %q, want ClusterNetworkPolicy", r.Kind)
		}
		if r.Policy != want.Policy || r.Rule != want.Rule {
			return fmt.Sprintf("deciding rule: product %s rule %d, reference %s rule %d", r.Policy, r.Rule, want.Policy, want.Rule)
		}
	case policy.TierAdmin, policy.TierBaseline:
		if r.Policy != want.Policy || r.Rule != want.Rule {
			return fmt.Sprintf("deciding rule: product %s rule %d, reference %s rule %d", r.Policy, r.Rule, want.Policy, want.Rule)
		}
	case policy.TierNetworkPolicy:
		if r.Policy != "" && !slices.Contains(want.Isolating, r.Policy) {
			return fmt.Sprintf("product names %s, which does not isolate the pod (reference: %v)", r.Policy, want.Isolating)
		}
		if got.Allowed && !slices.Contains(want.Allowing, refRule{Policy: r.Policy, Rule: r.Rule}) {
			return fmt.Sprintf("product names %s rule %d, which does not match (reference: %v)", r.Policy, r.Rule, want.Allowing)
		}
	case policy.TierHostNetwork, policy.TierDefault:
		if r.Policy != "" || r.Rule != policy.NoRule {
			return fmt.Sprintf("product names %s rule %d in tier %s", r.Policy, r.Rule, r.Tier)
		}
	}
	return ""
}

// diffReport renders a mismatch with everything needed to reproduce it.
func diffReport(c *diffCluster, m *policy.Model, mm diffMismatch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s\n", c.Seed, mm.Why)
	fmt.Fprintf(&b, "  %s\n", mm.Pod)
	if mm.EP.Address.IsValid() { // not a per-endpoint disagreement (Isolated)
		fmt.Fprintf(&b, "  endpoint %s\n", mm.EP)
		fmt.Fprintf(&b, "  product:   allowed=%v %s\n", mm.Got.Allowed, mm.Got)
		fmt.Fprintf(&b, "  reference: %+v\n", mm.Want)
		vs, steps := m.Explain(mm.Pod.subject(), []endpoint.Endpoint{mm.EP})
		fmt.Fprintf(&b, "  product trace (Explain verdict: %s):\n", vs[0])
		for _, s := range steps[0] {
			fmt.Fprintf(&b, "    %s\n", s)
		}
	}
	b.WriteString("  cluster:\n")
	for _, line := range strings.Split(strings.TrimRight(c.yaml(), "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// diffShrink removes pods, namespaces, policies, rules, peers, ports and selector terms from a
// failing cluster for as long as it stays valid and keeps disagreeing with the reference.
func diffShrink(c *diffCluster, eps []endpoint.Endpoint) *diffCluster {
	fails := func(c *diffCluster) bool {
		_, rejected, mm := diffCompare(c, eps, nil)
		return len(rejected) == 0 && len(mm) > 0
	}
	for changed := true; changed; {
		changed = false
		before := c.yaml()
		for _, mutate := range diffMutations(c) {
			next := c.clone()
			mutate(next)
			if next.yaml() != before && fails(next) {
				c, changed = next, true
				break
			}
		}
	}
	return c
}

func diffRemove[T any](xs []T, i int) []T { return slices.Delete(slices.Clone(xs), i, i+1) }

// diffMutations lists the simplifications of a cluster, each as a function that applies it to a
// clone.
func diffMutations(c *diffCluster) []func(*diffCluster) {
	var ms []func(*diffCluster)
	add := func(f func(*diffCluster)) { ms = append(ms, f) }
	for i := range c.Namespaces {
		add(func(c *diffCluster) {
			name := c.Namespaces[i].Name
			c.Namespaces = diffRemove(c.Namespaces, i)
			c.Pods = slices.DeleteFunc(c.Pods, func(p diffPod) bool { return p.Namespace == name })
			c.NPs = slices.DeleteFunc(c.NPs, func(np *networkingv1.NetworkPolicy) bool { return np.Namespace == name })
		})
		for k := range c.Namespaces[i].Labels {
			if k != "kubernetes.io/metadata.name" {
				add(func(c *diffCluster) { delete(c.Namespaces[i].Labels, k) })
			}
		}
	}
	for i := range c.Pods {
		add(func(c *diffCluster) { c.Pods = diffRemove(c.Pods, i) })
		for k := range c.Pods[i].Labels {
			add(func(c *diffCluster) { delete(c.Pods[i].Labels, k) })
		}
	}
	for i, np := range c.NPs {
		add(func(c *diffCluster) { c.NPs = diffRemove(c.NPs, i) })
		add(func(c *diffCluster) { c.NPs[i].Spec.Ingress = nil })
		add(func(c *diffCluster) { c.NPs[i].Spec.PodSelector = metav1.LabelSelector{} })
		for j, rule := range np.Spec.Egress {
			add(func(c *diffCluster) { c.NPs[i].Spec.Egress = diffRemove(c.NPs[i].Spec.Egress, j) })
			for k, peer := range rule.To {
				add(func(c *diffCluster) { c.NPs[i].Spec.Egress[j].To = diffRemove(c.NPs[i].Spec.Egress[j].To, k) })
				if peer.IPBlock != nil {
					for l := range peer.IPBlock.Except {
						add(func(c *diffCluster) {
							b := c.NPs[i].Spec.Egress[j].To[k].IPBlock
							b.Except = diffRemove(b.Except, l)
						})
					}
				}
			}
			for k := range rule.Ports {
				add(func(c *diffCluster) { c.NPs[i].Spec.Egress[j].Ports = diffRemove(c.NPs[i].Spec.Egress[j].Ports, k) })
			}
		}
	}
	for i, anp := range c.ANPs {
		add(func(c *diffCluster) { c.ANPs = diffRemove(c.ANPs, i) })
		for j, rule := range anp.Spec.Egress {
			add(func(c *diffCluster) { c.ANPs[i].Spec.Egress = diffRemove(c.ANPs[i].Spec.Egress, j) })
			add(func(c *diffCluster) { c.ANPs[i].Spec.Egress[j].Ports = nil })
			if rule.Ports != nil && len(*rule.Ports) > 1 {
				for k := range *rule.Ports {
					add(func(c *diffCluster) {
						p := diffRemove(*c.ANPs[i].Spec.Egress[j].Ports, k)
						c.ANPs[i].Spec.Egress[j].Ports = &p
					})
				}
			}
			if len(rule.To) > 1 {
				for k := range rule.To {
					add(func(c *diffCluster) { c.ANPs[i].Spec.Egress[j].To = diffRemove(c.ANPs[i].Spec.Egress[j].To, k) })
				}
			}
			for k, peer := range rule.To {
				if len(peer.Networks) > 1 {
					for l := range peer.Networks {
						add(func(c *diffCluster) {
							p := &c.ANPs[i].Spec.Egress[j].To[k]
							p.Networks = diffRemove(p.Networks, l)
						})
					}
				}
			}
		}
	}
	for i, cnp := range c.CNPs {
		add(func(c *diffCluster) { c.CNPs = diffRemove(c.CNPs, i) })
		add(func(c *diffCluster) {
			c.CNPs[i].Spec.Subject = cnpv1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}
		})
		for j, rule := range cnp.Spec.Egress {
			add(func(c *diffCluster) { c.CNPs[i].Spec.Egress = diffRemove(c.CNPs[i].Spec.Egress, j) })
			add(func(c *diffCluster) { c.CNPs[i].Spec.Egress[j].Protocols = nil })
			if len(rule.To) > 1 {
				for k := range rule.To {
					add(func(c *diffCluster) { c.CNPs[i].Spec.Egress[j].To = diffRemove(c.CNPs[i].Spec.Egress[j].To, k) })
				}
			}
			if len(rule.Protocols) > 1 {
				for k := range rule.Protocols {
					add(func(c *diffCluster) {
						c.CNPs[i].Spec.Egress[j].Protocols = diffRemove(c.CNPs[i].Spec.Egress[j].Protocols, k)
					})
				}
			}
		}
	}
	if c.BANP != nil {
		add(func(c *diffCluster) { c.BANP = nil })
		for j, rule := range c.BANP.Spec.Egress {
			add(func(c *diffCluster) { c.BANP.Spec.Egress = diffRemove(c.BANP.Spec.Egress, j) })
			add(func(c *diffCluster) { c.BANP.Spec.Egress[j].Ports = nil })
			if len(rule.To) > 1 {
				for k := range rule.To {
					add(func(c *diffCluster) { c.BANP.Spec.Egress[j].To = diffRemove(c.BANP.Spec.Egress[j].To, k) })
				}
			}
			for k, peer := range rule.To {
				if len(peer.Networks) > 1 {
					for l := range peer.Networks {
						add(func(c *diffCluster) {
							p := &c.BANP.Spec.Egress[j].To[k]
							p.Networks = diffRemove(p.Networks, l)
						})
					}
				}
			}
		}
	}
	return ms
}

// ---------------------------------------------------------------------------------------------
// The tests

func TestDifferential(t *testing.T) {
	start := time.Now()
	eps := diffEndpoints(t)
	st := &diffStats{Outcomes: map[string]int{}}
	var failing []uint64
	for seed := range uint64(diffClusterCount()) {
		c := diffGenerate(seed)
		st.Clusters++
		m, rejected, mms := diffCompare(c, eps, st)
		if len(rejected) > 0 {
			t.Fatalf("seed %d: the generator made an invalid cluster; the compiler rejected:\n%v\ncluster:\n%s", seed, rejected, c.yaml())
		}
		if len(mms) == 0 {
			continue
		}
		failing = append(failing, seed)
		if len(failing) > diffReported {
			continue
		}
		t.Errorf("seed %d: %d disagreements; first:\n%s", seed, len(mms), diffReport(c, m, mms[0]))
		small := diffShrink(c, eps)
		m, _, mms = diffCompare(small, eps, nil)
		t.Errorf("seed %d shrunk to:\n%s", seed, diffReport(small, m, mms[0]))
	}
	if len(failing) > 0 {
		t.Errorf("%d of %d clusters disagree with the reference (seeds %v)", len(failing), st.Clusters, failing[:min(len(failing), 20)])
	}
	t.Logf("%d clusters, %d pod×endpoint comparisons over %d endpoints in %v", st.Clusters, st.Comparisons, len(eps), time.Since(start).Round(time.Millisecond))
	keys := make([]string, 0, len(st.Outcomes))
	for k := range st.Outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("  %-45s %7d", k, st.Outcomes[k])
	}
	// The generator must reach every tier both ways, or agreement proves little.
	for _, k := range []string{
		"hostNetwork/allow", "Default/allow",
		"AdminNetworkPolicy/allow", "AdminNetworkPolicy/deny",
		"NetworkPolicy/allow", "NetworkPolicy/deny", "NetworkPolicy/allow after Pass", "NetworkPolicy/deny after Pass",
		"BaselineAdminNetworkPolicy/allow", "BaselineAdminNetworkPolicy/deny",
		"BaselineAdminNetworkPolicy/deny after Pass", "Default/allow after Pass",
		"Admin/allow", "Admin/deny", "Baseline/allow", "Baseline/deny", "Baseline/deny after Pass",
	} {
		if min := max(1, st.Comparisons/10000); st.Outcomes[k] < min {
			t.Errorf("outcome %q reached %d times, want at least %d: the generator no longer exercises it", k, st.Outcomes[k], min)
		}
	}
}

// TestDifferentialEvaluateAll checks that EvaluateAll, which shares one evaluation among
// subjects with the same namespace, labels and host networking, answers exactly as Evaluate does
// for each subject alone, and that Explain's verdicts are Evaluate's.
func TestDifferentialEvaluateAll(t *testing.T) {
	eps := diffEndpoints(t)
	subjects := 0
	for seed := range uint64(diffClusterCount()) {
		c := diffGenerate(seed)
		m := policy.Compile(c.inventory())
		if len(m.Rejected) > 0 {
			t.Fatalf("seed %d: compiler rejected %v", seed, m.Rejected)
		}
		// Every pod, a copy with its own label map, and a copy with host networking flipped
		// (same namespace and labels, different answer), in a seeded random order.
		var ss []policy.Subject
		for _, p := range c.Pods {
			s := p.subject()
			ss = append(ss, s,
				policy.Subject{Namespace: s.Namespace, Labels: diffCloneLabels(s.Labels), HostNetwork: s.HostNetwork},
				policy.Subject{Namespace: s.Namespace, Labels: s.Labels, HostNetwork: !s.HostNetwork})
		}
		r := rand.New(rand.NewPCG(seed, 7))
		r.Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
		subjects += len(ss)

		all := m.EvaluateAll(ss, eps)
		if len(all) != len(ss) {
			t.Fatalf("seed %d: EvaluateAll returned %d rows, want %d", seed, len(all), len(ss))
		}
		one := make([]policy.Verdict, len(eps))
		for i, s := range ss {
			m.Evaluate(s, eps, one)
			// Explain traces every step, which is slow: check it on a third of the subjects.
			var explained []policy.Verdict
			if i < len(c.Pods) {
				explained, _ = m.Explain(s, eps)
			}
			for j, ep := range eps {
				if got := all[i][j]; !reflect.DeepEqual(got, one[j]) {
					t.Fatalf("seed %d: subject %d %+v, endpoint %s: EvaluateAll %+v, Evaluate %+v\ncluster:\n%s",
						seed, i, s, ep, got, one[j], c.yaml())
				}
				if explained != nil && !reflect.DeepEqual(explained[j], one[j]) {
					t.Fatalf("seed %d: subject %+v, endpoint %s: Explain %+v, Evaluate %+v\ncluster:\n%s",
						seed, s, ep, explained[j], one[j], c.yaml())
				}
			}
		}
	}
	t.Logf("%d clusters, %d subjects", diffClusterCount(), subjects)
}

// TestDifferentialGeneratorDeterministic guards the reproducibility a reported seed relies on.
func TestDifferentialGeneratorDeterministic(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42, 2999} {
		if a, b := diffGenerate(seed).yaml(), diffGenerate(seed).yaml(); a != b {
			t.Fatalf("seed %d generates different clusters:\n%s\n---- vs ----\n%s", seed, a, b)
		}
	}
}

// TestDifferentialManifestRoundTrip checks that the manifest printed for a failing seed
// reproduces it: loaded through the real loader, it gets the same verdicts as the cluster built
// in memory.
func TestDifferentialManifestRoundTrip(t *testing.T) {
	eps := diffEndpoints(t)
	for seed := range uint64(50) {
		c := diffGenerate(seed)
		path := filepath.Join(t.TempDir(), "cluster.yaml")
		if err := os.WriteFile(path, []byte(c.yaml()), 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := inventory.Load([]string{path}, inventory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(loaded.Problems) > 0 {
			t.Fatalf("seed %d: the manifest does not load cleanly: %v\n%s", seed, loaded.Problems, c.yaml())
		}
		direct, fromYAML := policy.Compile(c.inventory()), policy.Compile(loaded)
		if len(fromYAML.Rejected) > 0 {
			t.Fatalf("seed %d: loaded policies rejected: %v", seed, fromYAML.Rejected)
		}
		a, b := make([]policy.Verdict, len(eps)), make([]policy.Verdict, len(eps))
		for _, p := range c.Pods {
			direct.Evaluate(p.subject(), eps, a)
			fromYAML.Evaluate(p.subject(), eps, b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("seed %d: %s: in memory %v, loaded from the manifest %v\n%s", seed, p, a, b, c.yaml())
			}
		}
	}
}
