#!/bin/sh
# Elasticsearch setup for the Apollonia bundle: ILM policies, the log index template, and the
# traces retention policy on every Jaeger index.
#
# Idempotent: every call is a PUT of the full desired state, so running it again (every
# `docker compose up`, or by hand) converges to the same result. POSIX sh + curl + sed only,
# no temporary files: it runs in the Elasticsearch image (bash, curl) with a read-only root
# filesystem, or in the small curlimages/curl image (busybox sh).
#
# Environment (defaults in brackets):
#   ES_URL                 [http://elasticsearch:9200]  plain HTTP inside the compose network
#                          (ELASTICSEARCH_URL is accepted too)
#   ES_USER                [elastic]
#   ES_PASSWORD_FILE       [/run/secrets/elasticsearch_password]  (or ELASTICSEARCH_PASSWORD_FILE)
#   LOGS_RETENTION_DAYS    [7]   apollonia-* log indices are deleted this many days after creation
#   TRACES_RETENTION_DAYS  [7]   the same for Jaeger's <prefix>-jaeger-* indices
#   TRACES_INDEX_PREFIX    [tracing]  must equal indices.index_prefix in jaeger/config.yaml
#   ES_WAIT_SECONDS        [180] how long to wait for the cluster to turn yellow
#   ES_RETRY_SECONDS       [3]   pause between two readiness probes, and between two tries of a PUT
#   ES_PUT_ATTEMPTS        [5]   tries of each PUT that meets a connection error or an HTTP 5xx
#                          (Elasticsearch restarting, a shard not yet active); a 4xx fails at once
#   ES_SETUP_DIR           [directory of this script]  holds the JSON files
#   ES_SETUP_REPEAT_SECONDS [unset]  unset: run once and exit 0 (compose one-shot service);
#                          N: keep running and re-apply every N seconds (the trace-retention
#                          service: Jaeger creates a new trace index every day)
#   ES_SETUP_HEARTBEAT_FILE [unset]  after each successful round, the time (epoch seconds) is
#                          written here; `setup.sh --healthcheck` exits 0 while it is younger
#                          than two rounds plus the cluster wait (the service's healthcheck)
set -eu

if [ "${1:-}" = --healthcheck ]; then
    # Only what the healthcheck needs: no password, no cluster call.
    file=${ES_SETUP_HEARTBEAT_FILE:?ES_SETUP_HEARTBEAT_FILE is not set}
    last=$(cat "$file" 2>/dev/null) || { echo "no successful round yet ($file missing)"; exit 1; }
    age=$(( $(date +%s) - last ))
    limit=$(( 2 * ${ES_SETUP_REPEAT_SECONDS:-86400} + ${ES_WAIT_SECONDS:-180} ))
    [ "$age" -le "$limit" ] || { echo "last successful round ${age}s ago (limit ${limit}s)"; exit 1; }
    echo "last successful round ${age}s ago"
    exit 0
fi

