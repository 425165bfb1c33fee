package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/ciliumv2"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Cilium's policy kinds, as reasons and findings name them.
const (
	kindCiliumNetworkPolicy            = "CiliumNetworkPolicy"
	kindCiliumClusterwideNetworkPolicy = "CiliumClusterwideNetworkPolicy"
)

// ciliumSpec is one rule of a Cilium policy (its spec, or one of its specs): the pods it
// selects, whether it puts them into egress default-deny, and its egress allow and deny rules.
type ciliumSpec struct {
	kind      string
	policy    string // "namespace/name" or "name"
	namespace string // "" for a CiliumClusterwideNetworkPolicy
	field     string // "spec" or "specs[i]"
	selector  ciliumSelector
	// defaultDeny: the rule has egress or egressDeny rules and enableDefaultDeny.egress is not
	// false, so the pods it selects are egress-isolated.
	defaultDeny bool
	// nonIsolating: the rule has egress rules but enableDefaultDeny.egress is false.
	nonIsolating bool
	allows       []ciliumRule
	denies       []ciliumRule
}

// ciliumRule is one compiled egress or egressDeny rule.
type ciliumRule struct {
	name  string // field path within the policy: "egress[0]", "specs[1].egressDeny[0]"
	index int    // index in its egress or egressDeny list
	peers []ciliumPeer
	// anyPeer: no L3 field but toPorts: every destination on those ports.
	anyPeer bool
	ports   ciliumPorts
}

// ciliumPeer is one L3 peer of a rule that may match an address outside the cluster; peers that
// select endpoints or nodes are kept only to explain why they never do.
type ciliumPeer struct {
	label string // "toCIDR 169.254.169.254/32", "toEntities world"
	cidr  *cidrPeer
	// family: 4 or 6 for world-ipv4 / world-ipv6, 0 for every family.
	entity bool
	family int
	fqdn   *regexp.Regexp
	// world: a toEndpoints selector with reserved: labels that selects the world identity.
	world bool
	// inCluster: toEndpoints, toNodes and entities of the cluster never match outside addresses.
	inCluster bool
}

// match reports whether the peer matches the endpoint; excluded names the except entry of a
// toCIDRSet that removed it.
func (p *ciliumPeer) match(ep *endpoint.Endpoint) (ok bool, excluded string) {
	switch {
	case p.inCluster:
		return false, ""
	case p.cidr != nil:
		return p.cidr.match(ep.Address)
	case p.entity || p.world:
		return p.family == 0 || (p.family == 4) == ep.Address.Is4(), ""
	case p.fqdn != nil:
		for _, h := range ep.Hostnames {
			if p.fqdn.MatchString(strings.ToLower(strings.TrimSuffix(h, ".")) + ".") {
				return true, ""
			}
		}
	}
	return false, ""
}

func (p *ciliumPeer) broad() bool {
	return (p.entity && p.family == 0) || (p.cidr != nil && p.cidr.broad())
}

// ciliumPorts is a rule's toPorts.
type ciliumPorts struct {
	all    bool // no toPorts and no icmps: every port and protocol
	ranges []ciliumPort
}

// ciliumPort is a port, a range or a named port with a protocol (ANY: TCP, UDP and SCTP).
type ciliumPort struct {
	protocol    string
	first, last int32 // 0,0: every port
	named       string
}

func (p *ciliumPort) match(ep *endpoint.Endpoint) bool {
	if p.named != "" || (p.protocol != "ANY" && p.protocol != string(ep.Protocol)) {
		return false
	}
	return p.first == 0 || (ep.Port >= p.first && ep.Port <= p.last)
}

func (p *ciliumPort) String() string {
	switch {
	case p.named != "":
		return fmt.Sprintf("%s named port %q", p.protocol, p.named)
	case p.first == 0:
		return p.protocol + " any port"
	case p.first == p.last:
		return fmt.Sprintf("%s %d", p.protocol, p.first)
	}
	return fmt.Sprintf("%s %d-%d", p.protocol, p.first, p.last)
}

