package firewall

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"sigs.k8s.io/knftables"
)

// Hook names a base chain of the table; it is also the hook it is attached to.
type Hook string

// The table's base chains.
const (
	// Forward sees every packet a pod sends off the node, whatever the CNI.
	Forward Hook = "forward"
	// Output sees packets of processes in the node's own network namespace: hostNetwork pods
	// are told apart by their cgroup.
	Output Hook = "output"
	// Postrouting covers the EKS guide's branch-ENI case (pods with security groups, vlan*
	// interfaces), which the guide handles in the mangle table's POSTROUTING chain.
	Postrouting Hook = "postrouting"
)

// Hooks lists the filter base chains in the order they are created.
var Hooks = []Hook{Forward, Output, Postrouting}

// Filter mode's nat chains: their names differ from the hooks they are attached to
// (prerouting and output), as a table cannot hold two chains named output.
const (
	// RedirectPrerouting redirects pods on the pod network, whatever the CNI: it sees every
	// packet a pod sends to the node, before the routing decision.
	RedirectPrerouting Hook = "redirect_prerouting"
	// RedirectOutput redirects hostNetwork pods, by their cgroup.
	RedirectOutput Hook = "redirect_output"
)

// ChainPriority is the priority of every base chain: before the iptables filter table (0), so
// the counters see packets iptables would drop too. The ordering is not what makes the drop
// stick: a drop in any nftables base chain is final.
const ChainPriority = -10

// Set names. The exempt sets hold the administrator's exempt pod addresses; the seen sets are
// filled by the kernel with every pod address that tried to reach an endpoint, each with a
// packet counter, for per-pod metrics and observe-mode logs.
const (
	SetExemptIPv4 = "exempt_v4"
	SetExemptIPv6 = "exempt_v6"
	SetSeenIPv4   = "seen_v4"
	SetSeenIPv6   = "seen_v6"
)

// seenTimeout bounds how long an idle source stays in a seen set, and seenSize its size. A full
// seen set never opens anything: the update and the drop are separate rules.
const (
	seenTimeout = time.Hour
	seenSize    = 65535
)

// Match is one counted match of an endpoint on one hook: the named counter the rule updates.
type Match struct {
	Hook     Hook
	Endpoint endpoint.Endpoint
	// Counter is the name of the nftables counter object, "<hook>.<endpoint name>".
	Counter string
}

// CounterName is the name of the counter counting matches of ep on hook.
func CounterName(hook Hook, ep endpoint.Endpoint) string {
	return string(hook) + "." + ep.Name
}

// Ruleset is the desired content of table inet imdsguard, every object in creation order. It
// is data only; Replace turns it into a transaction.
type Ruleset struct {
	Mode     Mode
	Table    *knftables.Table
	Counters []*knftables.Counter
	Sets     []*knftables.Set
	Chains   []*knftables.Chain
	Rules    []*knftables.Rule
	Elements []*knftables.Element
	// Matches maps the counters back to endpoints and hooks, for metrics.
	Matches []Match
}

// Replace adds to tx the operations that replace the whole table with r, atomically: `add
// table` (so the delete cannot fail), `delete table`, then the table from scratch. nft applies
// the transaction as one kernel batch: packets see either the old rules or the new ones,
// never neither.
func (r *Ruleset) Replace(tx *knftables.Transaction) {
	// Copies: a transaction (knftables' Fake in particular) may write handles into what it is
	// given, and a Ruleset stays as built.
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(ptr(*r.Table))
	for _, c := range r.Counters {
		tx.Add(ptr(*c))
	}
	for _, s := range r.Sets {
		tx.Add(ptr(*s))
	}
	for _, c := range r.Chains {
		tx.Add(ptr(*c))
	}
	for _, rule := range r.Rules {
		tx.Add(ptr(*rule))
	}
	for _, e := range r.Elements {
		tx.Add(ptr(*e))
	}
}

func ptr[T any](v T) *T { return &v }

// RuleCounts returns how many rules each chain holds.
func (r *Ruleset) RuleCounts() map[string]int {
	out := map[string]int{}
	for _, c := range r.Chains {
		out[c.Name] = 0
	}
	for _, rule := range r.Rules {
		out[rule.Chain]++
	}
	return out
}

// tableComment marks the table as ours in `nft list ruleset`.
const tableComment = "imdsguard: keeps pods away from cloud metadata endpoints; managed by imdsguard agent, do not edit"

