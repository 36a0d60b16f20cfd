#!/bin/sh
# Stand-in for vmselect (VictoriaMetrics cluster), which Debian does not package: Debian's
# vmauth on vmselect's port 8481, sending the cluster's query URLs
# (/select/<tenant>/prometheus/api/v1/...) to the first -storageNode that answers, with the
# tenant prefix dropped (the vminsert stand-in writes every series to every node). Its own
# /health answers the compose healthcheck.
set -e
nodes=""
for arg in "$@"; do
  case "$arg" in
    -storageNode=*)
      for node in $(echo "${arg#-storageNode=}" | tr ',' ' '); do
        nodes="$nodes \"http://${node%:*}:8482/\","
      done ;;
  esac
done
cat >/tmp/vmselect-standin.yml <<CONF
unauthorized_user:
  url_map:
    - src_paths: ["/select/[0-9]+/prometheus/.*"]
      url_prefix: [${nodes%,} ]
      load_balancing_policy: first_available
      drop_src_path_prefix_parts: 3
CONF
exec /usr/bin/vmauth -httpListenAddr=:8481 -auth.config=/tmp/vmselect-standin.yml
