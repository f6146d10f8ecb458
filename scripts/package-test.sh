#!/usr/bin/env bash
# Tests the release artifacts on this (Debian) machine, as root:
#   1. builds the amd64 packages with scripts/release.sh;
#   2. the .deb installs with dpkg -i, creates the user, the config is a
#      conffile, the unit passes systemd-analyze verify;
#   3. the binary runs as the package's user with the packaged config,
#      answers /healthz (powermeter healthcheck) and stores into
#      /var/lib/powermeter; check --database is fine;
#   4. dpkg -r keeps the data and the config, dpkg -P deletes them;
#   5. the logger-only package installs, runs and purges the same way;
#   6. the container image builds with podman (FROM scratch, no registry),
#      has the right config, and its binary runs from the exported root
#      file system; starting the container itself is tried and reported.
#
#   scripts/package-test.sh            everything
#   SKIP_IMAGE=1 scripts/package-test.sh   without the container part
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "package-test.sh must run as root (dpkg -i)"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v curl >/dev/null || need+=(curl)
if [ "${SKIP_IMAGE:-0}" != 1 ]; then command -v podman >/dev/null || need+=(podman); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -d /run/systemd/system ]; then
  echo "this test runs the binary itself; systemd is running here: stop powermeter.service first if it is installed"
fi
if dpkg -s powermeter >/dev/null 2>&1 || dpkg -s powermeter-logger >/dev/null 2>&1; then
  fail "a powermeter package is installed on this machine already; purge it first (dpkg -P powermeter powermeter-logger)"
fi

work=$(mktemp -d)
pid=""
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  dpkg -P powermeter powermeter-logger >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== release build (amd64)"
ARCHS=amd64 DIST="$work/dist" scripts/release.sh 1.0.0~test >"$work/release.log" 2>&1 || { cat "$work/release.log"; fail "release.sh"; }
deb="$work/dist/powermeter_1.0.0~test_amd64.deb"
logdeb="$work/dist/powermeter-logger_1.0.0~test_amd64.deb"
[ -f "$deb" ] && [ -f "$logdeb" ] || fail "release.sh made no packages: $(ls "$work/dist")"

# runs the installed binary as the package's user, with the packaged config,
# in the state folder as the unit does; waits until healthcheck answers
start_as_user() {
  ( cd /var/lib/powermeter && exec setpriv --reuid=powermeter --regid=powermeter --init-groups --no-new-privs \
      /usr/bin/powermeter run --config /etc/powermeter/powermeter.toml ) >"$work/run.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if setpriv --reuid=powermeter --regid=powermeter --init-groups /usr/bin/powermeter healthcheck --config /etc/powermeter/powermeter.toml --timeout 1s >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/run.log"; fail "powermeter run exited"; }
    sleep 0.1
  done
  cat "$work/run.log"; fail "no answer from healthcheck"
}
stop_run() { kill -TERM "$pid"; wait "$pid" || fail "powermeter run exited with $? on SIGTERM"; pid=""; }

echo "== dpkg -i powermeter"
dpkg -i "$deb" >/dev/null
getent passwd powermeter | grep -q ':/var/lib/powermeter:/usr/sbin/nologin$' || fail "no system user powermeter"
[ "$(stat -c '%U:%G %a' /etc/powermeter/powermeter.toml)" = "root:powermeter 640" ] || fail "config file owner/mode: $(stat -c '%U:%G %a' /etc/powermeter/powermeter.toml)"
grep -qx /etc/powermeter/powermeter.toml /var/lib/dpkg/info/powermeter.conffiles || fail "the config is not a conffile"
[ "$(stat -c '%U:%G %a' /var/lib/powermeter)" = "powermeter:powermeter 750" ] || fail "state folder: $(stat -c '%U:%G %a' /var/lib/powermeter)"
/usr/bin/powermeter --version | grep -q '^powermeter 1.0.0~test (commit [0-9a-f]\{40\}' || fail "version: $(/usr/bin/powermeter --version)"

echo "== systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/powermeter.service || fail "systemd-analyze verify"
exposure=$(systemd-analyze security --offline=true /usr/lib/systemd/system/powermeter.service 2>&1 | tail -n 1)
echo "$exposure"
case "$exposure" in *" OK "*) ;; *) fail "the unit's exposure is not OK: $exposure" ;; esac
for k in User=powermeter StateDirectory=powermeter ProtectSystem=strict NoNewPrivileges=yes Restart=on-failure; do
  grep -qx "$k" /usr/lib/systemd/system/powermeter.service || fail "unit lacks $k"
done

echo "== check, run as the user with the packaged config, /healthz"
/usr/bin/powermeter check --config /etc/powermeter/powermeter.toml
start_as_user
curl -fsS http://127.0.0.1:8080/healthz | grep -qx ok || fail "/healthz"
stop_run
[ "$(stat -c %U /var/lib/powermeter/powermeter.db)" = powermeter ] || fail "database not owned by the user"
/usr/bin/powermeter check --config /etc/powermeter/powermeter.toml --database | grep -q 'quick_check ok' || fail "check --database"
/usr/bin/powermeter backup --config /etc/powermeter/powermeter.toml --to "$work/backup.db" | grep -q checked || fail "backup"

echo "== dpkg -r keeps data and config"
echo "# edited by the admin" >>/etc/powermeter/powermeter.toml
dpkg -r powermeter >/dev/null
[ ! -e /usr/bin/powermeter ] || fail "binary left after remove"
[ -f /var/lib/powermeter/powermeter.db ] || fail "remove deleted the database"
grep -q "edited by the admin" /etc/powermeter/powermeter.toml || fail "remove deleted the config"
echo "== reinstall keeps the edited config, then dpkg -P deletes everything"
dpkg -i "$deb" >/dev/null
grep -q "edited by the admin" /etc/powermeter/powermeter.toml || fail "reinstall replaced the edited config"
dpkg -P powermeter >/dev/null
[ ! -e /var/lib/powermeter ] || fail "purge left /var/lib/powermeter"
[ ! -e /etc/powermeter ] || fail "purge left /etc/powermeter"

echo "== powermeter-logger"
dpkg -i "$logdeb" >/dev/null
/usr/bin/powermeter check --config /etc/powermeter/powermeter.toml
if /usr/bin/powermeter serve --config /etc/powermeter/powermeter.toml >/dev/null 2>&1; then fail "the logger-only build serves"; fi
dpkg -P powermeter-logger >/dev/null
[ ! -e /etc/powermeter ] && [ ! -e /usr/bin/powermeter ] || fail "purge of powermeter-logger left files"

if [ "${SKIP_IMAGE:-0}" = 1 ]; then echo "package test passed (image skipped)"; exit 0; fi
BINARY="$work/dist/powermeter-1.0.0~test-linux-amd64" scripts/image-test.sh
echo "package test passed"