func (ps *ciliumPorts) match(ep *endpoint.Endpoint) bool {
	if ps.all {
		return true
	}
	for i := range ps.ranges {
		if ps.ranges[i].match(ep) {
			return true
		}
	}
	return false
}

func (ps *ciliumPorts) String() string {
	if ps.all {
		return "all ports"
	}
	if len(ps.ranges) == 0 {
		return "ICMP only"
	}
	s := make([]string, len(ps.ranges))
	for i := range ps.ranges {
		s[i] = ps.ranges[i].String()
	}
	return strings.Join(s, ", ")
}

// match reports whether the rule matches the endpoint, the peer that did, and when it does not,
// the except entry that removed the destination, if any.
func (r *ciliumRule) match(ep *endpoint.Endpoint) (ok bool, peer string, broad bool, excluded string) {
	if !r.ports.match(ep) {
		return false, "", false, ""
	}
	if r.anyPeer {
		return true, "any destination, " + r.ports.String(), r.ports.all, ""
	}
	for i := range r.peers {
		m, ex := r.peers[i].match(ep)
		if m {
			return true, r.peers[i].label, r.peers[i].broad(), ""
		}
		if ex != "" && excluded == "" {
			excluded = r.peers[i].label
		}
	}
	return false, "", false, excluded
}

func (r *ciliumRule) explainMiss(ep *endpoint.Endpoint, excluded string) string {
	var why []string
	if !r.ports.match(ep) {
		w := fmt.Sprintf("toPorts [%s] do not include %s %d", r.ports.String(), ep.Protocol, ep.Port)
		for _, p := range r.ports.ranges {
			if p.named != "" {
				w += " (named ports never match an address outside the cluster)"
				break
			}
		}
		why = append(why, w)
	}
	if excluded != "" {
		why = append(why, fmt.Sprintf("%s excludes %s", excluded, ep.Address))
	}
	if !r.anyPeer {
		var labels []string
		for _, p := range r.peers {
			labels = append(labels, p.label)
		}
		if len(labels) == 0 {
			labels = append(labels, "no peer and no toPorts: the rule selects nothing")
		}
		why = append(why, fmt.Sprintf("%s is not in %s (endpoints, nodes and cluster entities are never an address outside the cluster)", ep.Address, strings.Join(labels, ", ")))
	}
	return strings.Join(why, "; ")
}

// ciliumSelector is an endpoint selector with Cilium's label sources resolved: each key is
// "source:key", a key without source (or with source any) matching the k8s source, which is
// the only source a pod's labels have.
type ciliumSelector struct {
	reqs []ciliumRequirement
}

type ciliumRequirement struct {
	key    string
	op     string // In, NotIn, Exists, DoesNotExist
	values []string
}

// ciliumKey resolves a selector key's source: "app" and "any:app" are "k8s:app".
func ciliumKey(key string) string {
	source, rest, ok := strings.Cut(key, ":")
	switch {
	case !ok:
		return "k8s:" + key
	case source == "any":
		return "k8s:" + rest
	}
	return key
}

func compileCiliumSelector(s *ciliumv2.EndpointSelector, field string, errs *fieldErrors) ciliumSelector {
	var out ciliumSelector
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" {
			errs.add(field+".matchLabels", "empty label key")
			continue
		}
		out.reqs = append(out.reqs, ciliumRequirement{key: ciliumKey(k), op: "In", values: []string{s.MatchLabels[k]}})
	}
	for i, e := range s.MatchExpressions {
		f := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		switch e.Operator {
		case "In", "NotIn":
			if len(e.Values) == 0 {
				errs.add(f+".values", "operator %s needs at least one value", e.Operator)
			}
		case "Exists", "DoesNotExist":
			if len(e.Values) > 0 {
				errs.add(f+".values", "operator %s takes no values", e.Operator)
			}
		default:
			errs.add(f+".operator", "unknown operator %q (want In, NotIn, Exists or DoesNotExist)", e.Operator)
		}
		if e.Key == "" {
			errs.add(f+".key", "empty label key")
		}
		out.reqs = append(out.reqs, ciliumRequirement{key: ciliumKey(e.Key), op: e.Operator, values: e.Values})
	}
	return out
}

