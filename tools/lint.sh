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

# Compose: the stack, the demo profile, and the staging overlay, fully offline.
# Secrets are files the stack reads at run time; config only needs the paths.
for files in "compose.yaml" "compose.yaml compose.staging.yaml"; do
  args=(); for f in $files; do args+=(-f "$f"); done
  check "docker-compose config ($files)" docker-compose "${args[@]}" --profile demo config -q
done

# Prometheus: the one prometheus.yml against each environment's inventory, laid
# out as compose and the native run lay it out (inventory/ next to the config).
for env_dir in prometheus/targets/*/; do
  env=$(basename "$env_dir")
  mkdir -p "$work/prom-$env"
  ln -s "$PWD/prometheus/prometheus.yml" "$work/prom-$env/prometheus.yml"
  ln -s "$PWD/prometheus/rules" "$work/prom-$env/rules"
  ln -s "$PWD/$env_dir" "$work/prom-$env/inventory"
  check "promtool check config ($env inventory)" promtool check config "$work/prom-$env/prometheus.yml"
done
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
