package policy

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/calicov3"
	"github.com/imdsguard/imdsguard/internal/policy/calicoselector"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Calico's built-in tiers and their fixed orders and default actions (Calico's
// apis/projectcalico/v3 tier constants; the Tier CRD refuses other default actions for them).
// AdminNetworkPolicies live in kube-admin and the BaselineAdminNetworkPolicy in kube-baseline;
// Kubernetes NetworkPolicies live in the default tier at order 1000.
const (
	calicoTierKubeAdmin    = "kube-admin"
	calicoTierKubeBaseline = "kube-baseline"

	calicoOrderKubeAdmin    = 1_000
	calicoOrderDefault      = 1_000_000
	calicoOrderKubeBaseline = 10_000_000

	// calicoOrderKubernetesNetworkPolicy is the order Calico gives every Kubernetes
	// NetworkPolicy in the default tier.
	calicoOrderKubernetesNetworkPolicy = 1000
)

// Calico rule actions beyond Allow and Deny.
const (
	actionLog Action = "Log"
)

// calicoTier is a Calico tier: an order and the action for traffic that its policies select
// but none decides.
type calicoTier struct {
	name          string
	order         float64 // +Inf when unset: after every ordered tier
	defaultAction Action  // Deny or Pass
}

// calicoPolicy is a compiled Calico GlobalNetworkPolicy or NetworkPolicy that applies to egress.
type calicoPolicy struct {
	kind      string // "GlobalNetworkPolicy" or inventory.CalicoNetworkPolicyKind
	name      string // "name" (global) or "namespace/name"
	namespace string // "" for a GlobalNetworkPolicy
	tier      string
	order     float64 // +Inf when unset
	// sortName orders policies of equal order as Calico's dataplane does: by name, namespaced
	// ones as namespace/name.
	sortName          string
	selector          *calicoselector.Selector
	namespaceSelector *calicoselector.Selector // GlobalNetworkPolicy only; nil: every namespace
	saSelector        *calicoselector.Selector // nil: every service account
	rules             []calicoRule
	applyOnForward    bool
}

// calicoRule is a compiled egress rule.
type calicoRule struct {
	action    Action
	ipVersion int // 0: both families
	protocol  *calicoProtocol
	notProto  *calicoProtocol
	icmp      bool // an icmp match: only ICMP packets match
	nets      []netip.Prefix
	notNets   []netip.Prefix
	ports     []calicoPort
	notPorts  []calicoPort
	// dst is the rule's destination selection: an address outside the cluster matches it only
	// through the network sets it selects.
	dst calicoDestination
	// family holds, for IPv4 ([0]) and IPv6 ([1]), what the rule becomes once rendered for
	// that family (familyNets).
	family [2]calicoFamilyRule
	// protocolText describes the protocol match in a reason ("protocol TCP").
	protocolText string
	// source conditions, checked against the pod itself (the source of its egress)
	srcSelector, srcNotSelector, srcNamespaceSelector *calicoselector.Selector
	srcSANames                                        []string
	srcSASelector                                     *calicoselector.Selector
}

// calicoFamilyRule is a rule's destination nets for one address family.
type calicoFamilyRule struct {
	nets, notNets []netip.Prefix
	// dropped is set when nets or notNets were given but hold no net of the family: the rule
	// does not apply to the family at all.
	dropped     bool
	notNetsText string
}

// calicoProtocol is a rule's protocol: a name Calico knows or a number.
type calicoProtocol struct {
	name   string // canonical name ("TCP", "UDP", "SCTP", "UDPLite", "ICMP", "ICMPv6"), or ""
	number int
}

func (p *calicoProtocol) matches(proto corev1.Protocol) bool {
	switch proto {
	case corev1.ProtocolTCP:
		return p.number == 6
	case corev1.ProtocolUDP:
		return p.number == 17
	case corev1.ProtocolSCTP:
		return p.number == 132
	}
	return false
}

func (p *calicoProtocol) String() string {
	if p.name != "" {
		return p.name
	}
	return strconv.Itoa(p.number)
}

