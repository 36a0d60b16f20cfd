#!/usr/bin/env bash
# Installs the Debian-built tools the tests run for real (Prometheus, promtool,
# Alertmanager, amtool, node-exporter, blackbox-exporter, the PostgreSQL and Redis
# exporters, busybox for compose's volume-init script, docker-compose, and the scale
# profile's VictoriaMetrics and vmauth) into .tools/ without touching system packages: a
# private apt state directory, `apt-get download` of pinned versions from testing/unstable,
# `dpkg -x`. Then dev/bootstrap-servers.sh links the demo's servers (PostgreSQL, Redis,
# RabbitMQ: builds for this machine's release).
#
# Idempotent: a stamp file records what was unpacked; a second run takes seconds.
# A binary the user names (PROMTOOL=/path ...) or one already on PATH with the
# pinned upstream version is linked instead of downloading.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tools="${TOOLS_DIR:-$here/.tools}"
bin="$tools/bin"

# Pinned Debian package versions. Debian's testing/unstable suites are the ones
# with Prometheus 3.x and Alertmanager >= 0.33; bump here and nowhere else.
# package=version  binary-in-package  name-in-.tools/bin  env-override  upstream-version
pins=(
  "prometheus=3.5.3+ds1-6                 usr/bin/prometheus                    prometheus         PROMETHEUS      3.5.3"
  "promtool=3.5.3+ds1-6                   usr/bin/promtool                      promtool           PROMTOOL        3.5.3"
  "prometheus-alertmanager=0.33.1-5       usr/bin/prometheus-alertmanager       alertmanager       ALERTMANAGER    0.33.1"
  "prometheus-alertmanager=0.33.1-5       usr/bin/amtool                        amtool             AMTOOL          0.33.1"
  "prometheus-node-exporter=1.11.1-3      usr/bin/prometheus-node-exporter      node-exporter      NODE_EXPORTER   1.11.1"
  "prometheus-blackbox-exporter=0.28.0-2  usr/bin/prometheus-blackbox-exporter  blackbox-exporter  BLACKBOX_EXPORTER 0.28.0"
  "busybox-static=1:1.38.0-3+b1          usr/bin/busybox                       busybox            BUSYBOX         1.38.0"
  "prometheus-postgres-exporter=0.19.1-1+b1 usr/bin/prometheus-postgres-exporter postgres-exporter POSTGRES_EXPORTER 0.19.1"
  "prometheus-redis-exporter=1.86.0-1     usr/bin/prometheus-redis-exporter     redis-exporter     REDIS_EXPORTER  1.86.0"
  "docker-compose=2.40.3-3                usr/libexec/docker/cli-plugins/docker-compose docker-compose DOCKER_COMPOSE 2.40.3"
  # Long-term store of the scale profile (single-node server) and the agents' authenticating
  # proxy. Debian builds them without version info (`-version` prints nothing), so they are
  # never picked up from PATH: tests/foundation checks the unpacked package's version instead.
  "victoria-metrics=1.145.0+ds1-2         usr/bin/victoria-metrics              victoria-metrics   VICTORIA_METRICS 1.145.0"
  "victoria-metrics=1.145.0+ds1-2         usr/bin/vmauth                        vmauth             VMAUTH          1.145.0"
)
suites="unstable testing"

stamp="$tools/.stamp"
mkdir -p "$bin"

# 1. Overrides: a binary the user names (PROMTOOL=/path/to/promtool ...), or one
# already on PATH (outside .tools) that reports the pinned upstream version.
declare -A linked=()
for row in "${pins[@]}"; do
  read -r _pkg _path name var upstream <<<"$row"
  override="${!var:-}"
  if [ -n "$override" ]; then
    [ -x "$override" ] || { echo "bootstrap: $var=$override is not an executable file" >&2; exit 1; }
    ln -sf "$override" "$bin/$name"; linked[$name]=1; continue
  fi
  found=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd:) command -v "$name" || true)
  if [ -n "$found" ] && "$found" --version 2>&1 | head -n 1 | grep -qE "(version|Exporter) v?${upstream//./\\.}([^0-9]|$)"; then
    ln -sf "$found" "$bin/$name"; linked[$name]=1
  fi
done

# Packages still needed for the binaries not linked above.
want=$(for row in "${pins[@]}"; do
  read -r pv _path name _rest <<<"$row"; [ -z "${linked[$name]:-}" ] && echo "$pv"
done | sort -u | tr '\n' ' ')
servers() { exec "$here/dev/bootstrap-servers.sh"; }
[ -z "$want" ] && servers
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  servers
fi

# 2. Private apt state: our own sources list, lists and cache under .tools/apt.
apt_dir="$tools/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$tools/debs"
: >"$apt_dir/status"
: >"$apt_dir/sources.list"
for s in $suites; do
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main" >>"$apt_dir/sources.list"
done
apt_opts=(
  -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::State::status=$apt_dir/status" -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
)
echo "bootstrap: reading Debian package lists ($suites) into $apt_dir"
apt-get "${apt_opts[@]}" -qq update >/dev/null

# 3. Download each pinned package once and unpack it into .tools/root.
root="$tools/root"
rm -rf "$root"; mkdir -p "$root"
for pv in $want; do
  pkg=${pv%%=*}; ver=${pv#*=}
  if ! (cd "$tools/debs" && apt-get "${apt_opts[@]}" -qq download "$pkg=$ver" >/dev/null 2>&1); then
    avail=$(apt-cache "${apt_opts[@]}" madison "$pkg" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -u | tr '\n' ' ')
    echo "bootstrap: $pkg $ver is no longer in Debian $suites; available: ${avail:-none} (update the pin in dev/bootstrap.sh)" >&2
    exit 1
  fi
  deb=$(ls "$tools/debs/${pkg}_"*.deb | grep -F "_${ver//:/%3a}_" | head -1)
  dpkg -x "$deb" "$root"
done

# 4. Link the binaries under their plain names.
for row in "${pins[@]}"; do
  read -r _pkg path name _var _upstream <<<"$row"
  [ -n "${linked[$name]:-}" ] && continue
  [ -x "$root/$path" ] || { echo "bootstrap: $path not found in the unpacked package" >&2; exit 1; }
  ln -sf "$root/$path" "$bin/$name"
done

# 5. Debian's Alertmanager reads its built-in templates from the fixed path
# /usr/share/prometheus/alertmanager/. Rather than writing there, the wrapper
# runs it in a private mount namespace where the unpacked package's usr/share is
# overlaid on /usr/share (root: plain unshare; otherwise a user namespace).
# Nothing outside the repo is written, and other processes see no change.
if [ -z "${linked[alertmanager]:-}" ]; then
  rm -f "$bin/alertmanager"
  cat >"$bin/alertmanager" <<WRAP
#!/bin/sh
share='$root/usr/share'
real='$root/usr/bin/prometheus-alertmanager'
if [ "\$(id -u)" = 0 ]; then ns='--mount'; else ns='--user --map-root-user --mount'; fi
exec unshare \$ns --propagation private sh -c 'mount -t overlay overlay -o lowerdir="\$0":/usr/share /usr/share && exec "\$@"' "\$share" "\$real" "\$@"
WRAP
  chmod +x "$bin/alertmanager"
fi
echo "$want" >"$stamp"
echo "bootstrap: tools ready in $bin"
servers
