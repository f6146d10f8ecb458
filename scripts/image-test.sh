#!/usr/bin/env bash
# Builds the container image with podman from packaging/Containerfile and
# tests it, without any registry:
#   - the binary is built on the host (or taken from $BINARY) and handed to the Containerfile's
#     build stage as a build context (no Go image to pull);
#   - the image config: user 65532, entrypoint, /data volume, port 8080,
#     HEALTHCHECK;
#   - its exported root file system: the binary runs (chroot, as the
#     image's user) with the image's config, writes into /data and answers
#     the healthcheck verb;
#   - then the container itself is started (podman run with runc; crun
#     cannot on a cgroup-hybrid host) and probed; where the machine cannot
#     start containers at all this part says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "image-test.sh runs as root (podman, chroot)"
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

tag=localhost/powermeter:image-test-$$
work=$(mktemp -d)
name=powermeter-image-test-$$
pid=""
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  podman --runtime runc rm -f -v "$name" >/dev/null 2>&1 || true
  podman rm -f -v "$name-export" >/dev/null 2>&1 || true
  podman rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build the binary and the image"
mkdir -p "$work/ctx/out/data"
if [ -n "${BINARY:-}" ]; then # a static linux/amd64 build, e.g. from scripts/release.sh
  cp "$BINARY" "$work/ctx/out/powermeter"
else
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/powermeter/powermeter/internal/cli.Version=0.0.0-image-test" -o "$work/ctx/out/powermeter" ./cmd/powermeter
fi
cp /etc/ssl/certs/ca-certificates.crt "$work/ctx/out/"
podman build -q --format docker --build-context build="$work/ctx" -f packaging/Containerfile -t "$tag" . >/dev/null

echo "== image config"
cfg=$(podman image inspect "$tag" --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Volumes}}|{{json .Config.ExposedPorts}}|{{.Config.WorkingDir}}')
want='65532:65532|["/usr/bin/powermeter"]|["run"]|{"/data":{}}|{"8080/tcp":{}}|/data'
[ "$cfg" = "$want" ] || fail "image config: got $cfg, want $want"
hc=$(podman image inspect "$tag" --format '{{json .HealthCheck.Test}}')
[ "$hc" = '["CMD","/usr/bin/powermeter","healthcheck"]' ] || fail "HEALTHCHECK: $hc"
layers=$(podman image inspect "$tag" --format '{{len .RootFS.Layers}}')
echo "image: $(podman image inspect "$tag" --format '{{.Size}}') bytes in $layers layers, config ok"

echo "== the exported root file system"
podman create --name "$name-export" "$tag" >/dev/null
mkdir "$work/rootfs"
podman export "$name-export" | tar -x -C "$work/rootfs"
root="$work/rootfs"
[ "$(stat -c '%u:%g' "$root/data")" = 65532:65532 ] || fail "/data is not the image user's: $(stat -c '%u:%g' "$root/data")"
for f in usr/bin/powermeter etc/powermeter/powermeter.toml etc/ssl/certs/ca-certificates.crt; do
  [ -f "$root/$f" ] || fail "$f missing from the image"
done
[ "$(find "$root" -type f | wc -l)" -le 6 ] || fail "unexpected files in the image: $(find "$root" -type f)"
chroot --userspec=65532:65532 "$root" /usr/bin/powermeter --version | grep -q '^powermeter ' || fail "version in the image"
chroot --userspec=65532:65532 "$root" /usr/bin/powermeter check --config /etc/powermeter/powermeter.toml
# port 0: the kernel picks a free one, the log names it
chroot --userspec=65532:65532 "$root" /usr/bin/powermeter serve --config /etc/powermeter/powermeter.toml --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
pid=$!
ok=0
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*msg=serving .*addr=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/serve.log" | head -n 1)
  if [ -n "$addr" ] && chroot --userspec=65532:65532 "$root" /usr/bin/powermeter healthcheck --url "http://$addr/healthz" --timeout 1s >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ $ok = 1 ] || { cat "$work/serve.log"; fail "the image's binary did not answer /healthz"; }
kill -TERM "$pid"; wait "$pid" || fail "serve exited with $? on SIGTERM"; pid=""
[ -f "$root/data/powermeter.db" ] || fail "nothing written to /data"
echo "binary from the root file system: runs as 65532, serves, writes /data/powermeter.db"

echo "== start the container (podman run, runc)"
# crun cannot raise RLIMIT_NOFILE/NPROC without CAP_SYS_RESOURCE and
# refuses cgroup-hybrid hosts; runc with limits below the hard ones works.
lim="--ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=1024:1024"
if ! out=$(podman --runtime runc run -d --name "$name" $lim -p 127.0.0.1::8080 "$tag" 2>&1); then
  echo "NOT TESTED: this machine cannot start containers: $(echo "$out" | grep -v 'systemd connection')"
  echo "image test passed (container start skipped)"
  exit 0
fi
hport=$(podman --runtime runc port "$name" 8080/tcp | sed -n 's/.*:\([0-9]*\)$/\1/p' | head -n 1)
[ -n "$hport" ] || fail "no published port: $(podman --runtime runc port "$name")"
ok=0
for _ in $(seq 1 100); do
  if curl -fsS -m 1 "http://127.0.0.1:$hport/healthz" 2>/dev/null | grep -qx ok; then ok=1; break; fi
  sleep 0.1
done
[ $ok = 1 ] || { podman --runtime runc logs "$name"; fail "the container does not answer on its published port"; }
podman --runtime runc healthcheck run "$name" 2>&1 | grep -v 'systemd connection' || true
[ "$(podman --runtime runc inspect "$name" --format '{{.State.Health.Status}}')" = healthy ] || fail "HEALTHCHECK does not report healthy"
podman --runtime runc exec "$name" /usr/bin/powermeter check --database | grep -q 'quick_check ok' || fail "check --database inside the container"
podman --runtime runc stop -t 30 "$name" >/dev/null 2>&1
[ "$(podman --runtime runc inspect "$name" --format '{{.State.ExitCode}}')" = 0 ] || fail "the container did not stop cleanly"
echo "container: started, answered /healthz on a published port, healthy, stopped with exit 0"
echo "image test passed"
