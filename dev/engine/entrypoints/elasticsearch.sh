#!/bin/bash
# Facsimile of the Elasticsearch image's docker-entrypoint.sh, the parts compose relies on
# (behaviour recorded in tests/policy/images.yml from elastic/elasticsearch
# distribution/src/bin/elasticsearch-env-from-file; not its code): each <NAME>_FILE variable is
# read into <NAME>, as the container user, and refused unless the file's mode is 400 or 600 (the
# check that stopped the first round's Elasticsearch); then the server starts, here the
# Elasticsearch stand-in with the dotted settings still in its environment.
set -euo pipefail
while IFS='=' read -r var file; do
  [[ "$var" == *_FILE ]] || continue
  if [ ! -r "$file" ]; then
    echo "ERROR: File $file from $var does not exist" >&2; exit 1
  fi
  mode=$(stat -c '%a' "$file")
  if [ "$mode" != 400 ] && [ "$mode" != 600 ]; then
    echo "ERROR: File $file from $var must have file permissions 400 or 600, while actual is: $mode" >&2
    exit 1
  fi
  export "${var%_FILE}=$(cat "$file")"
  unset "$var"
done < <(env | grep -E '^[A-Z_]+_FILE=' || true)
if [ "${1:-eswrapper}" = eswrapper ] || [ "${1:0:1}" = - ]; then
  [ "${1:-}" = eswrapper ] && shift
  exec /standin/elasticsearch.py "$@"
fi
exec "$@"
