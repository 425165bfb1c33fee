#!/bin/sh
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
#   imds (169.254.169.254:80/TCP)
#   aws-imds-ipv6 ([fd00:ec2::254]:80/TCP)
#   azure-wireserver (168.63.129.16:80/TCP)
#   azure-wireserver-32526 (168.63.129.16:32526/TCP)
#   alibaba-metadata (100.100.100.200:80/TCP)
# Kept reachable: aws-pod-identity (169.254.170.23:80/TCP)
# Kept reachable: aws-pod-identity-ipv6 ([fd00:ec2::23]:80/TCP)
# Kept reachable: azure-dns (168.63.129.16:53/UDP)
# Kept reachable: azure-dns-tcp (168.63.129.16:53/TCP)
#
# Not covered at boot: hostNetwork pods. They share the node's network; the rule that tells
# them from the node's own daemons matches the kubelet's pods cgroup, which exists only once
# the kubelet runs: the imdsguard agent adds it. Keep them out with the admission layer.
# Not effective with Cilium's eBPF host routing, which bypasses netfilter: use the cilium layer.
set -eu

dir=/etc/imdsguard
mkdir -p "$dir"

cat > "$dir/imdsguard.nft" <<'IMDSGUARD_EOF'
#!/usr/sbin/nft -f
# imdsguard node firewall (mode enforce): replaces table inet imdsguard in one transaction.
add table inet imdsguard
delete table inet imdsguard
add table inet imdsguard { comment "imdsguard: keeps pods away from cloud metadata endpoints; managed by imdsguard agent, do not edit" ; }
add counter inet imdsguard forward.imds { comment "169.254.169.254:80/TCP on forward" ; }
add counter inet imdsguard forward.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on forward" ; }
add counter inet imdsguard forward.azure-wireserver { comment "168.63.129.16:80/TCP on forward" ; }
add counter inet imdsguard forward.azure-wireserver-32526 { comment "168.63.129.16:32526/TCP on forward" ; }
add counter inet imdsguard forward.alibaba-metadata { comment "100.100.100.200:80/TCP on forward" ; }
add counter inet imdsguard postrouting.imds { comment "169.254.169.254:80/TCP on postrouting" ; }
add counter inet imdsguard postrouting.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on postrouting" ; }
add counter inet imdsguard postrouting.azure-wireserver { comment "168.63.129.16:80/TCP on postrouting" ; }
add counter inet imdsguard postrouting.azure-wireserver-32526 { comment "168.63.129.16:32526/TCP on postrouting" ; }
add counter inet imdsguard postrouting.alibaba-metadata { comment "100.100.100.200:80/TCP on postrouting" ; }
add set inet imdsguard exempt_v4 { type ipv4_addr ; comment "exempt pod addresses (agent configuration)" ; }
add set inet imdsguard exempt_v6 { type ipv6_addr ; comment "exempt pod addresses (agent configuration)" ; }
add set inet imdsguard seen_v4 { type ipv4_addr ; flags dynamic,timeout ; timeout 3600s ; size 65535 ; comment "pod addresses that tried an endpoint" ; }
add set inet imdsguard seen_v6 { type ipv6_addr ; flags dynamic,timeout ; timeout 3600s ; size 65535 ; comment "pod addresses that tried an endpoint" ; }
add chain inet imdsguard forward { type filter hook forward priority -10 ; policy accept ; comment "pod traffic, any CNI" ; }
add chain inet imdsguard output { type filter hook output priority -10 ; policy accept ; comment "hostNetwork pods, by cgroup" ; }
add chain inet imdsguard postrouting { type filter hook postrouting priority -10 ; policy accept ; comment "branch-ENI pods (vlan*)" ; }
add rule inet imdsguard forward ip saddr @exempt_v4 accept comment "exempt pods"
add rule inet imdsguard forward ip6 saddr @exempt_v6 accept comment "exempt pods"
add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 update @seen_v4 { ip saddr counter } comment "imds: remember the source"
add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 counter name "forward.imds" drop comment "imds: deny pods"
add rule inet imdsguard forward ip6 daddr fd00:ec2::254 tcp dport 80 update @seen_v6 { ip6 saddr counter } comment "aws-imds-ipv6: remember the source"
add rule inet imdsguard forward ip6 daddr fd00:ec2::254 tcp dport 80 counter name "forward.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny pods"
add rule inet imdsguard forward ip daddr 168.63.129.16 tcp dport 80 update @seen_v4 { ip saddr counter } comment "azure-wireserver: remember the source"
add rule inet imdsguard forward ip daddr 168.63.129.16 tcp dport 80 counter name "forward.azure-wireserver" drop comment "azure-wireserver: deny pods"
add rule inet imdsguard forward ip daddr 168.63.129.16 tcp dport 32526 update @seen_v4 { ip saddr counter } comment "azure-wireserver-32526: remember the source"
add rule inet imdsguard forward ip daddr 168.63.129.16 tcp dport 32526 counter name "forward.azure-wireserver-32526" drop comment "azure-wireserver-32526: deny pods"
add rule inet imdsguard forward ip daddr 100.100.100.200 tcp dport 80 update @seen_v4 { ip saddr counter } comment "alibaba-metadata: remember the source"
add rule inet imdsguard forward ip daddr 100.100.100.200 tcp dport 80 counter name "forward.alibaba-metadata" drop comment "alibaba-metadata: deny pods"
add rule inet imdsguard postrouting ip saddr @exempt_v4 accept comment "exempt pods"
add rule inet imdsguard postrouting ip6 saddr @exempt_v6 accept comment "exempt pods"
add rule inet imdsguard postrouting oifname "vlan*" ip daddr 169.254.169.254 tcp dport 80 counter name "postrouting.imds" drop comment "imds: deny branch-ENI pods"
add rule inet imdsguard postrouting oifname "vlan*" ip6 daddr fd00:ec2::254 tcp dport 80 counter name "postrouting.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny branch-ENI pods"
add rule inet imdsguard postrouting oifname "vlan*" ip daddr 168.63.129.16 tcp dport 80 counter name "postrouting.azure-wireserver" drop comment "azure-wireserver: deny branch-ENI pods"
add rule inet imdsguard postrouting oifname "vlan*" ip daddr 168.63.129.16 tcp dport 32526 counter name "postrouting.azure-wireserver-32526" drop comment "azure-wireserver-32526: deny branch-ENI pods"
add rule inet imdsguard postrouting oifname "vlan*" ip daddr 100.100.100.200 tcp dport 80 counter name "postrouting.alibaba-metadata" drop comment "alibaba-metadata: deny branch-ENI pods"
IMDSGUARD_EOF

