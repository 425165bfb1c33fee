// Package firewall is imdsguard's node firewall: a pure builder that turns a Config (the
// credential-bearing endpoints to deny, the mode, the pods cgroup, the exemptions) into the
// desired nftables ruleset, an `nft -f` script or iptables-restore text, and thin appliers that
// put that ruleset into the kernel in one atomic transaction and check that it is still there.
//
// The builder is shared by the `agent` command, which applies it, and by `generate`, which
// writes it out for nodes that load it at boot. Everything in config.go, ruleset.go and
// iptables.go is a pure function of its input; nftables.go and iptables_apply.go run `nft -f`
// and `iptables-restore`, and netlink.go reads the table and follows its changes over nf_tables'
// netlink interface.
//
// Why the rules look the way they do (docs/design/firewall.md):
//   - forward hook, no interface names: every CNI (eni*, vlan*, cali*, lxc*, veth*, cni0)
//     forwards pod traffic through the host, so the forward hook sees all of it;
//   - a drop in an nftables base chain is final: no accept in another chain or table (Calico's
//     FORWARD chains, kube-proxy, iptables-nft) can undo it, whatever the priorities;
//   - output hook with `socket cgroupv2`: hostNetwork pods share the node's network namespace,
//     so only the cgroup of the sending process tells them from the node's own daemons;
//   - only exact address, protocol and port: Azure DNS on 168.63.129.16:53 and the EKS Pod
//     Identity agent keep working.
package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// TableName is the nftables table imdsguard owns, in the inet family.
const TableName = "imdsguard"

// Mode says what happens to a packet that matches a credential-bearing endpoint.
type Mode string

const (
	// Enforce drops the packet and counts it.
	Enforce Mode = "enforce"
	// Observe counts the packet (and its source) and lets it pass: for a safe roll-out.
	Observe Mode = "observe"
	// Filter redirects (DNAT) TCP connections to the filterable instance metadata services to
	// the agent's filtering proxy and drops every other credential-bearing endpoint as Enforce
	// does (redirect.go).
	Filter Mode = "filter"
)

// ParseMode parses "enforce", "observe" or "filter".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case Enforce, Observe, Filter:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want enforce, observe or filter)", s)
}

// Family is an IP address family, for the per-family iptables fallback.
type Family string

// The address families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// PodCgroup is a hostNetwork pod the administrator allows to reach the endpoints: its UID and
// its cgroup v2 path relative to the cgroup2 root (e.g.
// "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_5678.slice").
type PodCgroup struct {
	UID  string
	Path string
}

// Config is everything the ruleset depends on. It is a plain value: detecting the pods cgroup,
// resolving pods to addresses and cgroups is the agent's job.
type Config struct {
	// Endpoints are the catalogue's endpoints for this node. Those with Role Credentials are
	// denied; those with Role KeepReachable are never matched (and a credential endpoint on a
	// keep-reachable destination is an error).
	Endpoints []endpoint.Endpoint
	// Mode is Enforce, Observe or Filter; empty means Enforce.
	Mode Mode
	// ProxyIPv4 and ProxyIPv6 are where Filter mode sends the redirected connections: the
	// filtering proxy's listen addresses on this node (DefaultProxyIPv4, DefaultProxyIPv6).
	// Required in Filter mode, ignored otherwise.
	ProxyIPv4, ProxyIPv6 netip.AddrPort
	// PodsCgroup is the kubelet's pods cgroup relative to the cgroup2 root, "kubepods.slice"
	// (systemd driver) or "kubepods" (cgroupfs driver). Processes below it — hostNetwork pods —
	// are denied on the output hook. Empty leaves the output chain empty (no kubelet yet, or
	// cgroup v1). nft resolves the path under /sys/fs/cgroup when the script is loaded, so the
	// cgroup must exist then.
	PodsCgroup string
	// AllowedHostNetworkPods are hostNetwork pods (below PodsCgroup) that may reach the
	// endpoints, e.g. the AWS VPC CNI's aws-node.
	AllowedHostNetworkPods []PodCgroup
	// ExemptPodIPs are pod addresses, IPv4 or IPv6, the administrator allows through.
	ExemptPodIPs []netip.Addr
}

// mode returns the effective mode.
func (c Config) mode() Mode {
	if c.Mode == "" {
		return Enforce
	}
	return c.Mode
}

// Denied returns the endpoints the ruleset denies: those with Role Credentials, in order, and
// in Filter mode the extra redirected destinations (FilterExtras) after them. In Filter mode
// the redirected ones among them are dropped only when a packet escapes the redirect (a
// connection established before the switch); Dropped lists the others.
func (c Config) Denied() []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, ep := range c.Endpoints {
		if ep.Role == endpoint.Credentials {
			out = append(out, ep)
		}
	}
	if c.mode() == Filter {
		out = append(out, filterExtras(out)...)
	}
	return out
}

// Dropped returns the denied endpoints that are not redirected: all of Denied except in
// Filter mode.
func (c Config) Dropped() []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, ep := range c.Denied() {
		if c.mode() != Filter || !Filterable(ep) {
			out = append(out, ep)
		}
	}
	return out
}

