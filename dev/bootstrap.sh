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
  # Run only in the engine suite's facsimile image (the native run has no Elasticsearch).
  "prometheus-elasticsearch-exporter=1.10.0-1 usr/bin/prometheus-elasticsearch-exporter elasticsearch-exporter ELASTICSEARCH_EXPORTER 1.10.0"
  "docker-compose=2.40.3-3                usr/libexec/docker/cli-plugins/docker-compose docker-compose DOCKER_COMPOSE 2.40.3"
  # Long-term store of the scale profile (single-node server) and the agents' authenticating
  # proxy. Debian builds them without version info (`-version` prints nothing), so they are
  # never picked up from PATH: tests/foundation checks the unpacked package's version instead.
  "victoria-metrics=1.145.0+ds1-2         usr/bin/victoria-metrics              victoria-metrics   VICTORIA_METRICS 1.145.0"
  "victoria-metrics=1.145.0+ds1-2         usr/bin/vmauth                        vmauth             VMAUTH          1.145.0"
  # The private Docker engine of the engine suite (dev/engine, tests/engine): sid's Docker
  # 28.5.2 and containerd 2.1.9 (the engine users run) with bookworm's runc 1.1.5 (sid's
  # needs glibc 2.38) and tini as docker-init. Linked into .tools/engine/bin, which is not on
  # the Makefile's PATH: the user's own docker CLI is never shadowed.
  "docker.io=28.5.2+dfsg4-5               usr/sbin/dockerd                      engine/dockerd     DOCKERD         28.5.2"
  "docker.io=28.5.2+dfsg4-5               usr/sbin/docker-proxy                 engine/docker-proxy DOCKER_PROXY   28.5.2"
  "docker-cli=28.5.2+dfsg4-5              usr/bin/docker                        engine/docker      DOCKER_CLI      28.5.2"
  "containerd=2.1.9+ds1-5                 usr/bin/containerd                    engine/containerd  CONTAINERD      2.1.9"
  "containerd=2.1.9+ds1-5                 usr/bin/containerd-shim-runc-v2       engine/containerd-shim-runc-v2 CONTAINERD_SHIM 2.1.9"
  "runc=1.1.5+ds1-1+deb12u1               usr/sbin/runc                         engine/runc        RUNC            1.1.5"
  "tini=0.19.0-1+b3                       usr/bin/tini-static                   engine/docker-init DOCKER_INIT     0.19.0"
  # Root filesystems of the facsimile images (dev/engine/rootfs.py): a Debian suite into a
  # tarball in seconds, with the host's apt and keyring.
  "mmdebstrap=1.3.5-7                     usr/bin/mmdebstrap                    engine/mmdebstrap  MMDEBSTRAP      1.3.5"
  "mmdebstrap=1.3.5-7                     usr/bin/mmtarfilter                   engine/mmtarfilter MMTARFILTER     1.3.5"
)
# Unpacked but not linked: what the engine's iptables needs. dockerd runs iptables inside
# each container's network namespace to send 127.0.0.11:53 to its embedded DNS server (no
# rule touches the host's own tables with --iptables=false); without it service names do not
# resolve. bookworm's build, run through the wrapper written below.
libraries=(
  "iptables=1.8.9-2" "libip4tc2=1.8.9-2" "libip6tc2=1.8.9-2" "libxtables12=1.8.9-2"
  "libnftnl11=1.2.4-2" "libmnl0=1.0.4-3" "libnetfilter-conntrack3=1.0.9-3" "libnfnetlink0=1.0.2-2"
)
suites="unstable testing bookworm"

stamp="$tools/.stamp"
mkdir -p "$bin" "$bin/engine"

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
  found=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v "^$tools/" | paste -sd:) command -v "${name##*/}" || true)
  if [ -n "$found" ] && "$found" --version 2>&1 | head -n 1 | grep -qE "(version|Exporter) v?${upstream//./\\.}([^0-9]|$)"; then
    ln -sf "$found" "$bin/$name"; linked[$name]=1
  fi
done

# Packages still needed for the binaries not linked above.
want=$( (for row in "${pins[@]}"; do
  read -r pv _path name _rest <<<"$row"; [ -z "${linked[$name]:-}" ] && echo "$pv"
done; printf '%s\n' "${libraries[@]}") | sort -u | tr '\n' ' ')
servers() { exec "$here/dev/bootstrap-servers.sh"; }
[ -z "$want" ] && servers
# The stamp records the packages and every row (a new link from an unchanged package counts).
recorded="$want | $(printf '%s\n' "${pins[@]}" | tr -s ' ' | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recorded" ]; then
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
# 6. iptables for the private engine (see `libraries` above): the legacy backend, with the
# unpacked libraries and extension modules.
for cmd in iptables ip6tables; do
  cat >"$bin/engine/$cmd" <<WRAP
#!/bin/sh
export LD_LIBRARY_PATH='$root/usr/lib/x86_64-linux-gnu' XTABLES_LIBDIR='$root/usr/lib/x86_64-linux-gnu/xtables'
exec '$root/usr/sbin/xtables-legacy-multi' $cmd "\$@"
WRAP
  chmod +x "$bin/engine/$cmd"
done
echo "$recorded" >"$stamp"
echo "bootstrap: tools ready in $bin"
servers
