package policy_test

// A reference evaluator for clusters with Cilium policies, written from Cilium's documentation
// independently of the product's evaluator, in the naive style of reference_test.go: every
// question is answered by walking the inventory objects again. It covers what the Cilium
// generator (cilium_differential_test.go) produces, all of which Cilium's agent accepts.

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/inventory"
	"github.com/imdsguard/imdsguard/internal/inventory/ciliumv2"
	"github.com/imdsguard/imdsguard/internal/policy"
)

// refCiliumAnswer is the reference's verdict: how it was reached and every rule that could be
// named as its reason ("policy egress[0]").
type refCiliumAnswer struct {
	Allowed bool
	// How: "hostNetwork", "no policy", "not isolated", "denied by rule", "allowed by rule",
	// "default deny".
	How string
	// Rules lists the matching deny rules (denied by rule), or allow rules (allowed by rule), as
	// "policy rulename"; NetworkPolicy rules as "namespace/name rule N".
	Rules []string
}

// refCiliumLabels: "Cilium gives a pod's identity its Kubernetes labels with the k8s source,
// io.kubernetes.pod.namespace, io.cilium.k8s.policy.serviceaccount and
// io.cilium.k8s.namespace.labels.<key> for its namespace's labels." (the generator uses no label
// that the default label filter drops)
func refCiliumLabels(pod policy.Subject, nsLabels map[string]string) map[string]string {
	out := map[string]string{"k8s:io.kubernetes.pod.namespace": pod.Namespace, "k8s:io.cilium.k8s.policy.cluster": "default"}
	sa := pod.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	out["k8s:io.cilium.k8s.policy.serviceaccount"] = sa
	for k, v := range pod.Labels {
		out["k8s:"+k] = v
	}
	for k, v := range nsLabels {
		out["k8s:io.cilium.k8s.namespace.labels."+k] = v
	}
	return out
}

// refCiliumSelects: "a key without source, or with source any, matches any source".
func refCiliumSelects(sel *ciliumv2.EndpointSelector, labels map[string]string) bool {
	get := func(key string) (string, bool) {
		key = strings.TrimPrefix(key, "any:")
		if !strings.Contains(key, ":") {
			key = "k8s:" + key
		}
		v, ok := labels[key]
		return v, ok
	}
	for k, want := range sel.MatchLabels {
		if v, ok := get(k); !ok || v != want {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		v, ok := get(e.Key)
		switch e.Operator {
		case "In":
			if !ok || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		}
	}
	return true
}

// refCiliumPortsMatch: "no toPorts: every port; protocol ANY (or omitted) is TCP, UDP and SCTP;
// port 0 is every port; endPort makes a range; a named port matches only pods' ports".
func refCiliumPortsMatch(rules []ciliumv2.PortRule, ep endpoint.Endpoint) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		for _, p := range r.Ports {
			if p.Protocol != "" && p.Protocol != "ANY" && p.Protocol != string(ep.Protocol) {
				continue
			}
			n, err := strconv.Atoi(p.Port)
			if err != nil {
				continue // named
			}
			hi := n
			if p.EndPort > 0 {
				hi = int(p.EndPort)
			}
			if n == 0 || (int(ep.Port) >= n && int(ep.Port) <= hi) {
				return true
			}
		}
	}
	return false
}

// refCiliumPeerMatch: "world and all contain every address outside the cluster, world-ipv4 and
// world-ipv6 those of one family; toCIDR and toCIDRSet (less its except blocks) contain their
// addresses; toFQDNs the addresses of the names it matches; toEndpoints selects pods of the
// cluster, except that a selector naming a reserved: label is left unrestricted and so selects
// the world identity (reserved:world) when its requirements allow it (getEndpointSelector in
// Cilium's pkg/k8s/apis/cilium.io/utils). Without any peer, a rule with toPorts applies to
// every destination; without either, to none."
func refCiliumPeerMatch(r *ciliumv2.EgressRule, ep endpoint.Endpoint) bool {
	a := ep.Address
	if len(r.ToEndpoints)+len(r.ToCIDR)+len(r.ToCIDRSet)+len(r.ToEntities)+len(r.ToFQDNs) == 0 {
		return len(r.ToPorts) > 0
	}
	for i := range r.ToEndpoints {
		sel := &r.ToEndpoints[i]
		reserved := false
		for k := range sel.MatchLabels {
			reserved = reserved || strings.HasPrefix(k, "reserved:")
		}
		for _, e := range sel.MatchExpressions {
			reserved = reserved || strings.HasPrefix(e.Key, "reserved:")
		}
		if reserved && refCiliumSelects(sel, map[string]string{"reserved:world": ""}) {
			return true
		}
	}
	for _, e := range r.ToEntities {
		if e == "world" || e == "all" || (e == "world-ipv4" && a.Is4()) || (e == "world-ipv6" && a.Is6()) {
			return true
		}
	}
	for _, c := range r.ToCIDR {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			p = netip.PrefixFrom(netip.MustParseAddr(c), 128)
		}
		if p.Masked().Contains(a) {
			return true
		}
	}
	for _, s := range r.ToCIDRSet {
		if !netip.MustParsePrefix(s.CIDR).Masked().Contains(a) {
			continue
		}
		excluded := false
		for _, e := range s.Except {
			if netip.MustParsePrefix(e).Masked().Contains(a) {
				excluded = true
			}
		}
		if !excluded {
			return true
		}
	}
	for _, f := range r.ToFQDNs {
		for _, h := range ep.Hostnames {
			if refFQDNMatch(f, h) {
				return true
			}
		}
	}
	return false
}