// matches reports whether a label set ("source:key" keys) satisfies every requirement.
func (s *ciliumSelector) matches(labels map[string]string) bool {
	for _, r := range s.reqs {
		v, has := labels[r.key]
		in := false
		for _, want := range r.values {
			if has && v == want {
				in = true
				break
			}
		}
		switch r.op {
		case "In":
			if !in {
				return false
			}
		case "NotIn":
			if in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		}
	}
	return true
}

func (s *ciliumSelector) reserved() bool {
	for _, r := range s.reqs {
		if strings.HasPrefix(r.key, "reserved:") {
			return true
		}
	}
	return false
}

// ciliumWorldLabels are the labels of the identity Cilium gives an address outside the cluster.
var ciliumWorldLabels = map[string]string{"reserved:world": ""}

// ciliumIgnoredLabel reports whether Cilium's default label filter leaves a pod label out of the
// pod's identity (pkg/labelsfilter defaultLabelPrefixCfg): such labels cannot select it.
func ciliumIgnoredLabel(key string) bool {
	if strings.HasPrefix(key, "app.kubernetes.io") {
		return false
	}
	for _, p := range []string{"io.kubernetes", "kubernetes.io", "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index",
		"batch.kubernetes.io/job-completion-index", "batch.kubernetes.io/controller-uid", "k8s.io", "pod-template-generation",
		"pod-template-hash", "controller-revision-hash", "controller-uid", "annotation", "etcd_node", "topology.kubernetes.io"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return strings.Contains(key, "beta.kubernetes.io")
}

// Labels Cilium adds to every pod's identity.
const (
	ciliumNamespaceLabel       = "k8s:io.kubernetes.pod.namespace"
	ciliumServiceAccountLabel  = "k8s:io.cilium.k8s.policy.serviceaccount"
	ciliumClusterLabel         = "k8s:io.cilium.k8s.policy.cluster"
	ciliumNamespaceLabelPrefix = "k8s:io.cilium.k8s.namespace.labels."
	// ciliumDefaultCluster is Cilium's default cluster-name.
	ciliumDefaultCluster = "default"
)

// ciliumIdentity returns the labels of a pod's Cilium identity: its own labels (less those the
// default label filter drops), its namespace, service account and cluster, and its namespace's
// labels, each with the k8s source.
func ciliumIdentity(pod map[string]string, namespace string, nsLabels map[string]string, sa string) map[string]string {
	out := make(map[string]string, len(pod)+len(nsLabels)+3)
	for k, v := range pod {
		if !ciliumIgnoredLabel(k) {
			out["k8s:"+k] = v
		}
	}
	for k, v := range nsLabels {
		out[ciliumNamespaceLabelPrefix+k] = v
	}
	out[ciliumNamespaceLabel] = namespace
	out[ciliumServiceAccountLabel] = sa
	out[ciliumClusterLabel] = ciliumDefaultCluster
	return out
}

// ciliumEntities lists the entities Cilium knows (api.EntitySelectorMapping); family is the
// address family whose outside addresses the entity contains: 0 both, 4 or 6 one, -1 none.
var ciliumEntities = map[string]int{
	"all": 0, "world": 0, "world-ipv4": 4, "world-ipv6": 6,
	"cluster": -1, "cluster-mesh": -1, "host": -1, "init": -1, "ingress": -1, "unmanaged": -1,
	"remote-node": -1, "health": -1, "none": -1, "kube-apiserver": -1,
}

// ciliumProtocols are the protocols toPorts accepts; only ANY, TCP, UDP and SCTP carry ports.
var ciliumProtocols = map[string]bool{"TCP": true, "UDP": true, "SCTP": true, "ANY": true,
	"VRRP": true, "IGMP": true, "GRE": true, "IPIP": true, "IPV6": true, "ESP": true, "AH": true}

var (
	ciliumMatchNameChars    = regexp.MustCompile(`^[-a-zA-Z0-9_.]+$`)
	ciliumMatchPatternChars = regexp.MustCompile(`^[-a-zA-Z0-9_.*]+$`)
	ciliumAllNamesPattern   = regexp.MustCompile(`^[*]+[.]?$`)
	ciliumSubdomainWildcard = regexp.MustCompile(`^[*]{2,}\[\.\]`)
	ciliumWildcard          = regexp.MustCompile(`[*]+`)
)

// ciliumFQDNRegexp turns a toFQDNs selector into the anchored expression Cilium matches DNS
// names (lower case, with a trailing dot) against (pkg/fqdn/matchpattern): "*" alone matches
// every name, "**." at the start one or more whole labels, "*" elsewhere any run of DNS
// characters within one label.
func ciliumFQDNRegexp(s ciliumv2.FQDNSelector) (*regexp.Regexp, error) {
	if s.MatchName != "" {
		name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s.MatchName), ".")) + "."
		return regexp.MustCompile("^" + regexp.QuoteMeta(name) + "$"), nil
	}
	pattern := strings.ToLower(strings.TrimSpace(s.MatchPattern))
	if ciliumAllNamesPattern.MatchString(pattern) {
		return regexp.Compile(`(^([-a-zA-Z0-9_]+[.])+$)|(^[.]$)`)
	}
	pattern = strings.TrimSuffix(pattern, ".") + "."
	pattern = strings.ReplaceAll(pattern, ".", "[.]")
	pattern = ciliumSubdomainWildcard.ReplaceAllString(pattern, `([-a-zA-Z0-9_]+([.][-a-zA-Z0-9_]+){0,})[.]`)
	pattern = ciliumWildcard.ReplaceAllString(pattern, `[-a-zA-Z0-9_]*`)
	return regexp.Compile("^" + pattern + "$")
}