// supportsPorts reports whether ports may be given with the protocol (Calico's validation).
func (p *calicoProtocol) supportsPorts() bool {
	return p.number == 6 || p.number == 17 || p.number == 132 || p.number == 136
}

var calicoProtocolNumbers = map[string]int{"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}

// parseCalicoProtocol accepts Calico's protocol names (also in lower case, as Calico's v1 API
// wrote them) and numbers 1-255.
func parseCalicoProtocol(v intstr.IntOrString) (*calicoProtocol, error) {
	if v.Type == intstr.Int {
		if v.IntVal < 1 || v.IntVal > 255 {
			return nil, fmt.Errorf("protocol number %d is out of range 1-255", v.IntVal)
		}
		n := int(v.IntVal)
		for name, num := range calicoProtocolNumbers {
			if num == n {
				return &calicoProtocol{name: name, number: n}, nil
			}
		}
		return &calicoProtocol{number: n}, nil
	}
	for name, num := range calicoProtocolNumbers {
		if v.StrVal == name || v.StrVal == strings.ToLower(name) {
			return &calicoProtocol{name: name, number: num}, nil
		}
	}
	return nil, fmt.Errorf("unknown protocol %q (want TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255)", v.StrVal)
}

// calicoPort is a port, a range, or a named port (which never matches an address outside the
// cluster).
type calicoPort struct {
	first, last int32
	named       string
}

func (p calicoPort) matches(port int32) bool {
	return p.named == "" && port >= p.first && port <= p.last
}

func (p calicoPort) String() string {
	switch {
	case p.named != "":
		return fmt.Sprintf("named port %q", p.named)
	case p.first == p.last:
		return strconv.Itoa(int(p.first))
	}
	return fmt.Sprintf("%d:%d", p.first, p.last)
}

// parseCalicoPort accepts a number, "first:last" or a port name.
func parseCalicoPort(v intstr.IntOrString) (calicoPort, error) {
	if v.Type == intstr.Int {
		if v.IntVal < 0 || v.IntVal > 65535 {
			return calicoPort{}, fmt.Errorf("port %d is out of range 0-65535", v.IntVal)
		}
		return calicoPort{first: v.IntVal, last: v.IntVal}, nil
	}
	s := v.StrVal
	if first, last, ok := strings.Cut(s, ":"); ok {
		a, errA := strconv.ParseInt(first, 10, 32)
		b, errB := strconv.ParseInt(last, 10, 32)
		if errA != nil || errB != nil || a < 0 || b > 65535 || a > b {
			return calicoPort{}, fmt.Errorf("invalid port range %q (want first:last within 0-65535, first <= last)", s)
		}
		return calicoPort{first: int32(a), last: int32(b)}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		if n < 0 || n > 65535 {
			return calicoPort{}, fmt.Errorf("port %d is out of range 0-65535", n)
		}
		return calicoPort{first: int32(n), last: int32(n)}, nil
	}
	if errs := validation.IsValidPortName(s); len(errs) > 0 {
		return calicoPort{}, fmt.Errorf("invalid port %q: not a number, a range or a valid port name", s)
	}
	return calicoPort{named: s}, nil
}

// parseCalicoNet accepts a CIDR or a single address (Calico's "net" validation).
func parseCalicoNet(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid net %q: not an address or a CIDR", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return parseCIDR(s)
}

// parseCalicoSelector parses a selector field; an empty field is nil (every resource).
func parseCalicoSelector(src, field string, errs *fieldErrors) *calicoselector.Selector {
	if strings.TrimSpace(src) == "" {
		return nil
	}
	s, err := calicoselector.Parse(src)
	if err != nil {
		errs.add(field, "invalid selector %q: %v", src, err)
		return nil
	}
	return s
}

// calicoEgress reports whether a policy applies to egress, with Calico's defaulting of types:
// without types, Egress is included only if the policy has egress rules.
func calicoEgress(types []string, egressRules int) bool {
	if len(types) == 0 {
		return egressRules > 0
	}
	for _, t := range types {
		if t == "Egress" {
			return true
		}
	}
	return false
}

// calicoSpec is what a GlobalNetworkPolicy and a NetworkPolicy share, and the network sets
// their rules may select.
type calicoSpec struct {
	tier, selector, saSelector string
	order                      *float64
	types                      []string
	egress                     []calicov3.Rule
	sets                       []*calicoNetworkSet
}

// compileCalicoPolicy validates a Calico policy as Calico's API would and compiles its egress
// side. It returns nil (and no errors) for a policy that does not apply to egress. unsupported
// lists what imdsguard cannot evaluate faithfully: such a policy is left out and reported.
func compileCalicoPolicy(p *calicoPolicy, spec calicoSpec, errs, unsupported *fieldErrors) *calicoPolicy {
	p.tier = spec.tier
	if p.tier == "" {
		p.tier = calicov3.DefaultTier
	}
	p.order = math.Inf(1)
	if spec.order != nil {
		if math.IsNaN(*spec.order) || math.IsInf(*spec.order, 0) {
			errs.add("spec.order", "order must be a finite number")
		}
		p.order = *spec.order
	}
	p.selector = parseCalicoSelector(spec.selector, "spec.selector", errs)
	p.saSelector = parseCalicoSelector(spec.saSelector, "spec.serviceAccountSelector", errs)
	for i, t := range spec.types {
		if t != "Ingress" && t != "Egress" {
			errs.add(fmt.Sprintf("spec.types[%d]", i), "unknown type %q (want Ingress or Egress)", t)
		}
	}
	if len(spec.types) > 2 {
		errs.add("spec.types", "at most 2 types may be given")
	}
	for i := range spec.egress {
		p.rules = append(p.rules, compileCalicoRule(&spec.egress[i], fmt.Sprintf("spec.egress[%d]", i), p.namespace, spec.sets, errs, unsupported))
	}
	if !calicoEgress(spec.types, len(spec.egress)) {
		return nil
	}
	return p
}

func compileCalicoRule(r *calicov3.Rule, field, namespace string, sets []*calicoNetworkSet, errs, unsupported *fieldErrors) calicoRule {
	rule := calicoRule{action: Action(r.Action)}
	switch rule.action {
	case ActionAllow, ActionDeny, actionPass, actionLog:
	default:
		errs.add(field+".action", "unknown action %q (want Allow, Deny, Log or Pass)", r.Action)
	}
	if r.IPVersion != nil {
		if *r.IPVersion != 4 && *r.IPVersion != 6 {
			errs.add(field+".ipVersion", "ipVersion %d is not 4 or 6", *r.IPVersion)
		}
		rule.ipVersion = *r.IPVersion
	}
	var err error
	if r.Protocol != nil {
		if rule.protocol, err = parseCalicoProtocol(*r.Protocol); err != nil {
			errs.add(field+".protocol", "%v", err)
		}
	}
	if r.NotProtocol != nil {
		if rule.notProto, err = parseCalicoProtocol(*r.NotProtocol); err != nil {
			errs.add(field+".notProtocol", "%v", err)
		}
	}
	rule.icmp = r.ICMP != nil
	for _, icmp := range []struct {
		name string
		f    *calicov3.ICMPFields
	}{{"icmp", r.ICMP}, {"notICMP", r.NotICMP}} {
		name, f := icmp.name, icmp.f
		if f == nil {
			continue
		}
		if f.Code != nil && f.Type == nil {
			errs.add(field+"."+name, "ICMP code specified without an ICMP type")
		}
		if f.Type != nil && (*f.Type < 0 || *f.Type > 254) {
			errs.add(field+"."+name+".type", "ICMP type %d is out of range 0-254", *f.Type)
		}
		if f.Code != nil && (*f.Code < 0 || *f.Code > 255) {
			errs.add(field+"."+name+".code", "ICMP code %d is out of range 0-255", *f.Code)
		}
	}
	if r.HTTP != nil {
		if rule.action != ActionAllow {
			errs.add(field+".http", "HTTP match is only valid on Allow rules")
		} else if rule.protocol != nil && rule.protocol.number != 6 {
			errs.add(field+".http", "rules with HTTP match must have protocol TCP or unset")
		} else {
			unsupported.add(field+".http", "HTTP matches need Calico's application layer policy, which imdsguard does not evaluate")
		}
	}
	d, s := &r.Destination, &r.Source
	df, sf := field+".destination", field+".source"
	rule.nets = compileCalicoNets(d.Nets, df+".nets", rule.ipVersion, errs)
	rule.notNets = compileCalicoNets(d.NotNets, df+".notNets", rule.ipVersion, errs)
	for f, addr := range [2]netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		fr := &rule.family[f]
		var droppedNets, droppedNotNets bool
		fr.nets, droppedNets = familyNets(rule.nets, addr)
		fr.notNets, droppedNotNets = familyNets(rule.notNets, addr)
		fr.dropped = droppedNets || droppedNotNets
		if len(fr.notNets) > 0 {
			fr.notNetsText = "notNets " + prefixList(fr.notNets)
		}
	}
	if rule.protocol != nil {
		rule.protocolText = "protocol " + rule.protocol.String()
	}
	rule.ports = compileCalicoPorts(d.Ports, df+".ports", errs)
	rule.notPorts = compileCalicoPorts(d.NotPorts, df+".notPorts", errs)
	if (len(d.Ports) > 0 || len(d.NotPorts) > 0 || len(s.Ports) > 0 || len(s.NotPorts) > 0) && (rule.protocol == nil || !rule.protocol.supportsPorts()) {
		errs.add(field+".protocol", "ports may only be given with protocol TCP, UDP, SCTP or UDPLite")
	}
	if d.Services != nil && (len(d.Ports) > 0 || len(d.NotPorts) > 0) {
		errs.add(df+".services", "ports and notPorts cannot be specified with services")
	}
	rule.dst = compileCalicoDestination(d, df, namespace, sets, errs)
	// The source of an egress rule is the pod itself: its selectors are checked against the
	// pod; its addresses and ports (the pod's IP, an ephemeral port) are not in the manifests.
	compileCalicoNets(s.Nets, sf+".nets", rule.ipVersion, errs)
	compileCalicoNets(s.NotNets, sf+".notNets", rule.ipVersion, errs)
	compileCalicoPorts(s.Ports, sf+".ports", errs)
	compileCalicoPorts(s.NotPorts, sf+".notPorts", errs)
	for _, src := range []struct {
		name string
		set  bool
	}{{"nets", len(s.Nets) > 0}, {"notNets", len(s.NotNets) > 0}, {"ports", len(s.Ports) > 0}, {"notPorts", len(s.NotPorts) > 0}} {
		if src.set {
			unsupported.add(sf+"."+src.name, "an egress rule's source %s match the pod's address or source port, which manifests do not carry", src.name)
		}
	}
	if s.Services != nil {
		unsupported.add(sf+".services", "an egress rule's source services match depends on Service endpoints, which imdsguard does not read")
	}
	rule.srcSelector = parseCalicoSelector(s.Selector, sf+".selector", errs)
	rule.srcNotSelector = parseCalicoSelector(s.NotSelector, sf+".notSelector", errs)
	rule.srcNamespaceSelector = parseCalicoSelector(s.NamespaceSelector, sf+".namespaceSelector", errs)
	if s.ServiceAccounts != nil {
		rule.srcSANames = s.ServiceAccounts.Names
		rule.srcSASelector = parseCalicoSelector(s.ServiceAccounts.Selector, sf+".serviceAccounts.selector", errs)
		if len(rule.srcSANames) == 0 && rule.srcSASelector == nil {
			rule.srcSASelector = calicoselector.MustParse("all()")
		}
	}
	return rule
}

