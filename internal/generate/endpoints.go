package generate

import (
	"net/netip"
	"slices"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	corev1 "k8s.io/api/core/v1"
)

// credentials returns the endpoints every layer denies: those with Role Credentials, in order.
func credentials(eps []endpoint.Endpoint) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, ep := range eps {
		if ep.Role == endpoint.Credentials {
			out = append(out, ep)
		}
	}
	return out
}

// keepReachable returns the endpoints no layer may deny.
func keepReachable(eps []endpoint.Endpoint) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, ep := range eps {
		if ep.Role == endpoint.KeepReachable {
			out = append(out, ep)
		}
	}
	return out
}

// credentialPrefixes returns the distinct host prefixes (/32, /128) of the credential endpoints
// of one address family, in order.
func credentialPrefixes(eps []endpoint.Endpoint, ipv6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, ep := range credentials(eps) {
		if ep.Address.Is6() == ipv6 && !slices.Contains(out, ep.Prefix()) {
			out = append(out, ep.Prefix())
		}
	}
	return out
}

// portGroup is the credential addresses served on one protocol and port: one deny rule in the
// layers whose rules pair destinations with ports.
type portGroup struct {
	Protocol corev1.Protocol
	Port     int32
	Prefixes []netip.Prefix
}

// family returns the group's prefixes of one address family.
func (g portGroup) family(ipv6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range g.Prefixes {
		if p.Addr().Is6() == ipv6 {
			out = append(out, p)
		}
	}
	return out
}

// groupByPort groups the credential endpoints by protocol and port, groups and addresses in
// the order they first appear. Only the exact port is denied, so the keep-reachable services
// sharing an address (Azure DNS on the WireServer address) stay reachable.
func groupByPort(eps []endpoint.Endpoint) []portGroup {
	var out []portGroup
	for _, ep := range credentials(eps) {
		i := slices.IndexFunc(out, func(g portGroup) bool { return g.Protocol == ep.Protocol && g.Port == ep.Port })
		if i < 0 {
			out = append(out, portGroup{Protocol: ep.Protocol, Port: ep.Port})
			i = len(out) - 1
		}
		if !slices.Contains(out[i].Prefixes, ep.Prefix()) {
			out[i].Prefixes = append(out[i].Prefixes, ep.Prefix())
		}
	}
	return out
}

// prefixStrings renders prefixes as CIDR strings.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// endpointNames lists the names of endpoints, for comments.
func endpointNames(eps []endpoint.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.String()
	}
	return out
}
