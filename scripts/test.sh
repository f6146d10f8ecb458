#!/usr/bin/env bash
# Runs every test of powermeter. On a fresh Debian machine it first installs
# what the tests need: Chromium (browser tests), a PostgreSQL server on
# 127.0.0.1:5432 (store tests for the postgres backend) and the Mosquitto
# MQTT broker on 127.0.0.1:1883 (MQTT uplink, meter and Home Assistant tests;
# some tests also start their own mosquitto on a free port).
#
#   scripts/test.sh            everything (race detector on)
#   SKIP_SETUP=1 scripts/test.sh   do not install or start anything
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

setup() {
  local need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "== starting PostgreSQL"
    local ver
    ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    # trust auth on loopback for the tests (this machine's own server only)
    local hba="/etc/postgresql/$ver/main/pg_hba.conf"
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    echo "== starting Mosquitto on 127.0.0.1:1883"
    local conf=/tmp/powermeter-test-mosquitto.conf
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' >"$conf"
    chmod 644 "$conf"
    as_root /usr/sbin/mosquitto -d -c "$conf"
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.2; done
  fi
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  setup
fi
export POWERMETER_TEST_POSTGRES="${POWERMETER_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export POWERMETER_ARTIFACTS="${POWERMETER_ARTIFACTS:-$PWD/test-artifacts}"
mkdir -p "$POWERMETER_ARTIFACTS"

echo "== go vet"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go test -race ./..."
go test -race -timeout 20m ./...

echo "== fuzz the stats parser (short)"
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 500000x ./internal/legacy
