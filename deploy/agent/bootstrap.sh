#!/usr/bin/env bash
# Node bootstrap: install imdsguard's firewall before the kubelet starts, so no pod ever runs on
# this node without it. Run it early in the node's user data (before /etc/eks/bootstrap.sh or
# nodeadm, or from cloud-init on other clouds). It writes the ruleset, loads it now and on
# every boot (a systemd unit ordered before kubelet.service); the imdsguard agent adopts the
# table when it starts, replacing it atomically with its full configuration (hostNetwork rules,
# exemptions), without a gap.
#
# The ruleset below is `imdsguard agent rules --cloud aws` (enforce mode, no exemptions: the
# strictest). Regenerate it for another cloud with that command; a test keeps this copy in step
# with the generator.
set -euo pipefail

command -v nft >/dev/null || { echo "imdsguard bootstrap: nft is not installed" >&2; exit 1; }
install -d -m 0755 /etc/imdsguard
cat > /etc/imdsguard/imdsguard.nft <<'RULES'
#!/usr/sbin/nft -f
# imdsguard node firewall (mode enforce): replaces table inet imdsguard in one transaction.
add table inet imdsguard
delete table inet imdsguard
add table inet imdsguard { comment "imdsguard: keeps pods away from cloud metadata endpoints; managed by imdsguard agent, do not edit" ; }
add counter inet imdsguard forward.aws-imds { comment "169.254.169.254:80/TCP on forward" ; }
add counter inet imdsguard forward.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on forward" ; }
add counter inet imdsguard postrouting.aws-imds { comment "169.254.169.254:80/TCP on postrouting" ; }
add counter inet imdsguard postrouting.aws-imds-ipv6 { comment "[fd00:ec2::254]:80/TCP on postrouting" ; }
add set inet imdsguard exempt_v4 { type ipv4_addr ; comment "exempt pod addresses (agent configuration)" ; }
add set inet imdsguard exempt_v6 { type ipv6_addr ; comment "exempt pod addresses (agent configuration)" ; }
add set inet imdsguard seen_v4 { type ipv4_addr ; flags dynamic,timeout ; timeout 3600s ; size 65535 ; comment "pod addresses that tried an endpoint" ; }
add set inet imdsguard seen_v6 { type ipv6_addr ; flags dynamic,timeout ; timeout 3600s ; size 65535 ; comment "pod addresses that tried an endpoint" ; }
add chain inet imdsguard forward { type filter hook forward priority -10 ; policy accept ; comment "pod traffic, any CNI" ; }
add chain inet imdsguard output { type filter hook output priority -10 ; policy accept ; comment "hostNetwork pods, by cgroup" ; }
add chain inet imdsguard postrouting { type filter hook postrouting priority -10 ; policy accept ; comment "branch-ENI pods (vlan*)" ; }
add rule inet imdsguard forward ip saddr @exempt_v4 accept comment "exempt pods"
add rule inet imdsguard forward ip6 saddr @exempt_v6 accept comment "exempt pods"
add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 update @seen_v4 { ip saddr counter } comment "aws-imds: remember the source"
add rule inet imdsguard forward ip daddr 169.254.169.254 tcp dport 80 counter name "forward.aws-imds" drop comment "aws-imds: deny pods"
add rule inet imdsguard forward ip6 daddr fd00:ec2::254 tcp dport 80 update @seen_v6 { ip6 saddr counter } comment "aws-imds-ipv6: remember the source"
add rule inet imdsguard forward ip6 daddr fd00:ec2::254 tcp dport 80 counter name "forward.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny pods"
add rule inet imdsguard postrouting ip saddr @exempt_v4 accept comment "exempt pods"
add rule inet imdsguard postrouting ip6 saddr @exempt_v6 accept comment "exempt pods"
add rule inet imdsguard postrouting oifname "vlan*" ip daddr 169.254.169.254 tcp dport 80 counter name "postrouting.aws-imds" drop comment "aws-imds: deny branch-ENI pods"
add rule inet imdsguard postrouting oifname "vlan*" ip6 daddr fd00:ec2::254 tcp dport 80 counter name "postrouting.aws-imds-ipv6" drop comment "aws-imds-ipv6: deny branch-ENI pods"
RULES

cat > /etc/systemd/system/imdsguard-firewall.service <<'UNIT'
[Unit]
Description=imdsguard: drop pod traffic to cloud metadata endpoints before kubelet starts
DefaultDependencies=no
Before=kubelet.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f /etc/imdsguard/imdsguard.nft

[Install]
WantedBy=multi-user.target kubelet.service
UNIT

nft -f /etc/imdsguard/imdsguard.nft
if command -v systemctl >/dev/null; then
  systemctl daemon-reload
  systemctl enable imdsguard-firewall.service
fi
echo "imdsguard bootstrap: table inet imdsguard installed" >&2
