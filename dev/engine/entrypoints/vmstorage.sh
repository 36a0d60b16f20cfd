#!/bin/sh
# Stand-in for vmstorage (VictoriaMetrics cluster), which Debian does not package: Debian's
# single-node victoria-metrics, which stores and answers queries itself, with the storage flags
# compose passes (-storageDataPath, -retentionPeriod, -dedup.minScrapeInterval) and its HTTP API
# on vmstorage's port 8482. The cluster's own RPC ports (8400 from vminsert, 8401 from vmselect)
# are not served: the vminsert and vmselect stand-ins talk HTTP to 8482.
set -e
args=""
for arg in "$@"; do
  case "$arg" in
    -storageDataPath=*|-retentionPeriod=*|-dedup.minScrapeInterval=*) args="$args $arg" ;;
  esac
done
# shellcheck disable=SC2086 # one word per flag
exec /usr/bin/victoria-metrics -httpListenAddr=:8482 $args