cat > "$dir/iptables.rules" <<'IMDSGUARD_EOF'
# imdsguard node firewall, iptables fallback (ipv4, mode enforce)
*filter
:IMDSGUARD-FORWARD - [0:0]
:IMDSGUARD-OUTPUT - [0:0]
-A IMDSGUARD-FORWARD -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "imds: deny pods" -j DROP
-A IMDSGUARD-FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -m comment --comment "azure-wireserver: deny pods" -j DROP
-A IMDSGUARD-FORWARD -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -m comment --comment "azure-wireserver-32526: deny pods" -j DROP
-A IMDSGUARD-FORWARD -d 100.100.100.200/32 -p tcp -m tcp --dport 80 -m comment --comment "alibaba-metadata: deny pods" -j DROP
-I FORWARD 1 -j IMDSGUARD-FORWARD
-I OUTPUT 1 -j IMDSGUARD-OUTPUT
COMMIT
*mangle
:IMDSGUARD-POSTROUTING - [0:0]
-A IMDSGUARD-POSTROUTING -o vlan+ -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment "imds: deny branch-ENI pods" -j DROP
-A IMDSGUARD-POSTROUTING -o vlan+ -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -m comment --comment "azure-wireserver: deny branch-ENI pods" -j DROP
-A IMDSGUARD-POSTROUTING -o vlan+ -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -m comment --comment "azure-wireserver-32526: deny branch-ENI pods" -j DROP
-A IMDSGUARD-POSTROUTING -o vlan+ -d 100.100.100.200/32 -p tcp -m tcp --dport 80 -m comment --comment "alibaba-metadata: deny branch-ENI pods" -j DROP
-I POSTROUTING 1 -j IMDSGUARD-POSTROUTING
COMMIT
IMDSGUARD_EOF

cat > "$dir/ip6tables.rules" <<'IMDSGUARD_EOF'
# imdsguard node firewall, iptables fallback (ipv6, mode enforce)
*filter
:IMDSGUARD-FORWARD - [0:0]
:IMDSGUARD-OUTPUT - [0:0]
-A IMDSGUARD-FORWARD -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -m comment --comment "aws-imds-ipv6: deny pods" -j DROP
-I FORWARD 1 -j IMDSGUARD-FORWARD
-I OUTPUT 1 -j IMDSGUARD-OUTPUT
COMMIT
*mangle
:IMDSGUARD-POSTROUTING - [0:0]
-A IMDSGUARD-POSTROUTING -o vlan+ -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -m comment --comment "aws-imds-ipv6: deny branch-ENI pods" -j DROP
-I POSTROUTING 1 -j IMDSGUARD-POSTROUTING
COMMIT
IMDSGUARD_EOF

cat > "$dir/load.sh" <<'IMDSGUARD_EOF'
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
IMDSGUARD_EOF
chmod 0755 "$dir/load.sh"

if ! command -v systemctl >/dev/null 2>&1; then
  "$dir/load.sh"
  exit 0
fi

cat > /etc/systemd/system/imdsguard-node-firewall.service <<'IMDSGUARD_EOF'
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
IMDSGUARD_EOF

mkdir -p /etc/systemd/system/kubelet.service.d
cat > /etc/systemd/system/kubelet.service.d/10-imdsguard.conf <<'IMDSGUARD_EOF'
[Unit]
Requires=imdsguard-node-firewall.service
After=imdsguard-node-firewall.service
IMDSGUARD_EOF

systemctl daemon-reload
systemctl enable --now imdsguard-node-firewall.service
