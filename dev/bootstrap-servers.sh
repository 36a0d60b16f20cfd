#!/usr/bin/env bash
# The demo's servers for the native run: PostgreSQL, Redis and RabbitMQ, linked into
# .tools/bin (called by dev/bootstrap.sh; `make bootstrap` runs both).
#
# They are C and Erlang programs, so unlike the Go tools they must be builds for this
# machine's Debian release (testing's need a newer glibc): the pins below are Debian 12
# (bookworm) packages. For each server, the first that works wins:
#   1. a path you name: POSTGRES_BIN=<dir with postgres, initdb, pg_isready>,
#      REDIS_SERVER=<redis-server>, RABBITMQ_SERVER=<rabbitmq-server script>;
#   2. one already installed at a usable version (PATH, or Debian's own locations);
#   3. Redis and RabbitMQ: the pinned packages, downloaded with a private apt state
#      (.tools/apt-bookworm) and unpacked into .tools/servers (no root, nothing
#      system-wide); PostgreSQL: as root `apt-get install` of the pinned version
#      (its libraries come from the release), otherwise one line naming the package.
# A server that cannot be had is one line on stderr: the native run then uses the
# workload's in-process stand-ins. With CI=true it is a failure instead.
#
# Idempotent and silent when warm: a stamp records what was unpacked.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tools="${TOOLS_DIR:-$here/.tools}"
bin="$tools/bin"
servers="$tools/servers"
mkdir -p "$bin"

release=bookworm
# Pinned Debian 12 versions; bump here and nowhere else.
postgres_pin="postgresql-15=15.18-0+deb12u1"
redis_pins="redis-server=5:7.0.15-1~deb12u10 redis-tools=5:7.0.15-1~deb12u10 libjemalloc2=5.3.0-1 liblzf1=3.6-3"
# (redis-server also needs libatomic1, which a minimal Debian image may lack)
redis_pins+=" libatomic1=12.2.0-14+deb12u1"
erlang_version="1:25.2.3+dfsg-1+deb12u4"
rabbitmq_pins="rabbitmq-server=3.10.8-1.1+deb12u1"
# Every Erlang application rabbitmq-server 3.10.8 depends on (its Depends line).
for app in base crypto eldap inets mnesia os-mon parsetools public-key runtime-tools ssl \
  syntax-tools tools xmerl asn1; do
  rabbitmq_pins+=" erlang-$app=$erlang_version"
done
# Oldest versions the native run works with: postgres_exporter and asyncpg need 13+ in
# practice, RabbitMQ's /metrics/detailed endpoint (per-queue series) appeared in 3.10.
min_postgres=13 min_redis=6.2 min_rabbitmq=3.10

ci=false
case "${CI:-}" in true|1|yes) ci=true ;; esac
missing=()

version_ge() { # version_ge HAVE WANT: true when HAVE >= WANT (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

link() { ln -sfn "$1" "$bin/$2"; }

on_path() { # on_path NAME: NAME found on PATH, not counting our own links in .tools/bin
  PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd:) command -v "$1" || true
}

# --- PostgreSQL ---------------------------------------------------------------------------
postgres_dir() { # a directory with postgres, initdb and pg_isready at a usable version
  local dir found
  if [ -n "${POSTGRES_BIN:-}" ]; then
    [ -x "$POSTGRES_BIN/postgres" ] || { echo "bootstrap: POSTGRES_BIN=$POSTGRES_BIN has no postgres executable" >&2; exit 1; }
    echo "$POSTGRES_BIN"; return
  fi
  found=$(on_path postgres)
  for dir in ${found:+"$(dirname "$(readlink -f "$found")")"} $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_isready" ] || continue
    local v; v=$("$dir/postgres" --version 2>/dev/null | awk '{print $3}')
    version_ge "${v:-0}" "$min_postgres" && { echo "$dir"; return; }
  done
}