// ciliumCheck collects what Cilium's agent refuses (errs) and what imdsguard cannot evaluate
// faithfully (unsupported) while a policy is compiled.
type ciliumCheck struct {
	errs, unsupported fieldErrors
}

// compileCiliumRule validates and compiles one egress (deny false) or egressDeny rule, as
// Cilium's agent sanitizes it (pkg/policy/api/rule_validation.go).
func compileCiliumRule(r *ciliumv2.EgressRule, field string, index int, deny bool, c *ciliumCheck) ciliumRule {
	rule := ciliumRule{name: strings.TrimPrefix(field, "spec."), index: index}
	l3 := map[string]int{
		"toEndpoints": len(r.ToEndpoints), "toCIDR": len(r.ToCIDR), "toCIDRSet": len(r.ToCIDRSet),
		"toEntities": len(r.ToEntities), "toServices": len(r.ToServices), "toGroups": len(r.ToGroups),
		"toNodes": len(r.ToNodes), "toFQDNs": len(r.ToFQDNs),
	}
	var members []string
	for name, n := range l3 {
		if n > 0 {
			members = append(members, name)
		}
	}
	sort.Strings(members)
	if len(members) > 1 {
		c.errs.add(field, "combining %s and %s is not supported (Cilium refuses the rule)", members[0], members[1])
	}
	// A peer list given but empty selects nothing (Cilium's mergeEndpointSelectors).
	emptyList := (r.ToEndpoints != nil && len(r.ToEndpoints) == 0) || (r.ToNodes != nil && len(r.ToNodes) == 0) ||
		(r.ToEntities != nil && len(r.ToEntities) == 0) || (r.ToCIDR != nil && len(r.ToCIDR) == 0) ||
		(r.ToCIDRSet != nil && len(r.ToCIDRSet) == 0)
	for i := range r.ToEndpoints {
		f := fmt.Sprintf("%s.toEndpoints[%d]", field, i)
		sel := compileCiliumSelector(&r.ToEndpoints[i], f, &c.errs)
		if sel.reserved() && sel.matches(ciliumWorldLabels) {
			rule.peers = append(rule.peers, ciliumPeer{label: "toEndpoints reserved:world", world: true})
			continue
		}
		rule.peers = append(rule.peers, ciliumPeer{label: "toEndpoints (pods)", inCluster: true})
	}
	for i := range r.ToNodes {
		compileCiliumSelector(&r.ToNodes[i], fmt.Sprintf("%s.toNodes[%d]", field, i), &c.errs)
		rule.peers = append(rule.peers, ciliumPeer{label: "toNodes (node addresses)", inCluster: true})
	}
	for i, s := range r.ToCIDR {
		f := fmt.Sprintf("%s.toCIDR[%d]", field, i)
		p, err := parseCiliumCIDR(s, true)
		if err != nil {
			c.errs.add(f, "%v", err)
			continue
		}
		rule.peers = append(rule.peers, ciliumPeer{label: "toCIDR " + p.String(), cidr: &cidrPeer{prefix: p, label: "toCIDR " + p.String()}})
	}
	for i, s := range r.ToCIDRSet {
		f := fmt.Sprintf("%s.toCIDRSet[%d]", field, i)
		if peer, ok := compileCiliumCIDRRule(&s, f, c); ok {
			rule.peers = append(rule.peers, peer)
		}
	}
	for i, e := range r.ToEntities {
		f := fmt.Sprintf("%s.toEntities[%d]", field, i)
		family, ok := ciliumEntities[e]
		switch {
		case !ok:
			c.errs.add(f, "unsupported entity %q", e)
		case family == -1:
			rule.peers = append(rule.peers, ciliumPeer{label: "toEntities " + e, inCluster: true})
		case deny && family != 0:
			c.unsupported.add(f, "Cilium gives outside addresses the identity %s only in a dual-stack cluster (world in a single-stack one), which manifests do not say; deny with world or toCIDR instead", e)
		default:
			rule.peers = append(rule.peers, ciliumPeer{label: "toEntities " + e, entity: true, family: family})
		}
	}
	if len(r.ToServices) > 0 {
		c.unsupported.add(field+".toServices", "toServices matches the addresses of a Service's endpoints, which imdsguard does not read")
	}
	if len(r.ToGroups) > 0 {
		c.unsupported.add(field+".toGroups", "toGroups matches addresses a cloud provider's API returns, which imdsguard does not read")
	}
	if len(r.ToRequires) > 0 {
		c.unsupported.add(field+".toRequires", "toRequires (deprecated) is not evaluated")
	}
	if len(r.Authentication) > 0 && string(r.Authentication) != "null" {
		c.unsupported.add(field+".authentication", "mutual authentication depends on the peer's identity at run time, which imdsguard does not evaluate")
	}
	for i, s := range r.ToFQDNs {
		f := fmt.Sprintf("%s.toFQDNs[%d]", field, i)
		switch {
		case s.MatchName != "" && s.MatchPattern != "":
			c.errs.add(f, "only one of matchName or matchPattern is allowed")
			continue
		case s.MatchName != "" && !ciliumMatchNameChars.MatchString(s.MatchName):
			c.errs.add(f+".matchName", "invalid characters in %q: only 0-9, a-z, A-Z and ., -, _ are allowed", s.MatchName)
			continue
		case s.MatchPattern != "" && !ciliumMatchPatternChars.MatchString(s.MatchPattern):
			c.errs.add(f+".matchPattern", "invalid characters in %q: only 0-9, a-z, A-Z and ., -, _ and * are allowed", s.MatchPattern)
			continue
		case s.MatchName == "" && s.MatchPattern == "":
			continue // selects no name
		}
		re, err := ciliumFQDNRegexp(s)
		if err != nil {
			c.errs.add(f, "%v", err)
			continue
		}
		label := "toFQDNs matchName " + s.MatchName
		if s.MatchPattern != "" {
			label = "toFQDNs matchPattern " + s.MatchPattern
		}
		rule.peers = append(rule.peers, ciliumPeer{label: label, fqdn: re})
	}
	if len(r.ICMPs) > 0 && len(r.ToPorts) > 0 {
		c.errs.add(field+".icmps", "the ICMPs block may only be present without toPorts")
	}
	rule.ports = compileCiliumPorts(r.ToPorts, field+".toPorts", deny, c)
	if len(r.ICMPs) > 0 {
		rule.ports = ciliumPorts{} // ICMP only: never TCP, UDP or SCTP
	}
	hasL4 := len(r.ToPorts) > 0 || len(r.ICMPs) > 0
	rule.anyPeer = len(members) == 0 && !emptyList && hasL4
	if emptyList {
		rule.peers = nil
	}
	return rule
}

