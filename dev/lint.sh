#!/usr/bin/env bash
# Static checks of every config the bundle ships, with the real tools:
# docker-compose, promtool, amtool, yamllint, ruff, a JSON parse, and zizmor +
# check-jsonschema for the CI workflow.
# One line per check; a failed check is followed by every error line of its tool (and
# nothing else: promtool's "Checking"/"SUCCESS" lines are dropped), with the repository's
# own paths in place of the scratch copies the checks run on. Exits non-zero if any
# failed. Run through `make lint` (which puts .tools/bin and .venv/bin first on PATH).
#
#   dev/lint.sh [GROUP...]   only these groups: compose prometheus victoriametrics rules
#                            alertmanager unread yamllint json ruff workflows
set -uo pipefail
cd "$(dirname "$0")/.."

failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
groups=" $* "

want() { # want GROUP: true when no group was named or this one was
  [ "$groups" = "  " ] || [[ "$groups" == *" $1 "* ]]
}

# A tool's output on failure: only the error lines, with real paths. The checks run on
# symlinks in $work (resolved to the repository file) or on the copy in $work/am.
errors() {
  # promtool: "Checking FILE", "  SUCCESS: ...", "  FAILED:"; amtool: "Checking 'FILE'  SUCCESS",
  # "Found:", " - global config", " - 5 receivers" (its failures, "Checking 'FILE'  FAILED:
  # why", are kept).
  grep -Ev '^[[:space:]]*(SUCCESS\b.*|FAILED:[[:space:]]*|Checking [^[:space:]]+([[:space:]]+SUCCESS)?[[:space:]]*|Found:|- (global config|route|[0-9]+ [a-z ]+)|)$' \
    | sed -E 's/^[[:space:]]*FAILED:[[:space:]]+//' \
    | WORK="$work" REPO="$PWD" python3 -c '
import os, re, sys
work, repo = os.environ["WORK"], os.environ["REPO"]
copies = [(work + "/am/secrets/", "alertmanager/secrets.example/"), (work + "/am/", "alertmanager/")]
def real(m):
    path = m.group(0)
    for tmp, rel in copies:
        if path.startswith(tmp):
            return rel + path[len(tmp):]
    resolved = os.path.realpath(path)
    return os.path.relpath(resolved, repo) if resolved.startswith(repo + "/") else path
for line in sys.stdin:
    sys.stdout.write(re.sub(re.escape(work) + r"/[^\s:\"]+", real, line))' \
    | awk '!seen[$0]++'  # promtool prints some errors twice (log and report)
}

check() { # check "name" command...
  local name=$1; shift
  if out=$("$@" 2>&1); then
    printf 'ok    %s\n' "$name"
  else
    printf 'FAIL  %s\n' "$name"
    shown=$(printf '%s\n' "$out" | errors)
    # A tool that failed without an error line of its own: show what it printed.
    [ -n "$shown" ] || shown=$out
    printf '%s\n' "$shown" | sed 's/^/      /'
    failed=1
  fi
}

# Compose: the stack, the demo profile, the staging and scale overlays, and the remote
# host's agent profile, fully offline. Secrets are files the stack reads at run time;
# config only needs the paths.
want compose && for files in "compose.yaml" "compose.yaml compose.staging.yaml" "compose.yaml compose.scale.yaml" \
    "compose.agent.yaml"; do
  args=(); for f in $files; do args+=(-f "$f"); done
  check "docker-compose config ($files)" docker-compose "${args[@]}" --profile demo config -q
done

# Prometheus: each config against each inventory it runs with, laid out as compose and
# the native run lay it out (scrape-configs.yml, rules/ and inventory/ next to the
# config; an environment's scale/ or remote/ files linked over its own).
configs=0
promcheck() { # promcheck CONFIG NAME INVENTORY-DIR... [-- promtool flags]
  local config=$1 name=$2; shift 2
  # A scratch directory without spaces: error lines name paths in it (mapped back by errors).
  local dir="$work/config-$((++configs))" flags=()
  mkdir -p "$dir/inventory"
  ln -s "$PWD/prometheus/$config" "$dir/$config"
  ln -s "$PWD/prometheus/scrape-configs.yml" "$dir/scrape-configs.yml"
  ln -s "$PWD/prometheus/rules" "$dir/rules"
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; flags=("$@"); break; fi
    for f in "$1"/*.yml; do ln -sf "$PWD/$f" "$dir/inventory/"; done
    shift
  done
  check "promtool check config ($name)" promtool check config "${flags[@]}" "$dir/$config"
}
want prometheus && for env in compose native staging; do
  promcheck prometheus.yml "prometheus.yml, $env inventory" "prometheus/targets/$env"
done
want prometheus && for env in compose native; do
  promcheck prometheus-ha.yml "prometheus-ha.yml, $env scale inventory" \
    "prometheus/targets/$env" "prometheus/targets/$env/scale"
done
if want prometheus; then
  promcheck agent.yml "agent.yml, remote inventory" prometheus/targets/remote -- --agent
  promcheck agent.yml "agent.yml, native remote inventory" prometheus/targets/native/remote -- --agent
fi

# VictoriaMetrics (the scale profile's store): the real binaries check their configs.
if want victoriametrics; then
  check "victoria-metrics -dryRun (victoriametrics/relabel.yml)" \
    victoria-metrics -dryRun -relabelConfig=victoriametrics/relabel.yml
  check "vmauth -dryRun (victoriametrics/vmauth.yml)" env AGENT_REMOTE_WRITE_PASSWORD=lint \
    STORE_WRITE_URL=http://vminsert:8480/insert/0/prometheus/ \
    vmauth -dryRun -auth.config=victoriametrics/vmauth.yml
fi
want rules && check "promtool check rules --lint=all --lint-fatal" \
  promtool check rules --lint=all --lint-fatal prometheus/rules/*.yml

# Alertmanager reads its secrets from files next to its config: check with the examples.
if want alertmanager; then
  mkdir -p "$work/am"
  cp -r alertmanager/. "$work/am/"
  [ -d alertmanager/secrets.example ] && cp -r alertmanager/secrets.example "$work/am/secrets"
  # Its *_file secrets resolve against the working directory: check from there.
  check "amtool check-config" sh -c 'cd "$1" && amtool check-config alertmanager.yml' sh "$work/am"
fi

# A file in a folder that Prometheus, Alertmanager or Grafana reads by glob, which that glob
# does not match (prometheus/rules/x.yaml beside rule_files' rules/*.yml), is never loaded.
want unread && check "every file in a config folder is read (rule_files, file_sd, templates, provisioning)" \
  python3 -m dev.unread

want yamllint && check "yamllint" yamllint --strict .
want json && check "JSON files parse" python3 -c '
import json, pathlib, sys
bad = []
for p in sorted(pathlib.Path(".").glob("**/*.json")):
    if any(part in {".venv", ".tools", ".run", ".engine", "node_modules"} for part in p.parts):
        continue
    try:
        json.loads(p.read_text())
    except ValueError as e:
        bad.append(f"{p}: {e}")
print("\n".join(bad)); sys.exit(1 if bad else 0)'
want ruff && check "ruff" ruff check --quiet .

# The repository's own CI (.github/workflows/): zizmor's security audit (offline; no
# finding allowed) and the GitHub-workflow schema that check-jsonschema ships.
if want workflows; then
  check "zizmor (.github/workflows)" zizmor --offline --no-progress .github/workflows/
  check "check-jsonschema github-workflows" \
    check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
fi

exit $failed