ES_URL=${ES_URL:-${ELASTICSEARCH_URL:-http://elasticsearch:9200}}
ES_USER=${ES_USER:-elastic}
ES_PASSWORD_FILE=${ES_PASSWORD_FILE:-${ELASTICSEARCH_PASSWORD_FILE:-/run/secrets/elasticsearch_password}}
LOGS_RETENTION_DAYS=${LOGS_RETENTION_DAYS:-7}
TRACES_RETENTION_DAYS=${TRACES_RETENTION_DAYS:-7}
TRACES_INDEX_PREFIX=${TRACES_INDEX_PREFIX:-tracing}
ES_WAIT_SECONDS=${ES_WAIT_SECONDS:-180}
ES_RETRY_SECONDS=${ES_RETRY_SECONDS:-3}
ES_PUT_ATTEMPTS=${ES_PUT_ATTEMPTS:-5}
ES_SETUP_DIR=${ES_SETUP_DIR:-$(dirname "$0")}
ES_SETUP_REPEAT_SECONDS=${ES_SETUP_REPEAT_SECONDS:-}
ES_SETUP_HEARTBEAT_FILE=${ES_SETUP_HEARTBEAT_FILE:-}

log() { printf 'elasticsearch-setup: %s\n' "$*"; }
die() { printf 'elasticsearch-setup: error: %s\n' "$*" >&2; exit 1; }

positive_int() {
    case $2 in
        '' | *[!0-9]* | 0*) die "$1 must be a positive whole number, got '$2'" ;;
    esac
}
positive_int LOGS_RETENTION_DAYS "$LOGS_RETENTION_DAYS"
positive_int TRACES_RETENTION_DAYS "$TRACES_RETENTION_DAYS"
positive_int ES_WAIT_SECONDS "$ES_WAIT_SECONDS"
positive_int ES_RETRY_SECONDS "$ES_RETRY_SECONDS"
positive_int ES_PUT_ATTEMPTS "$ES_PUT_ATTEMPTS"
[ -z "$ES_SETUP_REPEAT_SECONDS" ] || positive_int ES_SETUP_REPEAT_SECONDS "$ES_SETUP_REPEAT_SECONDS"
case $TRACES_INDEX_PREFIX in
    '' | *[!a-z0-9_-]*) die "TRACES_INDEX_PREFIX must be lower-case letters, digits, - or _, got '$TRACES_INDEX_PREFIX'" ;;
esac

for f in index-template.json ilm-logs.json ilm-traces.json; do
    [ -r "$ES_SETUP_DIR/$f" ] || die "$ES_SETUP_DIR/$f: file missing or unreadable"
done
[ -r "$ES_PASSWORD_FILE" ] || die "$ES_PASSWORD_FILE: password file missing or unreadable (run 'make secrets')"
password=$(cat "$ES_PASSWORD_FILE")
[ -n "$password" ] || die "$ES_PASSWORD_FILE: password file is empty"

# The credentials reach curl on its stdin as a config line (-K -), printed by the shell's
# builtin printf: never on a command line (visible in ps) and never in a file, so the script
# also runs on a read-only root filesystem. Backslashes and double quotes are escaped for
# curl's quoted-string syntax.
credentials=$(printf '%s' "$ES_USER:$password" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
unset password
auth() { printf 'user = "%s"\n' "$credentials"; }

# es METHOD PATH [BODY] -> $status (HTTP code; 000 when unreachable) and $body
es() {
    if [ $# -ge 3 ]; then
        response=$(auth | curl -sS -K - -w '\n%{http_code}' --max-time 30 -X "$1" \
            -H 'Content-Type: application/json' --data-binary "$3" "$ES_URL$2" 2>&1) || :
    else
        response=$(auth | curl -sS -K - -w '\n%{http_code}' --max-time 30 -X "$1" \
            "$ES_URL$2" 2>&1) || :
    fi
    status=${response##*"
"}
    body=${response%"
"*}
    case $status in
        [0-9][0-9][0-9]) ;;
        *) status=000 ;;
    esac
}

# put PATH BODY WHAT: a PUT that must answer 200. A connection error (000) or a 5xx is
# transient (Elasticsearch restarting, a shard relocating): tried ES_PUT_ATTEMPTS times in all,
# ES_RETRY_SECONDS apart. Anything else (a 4xx: bad body, bad credentials) fails at once.
put() {
    attempt=1
    while :; do
        es PUT "$1" "$2"
        case $status in
            200) break ;;
            000 | 5[0-9][0-9]) [ "$attempt" -lt "$ES_PUT_ATTEMPTS" ] || break ;;
            *) break ;;
        esac
        log "$3: HTTP $status, try $attempt of $ES_PUT_ATTEMPTS failed; again in ${ES_RETRY_SECONDS}s"
        attempt=$((attempt + 1))
        sleep "$ES_RETRY_SECONDS"
    done
    [ "$status" = 200 ] || die "PUT $1 ($3) answered HTTP $status after $attempt tries: $(printf '%s' "$body" | head -c 500 | tr '\n' ' ')"
    log "$3: ok"
}

