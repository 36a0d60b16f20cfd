#!/bin/bash
# Facsimile of the rabbitmq:4.3-management-alpine image's docker-entrypoint.sh (behaviour
# recorded in tests/policy/images.yml; not its code):
#   * the deprecated variables (RABBITMQ_DEFAULT_PASS_FILE and friends, RABBITMQ_SSL_*,
#     RABBITMQ_MANAGEMENT_SSL_*, RABBITMQ_VM_MEMORY_HIGH_WATERMARK) are refused;
#   * long node names when the host name is a fully qualified one;
#   * as root, a rabbitmq* command runs as the rabbitmq user; as that user nothing changes.
set -euo pipefail
deprecated=()
for var in RABBITMQ_DEFAULT_PASS_FILE RABBITMQ_DEFAULT_USER_FILE RABBITMQ_VM_MEMORY_HIGH_WATERMARK; do
  [ -n "${!var:-}" ] && deprecated+=("$var")
done
for var in $(compgen -e | grep -E '^RABBITMQ_(MANAGEMENT_)?SSL_' || true); do deprecated+=("$var"); done
if [ ${#deprecated[@]} -gt 0 ]; then
  echo >&2 "error: RabbitMQ 3.9+ no longer reads ${deprecated[*]}: use a file in /etc/rabbitmq/conf.d"
  exit 1
fi
if [ "$(hostname)" != "$(hostname -s)" ]; then export RABBITMQ_USE_LONGNAME=true; fi
if [ "$(id -u)" = 0 ] && [[ "${1:-}" == rabbitmq* ]]; then
  exec setpriv --reuid rabbitmq --regid rabbitmq --init-groups -- "$@"
fi
exec "$@"