// parseCiliumCIDR parses a toCIDR entry (an address or a prefix) or, with bare false, a
// toCIDRSet cidr (a prefix only).
func parseCiliumCIDR(s string, bare bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("a CIDR must be specified")
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if bare {
		if a, err := netip.ParseAddr(s); err == nil {
			return netip.PrefixFrom(a, a.BitLen()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("unable to parse CIDR %q", s)
}

func compileCiliumCIDRRule(r *ciliumv2.CIDRRule, field string, c *ciliumCheck) (ciliumPeer, bool) {
	set := 0
	for _, b := range []bool{r.CIDR != "", r.CIDRGroupRef != "", r.CIDRGroupSelector != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		c.errs.add(field, "exactly one of cidr, cidrGroupRef or cidrGroupSelector must be set")
		return ciliumPeer{}, false
	}
	if r.CIDR == "" {
		c.unsupported.add(field, "CiliumCIDRGroups are not read: the addresses of cidrGroupRef and cidrGroupSelector are unknown")
		return ciliumPeer{}, false
	}
	p, err := parseCiliumCIDR(r.CIDR, false)
	if err != nil {
		c.errs.add(field+".cidr", "%v", err)
		return ciliumPeer{}, false
	}
	peer := cidrPeer{prefix: p, label: "toCIDRSet " + p.String()}
	for i, e := range r.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil {
			c.errs.add(fmt.Sprintf("%s.except[%d]", field, i), "unable to parse CIDR %q", e)
			continue
		}
		if p.Bits() > ex.Bits() || !p.Contains(ex.Addr()) {
			c.errs.add(fmt.Sprintf("%s.except[%d]", field, i), "cidr %s does not contain except %s", r.CIDR, e)
			continue
		}
		peer.except = append(peer.except, ex.Masked())
	}
	if len(peer.except) > 0 {
		ex := make([]string, len(peer.except))
		for i, e := range peer.except {
			ex[i] = e.String()
		}
		peer.label += " except " + strings.Join(ex, ", ")
	}
	return ciliumPeer{label: peer.label, cidr: &peer}, true
}

func compileCiliumPorts(in []ciliumv2.PortRule, field string, deny bool, c *ciliumCheck) ciliumPorts {
	if len(in) == 0 {
		return ciliumPorts{all: true}
	}
	var out ciliumPorts
	for i, pr := range in {
		pf := fmt.Sprintf("%s[%d]", field, i)
		l7 := ciliumL7(pr.Rules)
		proxied := len(l7) > 0 && (len(l7) != 1 || l7[0] != "dns") // L7 rules other than DNS
		switch {
		case deny && len(l7) > 0:
			c.errs.add(pf+".rules", "egressDeny toPorts take no L7 rules")
		case proxied:
			c.unsupported.add(pf+".rules", "L7 rules (%s) are decided by Cilium's proxy per request, which imdsguard does not evaluate", strings.Join(l7, ", "))
		}
		if len(pr.ServerNames) > 0 {
			c.unsupported.add(pf+".serverNames", "serverNames match the TLS server name of each connection, which imdsguard does not evaluate")
		}
		if len(pr.Ports) > 40 {
			c.errs.add(pf+".ports", "too many ports, the max is 40")
		}
		for j, p := range pr.Ports {
			f := fmt.Sprintf("%s.ports[%d]", pf, j)
			port := ciliumPort{protocol: p.Protocol}
			if port.protocol == "" {
				port.protocol = "ANY"
			}
			if !ciliumProtocols[port.protocol] {
				c.errs.add(f+".protocol", "unsupported protocol %q (want TCP, UDP, SCTP, ANY, VRRP, IGMP, GRE, IPIP, IPV6, ESP or AH)", p.Protocol)
				continue
			}
			if proxied && port.protocol != "TCP" {
				c.errs.add(f+".protocol", "L7 rules can only apply to TCP (not %s) except for DNS rules", port.protocol)
			}
			switch n, err := strconv.ParseUint(p.Port, 10, 16); {
			case p.Port == "":
				c.errs.add(f+".port", "port must be specified")
				continue
			case err == nil:
				port.first, port.last = int32(n), int32(n)
				if p.EndPort > 0 && n > 0 {
					if p.EndPort < port.first || p.EndPort > 65535 {
						c.errs.add(f+".endPort", "endPort %d must be between port %d and 65535", p.EndPort, n)
						continue
					}
					port.last = p.EndPort
				}
			case len(validation.IsValidPortName(p.Port)) == 0:
				port.named = strings.ToLower(p.Port)
			default:
				c.errs.add(f+".port", "invalid port %q: not a number 0-65535 or a port name", p.Port)
				continue
			}
			if port.protocol != "ANY" && port.protocol != "TCP" && port.protocol != "UDP" && port.protocol != "SCTP" && port.first != 0 {
				c.errs.add(f+".port", "protocol %s has no ports: port must be empty or 0", port.protocol)
				continue
			}
			out.ranges = append(out.ranges, port)
		}
	}
	return out
}

// ciliumL7 lists the kinds of L7 rules a toPorts entry holds (http, kafka, dns, l7proto).
func ciliumL7(raw []byte) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var kinds []string
	for _, k := range []string{"http", "kafka", "dns", "l7proto"} {
		if strings.Contains(string(raw), `"`+k+`"`) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		kinds = append(kinds, "unknown")
	}
	return kinds
}

// compileCiliumSpec validates and compiles one rule of a Cilium policy as the agent does
// (api.Rule.Sanitize). It returns nil for a rule that does not govern pod egress.
func (m *Model) compileCiliumSpec(r *ciliumv2.Rule, kind, policy, namespace, field string, ref inventory.ObjectRef, c *ciliumCheck) *ciliumSpec {
	hasIngress := len(r.Ingress) > 0 && string(r.Ingress) != "[]" && string(r.Ingress) != "null"
	hasIngressDeny := len(r.IngressDeny) > 0 && string(r.IngressDeny) != "[]" && string(r.IngressDeny) != "null"
	if !hasIngress && !hasIngressDeny && len(r.Egress) == 0 && len(r.EgressDeny) == 0 {
		c.errs.add(field, "rule must have at least one of ingress, ingressDeny, egress, egressDeny")
	}
	switch {
	case r.EndpointSelector == nil && r.NodeSelector == nil:
		c.errs.add(field, "rule must have one of endpointSelector or nodeSelector")
	case r.EndpointSelector != nil && r.NodeSelector != nil:
		c.errs.add(field, "rule cannot have both endpointSelector and nodeSelector")
	}
	s := &ciliumSpec{kind: kind, policy: policy, namespace: namespace, field: field}
	if r.EndpointSelector != nil {
		s.selector = compileCiliumSelector(r.EndpointSelector, field+".endpointSelector", &c.errs)
	}
	if r.NodeSelector != nil {
		compileCiliumSelector(r.NodeSelector, field+".nodeSelector", &c.errs)
	}
	prefix := field + "."
	for i := range r.Egress {
		s.allows = append(s.allows, compileCiliumRule(&r.Egress[i], fmt.Sprintf("%segress[%d]", prefix, i), i, false, c))
	}
	for i := range r.EgressDeny {
		d := &r.EgressDeny[i]
		e := ciliumv2.EgressRule{ToEndpoints: d.ToEndpoints, ToRequires: d.ToRequires, ToCIDR: d.ToCIDR, ToCIDRSet: d.ToCIDRSet,
			ToEntities: d.ToEntities, ToServices: d.ToServices, ToGroups: d.ToGroups, ToNodes: d.ToNodes, ToPorts: d.ToPorts, ICMPs: d.ICMPs}
		s.denies = append(s.denies, compileCiliumRule(&e, fmt.Sprintf("%segressDeny[%d]", prefix, i), i, true, c))
	}
	if r.NodeSelector != nil && r.EndpointSelector == nil && len(c.errs) == 0 && len(r.Egress)+len(r.EgressDeny) > 0 {
		m.HostEndpointPolicies = append(m.HostEndpointPolicies, HostEndpointPolicy{Object: ref,
			Reason: field + ".nodeSelector makes it a host policy: it governs the nodes' own traffic (and hostNetwork pods' with it), not pod egress, and is not evaluated for pods"})
		return nil
	}
	egress := len(r.Egress)+len(r.EgressDeny) > 0
	explicit := r.EnableDefaultDeny != nil && r.EnableDefaultDeny.Egress != nil
	s.defaultDeny = egress && (!explicit || *r.EnableDefaultDeny.Egress)
	s.nonIsolating = egress && !s.defaultDeny
	if !egress {
		return nil
	}
	return s
}

// compileCilium validates and compiles the Cilium policies of an inventory.
func compileCilium(inv *inventory.Inventory, m *Model) {
	type object struct {
		kind, namespace, name string
		spec                  *ciliumv2.Rule
		specs                 []ciliumv2.Rule
		source                inventory.Source
	}
	var objects []object
	for _, c := range inv.CiliumClusterwideNetworkPolicies {
		objects = append(objects, object{kindCiliumClusterwideNetworkPolicy, "", c.Policy.Name, c.Policy.Spec, c.Policy.Specs, c.Source})
	}
	for _, c := range inv.CiliumNetworkPolicies {
		objects = append(objects, object{kindCiliumNetworkPolicy, c.Policy.Namespace, c.Policy.Name, c.Policy.Spec, c.Policy.Specs, c.Source})
	}
	for _, o := range objects {
		ref := inventory.ObjectRef{Kind: o.kind, Namespace: o.namespace, Name: o.name, Source: o.source}
		name := o.name
		if o.namespace != "" {
			name = o.namespace + "/" + o.name
		}
		var c ciliumCheck
		if o.spec == nil && len(o.specs) == 0 {
			c.errs.add("spec", "a Cilium policy needs spec or specs")
		}
		var specs []*ciliumSpec
		add := func(r *ciliumv2.Rule, field string) {
			if s := m.compileCiliumSpec(r, o.kind, name, o.namespace, field, ref, &c); s != nil {
				specs = append(specs, s)
			}
		}
		if o.spec != nil {
			add(o.spec, "spec")
		}
		for i := range o.specs {
			add(&o.specs[i], fmt.Sprintf("specs[%d]", i))
		}
		switch {
		case len(c.errs) > 0:
			m.refuse(ref, c.errs)
		case len(c.unsupported) > 0:
			m.unsupported(ref, c.unsupported)
		case o.namespace == "":
			m.ciliumClusterwide = append(m.ciliumClusterwide, specs...)
		default:
			ns := m.namespace(o.namespace)
			ns.ciliumSpecs = append(ns.ciliumSpecs, specs...)
		}
	}
	sort.SliceStable(m.ciliumClusterwide, func(i, j int) bool { return m.ciliumClusterwide[i].policy < m.ciliumClusterwide[j].policy })
	for _, ns := range m.namespaces {
		sort.SliceStable(ns.ciliumSpecs, func(i, j int) bool { return ns.ciliumSpecs[i].policy < ns.ciliumSpecs[j].policy })
	}
}

// refuse records a Cilium policy that Cilium's agent refuses when it imports it: the API server
// stores it, but it is never enforced.
func (m *Model) refuse(ref inventory.ObjectRef, errs fieldErrors) { m.leaveOut(ref, errs, whyRefused) }
