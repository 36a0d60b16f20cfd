#!/usr/bin/env bash
# Static checks of every config the bundle ships, with the real tools:
# docker-compose, promtool, amtool, yamllint, ruff, a JSON parse, and zizmor +
# check-jsonschema for the CI workflow.
# One line per check; exits non-zero if any failed. Run through `make lint`
# (which puts .tools/bin and .venv/bin first on PATH).
set -uo pipefail
cd "$(dirname "$0")/.."

failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() { # check "name" command...
  local name=$1; shift
  if out=$("$@" 2>&1); then
    printf 'ok    %s\n' "$name"
  else
    printf 'FAIL  %s\n' "$name"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/      /'
    failed=1
  fi
}

# Compose: the stack, the demo profile, the staging and scale overlays, and the remote
# host's agent profile, fully offline. Secrets are files the stack reads at run time;
# config only needs the paths.
for files in "compose.yaml" "compose.yaml compose.staging.yaml" "compose.yaml compose.scale.yaml" \
    "compose.agent.yaml"; do
  args=(); for f in $files; do args+=(-f "$f"); done
  check "docker-compose config ($files)" docker-compose "${args[@]}" --profile demo config -q
done

# Prometheus: each config against each inventory it runs with, laid out as compose and
# the native run lay it out (scrape-configs.yml, rules/ and inventory/ next to the
# config; an environment's scale/ or remote/ files linked over its own).
promcheck() { # promcheck CONFIG NAME INVENTORY-DIR... [-- promtool flags]
  local config=$1 name=$2; shift 2
  local dir="$work/$name" flags=()
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
for env in compose native staging; do
  promcheck prometheus.yml "prometheus.yml, $env inventory" "prometheus/targets/$env"
done
for env in compose native; do
  promcheck prometheus-ha.yml "prometheus-ha.yml, $env scale inventory" \
    "prometheus/targets/$env" "prometheus/targets/$env/scale"
done
promcheck agent.yml "agent.yml, remote inventory" prometheus/targets/remote -- --agent
promcheck agent.yml "agent.yml, native remote inventory" prometheus/targets/native/remote -- --agent

# VictoriaMetrics (the scale profile's store): the real binaries check their configs.
check "victoria-metrics -dryRun (victoriametrics/relabel.yml)" \
  victoria-metrics -dryRun -relabelConfig=victoriametrics/relabel.yml
check "vmauth -dryRun (victoriametrics/vmauth.yml)" env AGENT_REMOTE_WRITE_PASSWORD=lint \
  STORE_WRITE_URL=http://vminsert:8480/insert/0/prometheus/ \
  vmauth -dryRun -auth.config=victoriametrics/vmauth.yml
check "promtool check rules --lint=all --lint-fatal" \
  promtool check rules --lint=all --lint-fatal prometheus/rules/*.yml

# Alertmanager reads its secrets from files next to its config: check with the examples.
mkdir -p "$work/am"
cp -r alertmanager/. "$work/am/"
[ -d alertmanager/secrets.example ] && cp -r alertmanager/secrets.example "$work/am/secrets"
# Its *_file secrets resolve against the working directory: check from there.
check "amtool check-config" sh -c 'cd "$1" && amtool check-config alertmanager.yml' sh "$work/am"

check "yamllint" yamllint --strict .
check "JSON files parse" python3 -c '
import json, pathlib, sys
bad = []
for p in sorted(pathlib.Path(".").glob("**/*.json")):
    if any(part in {".venv", ".tools", ".run", "node_modules"} for part in p.parts):
        continue
    try:
        json.loads(p.read_text())
    except ValueError as e:
        bad.append(f"{p}: {e}")
print("\n".join(bad)); sys.exit(1 if bad else 0)'
check "ruff" ruff check --quiet .

# The repository's own CI (.github/workflows/): zizmor's security audit (offline; no
# finding allowed) and the GitHub-workflow schema that check-jsonschema ships.
check "zizmor (.github/workflows)" zizmor --offline --no-progress .github/workflows/
check "check-jsonschema github-workflows" \
  check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

exit $failed