// Build computes the desired table for cfg. It is a pure function: the same Config always
// gives the same Ruleset.
func Build(cfg Config) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("firewall config: %w", err)
	}
	mode := cfg.mode()
	r := &Ruleset{
		Mode:  mode,
		Table: &knftables.Table{Comment: knftables.PtrTo(tableComment)},
	}
	timeout := knftables.PtrTo(seenTimeout)
	size := knftables.PtrTo(uint64(seenSize))
	r.Sets = []*knftables.Set{
		{Name: SetExemptIPv4, Type: "ipv4_addr", Comment: knftables.PtrTo("exempt pod addresses (agent configuration)")},
		{Name: SetExemptIPv6, Type: "ipv6_addr", Comment: knftables.PtrTo("exempt pod addresses (agent configuration)")},
		{Name: SetSeenIPv4, Type: "ipv4_addr", Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: timeout, Size: size, Comment: knftables.PtrTo("pod addresses that tried an endpoint")},
		{Name: SetSeenIPv6, Type: "ipv6_addr", Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: timeout, Size: size, Comment: knftables.PtrTo("pod addresses that tried an endpoint")},
	}
	filter := knftables.FilterType
	accept := knftables.AcceptPolicy
	priority := knftables.BaseChainPriority(fmt.Sprint(ChainPriority))
	for _, hook := range Hooks {
		h := knftables.BaseChainHook(hook)
		r.Chains = append(r.Chains, &knftables.Chain{
			Name: string(hook), Type: &filter, Hook: &h, Priority: &priority, Policy: &accept,
			Comment: knftables.PtrTo(chainComments[hook]),
		})
	}

	v4, v6 := cfg.exempt()
	for _, ip := range v4 {
		r.Elements = append(r.Elements, &knftables.Element{Set: SetExemptIPv4, Key: []string{ip.String()}})
	}
	for _, ip := range v6 {
		r.Elements = append(r.Elements, &knftables.Element{Set: SetExemptIPv6, Key: []string{ip.String()}})
	}

	denied := cfg.Denied()
	verdict := ""
	if mode == Enforce || mode == Filter {
		verdict = " drop"
	}
	rule := func(hook Hook, text, comment string) {
		r.Rules = append(r.Rules, &knftables.Rule{Chain: string(hook), Rule: text, Comment: knftables.PtrTo(comment)})
	}
	count := func(hook Hook, ep endpoint.Endpoint) string {
		name := CounterName(hook, ep)
		r.Counters = append(r.Counters, &knftables.Counter{Name: name, Comment: knftables.PtrTo(fmt.Sprintf("%s on %s", ep.Destination(), hook))})
		r.Matches = append(r.Matches, Match{Hook: hook, Endpoint: ep, Counter: name})
		return name
	}

	// Forward: pods in their own network namespaces.
	rule(Forward, "ip saddr @"+SetExemptIPv4+" accept", "exempt pods")
	rule(Forward, "ip6 saddr @"+SetExemptIPv6+" accept", "exempt pods")
	for _, ep := range denied {
		match := destination(ep)
		seen, saddr := SetSeenIPv4, "ip saddr"
		if ep.Address.Is6() {
			seen, saddr = SetSeenIPv6, "ip6 saddr"
		}
		// Two rules: if the seen set is full its update fails and ends the rule; the drop must
		// not depend on it.
		rule(Forward, fmt.Sprintf("%s update @%s { %s counter }", match, seen, saddr), ep.Name+": remember the source")
		rule(Forward, fmt.Sprintf("%s counter name %q%s", match, count(Forward, ep), verdict), ep.Name+": "+actionComment(mode, "pods"))
	}

	// Output: hostNetwork pods, told apart from node daemons by their cgroup.
	if mode == Filter {
		rule(Output, markMatch+" accept", "the filtering proxy's upstream connections")
	}
	if cfg.PodsCgroup != "" {
		for _, p := range cfg.AllowedHostNetworkPods {
			rule(Output, fmt.Sprintf("socket cgroupv2 level %d %q accept", cgroupLevel(p.Path), cleanCgroup(p.Path)), "allowed hostNetwork pod "+p.UID)
		}
		pods := fmt.Sprintf("socket cgroupv2 level %d %q", cgroupLevel(cfg.PodsCgroup), cleanCgroup(cfg.PodsCgroup))
		for _, ep := range denied {
			rule(Output, fmt.Sprintf("%s %s counter name %q%s", destination(ep), pods, count(Output, ep), verdict), ep.Name+": "+actionComment(mode, "hostNetwork pods"))
		}
	}

	// Postrouting: the EKS guide's branch-ENI rule (`-o vlan+`), exemptions honoured.
	if mode == Filter {
		// A redirected packet must be delivered to the proxy on this node (through lo);
		// anywhere else it goes nowhere.
		for _, p := range []netip.AddrPort{cfg.ProxyIPv4, cfg.ProxyIPv6} {
			rule(Postrouting, fmt.Sprintf("oifname != \"lo\" %s daddr %s tcp dport %d counter drop", family(p.Addr()), p.Addr(), p.Port()), "redirected to the proxy but not delivered on this node")
		}
		rule(Postrouting, markMatch+" accept", "the filtering proxy's upstream connections")
	}
	rule(Postrouting, "ip saddr @"+SetExemptIPv4+" accept", "exempt pods")
	rule(Postrouting, "ip6 saddr @"+SetExemptIPv6+" accept", "exempt pods")
	for _, ep := range denied {
		rule(Postrouting, fmt.Sprintf("oifname \"vlan*\" %s counter name %q%s", destination(ep), count(Postrouting, ep), verdict), ep.Name+": "+actionComment(mode, "branch-ENI pods"))
	}
	if mode == Filter {
		r.buildRedirect(cfg, rule, count)
	}
	return r, nil
}