# --- Redis and RabbitMQ: installed, or the pinned packages unpacked privately ---------------
redis_usable() { # path of a usable redis-server, if any
  local found=${REDIS_SERVER:-}
  if [ -n "$found" ]; then
    [ -x "$found" ] || { echo "bootstrap: REDIS_SERVER=$found is not an executable file" >&2; exit 1; }
    echo "$found"; return
  fi
  found=$(on_path redis-server)
  [ -n "$found" ] || return 0
  local v; v=$("$found" --version 2>/dev/null | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
  if version_ge "${v:-0}" "$min_redis"; then echo "$found"; fi
}

rabbitmq_usable() { # path of a usable rabbitmq-server script (not Debian's su wrapper)
  local found=${RABBITMQ_SERVER:-}
  if [ -n "$found" ]; then
    [ -x "$found" ] || { echo "bootstrap: RABBITMQ_SERVER=$found is not an executable file" >&2; exit 1; }
    echo "$found"; return
  fi
  found=$(on_path rabbitmq-server)
  [ -n "$found" ] || return 0
  found=$(readlink -f "$found")
  # /usr/sbin/rabbitmq-server is Debian's wrapper that switches to the rabbitmq user: use the
  # real script next to it, which runs as the caller with the environment we give it.
  [ "$(basename "$found")" = rabbitmq-script-wrapper ] && found=$(readlink -f "$(dirname "$found")/rabbitmq-server")
  local v; v=$(printf '%s' "$found" | sed -n 's/.*rabbitmq_server-\([0-9.]*\)\/.*/\1/p')
  if version_ge "${v:-0}" "$min_rabbitmq" && command -v erl >/dev/null; then echo "$found"; fi
}

# Overrides are checked first, so a bad one fails before anything is installed.
redis=$(redis_usable)
rabbitmq=$(rabbitmq_usable)
dir=$(postgres_dir)
if [ -z "$dir" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bootstrap: installing ${postgres_pin%%=*} ${postgres_pin#*=} with apt-get (root; services are not started)"
  # policy-rc.d keeps the package from starting its own cluster on 5432 during the install.
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get -qq update >/dev/null
  if ! DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "$postgres_pin" >/dev/null; then
    avail=$(apt-cache madison "${postgres_pin%%=*}" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | tr '\n' ' ')
    echo "bootstrap: ${postgres_pin%%=*} ${postgres_pin#*=} cannot be installed; available: ${avail:-none} (update the pin in dev/bootstrap-servers.sh)" >&2
    exit 1
  fi
  dir=$(postgres_dir)
fi
if [ -n "$dir" ]; then
  for prog in postgres initdb pg_isready; do link "$dir/$prog" "$prog"; done
else
  rm -f "$bin/postgres" "$bin/initdb" "$bin/pg_isready"
  missing+=("PostgreSQL >= $min_postgres (as root: apt-get install ${postgres_pin%%=*}; or POSTGRES_BIN=<dir>)")
fi

want=""
[ -z "$redis" ] && want+=" $redis_pins"
[ -z "$rabbitmq" ] && want+=" $rabbitmq_pins"
want=${want# }
stamp="$servers/.stamp"

if [ -n "$want" ] && ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  . /etc/os-release 2>/dev/null || true
  if [ "${VERSION_CODENAME:-}" != "$release" ]; then
    missing+=("Redis/RabbitMQ: the pinned packages are for Debian 12 ($release), this is ${PRETTY_NAME:-unknown}; name your own with REDIS_SERVER= / RABBITMQ_SERVER=")
  else
    apt_dir="$tools/apt-$release"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$tools/debs"
    : >"$apt_dir/status"
    key="signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"
    printf 'deb [%s] http://deb.debian.org/debian %s main\n' "$key" "$release" "$key" "$release-updates" >"$apt_dir/sources.list"
    printf 'deb [%s] http://deb.debian.org/debian-security %s-security main\n' "$key" "$release" >>"$apt_dir/sources.list"
    apt_opts=(
      -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
      -o "Dir::State::status=$apt_dir/status" -o "Dir::Cache=$apt_dir/cache"
      -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
      -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
    )
    echo "bootstrap: reading Debian package lists ($release) into $apt_dir"
    apt-get "${apt_opts[@]}" -qq update >/dev/null
    rm -rf "$servers"; mkdir -p "$servers"
    # One apt-get for all (each run loads the package cache); if it fails, name the pin.
    # shellcheck disable=SC2086
    if ! (cd "$tools/debs" && apt-get "${apt_opts[@]}" -qq download $want >/dev/null 2>&1); then
      for pv in $want; do
        pkg=${pv%%=*}; ver=${pv#*=}
        if ! apt-cache "${apt_opts[@]}" show "$pkg=$ver" >/dev/null 2>&1; then
          avail=$(apt-cache "${apt_opts[@]}" madison "$pkg" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -u | tr '\n' ' ')
          echo "bootstrap: $pkg $ver is no longer in Debian $release; available: ${avail:-none} (update the pin in dev/bootstrap-servers.sh)" >&2
          exit 1
        fi
      done
      echo "bootstrap: downloading $want failed" >&2
      exit 1
    fi
    for pv in $want; do
      pkg=${pv%%=*}; ver=${pv#*=}
      deb=$(ls "$tools/debs/${pkg}_"*.deb | grep -F "_${ver//:/%3a}_" | head -1)
      dpkg -x "$deb" "$servers"
    done
    # Debian's erl script hard-codes ROOTDIR=/usr/lib/erlang (upstream derives it from its
    # own location); point the unpacked copy at itself.
    if [ -d "$servers/usr/lib/erlang" ]; then
      sed -i "s#ROOTDIR=/usr/lib/erlang\$#ROOTDIR=$servers/usr/lib/erlang#" \
        "$servers"/usr/lib/erlang/bin/erl "$servers"/usr/lib/erlang/erts-*/bin/erl
    fi
    echo "$want" >"$stamp"
    echo "bootstrap: servers unpacked into $servers"
  fi
fi

# Links (and, for the unpacked Redis, wrappers that find its private libraries).
if [ -n "$redis" ]; then
  link "$redis" redis-server
  cli=$(dirname "$redis")/redis-cli
  if [ -x "$cli" ]; then link "$cli" redis-cli; else rm -f "$bin/redis-cli"; fi
elif [ -x "$servers/usr/bin/redis-check-rdb" ]; then
  for prog in redis-server redis-cli; do
    rm -f "$bin/$prog"
    printf '#!/bin/sh\n# bookworm %s unpacked by dev/bootstrap-servers.sh; its libraries are beside it.\nLD_LIBRARY_PATH="%s/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/usr/bin/%s" "$@"\n' \
      "$prog" "$servers" "$servers" "$prog" >"$bin/$prog"
    chmod +x "$bin/$prog"
  done
else
  rm -f "$bin/redis-server" "$bin/redis-cli"
  missing+=("Redis >= $min_redis")
fi

if [ -n "$rabbitmq" ]; then
  link "$rabbitmq" rabbitmq-server
  erl=$(command -v erl)
  erl_root=$(dirname "$(dirname "$(readlink -f "$erl")")")
elif [ -x "$servers/usr/lib/rabbitmq/bin/rabbitmq-server" ]; then
  link "$servers/usr/lib/rabbitmq/bin/rabbitmq-server" rabbitmq-server
  erl_root="$servers/usr/lib/erlang"
else
  rm -f "$bin/rabbitmq-server" "$bin/erl" "$bin/epmd"
  missing+=("RabbitMQ >= $min_rabbitmq")
fi
if [ -n "${erl_root:-}" ]; then
  # rabbitmq-server runs `erl` from PATH; the native run starts its own epmd.
  link "$erl_root/bin/erl" erl
  link "$(ls "$erl_root"/erts-*/bin/epmd | head -n 1)" epmd
fi

if [ ${#missing[@]} -gt 0 ]; then
  joined=$(printf '%s; ' "${missing[@]}")
  if $ci; then
    echo "bootstrap: CI=true and missing: ${joined%; }" >&2
    exit 1
  fi
  echo "bootstrap: not available, the native run will simulate them: ${joined%; }" >&2
fi
exit 0
