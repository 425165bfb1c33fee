#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, lint, build, run every test,
# smoke-test the quick start and fuzz each target briefly. Runs on a fresh Debian machine with
# Go; installs Debian packages with apt-get when they are missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Go modules"
go version
go mod download

step "lint"
hack/lint.sh

step "build"
make build

step "test control plane: kube-apiserver ($(cd hack/tools/kube-apiserver && go list -m -f '{{.Version}}' k8s.io/kubernetes)) and etcd"
eval "$(hack/kube-apiserver.sh)"
export KUBE_APISERVER ETCD

hack/node-deps.sh # nft, iptables, ip, nsenter for the network-namespace firewall tests
hack/browser-deps.sh # Chromium for the HTML report's browser tests
step "unit and integration tests (race detector on)"
go test -race -count=1 ./...

step "quick start: audit the example cluster"
set +e
mkdir -p _output
./bin/imdsguard audit examples/cluster examples/infra > _output/demo.txt
code=$?
set -e
if [ "$code" -ne 1 ]; then
  echo "expected exit status 1 (high findings) from the example audit, got $code" >&2
  exit 1
fi
grep -q "IMDS002 DaemonSet kube-system/aws-node uses hostNetwork" _output/demo.txt
grep -q "IMDS017 aws_eks_node_group.system (examples/infra/system.tf:10:35) leaves IMDSv1 on" _output/demo.txt

step "fuzz smoke (FUZZTIME=${FUZZTIME:=10s} per target)"
FUZZTIME="$FUZZTIME" hack/fuzz.sh

step "all tests passed"