// buildRedirect adds Filter mode's nat chains: DNAT of the redirected endpoints to the proxy,
// for pods (prerouting) and hostNetwork pods (output, by cgroup), with the drop rules'
// exemptions. Only a connection's first packet passes a nat chain; conntrack translates the
// rest.
func (r *Ruleset) buildRedirect(cfg Config, rule func(Hook, string, string), count func(Hook, endpoint.Endpoint) string) {
	nat := knftables.NATType
	accept := knftables.AcceptPolicy
	priority := knftables.DNATPriority
	for _, c := range []struct {
		name    Hook
		hook    knftables.BaseChainHook
		comment string
	}{
		{RedirectPrerouting, knftables.PreroutingHook, "filter mode: pods' metadata connections to the proxy"},
		{RedirectOutput, knftables.OutputHook, "filter mode: hostNetwork pods' metadata connections to the proxy, by cgroup"},
	} {
		h := c.hook
		r.Chains = append(r.Chains, &knftables.Chain{
			Name: string(c.name), Type: &nat, Hook: &h, Priority: &priority, Policy: &accept,
			Comment: knftables.PtrTo(c.comment),
		})
	}
	redirected := cfg.Redirected()
	to := func(ep endpoint.Endpoint) string {
		if ep.Address.Is4() {
			return "dnat ip to " + cfg.ProxyIPv4.String()
		}
		return "dnat ip6 to " + cfg.ProxyIPv6.String()
	}

	rule(RedirectPrerouting, "ip saddr @"+SetExemptIPv4+" accept", "exempt pods")
	rule(RedirectPrerouting, "ip6 saddr @"+SetExemptIPv6+" accept", "exempt pods")
	for _, ep := range redirected {
		rule(RedirectPrerouting, fmt.Sprintf("%s counter name %q %s", destination(ep), count(RedirectPrerouting, ep), to(ep)), ep.Name+": pods to the proxy")
	}

	rule(RedirectOutput, markMatch+" accept", "the filtering proxy's upstream connections")
	if cfg.PodsCgroup == "" {
		return
	}
	for _, p := range cfg.AllowedHostNetworkPods {
		rule(RedirectOutput, fmt.Sprintf("socket cgroupv2 level %d %q accept", cgroupLevel(p.Path), cleanCgroup(p.Path)), "allowed hostNetwork pod "+p.UID)
	}
	pods := fmt.Sprintf("socket cgroupv2 level %d %q", cgroupLevel(cfg.PodsCgroup), cleanCgroup(cfg.PodsCgroup))
	for _, ep := range redirected {
		rule(RedirectOutput, fmt.Sprintf("%s %s counter name %q %s", destination(ep), pods, count(RedirectOutput, ep), to(ep)), ep.Name+": hostNetwork pods to the proxy")
	}
}

// family is the nft keyword of an address's family.
func family(a netip.Addr) string {
	if a.Is4() {
		return "ip"
	}
	return "ip6"
}

var chainComments = map[Hook]string{
	Forward:     "pod traffic, any CNI",
	Output:      "hostNetwork pods, by cgroup",
	Postrouting: "branch-ENI pods (vlan*)",
}

func actionComment(mode Mode, who string) string {
	if mode == Observe {
		return "observe " + who + " (no drop)"
	}
	return "deny " + who
}

// destination matches the endpoint's address, protocol and port exactly.
func destination(ep endpoint.Endpoint) string {
	family := "ip"
	if ep.Address.Is6() {
		family = "ip6"
	}
	proto, _ := l4(ep) // validated
	return fmt.Sprintf("%s daddr %s %s dport %d", family, ep.Address, proto, ep.Port)
}
