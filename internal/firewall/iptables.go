package firewall

import (
	"errors"
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
)

// The iptables fallback's own chains, and the built-in chains that jump to them.
const (
	IPTablesForwardChain     = "IMDSGUARD-FORWARD"
	IPTablesOutputChain      = "IMDSGUARD-OUTPUT"
	IPTablesPostroutingChain = "IMDSGUARD-POSTROUTING"
)

// ErrFilterNeedsNFTables is the iptables fallback's answer to Filter mode. The fallback does
// not redirect: its DNAT would live in the shared nat table, where kube-proxy and CNIs insert
// their own jumps above ours and an ACCEPT there ends the nat chain before our redirect; its
// IPv4 and IPv6 halves load in two transactions, so a switch would have an instant with one
// family redirected and the other not; and the fallback exists for kernels without nf_tables,
// which are older than the inet family's nat chains (Linux 5.2) that the redirect relies on.
var ErrFilterNeedsNFTables = errors.New("filter mode needs the nftables backend: the iptables fallback cannot redirect to the proxy fail-closed (use --backend nftables, or enforce mode)")

// Jump is a rule in a built-in chain that sends packets to one of imdsguard's chains; the
// fallback keeps each one at position 1.
type Jump struct {
	Table, Chain, Target string
}

// Jumps lists the fallback's jump rules.
var Jumps = []Jump{
	{Table: "filter", Chain: "FORWARD", Target: IPTablesForwardChain},
	{Table: "filter", Chain: "OUTPUT", Target: IPTablesOutputChain},
	{Table: "mangle", Chain: "POSTROUTING", Target: IPTablesPostroutingChain},
}

// Rule returns the rule's iptables-save specification, e.g. "FORWARD -j IMDSGUARD-FORWARD".
func (j Jump) Rule() string { return j.Chain + " -j " + j.Target }

// IPTablesRestore renders cfg for one address family as iptables-restore input (for
// `iptables-restore --noflush`, or ip6tables-restore for IPv6): imdsguard's own chains, flushed
// and refilled, and a jump to each inserted at the top of FORWARD, OUTPUT and mangle
// POSTROUTING. It is the fallback for nodes without nf_tables, and weaker than the nftables
// ruleset: an ACCEPT inserted above the jump (as Calico does) opens the path until the jump is
// re-asserted, which the agent does on every sync.
//
// Loading the text twice leaves two jumps; the agent's applier deletes existing jumps first.
func IPTablesRestore(cfg Config, family Family) (string, error) {
	return iptablesRestore(cfg, family, nil)
}

// iptablesRestore renders the restore text, first deleting stale jumps: stale[j] is how many
// copies of jump j are in place now.
func iptablesRestore(cfg Config, family Family, stale map[Jump]int) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", fmt.Errorf("firewall config: %w", err)
	}
	if cfg.mode() == Filter {
		return "", ErrFilterNeedsNFTables
	}
	if family != IPv4 && family != IPv6 {
		return "", fmt.Errorf("address family %q: want %s or %s", family, IPv4, IPv6)
	}
	mode := cfg.mode()
	var denied []endpoint.Endpoint
	for _, ep := range cfg.Denied() {
		if ep.Address.Is4() == (family == IPv4) {
			denied = append(denied, ep)
		}
	}
	v4, v6 := cfg.exempt()
	exempt, hostBits := v4, "/32"
	if family == IPv6 {
		exempt, hostBits = v6, "/128"
	}
	target := " -j DROP"
	if mode == Observe {
		target = "" // a rule without a target only counts
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# imdsguard node firewall, iptables fallback (%s, mode %s)\n", family, mode)
	jumps := func(table string) {
		for _, j := range Jumps {
			if j.Table != table {
				continue
			}
			for range stale[j] {
				fmt.Fprintf(&b, "-D %s\n", j.Rule())
			}
			fmt.Fprintf(&b, "-I %s 1 -j %s\n", j.Chain, j.Target)
		}
	}

	b.WriteString("*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", IPTablesForwardChain, IPTablesOutputChain)
	for _, ip := range exempt {
		fmt.Fprintf(&b, "-A %s -s %s%s -m comment --comment \"exempt pod\" -j RETURN\n", IPTablesForwardChain, ip, hostBits)
	}
	for _, ep := range denied {
		fmt.Fprintf(&b, "-A %s %s -m comment --comment \"%s: %s\"%s\n", IPTablesForwardChain, iptablesDestination(ep), ep.Name, actionComment(mode, "pods"), target)
	}
	if cfg.PodsCgroup != "" {
		for _, p := range cfg.AllowedHostNetworkPods {
			fmt.Fprintf(&b, "-A %s -m cgroup --path %s -m comment --comment \"allowed hostNetwork pod %s\" -j RETURN\n", IPTablesOutputChain, cleanCgroup(p.Path), p.UID)
		}
		for _, ep := range denied {
			fmt.Fprintf(&b, "-A %s %s -m cgroup --path %s -m comment --comment \"%s: %s\"%s\n", IPTablesOutputChain, iptablesDestination(ep), cleanCgroup(cfg.PodsCgroup), ep.Name, actionComment(mode, "hostNetwork pods"), target)
		}
	}
	jumps("filter")
	b.WriteString("COMMIT\n")

	b.WriteString("*mangle\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n", IPTablesPostroutingChain)
	for _, ip := range exempt {
		fmt.Fprintf(&b, "-A %s -s %s%s -m comment --comment \"exempt pod\" -j RETURN\n", IPTablesPostroutingChain, ip, hostBits)
	}
	for _, ep := range denied {
		fmt.Fprintf(&b, "-A %s -o vlan+ %s -m comment --comment \"%s: %s\"%s\n", IPTablesPostroutingChain, iptablesDestination(ep), ep.Name, actionComment(mode, "branch-ENI pods"), target)
	}
	jumps("mangle")
	b.WriteString("COMMIT\n")
	return b.String(), nil
}

func iptablesDestination(ep endpoint.Endpoint) string {
	proto, _ := l4(ep) // validated
	return fmt.Sprintf("-d %s -p %s -m %s --dport %d", ep.Prefix(), proto, proto, ep.Port)
}
