#!/bin/sh
# Facsimile of the redis:8.2.1-alpine image's docker-entrypoint.sh (behaviour recorded in
# tests/policy/images.yml; not its code):
#   * a first argument that is an option or a .conf file means `redis-server ...`;
#   * the image builds Redis with protected mode off by default, Debian's build keeps it on:
#     `--protected-mode no` is added unless the command sets it (a later option wins over a
#     config file, as it does in Redis);
#   * as root with CAP_SETUID it drops to the redis user; as `user: redis` (compose) nothing
#     is changed; the umask becomes 0077 when it is the default 0022.
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
  case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac
  [ "$(umask)" = 0022 ] && umask 0077
  if [ "$(id -u)" = 0 ] && [ -z "${SKIP_DROP_PRIVS:-}" ]; then
    exec setpriv --reuid redis --regid redis --clear-groups -- "$@"
  fi
fi
exec "$@"
