#!/bin/sh
# Facsimile of the grafana/grafana image's /run.sh, the part compose relies on (behaviour
# recorded in tests/policy/images.yml; not its code): every GF_<SECTION>_<KEY>__FILE variable
# is read, as the container user, into GF_<SECTION>_<KEY>; then the server starts (here the
# Grafana stand-in, /usr/share/grafana/bin/grafana).
set -e
for var in $(env | sed -n 's/^\(GF_[A-Za-z0-9_]*__FILE\)=.*/\1/p'); do
  eval "file=\${$var}"
  # shellcheck disable=SC2154 # set by the eval above
  [ -r "$file" ] || { echo "run.sh: $var=$file is not readable" >&2; exit 1; }
  eval "export ${var%__FILE}=\"\$(cat \"\$file\")\""
  unset "$var"
done
exec grafana server "$@"
