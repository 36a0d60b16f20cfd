# Apollonia observability bundle. `make up` runs the stack, `make test` proves it.
# Run `make` (or `make help`) for the list of targets.
#
# How `make help` finds the targets: a `## text` comment after a target lists it for users,
# a `##@dev text` comment for contributors; each group prints in the order of this file
# (users' targets first, then contributors').

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV  := .venv
PY    := $(VENV)/bin/python
TOOLS := .tools/bin
# The repo's own tools come first, so tests and scripts find the pinned builds.
export PATH := $(CURDIR)/$(TOOLS):$(CURDIR)/$(VENV)/bin:$(PATH)

# Compose: the Docker CLI plugin when present, else the standalone build from .tools.
COMPOSE_BIN ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo "$(CURDIR)/$(TOOLS)/docker-compose")
# The demo profile (sample workload, PostgreSQL, Redis, RabbitMQ) is on by default;
# a staging host runs `make up PROFILES=` with the staging overlay (docs/operations.md).
PROFILES ?= demo
COMPOSE_FILES ?= -f compose.yaml
COMPOSE := $(COMPOSE_BIN) $(COMPOSE_FILES) $(foreach p,$(PROFILES),--profile $(p))
# True when a Docker engine answers (down, clean, logs and ps act on compose or the native
# run accordingly). `make up` never guesses: without an engine it stops with docker's own
# message and the fix; the native run is `make up-native` or `make up NATIVE=1`.
DOCKER_ENGINE := $(shell docker info >/dev/null 2>&1 && echo yes)
NATIVE ?=
# The secrets and doctor scripts need only the standard library: the virtualenv's
# Python when there is one, else the system's (a staging host has no virtualenv).
SYSPY = $(if $(wildcard $(PY)),$(PY),python3)
DOCTOR_ARGS = $(COMPOSE_FILES) $(foreach p,$(PROFILES),--profile $(p))

.PHONY: help
help: # List the targets: for users, then for contributors
	@echo "For users: run, check and operate the stack"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "For contributors: tests, generators, benchmarks (docs/testing.md)"
	@awk 'BEGIN {FS = ":.*##@dev "} /^[a-z][a-z-]*:.*##@dev / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# =============================================================================
# For users
# =============================================================================

# --- The two commands, and stopping -----------------------------------------------

.PHONY: up test down
up: ## Start the stack: compose with the demo profile (NATIVE=1: the native run, as make up-native)
ifeq ($(NATIVE),1)
	@$(MAKE) --no-print-directory up-native
else
	@$(SYSPY) -m tools.doctor --engine >&2 \
	  || { echo "make up: stopped, nothing started: no Docker engine (fix above); without Docker, run make up-native (or make up NATIVE=1)" >&2; exit 1; }
	@$(MAKE) --no-print-directory up-compose
endif

# Two jobs at once: the live suites mostly wait (for `for`, group_wait and scrapes) while the
# offline ones use the CPU. The scale profile's fast proofs (own ports and state, .run/scale/)
# follow the offline suites in the same job, so at most two pytest processes share the two
# cores. --output-sync prints each job's output in one piece when it ends; make fails if
# either fails (and still waits for the other).
test: bootstrap ## Lint and every pytest suite: the live (native) ones alongside the others
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-offline-then-scale test-live-then-engine

down: ## Stop the stack (volumes are kept)
ifeq ($(DOCKER_ENGINE),yes)
	$(COMPOSE) down
endif
	@if [ -d .run ]; then $(PY) -m native down; fi

# --- Operating the stack (backup, restore and rotation go here too) ------------------

.PHONY: logs ps urls doctor secrets reload diagnose bundle clean
logs: ## Follow the logs of the stack
ifeq ($(DOCKER_ENGINE),yes)
	$(COMPOSE) logs -f --tail=100
