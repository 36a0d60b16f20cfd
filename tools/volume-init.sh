#!/bin/sh
# The compose stack's one-shot `volume-init` job (busybox sh, root with CAP_CHOWN and
# CAP_DAC_READ_SEARCH only; see compose.yaml). Every other container waits for it.
#
#   1. copies the static busybox into the probe-tools volume (healthchecks of images
#      without an HTTP client run /probe/busybox wget);
#   2. hands the fluent-bit-storage volume to UID 65534 (Docker creates it root-owned);
#   3. stages the secrets: each consumer gets its own volume holding fresh copies of
#      just the secrets it reads, owned by the user it runs as, file mode 0400 and
#      directory mode 0500. One host file cannot satisfy every consumer: Elasticsearch's
#      entrypoint refuses a password file that is not 0400/0600 (and reads it as UID
#      1000), while Grafana (472), Jaeger (10001), Fluent Bit (65534), PostgreSQL (70)
#      ... read the same passwords as their own users; compose ignores `mode`/`uid` of
#      file secrets (they are plain bind mounts).
#
# The plan comes from the environment, one variable per consumer volume (<dir> in
# letters, digits and _ only: shells drop other names from the environment):
#   STAGE_<dir>="<uid>:<gid> <secret> [<secret>...]"
# copies $SECRETS_DIR/<secret> (a file, or every file of a directory) into
# $STAGED_DIR/<dir>/. A missing secret stops the job with one line naming it.
set -eu

SECRETS_DIR=${SECRETS_DIR:-/run/secrets}
STAGED_DIR=${STAGED_DIR:-/staged}
PROBE_DIR=${PROBE_DIR:-/probe}
BUSYBOX=${BUSYBOX:-/bin/busybox}
FLUENT_BIT_STORAGE=${FLUENT_BIT_STORAGE:-/fluent-bit-storage}
umask 077

if [ -d "$PROBE_DIR" ]; then
  # rm first: without CAP_DAC_OVERRIDE even root cannot reopen its 0555 copy.
  rm -f "$PROBE_DIR/busybox"
  cp "$BUSYBOX" "$PROBE_DIR/busybox"
  chmod 0555 "$PROBE_DIR/busybox"
fi
if [ -d "$FLUENT_BIT_STORAGE" ]; then
  chown -R 65534:65534 "$FLUENT_BIT_STORAGE"
fi

copy() { # copy <source file> <target dir> <uid:gid>
  [ -f "$1" ] || { echo "volume-init: secret $1 is missing: run make secrets" >&2; exit 1; }
  target="$2/$(basename "$1")"
  cat "$1" >"$target"
  # chmod while root still owns the copy: after chown only CAP_FOWNER could.
  chmod 0400 "$target"
  chown "$3" "$target"
}

stage() { # stage <dir> <uid:gid> <secret>...
  dir="$STAGED_DIR/$1" owner=$2
  shift 2
  [ -d "$dir" ] || { echo "volume-init: $dir is not mounted (compose.yaml)" >&2; exit 1; }
  # Take the directory back from its last owner, then start from an empty one, so a
  # secret removed from the plan or rotated on the host never lingers.
  chown 0:0 "$dir"
  chmod 0700 "$dir"
  for old in "$dir"/* "$dir"/.[!.]*; do
    if [ -e "$old" ]; then rm -rf "$old"; fi
  done
  for name in "$@"; do
    if [ -d "$SECRETS_DIR/$name" ]; then
      for file in "$SECRETS_DIR/$name"/*; do
        if [ -f "$file" ]; then copy "$file" "$dir" "$owner"; fi
      done
    else
      copy "$SECRETS_DIR/$name" "$dir" "$owner"
    fi
  done
  chmod 0500 "$dir"
  chown "$owner" "$dir"
  echo "volume-init: staged $dir for $owner: $*"
}

plans=$(env | sed -n 's/^STAGE_\([A-Za-z0-9_]*\)=/\1 /p' | sort)
[ -n "$plans" ] || { echo "volume-init: no STAGE_* variables set" >&2; exit 1; }
echo "$plans" | while read -r dir owner names; do
  # shellcheck disable=SC2086 # names is a space-separated list on purpose
  stage "$dir" "$owner" $names
done