# An ILM policy file with its delete phase's min_age set to N days.
policy_with_days() {
    policy=$(sed -e "s/\"min_age\": \"7d\"/\"min_age\": \"${2}d\"/" "$ES_SETUP_DIR/$1")
    case $policy in
        *"\"min_age\": \"${2}d\""*) ;;
        *) die "$ES_SETUP_DIR/$1: no delete phase with \"min_age\": \"7d\" to rewrite" ;;
    esac
}

setup_once() {
    log "waiting up to ${ES_WAIT_SECONDS}s for $ES_URL to be at least yellow"
    deadline=$(( $(date +%s) + ES_WAIT_SECONDS ))
    while :; do
        es GET '/_cluster/health?wait_for_status=yellow&timeout=5s'
        case $status in
            200) break ;;
            401) die "Elasticsearch rejected user '$ES_USER' (HTTP 401): does $ES_PASSWORD_FILE hold the password Elasticsearch was started with?" ;;
            403) die "user '$ES_USER' may not manage the cluster (HTTP 403)" ;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] || die "Elasticsearch at $ES_URL not ready after ${ES_WAIT_SECONDS}s (last HTTP $status: $(printf '%s' "$body" | head -c 200 | tr '\n' ' '))"
        sleep "$ES_RETRY_SECONDS"
    done
    log "cluster reachable"

    policy_with_days ilm-logs.json "$LOGS_RETENTION_DAYS"
    put /_ilm/policy/apollonia-logs "$policy" "ILM policy apollonia-logs (delete after ${LOGS_RETENTION_DAYS}d)"
    policy_with_days ilm-traces.json "$TRACES_RETENTION_DAYS"
    put /_ilm/policy/apollonia-traces "$policy" "ILM policy apollonia-traces (delete after ${TRACES_RETENTION_DAYS}d)"
    put /_index_template/apollonia-logs "$(cat "$ES_SETUP_DIR/index-template.json")" "index template apollonia-logs for apollonia-*"

    # Jaeger creates its own index templates, and a second template cannot add a setting to
    # them (Elasticsearch applies one composable template per index), so the traces policy is
    # attached to the Jaeger indices that exist now. Jaeger creates a new index every day:
    # the trace-retention service runs this every ES_SETUP_REPEAT_SECONDS, so each gets the
    # policy within that time. ILM counts the age from the index's creation, so the index is
    # still deleted TRACES_RETENTION_DAYS after it was created.
    put "/${TRACES_INDEX_PREFIX}-jaeger-*/_settings?allow_no_indices=true&expand_wildcards=open" \
        '{"index": {"lifecycle": {"name": "apollonia-traces"}}}' "policy apollonia-traces on existing ${TRACES_INDEX_PREFIX}-jaeger-* indices"

    es GET /_index_template/apollonia-logs
    [ "$status" = 200 ] || die "index template apollonia-logs not readable after PUT (HTTP $status)"
    [ -z "$ES_SETUP_HEARTBEAT_FILE" ] || date +%s > "$ES_SETUP_HEARTBEAT_FILE" \
        || die "$ES_SETUP_HEARTBEAT_FILE: cannot write the heartbeat"
    log "done"
}

if [ -z "$ES_SETUP_REPEAT_SECONDS" ]; then
    setup_once
    exit 0
fi
# Long-running mode (the trace-retention service): re-apply every N seconds, so each new
# Jaeger index gets the traces policy; a failed round (Elasticsearch restarting) is retried
# next round, and a run of failed rounds turns the service unhealthy (--healthcheck).
while :; do
    ( setup_once ) || log "round failed; next try in ${ES_SETUP_REPEAT_SECONDS}s"
    sleep "$ES_SETUP_REPEAT_SECONDS"
done
