# Apollonia observability bundle. `make up` runs the stack, `make test` proves it.
# Run `make` (or `make help`) for the list of targets.

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
# a staging host runs `make up PROFILES=` with the staging overlay (see README).
PROFILES ?= demo
COMPOSE_FILES ?= -f compose.yaml
COMPOSE := $(COMPOSE_BIN) $(COMPOSE_FILES) $(foreach p,$(PROFILES),--profile $(p))
# True when a Docker engine answers; otherwise `make up` falls back to the native run.
DOCKER_ENGINE := $(shell docker info >/dev/null 2>&1 && echo yes)
# The secrets and doctor scripts need only the standard library: the virtualenv's
# Python when there is one, else the system's (a staging host has no virtualenv).
SYSPY = $(if $(wildcard $(PY)),$(PY),python3)
DOCTOR_ARGS = $(COMPOSE_FILES) $(foreach p,$(PROFILES),--profile $(p))

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- Bootstrap ---------------------------------------------------------------

$(VENV)/.stamp: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

.PHONY: venv tools bootstrap
venv: $(VENV)/.stamp ## Create the virtualenv with the pinned Python dependencies

tools: ## Fetch the pinned Debian builds of Prometheus, Alertmanager, exporters, docker-compose into .tools/
	@dev/bootstrap.sh

bootstrap: venv tools ## Everything the tests need (idempotent, cached)

# --- Checks ------------------------------------------------------------------

.PHONY: lint test test-offline test-live test-scale-fast test-rules test-live-full test-scale mutation smoke
lint: bootstrap ## Static checks: compose config, promtool, amtool, yamllint, JSON
	@dev/lint.sh

# Two jobs at once: the live suites mostly wait (for `for`, group_wait and scrapes) while the
# offline ones use the CPU. The scale profile's fast proofs (own ports and state, .run/scale/)
# follow the offline suites in the same job, so at most two pytest processes share the two
# cores. --output-sync prints each job's output in one piece when it ends; make fails if
# either fails (and still waits for the other).
test: bootstrap ## Lint and every pytest suite: the live (native) ones alongside the others
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-offline-then-scale test-live

test-offline-then-scale:
	@rc=0; $(MAKE) --no-print-directory test-offline || rc=1; \
	$(MAKE) --no-print-directory test-scale-fast || rc=1; exit $$rc

test-offline: lint ## Lint, then every suite that needs no running stack (pytest -m "not native")
	$(PY) -m pytest -m "not native" tests --ignore=tests/scale

test-live: bootstrap ## The live suites against the native run: real binaries on 127.0.0.1 (pytest -m native)
	$(PY) -m pytest -m native -p no:cacheprovider tests --ignore=tests/scale

test-scale-fast: bootstrap ## The scale profile's offline checks and fast live proofs (tests/scale, ~2.5 min)
	$(PY) -m pytest tests/scale -m "not scale_full" -s -p no:cacheprovider

test-scale: bootstrap ## Every proof of the scale profile (HA alerting, HA pair, store outage, agent, dashboards; ~10 min)
	$(PY) -m pytest tests/scale -s