// refFQDNMatch: "matchName is a name, case-insensitively; in matchPattern, '*' alone matches
// every name and '*' elsewhere any characters but a dot".
func refFQDNMatch(f ciliumv2.FQDNSelector, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if f.MatchName != "" {
		return strings.ToLower(strings.TrimSuffix(f.MatchName, ".")) == host
	}
	pattern := strings.ToLower(strings.TrimSuffix(f.MatchPattern, "."))
	if pattern == "*" {
		return true
	}
	pl, hl := strings.Split(pattern, "."), strings.Split(host, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		prefix, suffix, wild := strings.Cut(pl[i], "*")
		if !wild {
			if pl[i] != hl[i] {
				return false
			}
			continue
		}
		if len(hl[i]) < len(prefix)+len(suffix) || !strings.HasPrefix(hl[i], prefix) || !strings.HasSuffix(hl[i], suffix) {
			return false
		}
	}
	return true
}

// refCiliumEvaluate decides as Cilium documents it: "Deny policies take precedence over allow
// policies, whichever policy they come from. If any rule selects an endpoint and has an egress
// section (and does not set enableDefaultDeny.egress to false), the endpoint goes into default
// deny at egress, and then only what some rule allows passes. Kubernetes NetworkPolicies and
// Cilium policies apply at the same time." AdminNetworkPolicies are not implemented by Cilium.
func refCiliumEvaluate(inv *inventory.Inventory, pod policy.Subject, ep endpoint.Endpoint) refCiliumAnswer {
	if pod.HostNetwork {
		return refCiliumAnswer{Allowed: true, How: "hostNetwork"}
	}
	labels := refCiliumLabels(pod, refNamespaceLabels(inv, pod.Namespace))
	type selected struct {
		name string
		rule ciliumv2.Rule
		base string
	}
	var rules []selected
	for _, c := range inv.CiliumClusterwideNetworkPolicies {
		if c.Policy.Spec != nil {
			rules = append(rules, selected{c.Policy.Name, *c.Policy.Spec, ""})
		}
		for i, s := range c.Policy.Specs {
			rules = append(rules, selected{c.Policy.Name, s, "specs[" + strconv.Itoa(i) + "]."})
		}
	}
	for _, c := range inv.CiliumNetworkPolicies {
		if c.Policy.Namespace != pod.Namespace {
			continue
		}
		if c.Policy.Spec != nil {
			rules = append(rules, selected{c.Policy.Namespace + "/" + c.Policy.Name, *c.Policy.Spec, ""})
		}
		for i, s := range c.Policy.Specs {
			rules = append(rules, selected{c.Policy.Namespace + "/" + c.Policy.Name, s, "specs[" + strconv.Itoa(i) + "]."})
		}
	}
	isolated, selectedAny := false, false
	var denies, allows []string
	for _, s := range rules {
		if s.rule.EndpointSelector == nil || !refCiliumSelects(s.rule.EndpointSelector, labels) {
			continue
		}
		if len(s.rule.Egress)+len(s.rule.EgressDeny) == 0 {
			continue
		}
		selectedAny = true
		if dd := s.rule.EnableDefaultDeny; dd == nil || dd.Egress == nil || *dd.Egress {
			isolated = true
		}
		for i, d := range s.rule.EgressDeny {
			r := ciliumv2.EgressRule{ToEndpoints: d.ToEndpoints, ToCIDR: d.ToCIDR, ToCIDRSet: d.ToCIDRSet, ToEntities: d.ToEntities, ToPorts: d.ToPorts}
			if refCiliumPortsMatch(d.ToPorts, ep) && refCiliumPeerMatch(&r, ep) {
				denies = append(denies, s.name+" "+s.base+"egressDeny["+strconv.Itoa(i)+"]")
			}
		}
		for i := range s.rule.Egress {
			r := &s.rule.Egress[i]
			if refCiliumPortsMatch(r.ToPorts, ep) && refCiliumPeerMatch(r, ep) {
				allows = append(allows, s.name+" "+s.base+"egress["+strconv.Itoa(i)+"]")
			}
		}
	}
	for _, np := range refEgressPolicies(inv, pod) {
		isolated, selectedAny = true, true
		for i, r := range np.Spec.Egress {
			if refNetpolPortsMatch(r.Ports, ep) && refNetpolPeersMatch(r.To, ep) {
				allows = append(allows, np.Namespace+"/"+np.Name+" rule "+strconv.Itoa(i))
			}
		}
	}
	switch {
	case len(denies) > 0:
		return refCiliumAnswer{How: "denied by rule", Rules: denies}
	case !selectedAny:
		return refCiliumAnswer{Allowed: true, How: "no policy"}
	case !isolated:
		return refCiliumAnswer{Allowed: true, How: "not isolated"}
	case len(allows) > 0:
		return refCiliumAnswer{Allowed: true, How: "allowed by rule", Rules: allows}
	}
	return refCiliumAnswer{How: "default deny"}
}
