#!/usr/bin/env bash
# Checks powermeter for known vulnerabilities its code can reach, offline:
# govulncheck against the Go vulnerability database as published in the
# golang.org/x/vulndb module (fetched from the Go module proxy like any
# module and indexed here), no vulnerability service contacted.
#
#   scripts/vulncheck.sh            check ./... as the release builds it (Go 1.27.3)
#   VULNCHECK_GO=go1.26.8 scripts/vulncheck.sh   check with another toolchain
#
# It first checks itself: a tiny program that calls a standard-library
# function with a known vulnerability (html/template in go1.26.8) must be
# reported, else the check is broken and the script fails. Exit 0: nothing
# reachable; 3: vulnerabilities found (govulncheck's code); other: error.
# The database and the tools are cached in $VULNCHECK_CACHE
# (default ~/.cache/powermeter-vulncheck); the first run downloads them
# (a few minutes: the indexer's module graph is large).
set -euo pipefail
cd "$(dirname "$0")/.."

GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
RELEASE_GO="${VULNCHECK_GO:-go1.27.3}"
# a toolchain with known reachable vulnerabilities, for the self-check
VULNERABLE_GO=go1.26.8
cache="${VULNCHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/powermeter-vulncheck}"
db="$cache/db-$VULNDB_VERSION"
# govulncheck is built with the toolchain it checks for (its type checker
# must know that Go version)
bin="$cache/govulncheck-$GOVULNCHECK_VERSION-$RELEASE_GO"
mkdir -p "$cache"

if [ ! -f "$db/index/db.json" ]; then
	echo "== vulncheck: indexing golang.org/x/vulndb@$VULNDB_VERSION"
	work=$(mktemp -d "$cache/tmp.XXXXXX")
	src=$(cd "$work" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src/data/osv" ] || { echo "vulncheck: no data/osv in $src" >&2; exit 1; }
	(cd "$work" && GOFLAGS=-mod=mod go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$work/db")
	rm -rf "$db"
	mv "$work/db" "$db"
	rm -rf "$work"
fi
if [ ! -x "$bin/govulncheck" ]; then
	echo "== vulncheck: installing govulncheck $GOVULNCHECK_VERSION"
	GOTOOLCHAIN="$RELEASE_GO" GOBIN="$bin" GOFLAGS=-mod=mod go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
fi

echo "== vulncheck: self-check (a reachable vulnerability must be found)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat >"$probe/go.mod" <<'MOD'
module vulnprobe

go 1.26
MOD
cat >"$probe/main.go" <<'SRC'
package main

import (
	"html/template"
	"os"
)

func main() {
	t := template.Must(template.New("x").Parse(`<script>var a = {{.}};</script>`))
	_ = t.ExecuteTemplate(os.Stdout, "x", os.Args)
}
SRC
set +e
(cd "$probe" && GOTOOLCHAIN="$VULNERABLE_GO" GOFLAGS= "$bin/govulncheck" -db "file://$db" ./... >"$probe/out.txt" 2>&1)
rc=$?
set -e
if [ "$rc" != 3 ] || ! grep -q 'html/template@go' "$probe/out.txt"; then
	cat "$probe/out.txt" >&2
	echo "vulncheck: the self-check found no vulnerability in a program that has one (exit $rc): the check is broken" >&2
	exit 1
fi

echo "== vulncheck: ./... with $RELEASE_GO against vulndb $VULNDB_VERSION"
GOTOOLCHAIN="$RELEASE_GO" "$bin/govulncheck" -db "file://$db" ./...
