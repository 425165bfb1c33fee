#!/usr/bin/env bash
# Provides the real Kubernetes API server for integration tests: builds kube-apiserver from the
# k8s.io/kubernetes version pinned in hack/tools/kube-apiserver (cached in _output/bin, keyed by
# version; a cold build takes about 15 minutes on 2 cores) and installs Debian's etcd-server
# when etcd is missing. Prints KUBE_APISERVER=... and ETCD=... for the caller to export.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3; exit}' hack/tools/kube-apiserver/go.mod)
[ -n "$version" ] || { echo "kube-apiserver.sh: no k8s.io/kubernetes version in hack/tools/kube-apiserver/go.mod" >&2; exit 1; }
bin="$PWD/_output/bin/kube-apiserver-$version"

if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "Kubernetes $version" ]; then
  echo "building kube-apiserver $version once (about 15 minutes cold; cached in _output/bin)" >&2
  mkdir -p "$(dirname "$bin")"
  minor=${version#v1.}; minor=${minor%%.*}
  pkg=k8s.io/component-base/version
  ldflags="-X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  (cd hack/tools/kube-apiserver && go build -trimpath -ldflags "$ldflags" -o "$bin.partial" .)
  mv "$bin.partial" "$bin"
fi

if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "kube-apiserver.sh: etcd is missing; install Debian's etcd-server (apt-get install -y etcd-server) or run as root" >&2
    exit 1
  fi
  echo "installing etcd-server with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

echo "KUBE_APISERVER=$bin"
echo "ETCD=$(command -v etcd)"
