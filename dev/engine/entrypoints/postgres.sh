#!/bin/bash
# Facsimile of the postgres:18.6-alpine image's docker-entrypoint.sh, written from the behaviour
# tests/policy/images.yml records (docker-library/postgres 18/alpine3.24; not its code):
#   * POSTGRES_PASSWORD / _USER / _DB / _INITDB_ARGS, or their *_FILE variants (read as the
#     running user, no mode check; both set is an error);
#   * as a non-root user nothing is chowned: PGDATA and the socket directory are created if
#     the user may (failures ignored, as upstream);
#   * 18+: PGDATA defaults to /var/lib/postgresql/18/docker; an empty PGDATA next to an older
#     layout (a PG_VERSION under /var/lib/postgresql, .../data or .../*/docker) or an unused
#     mount at /var/lib/postgresql/data is refused with an explanation, exit 1;
#   * first start (no PG_VERSION): initdb with the user and password, `host all all all
#     scram-sha-256` appended to pg_hba.conf, listen_addresses='*', POSTGRES_DB created by a
#     temporary server that listens on no TCP address, then the real server is exec'd.
set -Eeo pipefail

file_env() { # file_env VAR [DEFAULT]
  local var=$1 file_var="${1}_FILE" def=${2:-} val
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    echo >&2 "error: both $var and $file_var are set (but are exclusive)"; exit 1
  fi
  val=$def
  if [ -n "${!var:-}" ]; then val=${!var}; elif [ -n "${!file_var:-}" ]; then val=$(< "${!file_var}"); fi
  export "$var"="$val"; unset "$file_var"
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
mkdir -p "$PGDATA" 2>/dev/null || :; chmod 00700 "$PGDATA" 2>/dev/null || :
mkdir -p /var/run/postgresql 2>/dev/null || :; chmod 03775 /var/run/postgresql 2>/dev/null || :

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ "$PGDATA" = "/var/lib/postgresql/$PG_MAJOR/docker" ]; then
    old=()
    for d in /var/lib/postgresql /var/lib/postgresql/data /var/lib/postgresql/*/docker; do
      [ -s "$d/PG_VERSION" ] && old+=("$d")
    done
    if [ ${#old[@]} -eq 0 ] && mountpoint -q /var/lib/postgresql/data 2>/dev/null; then
      old=(/var/lib/postgresql/data)
    fi
    if [ ${#old[@]} -gt 0 ]; then
      echo >&2 "Error: in 18+, these images keep the data in /var/lib/postgresql/$PG_MAJOR/docker;"
      echo >&2 "  found an older layout (or an unused mount) at: ${old[*]}."
      echo >&2 "  Mount the volume at /var/lib/postgresql instead, and upgrade old data with pg_upgrade."
      exit 1
    fi
  fi
  if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
    echo >&2 "Error: Database is uninitialized and superuser password is not specified."
    echo >&2 "  Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust."
    exit 1
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS >/dev/null
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  PGUSER=$POSTGRES_USER PGPASSWORD=$POSTGRES_PASSWORD pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    PGPASSWORD=$POSTGRES_PASSWORD psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password \
      --dbname postgres -q -c "CREATE DATABASE \"$POSTGRES_DB\";"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) . "$f" ;;
      *.sql) PGPASSWORD=$POSTGRES_PASSWORD psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -q -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi
unset POSTGRES_PASSWORD
exec "$@"
