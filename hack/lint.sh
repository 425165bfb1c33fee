#!/usr/bin/env bash
# Lint: gofmt, go vet and golangci-lint (pinned in hack/tools, built once into _output/tools).
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './_output/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...

tools="$PWD/_output/tools"
lint="$tools/golangci-lint"
want=$(cd hack/tools && go list -m -f '{{.Version}}' github.com/golangci/golangci-lint/v2)
if [ ! -x "$lint" ] || ! "$lint" version 2>/dev/null | grep -q "${want#v}"; then
  echo "building golangci-lint $want (once; cached in _output/tools)" >&2
  (cd hack/tools && GOBIN="$tools" go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint)
fi
"$lint" run ./...
