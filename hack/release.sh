#!/usr/bin/env bash
# Release archives and the krew plugin manifest.
#
# For each platform of PLATFORMS (os/arch), builds the binary as kubectl-imdsguard (the name
# kubectl runs for "kubectl imdsguard") into _output/release/kubectl-imdsguard_OS_ARCH.tar.gz
# with the LICENSE when there is one, writes the sha256 sums into
# _output/release/SHA256SUMS, and writes _output/release/imdsguard.yaml, the krew manifest,
# from hack/krew/imdsguard.yaml.tmpl with one platform entry per archive: its URL under
# URL_BASE and its sha256.
#
#   VERSION   release version, with its leading v (default: git describe)
#   URL_BASE  where the archives will be downloadable
#             (default: https://github.com/imdsguard/imdsguard/releases/download/$VERSION)
#   PLATFORMS default: linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
#   OUT       output directory (default: _output/release)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}
case "$VERSION" in v*) ;; *) VERSION="v$VERSION" ;; esac
URL_BASE=${URL_BASE:-https://github.com/imdsguard/imdsguard/releases/download/$VERSION}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
OUT=${OUT:-_output/release}
GO=${GO:-go}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

platforms=""
: >"$OUT/SHA256SUMS"
for platform in $PLATFORMS; do
  os=${platform%/*}
  arch=${platform#*/}
  archive="kubectl-imdsguard_${os}_${arch}.tar.gz"
  dir="$work/${os}_${arch}"
  mkdir -p "$dir"
  echo "building $archive" >&2
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath \
    -ldflags "-X github.com/imdsguard/imdsguard/internal/cli.version=$VERSION" \
    -o "$dir/kubectl-imdsguard" ./cmd/imdsguard
  files=(kubectl-imdsguard)
  if [ -f LICENSE ]; then
    cp LICENSE "$dir/LICENSE"
    files+=(LICENSE)
  fi
  # Reproducible archives: fixed owner, order and time.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$dir" -cf - "${files[@]}" | gzip -n >"$OUT/$archive"
  sum=$(sha256sum "$OUT/$archive" | cut -d' ' -f1)
  echo "$sum  $archive" >>"$OUT/SHA256SUMS"
  license=""
  if [ -f LICENSE ]; then
    license=$'\n''    - from: LICENSE'$'\n''      to: .'
  fi
  platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $URL_BASE/$archive
    sha256: $sum
    bin: kubectl-imdsguard
    files:
    - from: kubectl-imdsguard
      to: .$license
"
done

template=$(<hack/krew/imdsguard.yaml.tmpl)
manifest=${template//@VERSION@/$VERSION}
manifest=${manifest//@PLATFORMS@/${platforms%$'\n'}}
printf '%s\n' "$manifest" >"$OUT/imdsguard.yaml"
echo "wrote $OUT/imdsguard.yaml and $OUT/SHA256SUMS" >&2
