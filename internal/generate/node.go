package generate

import (
	"fmt"
	"strings"

	"github.com/imdsguard/imdsguard/internal/endpoint"
	"github.com/imdsguard/imdsguard/internal/firewall"
)

// nodeRules is the node firewall in the forms a node loads at boot.
type nodeRules struct {
	// nft is a complete `nft -f` script that replaces imdsguard's table atomically.
	nft string
	// iptables and ip6tables are `iptables-restore --noflush` and `ip6tables-restore --noflush`
	// input: the fallback for nodes without nftables.
	iptables, ip6tables string
}

// buildNodeRules renders the node firewall with the node agent's own builder
// (internal/firewall), so a node bootstrapped with these files and a node run by the agent
// enforce the same rules. The boot ruleset has no pods cgroup (the kubelet has not created it
// yet) and no exemptions: the agent adds those once it runs.
func buildNodeRules(eps []endpoint.Endpoint) (nodeRules, error) {
	cfg := firewall.Config{Endpoints: eps, Mode: firewall.Enforce}
	nft, err := firewall.NFTScript(cfg)
	if err != nil {
		return nodeRules{}, err
	}
	v4, err := firewall.IPTablesRestore(cfg, firewall.IPv4)
	if err != nil {
		return nodeRules{}, err
	}
	v6, err := firewall.IPTablesRestore(cfg, firewall.IPv6)
	if err != nil {
		return nodeRules{}, err
	}
	return nodeRules{nft: nft, iptables: v4, ip6tables: v6}, nil
}

// Paths of the node layer's files.
const (
	NodeNFTPath       = "node/imdsguard.nft"
	NodeIPTablesPath  = "node/iptables.rules"
	NodeIP6TablesPath = "node/ip6tables.rules"
	NodeBootstrapPath = "node/bootstrap.sh"
)

// heredocEnd ends the here-documents of the bootstrap script.
const heredocEnd = "IMDSGUARD_EOF"

func (out *Output) addNode(opts *Options) error {
	rs, err := buildNodeRules(opts.Endpoints)
	if err != nil {
		return fmt.Errorf("node layer: %w", err)
	}
	files, err := nodeFiles(opts.Endpoints, rs)
	if err != nil {
		return fmt.Errorf("node layer: %w", err)
	}
	out.Files = append(out.Files, files...)
	return nil
}