// Redirected returns the endpoints Filter mode sends to the proxy; nil in other modes.
func (c Config) Redirected() []endpoint.Endpoint {
	if c.mode() != Filter {
		return nil
	}
	var out []endpoint.Endpoint
	for _, ep := range c.Denied() {
		if Filterable(ep) {
			out = append(out, ep)
		}
	}
	return out
}

// keepReachable lists every keep-reachable destination the catalogue knows, whatever the
// cloud, so no configuration can block the EKS Pod Identity agent or Azure DNS.
func keepReachable(cfg Config) []endpoint.Endpoint {
	all := endpoint.Select([]endpoint.Cloud{endpoint.All, endpoint.ECS})
	all = append(all, cfg.Endpoints...)
	var out []endpoint.Endpoint
	for _, ep := range all {
		if ep.Role == endpoint.KeepReachable {
			out = append(out, ep)
		}
	}
	return out
}

// Validate reports the first reason the configuration cannot be turned into rules.
func (c Config) Validate() error {
	switch c.Mode {
	case "", Enforce, Observe:
	case Filter:
		if err := validProxy(c.ProxyIPv4, true); err != nil {
			return fmt.Errorf("filter mode: IPv4 proxy address: %w", err)
		}
		if err := validProxy(c.ProxyIPv6, false); err != nil {
			return fmt.Errorf("filter mode: IPv6 proxy address: %w", err)
		}
	default:
		return fmt.Errorf("mode %q: want enforce, observe or filter", c.Mode)
	}
	keep := keepReachable(c)
	seen := map[string]bool{}
	for _, ep := range c.Endpoints {
		if !ep.Address.IsValid() || ep.Address.Zone() != "" {
			return fmt.Errorf("endpoint %s: invalid address", ep.Name)
		}
		if ep.Port < 1 || ep.Port > 65535 {
			return fmt.Errorf("endpoint %s: port %d out of range", ep.Name, ep.Port)
		}
		if _, err := l4(ep); err != nil {
			return err
		}
		if !validName(ep.Name) {
			return fmt.Errorf("endpoint %q: name must be letters, digits, '-', '_' or '.'", ep.Name)
		}
		if ep.Role != endpoint.Credentials {
			continue
		}
		if seen[ep.Name] {
			return fmt.Errorf("endpoint %s: name used twice", ep.Name)
		}
		seen[ep.Name] = true
		if i := slices.IndexFunc(keep, func(k endpoint.Endpoint) bool { return k.Destination() == ep.Destination() }); i >= 0 {
			return fmt.Errorf("endpoint %s: %s is %s, which must stay reachable", ep.Name, ep.Destination(), keep[i].Name)
		}
	}
	if c.PodsCgroup != "" {
		if err := validCgroup(c.PodsCgroup); err != nil {
			return fmt.Errorf("pods cgroup: %w", err)
		}
	}
	for _, p := range c.AllowedHostNetworkPods {
		if c.PodsCgroup == "" {
			return errors.New("allowed hostNetwork pods need a pods cgroup")
		}
		if err := validCgroup(p.Path); err != nil {
			return fmt.Errorf("hostNetwork pod %s: %w", p.UID, err)
		}
		if !strings.HasPrefix(cleanCgroup(p.Path)+"/", cleanCgroup(c.PodsCgroup)+"/") || cleanCgroup(p.Path) == cleanCgroup(c.PodsCgroup) {
			return fmt.Errorf("hostNetwork pod %s: cgroup %q is not below the pods cgroup %q", p.UID, p.Path, c.PodsCgroup)
		}
	}
	for _, ip := range c.ExemptPodIPs {
		if !ip.IsValid() || ip.Zone() != "" {
			return fmt.Errorf("exempt pod address %q is not a plain IP address", ip)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

// validCgroup accepts a relative cgroup path of plain components.
func validCgroup(p string) error {
	p = cleanCgroup(p)
	if p == "" {
		return errors.New("empty cgroup path")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\"\\ \t\n") {
			return fmt.Errorf("cgroup path %q: bad component %q", p, part)
		}
	}
	return nil
}

// cleanCgroup drops leading and trailing slashes: nft paths are relative to /sys/fs/cgroup.
func cleanCgroup(p string) string { return strings.Trim(p, "/") }

// cgroupLevel is the depth of a cgroup below the root, which `socket cgroupv2 level` wants:
// "kubepods.slice" is level 1.
func cgroupLevel(p string) int { return strings.Count(cleanCgroup(p), "/") + 1 }

// l4 returns the nft protocol keyword for an endpoint.
func l4(ep endpoint.Endpoint) (string, error) {
	switch strings.ToUpper(string(ep.Protocol)) {
	case "TCP":
		return "tcp", nil
	case "UDP":
		return "udp", nil
	case "SCTP":
		return "sctp", nil
	}
	return "", fmt.Errorf("endpoint %s: unknown protocol %q", ep.Name, ep.Protocol)
}

// exempt splits the exempt addresses by family, sorted and without duplicates.
func (c Config) exempt() (v4, v6 []netip.Addr) {
	for _, ip := range c.ExemptPodIPs {
		ip = ip.Unmap()
		if ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	sortAddrs := func(a []netip.Addr) []netip.Addr {
		slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) })
		return slices.Compact(a)
	}
	return sortAddrs(v4), sortAddrs(v6)
}