test-rules: tools ## Run the promtool rule unit tests (the same command users' CI runs)
	promtool test rules tests/rules/*.test.yml

# Alerts whose `for` is longer than `make test` waits (SlowDatabaseQueries 5m,
# MLProcessingBacklog and the RabbitMQ backlog 10m), fired and delivered on the native run.
test-live-full: bootstrap ## Fire the long-`for` database/queue alerts on the native run (~12 min)
	LIVE_FULL=1 $(PY) -m pytest tests/integration/test_live_full.py

mutation: bootstrap ## Every rule mutant must fail a promtool test (~25 min; a sample runs in make test)
	nice -n 10 $(PY) -m tests.rules.mutate

smoke: bootstrap ## Smoke suite against the running compose stack (needs a Docker host)
	$(PY) -m pytest tests/smoke tests/e2e tests/grafana/test_panels_live.py --backend=compose

# --- Running the stack ---------------------------------------------------------

.PHONY: up up-compose up-native down down-native clean logs ps reload secrets
up: ## Start the stack (compose with the demo profile; native processes without a Docker engine)
ifeq ($(DOCKER_ENGINE),yes)
	@$(MAKE) --no-print-directory up-compose
else
	@echo "make up: no Docker engine reachable; starting the native run (Prometheus, Alertmanager, exporters, PostgreSQL, Redis, RabbitMQ, workload) instead"
	@$(MAKE) --no-print-directory up-native
endif

up-compose: secrets ## Preflight (the doctor), then start the compose stack and wait until it is healthy
	@$(SYSPY) -m tools.doctor $(DOCTOR_ARGS) \
	  || { echo "make up: stopped before starting anything; fix the FAIL lines above (each says how)" >&2; exit 1; }
	$(COMPOSE) up -d --build --wait

up-native: bootstrap ## Start the native run: real binaries on 127.0.0.1, state in .run/
	$(PY) -m native up

down: ## Stop the stack (volumes are kept)
ifeq ($(DOCKER_ENGINE),yes)
	$(COMPOSE) down
endif
	@if [ -d .run ]; then $(PY) -m native down; fi

down-native: ## Stop the native run
	$(PY) -m native down

clean: down ## Stop and remove the data volumes and the native state (.run/)
ifeq ($(DOCKER_ENGINE),yes)
	@echo "Removing volumes:"; $(COMPOSE) config --volumes | sed 's/^/  /'
	$(COMPOSE) down --volumes
endif
	rm -rf .run

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

# Basic auth is enforced only on staging; sending it is harmless elsewhere. The password
# goes to curl on stdin (-K-), never on a command line that `ps` shows.
AUTH_FILE := $(firstword $(wildcard secrets/basic_auth_password .run/prometheus/secrets/basic_auth_password))
reload: lint ## Lint, then reload Prometheus and Alertmanager configs in place
	@for target in prometheus=9090 alertmanager=9093; do \
	  { [ -n "$(AUTH_FILE)" ] && printf 'user = "admin:%s"\n' "$$(cat $(AUTH_FILE))"; true; } \
	    | curl -fsS -K- -X POST "http://127.0.0.1:$${target#*=}/-/reload" && echo "$${target%=*}: reloaded"; \
	done

# Runs with the system python3 on a Docker host that has no virtualenv (staging).
secrets: ## Generate missing secrets in secrets/ (random, git-ignored, never printed)
	$(SYSPY) -m tools.secrets

# --- Dashboards, hardening, release ------------------------------------------

.PHONY: slo dashboards doctor bundle
slo: venv ## Regenerate prometheus/rules/slo.yml, its promtool tests and the SLO tables from prometheus/slos.yml
	$(PY) -m dev.slo

dashboards: venv ## Regenerate grafana/dashboards/ from grafana/codegen/ (the SLO windows from prometheus/slos.yml)
	$(PY) -m grafana.codegen

doctor: ## Preflight checks for a Docker host (pass/fail per line, with the fix); make up runs them
	$(SYSPY) -m tools.doctor $(DOCTOR_ARGS)

bundle: bootstrap ## Versioned tarball for a staging host in dist/
	$(PY) -m dev.bundle

.PHONY: diagnose benchmark benchmark-scale benchmark-capacity
# Any Prometheus API: replica b of the scale profile (PROMETHEUS_URL=http://127.0.0.1:9091 in
# compose, :9290 natively) or the long-term store (:8428 natively) answer the same queries.
PROMETHEUS_URL ?= http://127.0.0.1:9090
diagnose: venv ## Run the automated diagnosis queries against Prometheus (PROMETHEUS_URL, default 127.0.0.1:9090)
	$(PY) -m tools.diagnose --prometheus $(PROMETHEUS_URL)

benchmark: venv ## Time-to-notify figures against the native run (make up-native first)
	$(PY) -m dev.notify_benchmark all

benchmark-capacity: bootstrap ## Highest sustained ingest of one Prometheus with the bundle's rules (~20 min, CPU-heavy)
	nice -n 10 $(PY) -m dev.capacity_benchmark

# Heavy (LARGE: ~40 min on 2 cores, a few GB under .run/benchmark-scale): not part of make test.
benchmark-scale: bootstrap ## Rule and dashboard cost on backfilled SMALL/LARGE TSDBs, main's rules vs these (SIZES=small,large)
	nice -n 10 $(PY) -m dev.benchmark_scale --sizes $(or $(SIZES),small,large)
