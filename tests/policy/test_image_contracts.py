"""compose*.yaml against the image contracts recorded from upstream (tests/policy/images.yml).

Every compose file of the repository root is rendered (compose.yaml with the demo
profile, the staging overlay without it, the agent profile alone, any other compose*.yaml
as an overlay on compose.yaml) and each rule must hold; then each rule runs on a broken
copy and must name the break, so none passes vacuously.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.policy import contracts, rules

REPO = rules.REPO
ROWS = contracts.load()
STANDARD = {"compose.yaml": ("demo",), "compose.staging.yaml": ()}
# A file of its own (a remote host's), not an overlay on compose.yaml.
STANDALONE = {"compose.agent.yaml"}


def _compose_sets() -> list[tuple[str, list[Path], tuple[str, ...]]]:
    sets = [("compose.yaml", [REPO / "compose.yaml"], ("demo",))]
    for path in contracts.compose_files():
        if path.name == "compose.yaml":
            continue
        if path.name in STANDALONE:
            sets.append((path.name, [path], ()))
            continue
        profiles = STANDARD.get(path.name, ("demo",))
        sets.append((path.name, [REPO / "compose.yaml", path], profiles))
    return sets


@pytest.fixture(scope="module", params=_compose_sets(), ids=lambda s: s[0])
def rendered(request: pytest.FixtureRequest, compose_available: None) -> dict[str, Any]:
    _, files, profiles = request.param
    return rules.render(files, profiles=profiles)


# --- the data file ----------------------------------------------------------------------


def test_every_fact_has_a_source() -> None:
    assert ROWS, "tests/policy/images.yml holds no row"
    assert contracts.row_problems(ROWS) == []


def test_every_pinned_image_has_a_row() -> None:
    files = contracts.compose_files() + contracts.built_from()
    assert "compose.yaml" in [f.name for f in files]
    assert contracts.REPO / "workload" / "Dockerfile" in files
    assert contracts.coverage(files, ROWS) == []


def test_row_rules_catch_gaps(tmp_path: Path) -> None:
    broken = {
        "x/y:1.0": {**{f: [] for f in contracts.FACTS}, "sources": {"user": "no source here"}}
    }
    found = contracts.row_problems(broken)
    assert "x/y:1.0: fact shells has no source" in found
    assert "x/y:1.0: source of user names neither a file nor a URL" in found
    compose = tmp_path / "compose.scale.yaml"
    compose.write_text("services:\n  vm:\n    image: ${VM_IMAGE:-victoriametrics/vm:v9.9.9}\n")
    assert contracts.coverage([compose], {}) == [
        "compose.scale.yaml: image victoriametrics/vm:v9.9.9 has no row in tests/policy/images.yml"
    ]


# --- the real files satisfy every contract -------------------------------------------------


def test_commands_exist_in_their_images(rendered: dict[str, Any]) -> None:
    assert contracts.command_violations(rendered, ROWS) == []


def test_secrets_reach_each_consumer_as_it_requires(
    rendered: dict[str, Any], generated: set[Path]
) -> None:
    assert contracts.stages(rendered, generated), "volume-init stages nothing"
    assert contracts.secret_violations(rendered, ROWS, generated) == []


def test_generated_files_are_never_created_by_the_engine(
    rendered: dict[str, Any], generated: set[Path]
) -> None:
    assert contracts.generated_bind_violations(rendered, generated) == []


def test_read_only_services_can_write_where_they_must(rendered: dict[str, Any]) -> None:
    assert contracts.write_violations(rendered, ROWS) == []


def test_memory_limits_respect_documented_floors(rendered: dict[str, Any]) -> None:
    assert contracts.memory_floor_violations(rendered, ROWS) == []


def test_exposed_ports_are_listened_on(rendered: dict[str, Any]) -> None:
    assert contracts.port_violations(rendered, ROWS) == []


# --- each rule catches its violation -----------------------------------------------------------


def _svc(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["services"][name]


def _stage(doc: dict[str, Any], key: str, value: str) -> None:
    _svc(doc, contracts.STAGER)["environment"][key] = value


Mutation = tuple[Callable[[dict[str, Any]], None], str, str]
MUTATIONS: dict[str, Mutation] = {
    # The defect of issue 11: the host file handed to Elasticsearch as a compose secret.
    "elasticsearch reads the host file": (
        lambda d: _svc(d, "elasticsearch").update(secrets=["elasticsearch_password"]),
        "secrets",
        "elasticsearch: compose secret elasticsearch_password is a bind mount",
    ),
    "staged for the wrong user": (
        lambda d: _stage(d, "STAGE_elasticsearch", "65534:65534 elasticsearch_password"),
        "secrets",
        "elasticsearch: runs as 1000:0 but its staged secrets (secrets-elasticsearch) "
        "belong to 65534:65534",
    ),
    "secret not staged for its reader": (
        lambda d: _stage(d, "STAGE_grafana", "472:0 grafana_admin_password"),
        "secrets",
        "which volume-init does not stage into secrets-grafana",
    ),
    "jaeger without its staged volume": (
        lambda d: _svc(d, "jaeger").update(
            volumes=[v for v in _svc(d, "jaeger")["volumes"] if "secrets-" not in str(v)]
        ),
        "secrets",
        "jaeger: reads /run/secrets/elasticsearch_password but mounts no staged secrets there",
    ),
    "a *_FILE variable the image ignores": (
        lambda d: _svc(d, "postgres-exporter")["environment"].update(
            DATA_SOURCE_PASSWORD_FILE="/run/secrets/postgres_password"
        ),
        "secrets",
        "postgres-exporter: DATA_SOURCE_PASSWORD_FILE is not a *_FILE variable",
    ),
    "direct bind of a generated file (short syntax)": (
        lambda d: _svc(d, "prometheus")["volumes"].append(
            "./secrets/basic_auth_password:/etc/prometheus/secrets/basic_auth_password:ro"
        ),
        "binds",
        "prometheus: secrets/basic_auth_password is bound with create_host_path",
    ),
    "healthcheck with a client the image lacks": (
        lambda d: _svc(d, "blackbox-exporter")["healthcheck"].update(
            test=["CMD", "curl", "-f", "http://127.0.0.1:9115/-/healthy"]
        ),
        "commands",
        "blackbox-exporter: healthcheck calls curl, a HTTP client",
    ),
    "shell healthcheck in a distroless image": (
        lambda d: _svc(d, "fluent-bit")["healthcheck"].update(
            test=["CMD-SHELL", "/probe/busybox wget -q -O /dev/null http://127.0.0.1:2020/"]
        ),
        "commands",
        "fluent-bit: healthcheck needs a shell",
    ),
    "probe binary without the probe volume": (
        lambda d: _svc(d, "redis-exporter").update(volumes=[]),
        "commands",
        "redis-exporter: healthcheck runs /probe/busybox but mounts no /probe",
    ),
    "read-only without a writable /tmp": (
        lambda d: _svc(d, "grafana").pop("tmpfs"),
        "writes",
        "grafana: read_only, but grafana/grafana:13.2.0 writes /tmp",
    ),
    "grafana under its documented floor": (
        lambda d: _svc(d, "grafana")["deploy"]["resources"]["limits"].update(memory="192m"),
        "memory",
        "grafana: memory limit 192 MiB is below grafana/grafana:13.2.0's documented floor",
    ),
    "a port nothing listens on": (
        lambda d: _svc(d, "node-exporter").update(expose=["9100", "9999"]),
        "ports",
        "node-exporter: exposes 9999",
    ),
}


def _run(kind: str, cfg: dict[str, Any], generated: set[Path]) -> list[str]:
    return {
        "secrets": lambda: contracts.secret_violations(cfg, ROWS, generated),
        "binds": lambda: contracts.generated_bind_violations(cfg, generated),
        "commands": lambda: contracts.command_violations(cfg, ROWS),
        "writes": lambda: contracts.write_violations(cfg, ROWS),
        "memory": lambda: contracts.memory_floor_violations(cfg, ROWS),
        "ports": lambda: contracts.port_violations(cfg, ROWS),
    }[kind]()


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_contract_rule_catches_violation(case: str, mutated: Any, generated: set[Path]) -> None:
    mutate, kind, expected = MUTATIONS[case]
    found = _run(kind, mutated(mutate), generated)
    assert any(expected in line for line in found), found


def test_staged_mode_the_image_rejects(local_config: dict[str, Any], generated: set[Path]) -> None:
    """Elasticsearch accepts 0400/0600 only: staging 0644 (what make secrets once wrote)
    is reported, and so is an image row that stops accepting 0400."""
    found = contracts.secret_violations(local_config, ROWS, generated, staged_mode=0o644)
    assert (
        "elasticsearch: ELASTIC_PASSWORD_FILE: docker.elastic.co/elasticsearch/elasticsearch:9.5.1 "
        "accepts modes 0400, 0600, volume-init stages 0644" in found
    )


def test_user_by_name_must_be_the_images(local_config: dict[str, Any]) -> None:
    redis = dict(local_config["services"]["redis"])
    row = ROWS[redis["image"]]
    assert contracts.effective_user(redis, row) == (999, 1000)
    assert contracts.effective_user({**redis, "user": "postgres"}, row) == (
        "user postgres is not the image's user (redis)"
    )