else
	tail -n 50 -f .run/logs/*.log
endif

ps: ## Show what runs and its health
ifeq ($(DOCKER_ENGINE),yes)
	$(COMPOSE) ps
else
	$(PY) -m native status
endif

# What `make up` prints at the end: label, compose service, container port, path. The address
# is the one compose published (`compose port`: BIND_ADDRESS, 127.0.0.1 by default); a service
# the profiles do not run (the demo api on a staging host) is left out.
UI_LINKS := Grafana,grafana,3000,/ Prometheus,prometheus,9090,/alerts \
            Alertmanager,alertmanager,9093,/ Jaeger,jaeger,16686,/search \
            Demo_api,api,8000,/docs
urls: ## Print the address of each UI of the running compose stack
	@echo "Open (Grafana: user admin, password: cat secrets/grafana_admin_password):"
	@for link in $(UI_LINKS); do \
	  IFS=, read -r name service port path <<< "$$link"; \
	  addr=$$($(COMPOSE) port "$$service" "$$port" 2>/dev/null) || continue; \
	  [ -n "$$addr" ] && printf '  %-13s http://%s%s\n' "$${name//_/ }" "$$addr" "$$path"; \
	done; true

doctor: ## Preflight checks for a Docker host (pass/fail per line, with the fix); make up runs them
	$(SYSPY) -m tools.doctor $(DOCTOR_ARGS)

# Runs with the system python3 on a Docker host that has no virtualenv (staging).
secrets: ## Generate missing secrets in secrets/ (random, git-ignored, never printed)
	$(SYSPY) -m tools.secrets

# Basic auth is enforced only on staging; sending it is harmless elsewhere. The password
# goes to curl on stdin (-K-), never on a command line that `ps` shows. A failed reload is
# one line per service (curl's reason and the answer's body) and `make reload` fails.
AUTH_FILE := $(firstword $(wildcard secrets/basic_auth_password .run/prometheus/secrets/basic_auth_password))
ALERTMANAGER_URL ?= http://127.0.0.1:9093
reload: lint ## Lint, then reload Prometheus and Alertmanager configs in place (PROMETHEUS_URL, ALERTMANAGER_URL)
	@if [ -n "$(AUTH_FILE)" ] && [ ! -f "$(AUTH_FILE)" ]; then \
	  echo "make reload: $(AUTH_FILE): not a file (the staging password belongs there: remove it, then make secrets)" >&2; exit 1; fi; \
	rc=0; for target in "prometheus=$(PROMETHEUS_URL)" "alertmanager=$(ALERTMANAGER_URL)"; do \
	  name=$${target%%=*}; url=$${target#*=}; \
	  if out=$$({ [ -n "$(AUTH_FILE)" ] && printf 'user = "admin:%s"\n' "$$(cat "$(AUTH_FILE)")"; true; } \
	      | curl -sS --fail-with-body --max-time 10 -K- -X POST "$$url/-/reload" 2>&1); then \
	    echo "$$name: reloaded"; \
	  else \
	    echo "make reload: $$name at $$url not reloaded: $$(printf '%s' "$$out" | tr '\n' ' ' | sed 's/curl: ([0-9]*) //') (is it running? make ps; a config it rejects is named in its log: make logs)" >&2; rc=1; \
	  fi; \
	done; exit $$rc

# Any Prometheus API: replica b of the scale profile (PROMETHEUS_URL=http://127.0.0.1:9091 in
# compose, :9290 natively) or the long-term store (:8428 natively) answer the same queries.
# Staging's basic auth: the password is read from PROMETHEUS_PASSWORD_FILE (default
# secrets/basic_auth_password when it exists), never put on a command line or in the URL.
PROMETHEUS_URL ?= http://127.0.0.1:9090
PROMETHEUS_PASSWORD_FILE ?=
diagnose: ## Run the automated diagnosis queries against Prometheus (PROMETHEUS_URL, default 127.0.0.1:9090)
	@$(SYSPY) -m tools.diagnose --prometheus "$(PROMETHEUS_URL)" $(if $(PROMETHEUS_PASSWORD_FILE),--password-file "$(PROMETHEUS_PASSWORD_FILE)")

bundle: lint ## Lint, then the versioned tarball for a staging host in dist/
	$(PY) -m dev.bundle

clean: down ## Stop and remove the data volumes and the native state (.run/)
ifeq ($(DOCKER_ENGINE),yes)
	@echo "Removing volumes:"; $(COMPOSE) config --volumes | sed 's/^/  /'
	$(COMPOSE) down --volumes
endif
	rm -rf .run

# --- Choosing the engine (make up and make down pick one themselves) -----------------

.PHONY: up-compose up-native down-native
up-compose: secrets ## Preflight (the doctor), start the compose stack, wait until healthy, print the UIs
	@$(SYSPY) -m tools.doctor $(DOCTOR_ARGS) \
	  || { echo "make up: stopped before starting anything; fix the FAIL lines above (each says how)" >&2; exit 1; }
	$(COMPOSE) up -d --build --wait
	@$(MAKE) --no-print-directory urls

up-native: bootstrap ## Start the native run: real binaries on 127.0.0.1, state in .run/ (prints its addresses)
	$(PY) -m native up

down-native: ## Stop the native run
	$(PY) -m native down

# =============================================================================
# For contributors
# =============================================================================

# --- Bootstrap ---------------------------------------------------------------

$(VENV)/.stamp: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

.PHONY: venv tools bootstrap
venv: $(VENV)/.stamp ##@dev Create the virtualenv with the pinned Python dependencies

tools: ##@dev Fetch the pinned Debian builds of Prometheus, Alertmanager, exporters, docker-compose into .tools/
	@dev/bootstrap.sh

bootstrap: venv tools ##@dev Everything the tests need (idempotent, cached; make test runs it)

# --- Checks ------------------------------------------------------------------

.PHONY: lint test-offline-then-scale test-live-then-engine test-offline test-live test-engine test-scale-fast test-rules test-live-full test-scale mutation smoke
# LINT_GROUPS=rules (or any groups of dev/lint.sh) checks only those. (Not LINT: GNU make
# defines LINT = lint itself, which would make a plain `make lint` check nothing.)
LINT_GROUPS ?=
lint: bootstrap ##@dev Static checks: compose config, promtool, amtool, yamllint, JSON, ruff (LINT_GROUPS=group ...)
	@dev/lint.sh $(LINT_GROUPS)

test-offline-then-scale:
	@rc=0; $(MAKE) --no-print-directory test-offline || rc=1; \
	$(MAKE) --no-print-directory test-scale-fast || rc=1; exit $$rc

# The engine suite publishes the stack's ports on 127.0.0.1 as the native run does: it follows
# the live suite (which stops its native run) in the same job.
test-live-then-engine:
	@rc=0; $(MAKE) --no-print-directory test-live || rc=1; \
	$(MAKE) --no-print-directory test-engine || rc=1; exit $$rc

test-offline: lint ##@dev Lint, then every suite that needs no running stack (pytest -m "not native")
	$(PY) -m pytest -m "not native and not engine" tests --ignore=tests/scale --ignore=tests/smoke

test-live: bootstrap ##@dev The live suites against the native run: real binaries on 127.0.0.1 (pytest -m native)
	$(PY) -m pytest -m "native and not engine" -p no:cacheprovider tests --ignore=tests/scale

# Root: it starts its own dockerd (never the system's), builds every image from
# tests/policy/images.yml, runs `make up` against it and stops it all at the end.
test-engine: bootstrap ##@dev The compose stack on a private Docker engine (tests/engine, root; ENGINE_KEEP=1 keeps it up)
	$(PY) -m pytest -m engine -p no:cacheprovider tests/engine

test-scale-fast: bootstrap ##@dev The scale profile's offline checks and fast live proofs (tests/scale, ~2.5 min)
	$(PY) -m pytest tests/scale -m "not scale_full" -s -p no:cacheprovider

test-scale: bootstrap ##@dev Every proof of the scale profile (HA alerting, HA pair, store outage, agent, dashboards; ~10 min)
	$(PY) -m pytest tests/scale -s

test-rules: tools ##@dev Run the promtool rule unit tests (the same command users' CI runs)
	promtool test rules tests/rules/*.test.yml

# Alerts whose `for` is longer than `make test` waits (SlowDatabaseQueries 5m,
# MLProcessingBacklog and the RabbitMQ backlog 10m), fired and delivered on the native run.
test-live-full: bootstrap ##@dev Fire the long-`for` database/queue alerts on the native run (~12 min)
	LIVE_FULL=1 $(PY) -m pytest tests/integration/test_live_full.py

mutation: bootstrap ##@dev Every rule mutant must fail a promtool test (~25 min; a sample runs in make test)
	nice -n 10 $(PY) -m tests.rules.mutate

smoke: bootstrap ##@dev Smoke suite against the running compose stack (needs a Docker host)
	$(PY) -m pytest tests/smoke tests/e2e tests/grafana/test_panels_live.py --backend=compose

# --- Generators --------------------------------------------------------------

.PHONY: slo dashboards
slo: venv ##@dev Regenerate prometheus/rules/slo.yml, its promtool tests and the SLO tables from prometheus/slos.yml
	$(PY) -m dev.slo

dashboards: venv ##@dev Regenerate grafana/dashboards/ from grafana/codegen/ (the SLO windows from prometheus/slos.yml)
	$(PY) -m grafana.codegen

# --- Benchmarks (not tests: numbers, on a machine you choose) ------------------

.PHONY: benchmark benchmark-scale benchmark-capacity
benchmark: venv ##@dev Time-to-notify figures against the native run (make up-native first)
	$(PY) -m dev.notify_benchmark all

benchmark-capacity: bootstrap ##@dev Highest sustained ingest of one Prometheus with the bundle's rules (~20 min, CPU-heavy)
	nice -n 10 $(PY) -m dev.capacity_benchmark

# Heavy (LARGE: ~40 min on 2 cores, a few GB under .run/benchmark-scale): not part of make test.
benchmark-scale: bootstrap ##@dev Rule and dashboard cost on backfilled SMALL/LARGE TSDBs, main's rules vs these (SIZES=small,large)
	nice -n 10 $(PY) -m dev.benchmark_scale --sizes $(or $(SIZES),small,large)
