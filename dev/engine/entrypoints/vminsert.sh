#!/bin/sh
# Stand-in for vminsert (VictoriaMetrics cluster), which Debian does not package: Debian's
# vmagent on vminsert's port 8480, taking the cluster's write URLs (/insert/<tenant>/prometheus/
# api/v1/write, -enableMultitenantHandlers), applying compose's -relabelConfig to every sample
# (as vminsert does before sharding) and writing to each -storageNode's HTTP API. It replicates
# every series to every node instead of sharding them, so either node answers every query;
# nothing is buffered on disk (the container is read-only, like vminsert's; vmagent still
# wants a directory for its queue metadata: /dev/shm, the one writable place).
set -e
urls=""
relabel=""
for arg in "$@"; do
  case "$arg" in
    -storageNode=*)
      for node in $(echo "${arg#-storageNode=}" | tr ',' ' '); do
        urls="$urls -remoteWrite.url=http://${node%:*}:8482/api/v1/write"
      done ;;
    -relabelConfig=*) relabel="-remoteWrite.relabelConfig=${arg#-relabelConfig=}" ;;
  esac
done
# shellcheck disable=SC2086 # one word per flag
exec /usr/bin/vmagent -httpListenAddr=:8480 -enableMultitenantHandlers \
  -remoteWrite.disableOnDiskQueue -remoteWrite.tmpDataPath=/dev/shm/vmagent $urls $relabel
