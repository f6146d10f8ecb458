#!/usr/bin/env bash
# Builds the release: static binaries and Debian packages (powermeter and
# the small powermeter-logger) for amd64, arm64 and armhf (Raspberry Pi OS,
# ARMv6 and later), into dist/.
#
#   scripts/release.sh [VERSION]        e.g. 1.2.0 (default: from git)
#   ARCHS="amd64" scripts/release.sh    only some architectures
#   DIST=/tmp/out scripts/release.sh    another output folder
#
# The binaries are built with the patched Go toolchain named by GOTOOLCHAIN
# (default go1.27.3, fetched by the go command through the module proxy),
# without cgo, and stamped with the version and the git commit
# (powermeter --version shows both). The packages are made with nfpm
# (packaging/nfpm.yaml), run as a Go module tool.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
NFPM="${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}"
DIST="${DIST:-$PWD/dist}"
ARCHS="${ARCHS:-amd64 arm64 armhf}"

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+dirty"; fi
version="${1:-}"
if [ -z "$version" ]; then
  # a tag v1.2.3 → 1.2.3; else 0.0.0~git<date>.<short commit> (sorts before any release)
  version=$(git describe --tags --exact-match 2>/dev/null || true)
  if [ -z "$version" ]; then
    version="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  fi
fi
version="${version#v}"
case "$version" in [0-9]*) ;; *) echo "version $version must start with a digit (Debian)"; exit 2 ;; esac

echo "== powermeter $version (commit $commit) with $(go version | cut -d' ' -f3)"
mkdir -p "$DIST"
ldflags="-s -w -X github.com/powermeter/powermeter/internal/cli.Version=$version -X github.com/powermeter/powermeter/internal/cli.Commit=$commit"

build() { # goarch goarm tags out
  CGO_ENABLED=0 GOOS=linux GOARCH="$1" GOARM="$2" \
    go build -trimpath -tags "$3" -ldflags "$ldflags" -o "$4" ./cmd/powermeter
}

for deb in $ARCHS; do
  case "$deb" in
    amd64) goarch=amd64 goarm= ;;
    arm64) goarch=arm64 goarm= ;;
    armhf) goarch=arm goarm=6 ;;
    *) echo "unknown architecture $deb (want amd64, arm64, armhf)"; exit 2 ;;
  esac
  for flavour in full logger; do
    if [ $flavour = full ]; then
      tags="" name=powermeter conflicts=powermeter-logger conf=powermeter.toml
      summary="energy meter logger, server and dashboard"
    else
      tags=loggeronly name=powermeter-logger conflicts=powermeter conf=powermeter-logger.toml
      summary="energy meter logger for small devices (no server or database)"
    fi
    bin="$DIST/$name-$version-linux-$deb"
    echo "-- $name $deb: go build"
    build "$goarch" "$goarm" "$tags" "$bin"
    echo "-- $name $deb: nfpm"
    # nfpm expands variables in a few fields only: fill in the template here
    sed -e "s|\${PKG_NAME}|$name|g" -e "s|\${PKG_ARCH}|$deb|g" -e "s|\${PKG_VERSION}|$version|g" \
        -e "s|\${PKG_BINARY}|$bin|g" -e "s|\${PKG_CONFIG}|$conf|g" -e "s|\${PKG_CONFLICTS}|$conflicts|g" \
        -e "s|\${PKG_SUMMARY}|powermeter: $summary|g" packaging/nfpm.yaml > "$DIST/.nfpm-$name-$deb.yaml"
    go run "$NFPM" package --config "$DIST/.nfpm-$name-$deb.yaml" --packager deb --target "$DIST/"
    rm "$DIST/.nfpm-$name-$deb.yaml"
  done
done
( cd "$DIST" && sha256sum -- *.deb powermeter*-linux-* > SHA256SUMS )
ls -l "$DIST"