// nodeFiles returns the ruleset files and the bootstrap script that embeds them.
func nodeFiles(eps []endpoint.Endpoint, rs nodeRules) ([]File, error) {
	for _, f := range []struct{ name, text string }{{"nft script", rs.nft}, {"iptables rules", rs.iptables}, {"ip6tables rules", rs.ip6tables}} {
		if strings.TrimSpace(f.text) == "" {
			return nil, fmt.Errorf("the %s is empty", f.name)
		}
		if strings.Contains("\n"+f.text+"\n", "\n"+heredocEnd+"\n") {
			return nil, fmt.Errorf("the %s contains the line %s, which would end the bootstrap script's here-document", f.name, heredocEnd)
		}
	}
	return []File{
		{Layer: Node, Path: NodeNFTPath, Description: "nftables ruleset: nft -f node/imdsguard.nft", Content: []byte(withNewline(rs.nft))},
		{Layer: Node, Path: NodeIPTablesPath, Description: "iptables fallback, IPv4: iptables-restore --noflush < node/iptables.rules", Content: []byte(withNewline(rs.iptables))},
		{Layer: Node, Path: NodeIP6TablesPath, Description: "iptables fallback, IPv6: ip6tables-restore --noflush < node/ip6tables.rules", Content: []byte(withNewline(rs.ip6tables))},
		{Layer: Node, Path: NodeBootstrapPath, Executable: true, Description: "boot snippet for user data: loads the rules before the kubelet starts, on every boot", Content: []byte(bootstrapScript(eps, rs))},
	}, nil
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// bootstrapScript installs the ruleset and a systemd unit that loads it before the kubelet
// and containerd on every boot, and makes the kubelet require it: a node whose firewall failed
// to load never runs pods (fail closed).
func bootstrapScript(eps []endpoint.Endpoint, rs nodeRules) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# imdsguard node bootstrap: keep pods away from the cloud instance metadata endpoints from the
# first packet a pod can send.
#
# Run it as root from the node's user data, before the kubelet starts: as a shell-script part
# of the launch template's user data (on EKS with Amazon Linux 2023, before the NodeConfig
# part; on Amazon Linux 2, before /etc/eks/bootstrap.sh), or from your image build.
#
# It installs the rules in /etc/imdsguard and a systemd unit that loads them before
# containerd and the kubelet on every boot; the kubelet requires the unit, so a node whose
# firewall failed to load never runs pods. nftables is used when available (a drop in an
# nftables base chain cannot be undone by an accept elsewhere, e.g. Calico's chains);
# iptables-restore is the fallback.
#
# Denied, for pods (forwarded traffic, any CNI, and branch-ENI pods on vlan* interfaces):
`)
	for _, ep := range credentials(eps) {
		fmt.Fprintf(&b, "#   %s\n", ep)
	}
	for _, ep := range keepReachable(eps) {
		fmt.Fprintf(&b, "# Kept reachable: %s\n", ep)
	}
	b.WriteString(`#
# Not covered at boot: hostNetwork pods. They share the node's network; the rule that tells
# them from the node's own daemons matches the kubelet's pods cgroup, which exists only once
# the kubelet runs: the imdsguard agent adds it. Keep them out with the admission layer.
# Not effective with Cilium's eBPF host routing, which bypasses netfilter: use the cilium layer.
set -eu

dir=/etc/imdsguard
mkdir -p "$dir"
`)
	for _, f := range []struct{ name, text string }{{"imdsguard.nft", rs.nft}, {"iptables.rules", rs.iptables}, {"ip6tables.rules", rs.ip6tables}} {
		fmt.Fprintf(&b, "\ncat > \"$dir/%s\" <<'%s'\n%s%s\n", f.name, heredocEnd, withNewline(f.text), heredocEnd)
	}
	fmt.Fprintf(&b, `
cat > "$dir/load.sh" <<'%[1]s'
#!/bin/sh
# Loads imdsguard's node firewall: nftables when available, else iptables (IPv4 and IPv6).
set -eu
dir=/etc/imdsguard
if command -v nft >/dev/null 2>&1 && nft -f "$dir/imdsguard.nft"; then
  exit 0
fi
load() { # load <iptables command prefix> <rules file>
  # The jumps are inserted at the top of their chains: delete earlier copies first.
  while $1 -t filter -D FORWARD -j IMDSGUARD-FORWARD 2>/dev/null; do :; done
  while $1 -t filter -D OUTPUT -j IMDSGUARD-OUTPUT 2>/dev/null; do :; done
  while $1 -t mangle -D POSTROUTING -j IMDSGUARD-POSTROUTING 2>/dev/null; do :; done
  $1-restore --noflush < "$2"
}
load iptables "$dir/iptables.rules"
if command -v ip6tables >/dev/null 2>&1; then
  load ip6tables "$dir/ip6tables.rules"
fi
%[1]s
chmod 0755 "$dir/load.sh"

if ! command -v systemctl >/dev/null 2>&1; then
  "$dir/load.sh"
  exit 0
fi

cat > /etc/systemd/system/imdsguard-node-firewall.service <<'%[1]s'
[Unit]
Description=imdsguard node firewall: keep pods away from cloud instance metadata
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target containerd.service kubelet.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/etc/imdsguard/load.sh

[Install]
WantedBy=multi-user.target
%[1]s

mkdir -p /etc/systemd/system/kubelet.service.d
cat > /etc/systemd/system/kubelet.service.d/10-imdsguard.conf <<'%[1]s'
[Unit]
Requires=imdsguard-node-firewall.service
After=imdsguard-node-firewall.service
%[1]s

systemctl daemon-reload
systemctl enable --now imdsguard-node-firewall.service
`, heredocEnd)
	return b.String()
}
