#!/usr/bin/env bash
# Node dependencies of the firewall and agent tests: nft, iptables (iptables-restore, ip6tables),
# ip, nsenter and unshare; and patch(1), with which the tests of internal/iac/fix apply the
# patches they write, as a user would. Installs the Debian packages that are missing (as root); does nothing
# when everything is there. The network-namespace tests fail with a clear message without them.
set -euo pipefail

missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v iptables-restore >/dev/null && command -v ip6tables-restore >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
{ command -v nsenter >/dev/null && command -v unshare >/dev/null; } || missing+=(util-linux)
command -v patch >/dev/null || missing+=(patch)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "node-deps: missing ${missing[*]}; run as root (or apt-get install -y ${missing[*]})" >&2
  exit 0 # the sandbox tests skip when not root, so a non-root run needs nothing
fi
echo "node-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