func compileCalicoNets(in []string, field string, ipVersion int, errs *fieldErrors) []netip.Prefix {
	var out []netip.Prefix
	for i, n := range in {
		p, err := parseCalicoNet(n)
		if err != nil {
			errs.add(fmt.Sprintf("%s[%d]", field, i), "%v", err)
			continue
		}
		if ipVersion != 0 && (ipVersion == 4) != p.Addr().Is4() {
			errs.add(fmt.Sprintf("%s[%d]", field, i), "%s is not an IPv%d net, but the rule's ipVersion is %d", n, ipVersion, ipVersion)
			continue
		}
		out = append(out, p)
	}
	return out
}

func compileCalicoPorts(in []intstr.IntOrString, field string, errs *fieldErrors) []calicoPort {
	var out []calicoPort
	for i, v := range in {
		p, err := parseCalicoPort(v)
		if err != nil {
			errs.add(fmt.Sprintf("%s[%d]", field, i), "%v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// familyNets keeps the nets of an address's family, and reports whether the list was given
// but held none of that family. Calico's dataplane renders a rule once per IP version with
// only that version's nets, and drops the rule for a version when a nets or notNets list
// loses every entry to the filter (Felix's FilterRuleToIPVersion).
func familyNets(nets []netip.Prefix, addr netip.Addr) (kept []netip.Prefix, droppedAll bool) {
	if len(nets) == 0 {
		return nil, false
	}
	for _, n := range nets {
		if n.Addr().Is4() == addr.Is4() {
			kept = append(kept, n)
		}
	}
	return kept, len(kept) == 0
}

// calicoEndpoint is the pod as Calico's selectors see it: its labels, and the labels Calico adds
// to every workload endpoint (projectcalico.org/namespace, /orchestrator, /serviceaccount, and
// its namespace's and service account's labels with the pcns. and pcsa. prefixes).
type calicoEndpoint struct {
	pod       map[string]string
	namespace string
	nsLabels  map[string]string
	sa        string
	saLabels  map[string]string
	// ns and saView are the namespace and service account as namespaceSelector and
	// serviceAccountSelector see them.
	ns, saView calicoNamedLabels
}

func newCalicoEndpoint(pod map[string]string, namespace string, nsLabels map[string]string, sa string, saLabels map[string]string) *calicoEndpoint {
	e := &calicoEndpoint{pod: pod, namespace: namespace, nsLabels: nsLabels, sa: sa, saLabels: saLabels}
	e.ns, e.saView = calicoNamedLabels{nsLabels, namespace}, calicoNamedLabels{saLabels, sa}
	return e
}

// Get implements calicoselector.Labels.
func (e *calicoEndpoint) Get(key string) (string, bool) {
	switch key {
	case "projectcalico.org/namespace":
		return e.namespace, true
	case "projectcalico.org/orchestrator":
		return "k8s", true
	case "projectcalico.org/serviceaccount":
		return e.sa, true
	}
	if k, ok := strings.CutPrefix(key, "pcns."); ok {
		return e.ns.Get(k)
	}
	if k, ok := strings.CutPrefix(key, "pcsa."); ok {
		return e.saView.Get(k)
	}
	v, ok := e.pod[key]
	return v, ok
}

// calicoNamedLabels are a namespace's or service account's labels as Calico's
// namespaceSelector and serviceAccountSelector see them: with projectcalico.org/name.
type calicoNamedLabels struct {
	labels map[string]string
	name   string
}

// Get implements calicoselector.Labels.
func (l *calicoNamedLabels) Get(key string) (string, bool) {
	if key == "projectcalico.org/name" {
		return l.name, true
	}
	v, ok := l.labels[key]
	return v, ok
}

// selects reports whether a policy applies to the pod.
func (p *calicoPolicy) selects(e *calicoEndpoint) bool {
	if p.namespace != "" && p.namespace != e.namespace {
		return false
	}
	if p.namespaceSelector != nil && !p.namespaceSelector.Matches(&e.ns) {
		return false
	}
	if p.saSelector != nil && !p.saSelector.Matches(&e.saView) {
		return false
	}
	return p.selector == nil || p.selector.Matches(e)
}

// sourceMatches reports whether the pod is a source the rule accepts.
func (r *calicoRule) sourceMatches(e *calicoEndpoint) bool {
	if r.srcSelector != nil && !r.srcSelector.Matches(e) {
		return false
	}
	if r.srcNotSelector != nil && r.srcNotSelector.Matches(e) {
		return false
	}
	if r.srcNamespaceSelector != nil && !r.srcNamespaceSelector.Matches(&e.ns) {
		return false
	}
	if len(r.srcSANames) > 0 || r.srcSASelector != nil {
		named := len(r.srcSANames) == 0
		for _, n := range r.srcSANames {
			if n == e.sa {
				named = true
			}
		}
		if !named || (r.srcSASelector != nil && !r.srcSASelector.Matches(&e.saView)) {
			return false
		}
	}
	return true
}

// match reports whether the rule matches traffic from the pod to the endpoint; when it does
// not, why says which condition failed.
func (r *calicoRule) match(e *calicoEndpoint, ep *endpoint.Endpoint, explain bool) (ok bool, peer string, broad bool, why string) {
	addr := ep.Address
	// miss formats why a rule does not match only when a trace asks for it: evaluation without
	// a trace must not allocate per rule.
	miss := func(why func() string) (bool, string, bool, string) {
		if !explain {
			return false, "", false, ""
		}
		return false, "", false, why()
	}
	switch {
	case r.ipVersion == 4 && !addr.Is4(), r.ipVersion == 6 && !addr.Is6():
		return miss(func() string { return fmt.Sprintf("ipVersion %d", r.ipVersion) })
	case r.protocol != nil && !r.protocol.matches(ep.Protocol):
		return miss(func() string { return fmt.Sprintf("protocol %s is not %s", r.protocol, ep.Protocol) })
	case r.notProto != nil && r.notProto.matches(ep.Protocol):
		return miss(func() string { return fmt.Sprintf("notProtocol %s excludes %s", r.notProto, ep.Protocol) })
	case r.icmp:
		return miss(func() string { return "an icmp match matches ICMP packets only" })
	case !r.sourceMatches(e):
		return miss(func() string { return "the pod is not in the rule's source" })
	}
	fr := &r.family[1]
	if addr.Is4() {
		fr = &r.family[0]
	}
	nets, notNets := fr.nets, fr.notNets
	if fr.dropped {
		return miss(func() string {
			list, name := r.notNets, "notNets"
			if len(r.nets) > 0 && len(nets) == 0 {
				list, name = r.nets, "nets"
			}
			return fmt.Sprintf("%s %s hold no IPv%d net: the rule does not apply to IPv%d", name, prefixList(list), ipv(addr), ipv(addr))
		})
	}
	// parts describe what matched; they are joined into the reason's peer only on a match.
	var parts [7]string
	n := 0
	if r.protocol != nil {
		parts[n] = r.protocolText
		n++
	}
	if len(nets) > 0 {
		in := false
		for _, net := range nets {
			if net.Contains(addr) {
				in, broad = true, net.Bits() == 0
				parts[n] = "nets " + net.String()
				n++
				break
			}
		}
		if !in {
			return miss(func() string { return fmt.Sprintf("%s is not in nets %s", addr, prefixList(nets)) })
		}
	}
	for _, net := range notNets {
		if net.Contains(addr) {
			return miss(func() string { return fmt.Sprintf("notNets %s excludes %s", net, addr) })
		}
	}
	if len(notNets) > 0 {
		parts[n] = fr.notNetsText
		n++
	}
	if r.dst.services != "" {
		return miss(func() string {
			return fmt.Sprintf("destination services %s selects the Service's endpoints, never an address outside the cluster", r.dst.services)
		})
	}
	var selected *calicoNetworkSet
	if r.dst.selects {
		if selected = r.dst.selected.containing(addr); selected == nil {
			return miss(func() string {
				return fmt.Sprintf("destination %s selects %s, and %s is in none of them", r.dst.text, r.dst.selected.describe(), addr)
			})
		}
		if n, _ := selected.holding(addr); n.Bits() == 0 {
			broad = true
		}
	}
	if set := r.dst.excluded.containing(addr); set != nil {
		return miss(func() string {
			return fmt.Sprintf("destination notSelector %s selects %s, which holds %s", r.dst.notSelector, set.ref(), addr)
		})
	}
	if len(r.ports) > 0 {
		in := false
		for _, p := range r.ports {
			if p.matches(ep.Port) {
				in = true
				parts[n] = "port " + p.String()
				n++
				break
			}
		}
		if !in {
			return miss(func() string {
				return fmt.Sprintf("ports %s do not include %d (named ports never match an address outside the cluster)", portList(r.ports), ep.Port)
			})
		}
	}
	for _, p := range r.notPorts {
		if p.matches(ep.Port) {
			return miss(func() string { return fmt.Sprintf("notPorts %s excludes %d", p, ep.Port) })
		}
	}
	if selected != nil {
		parts[n] = r.dst.text + " (" + selected.ref() + ")"
		n++
	}
	if r.dst.notSelector != "" {
		parts[n] = "notSelector " + r.dst.notSelector
		n++
	}
	if len(nets) == 0 && len(notNets) == 0 && selected == nil {
		broad = true
		parts[n] = "any destination"
		n++
	}
	return true, strings.Join(parts[:n], ", "), broad, ""
}

func ipv(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func portList(ps []calicoPort) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// compileCalico validates and compiles the Calico policies and tiers of an inventory.
func compileCalico(inv *inventory.Inventory, m *Model) {
	m.calicoTiers = map[string]*calicoTier{
		calicov3.DefaultTier:   {name: calicov3.DefaultTier, order: calicoOrderDefault, defaultAction: ActionDeny},
		calicoTierKubeAdmin:    {name: calicoTierKubeAdmin, order: calicoOrderKubeAdmin, defaultAction: actionPass},
		calicoTierKubeBaseline: {name: calicoTierKubeBaseline, order: calicoOrderKubeBaseline, defaultAction: actionPass},
	}
	for _, t := range inv.CalicoTiers {
		var errs fieldErrors
		ct := &calicoTier{name: t.Tier.Name, order: math.Inf(1), defaultAction: ActionDeny}
		if o := t.Tier.Spec.Order; o != nil {
			if math.IsNaN(*o) || math.IsInf(*o, 0) {
				errs.add("spec.order", "order must be a finite number")
			}
			ct.order = *o
		}
		switch a := t.Tier.Spec.DefaultAction; a {
		case "", "Deny":
		case "Pass":
			ct.defaultAction = actionPass
		default:
			errs.add("spec.defaultAction", "unknown default action %q (want Deny or Pass)", a)
		}
		switch ct.name {
		case calicov3.DefaultTier:
			if ct.defaultAction != ActionDeny {
				errs.add("spec.defaultAction", "the 'default' tier must have default action 'Deny'")
			}
		case calicoTierKubeAdmin, calicoTierKubeBaseline:
			if ct.defaultAction != actionPass {
				errs.add("spec.defaultAction", "the '%s' tier must have default action 'Pass'", ct.name)
			}
		}
		if len(errs) > 0 {
			m.reject(inventory.ObjectRef{Kind: "Tier", Name: t.Tier.Name, Source: t.Source}, errs)
			continue
		}
		m.calicoTiers[ct.name] = ct
	}
	add := func(p *calicoPolicy, ref inventory.ObjectRef, errs, unsupported fieldErrors) {
		if len(errs) > 0 {
			m.reject(ref, errs)
			return
		}
		if len(unsupported) > 0 {
			m.unsupported(ref, unsupported)
			return
		}
		if p == nil {
			return
		}
		if _, ok := m.calicoTiers[p.tier]; !ok {
			m.reject(ref, fieldErrors{{"spec.tier", fmt.Sprintf("tier %q is not in the input: its order is unknown (Calico refuses policies in a tier that does not exist)", p.tier)}})
			return
		}
		m.calicoPolicies = append(m.calicoPolicies, p)
	}
	sets := compileCalicoNetworkSets(inv, m)
	for _, g := range inv.CalicoGlobalNetworkPolicies {
		var errs, unsupported fieldErrors
		spec := &g.Policy.Spec
		ref := inventory.ObjectRef{Kind: "GlobalNetworkPolicy", Name: g.Policy.Name, Source: g.Source}
		switch {
		case spec.PreDNAT && spec.DoNotTrack:
			errs.add("spec", "preDNAT and doNotTrack cannot both be true")
		case spec.PreDNAT && len(spec.Egress) > 0:
			errs.add("spec.egress", "preDNAT policy cannot have any egress rules")
		case (spec.PreDNAT || spec.DoNotTrack) && !spec.ApplyOnForward:
			errs.add("spec.applyOnForward", "applyOnForward must be true if either preDNAT or doNotTrack is true")
		}
		if spec.PreDNAT {
			for i, t := range spec.Types {
				if t == "Egress" {
					errs.add(fmt.Sprintf("spec.types[%d]", i), "preDNAT policy cannot have 'Egress' type")
				}
			}
		}
		p := &calicoPolicy{kind: "GlobalNetworkPolicy", name: g.Policy.Name, sortName: g.Policy.Name, applyOnForward: spec.ApplyOnForward}
		p.namespaceSelector = parseCalicoSelector(spec.NamespaceSelector, "spec.namespaceSelector", &errs)
		p = compileCalicoPolicy(p, calicoSpec{tier: spec.Tier, selector: spec.Selector, saSelector: spec.ServiceAccountSelector,
			order: spec.Order, types: spec.Types, egress: spec.Egress, sets: sets}, &errs, &unsupported)
		if len(errs) == 0 && (spec.DoNotTrack || spec.PreDNAT) {
			what := "doNotTrack"
			if spec.PreDNAT {
				what = "preDNAT"
			}
			m.HostEndpointPolicies = append(m.HostEndpointPolicies, HostEndpointPolicy{Object: ref,
				Reason: what + " policies apply to host endpoints only: they do not govern pod egress and are not evaluated for pods"})
			continue
		}
		if p != nil && len(errs) == 0 && spec.ApplyOnForward {
			m.HostEndpointPolicies = append(m.HostEndpointPolicies, HostEndpointPolicy{Object: ref,
				Reason: "applyOnForward: true also applies this policy to pod traffic forwarded out through host endpoints; imdsguard evaluates it for pods as a workload policy and does not model host endpoints"})
		}
		add(p, ref, errs, unsupported)
	}
	for _, n := range inv.CalicoNetworkPolicies {
		var errs, unsupported fieldErrors
		spec := &n.Policy.Spec
		ref := inventory.ObjectRef{Kind: inventory.CalicoNetworkPolicyKind, Namespace: n.Policy.Namespace, Name: n.Policy.Name, Source: n.Source}
		p := &calicoPolicy{kind: inventory.CalicoNetworkPolicyKind, name: n.Policy.Namespace + "/" + n.Policy.Name,
			namespace: n.Policy.Namespace, sortName: n.Policy.Namespace + "/" + n.Policy.Name}
		p = compileCalicoPolicy(p, calicoSpec{tier: spec.Tier, selector: spec.Selector, saSelector: spec.ServiceAccountSelector,
			order: spec.Order, types: spec.Types, egress: spec.Egress, sets: sets}, &errs, &unsupported)
		add(p, ref, errs, unsupported)
	}
}

// HostEndpointPolicy is a Calico policy that governs host endpoints rather than (or as well as)
// pod egress: imdsguard says so instead of guessing what it does to pods.
type HostEndpointPolicy struct {
	Object inventory.ObjectRef
	Reason string
}

// String renders the note for a report.
func (h HostEndpointPolicy) String() string {
	s := h.Object.String()
	if src := h.Object.Source.String(); src != "" {
		s += " (" + src + ")"
	}
	return s + ": " + h.Reason
}
