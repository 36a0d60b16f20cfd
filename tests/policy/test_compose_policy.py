"""Policy tests on compose.yaml and its overlays (compose.staging.yaml, compose.scale.yaml)
and on the remote host's compose.agent.yaml.

Each rule is checked twice: the real configuration must satisfy it, and a mutated
copy that breaks it must be reported (so no rule passes vacuously).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.policy import rules

REPO = rules.REPO


# --- the real files satisfy every rule ------------------------------------------------


def test_images_pinned(any_config: dict[str, Any]) -> None:
    assert rules.unpinned_images(any_config) == []


def test_every_service_has_a_healthcheck(any_config: dict[str, Any]) -> None:
    assert rules.missing_healthchecks(any_config) == []


def test_ports_bind_to_loopback_by_default(any_config: dict[str, Any]) -> None:
    assert rules.non_loopback_ports(any_config) == []


def test_bind_mounted_paths_exist(any_config: dict[str, Any], generated: set[Path]) -> None:
    assert rules.missing_bind_sources(any_config, generated=generated) == []


def test_no_root_container_without_reason(any_config: dict[str, Any]) -> None:
    assert rules.root_without_reason(any_config) == []


def test_no_default_or_plain_credentials(any_config: dict[str, Any]) -> None:
    assert rules.default_credentials(any_config) == []


BUDGETS = {
    "local": rules.MEMORY_BUDGET_BYTES,
    "staging": rules.MEMORY_BUDGET_BYTES,
    "scale": rules.SCALE_MEMORY_BUDGET_BYTES,
    "agent": rules.AGENT_MEMORY_BUDGET_BYTES,
}


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_hardening_limits_and_log_rotation(name: str, request: pytest.FixtureRequest) -> None:
    cfg = request.getfixturevalue(f"{name}_config")
    assert rules.weak_hardening(cfg, budget=BUDGETS[name]) == []


def test_compose_inventory_names_services_and_ports(local_config: dict[str, Any]) -> None:
    inventory = REPO / "prometheus" / "targets" / "compose"
    assert sorted(inventory.glob("*.yml")), f"{inventory} holds no inventory"
    assert rules.inventory_mismatches(local_config, inventory) == []


def test_grafana_datasources_name_compose_services(local_config: dict[str, Any]) -> None:
    files = sorted((REPO / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    assert files, "grafana/provisioning/datasources/ holds no datasource file"
    assert rules.datasource_mismatches(local_config, files) == []


def test_scale_inventory_and_datasources_name_services(scale_config: dict[str, Any]) -> None:
    """The scale profile's inventory (compose/, with compose/scale/ mounted over it) and its
    Grafana data sources name services and ports of compose.yaml + compose.scale.yaml."""
    inventory = REPO / "prometheus" / "targets" / "compose"
    assert rules.inventory_mismatches(scale_config, inventory) == []
    assert rules.inventory_mismatches(scale_config, inventory / "scale") == []
    # Each scale/ file is mounted over its compose/ namesake in both replicas.
    for name in ("prometheus", "prometheus-b"):
        mounts = {v["target"]: v["source"] for v in scale_config["services"][name]["volumes"]}
        for path in (inventory / "scale").glob("*.yml"):
            assert mounts.get(f"/etc/prometheus/inventory/{path.name}") == str(path), name
    files = [REPO / "grafana" / "scale" / "datasources.yml"]
    assert rules.datasource_mismatches(scale_config, files) == []
    grafana = {v["target"]: v["source"] for v in scale_config["services"]["grafana"]["volumes"]}
    slot = "/etc/grafana/provisioning/datasources/scale.yml"
    assert grafana[slot] == str(files[0])
    # The slot must exist in the read-only provisioning mount (Docker cannot create it).
    assert (REPO / "grafana/provisioning/datasources/scale.yml").is_file()


def test_agent_inventory_names_its_services(agent_config: dict[str, Any]) -> None:
    assert rules.inventory_mismatches(agent_config, REPO / "prometheus/targets/remote") == []


def test_env_example_pins_match_compose() -> None:
    compose = "".join(p.read_text() for p in sorted(REPO.glob("compose*.yaml")))
    assert rules.env_example_mismatches(compose, (REPO / ".env.example").read_text()) == []


def test_no_secret_values_in_tracked_files() -> None:
    files = rules.tracked_text_files()
    assert files, "git ls-files found nothing"
    assert rules.secret_values(files, rules.local_secret_values()) == []


def test_secrets_dir_is_git_ignored() -> None:
    import subprocess

    proc = subprocess.run(["git", "check-ignore", "-q", "secrets/grafana_admin_password"], cwd=REPO)
    assert proc.returncode == 0, "secrets/ is not git-ignored"


def test_bind_address_variable_opens_ports(compose_available: None) -> None:
    """BIND_ADDRESS is the one switch: set, the user-facing ports follow it."""
    opened = rules.render([REPO / "compose.yaml"], env={"BIND_ADDRESS": "0.0.0.0"})
    offenders = {line.split(":")[0] for line in rules.non_loopback_ports(opened)}
    assert offenders == {"prometheus", "alertmanager", "grafana", "jaeger"}
    # Scale profile: replica b's UI and vmauth (where remote hosts push) follow it too; the
    # other Alertmanager replicas, their gossip port and the VictoriaMetrics cluster never.
    scale = rules.render(
        [REPO / "compose.yaml", REPO / "compose.scale.yaml"], env={"BIND_ADDRESS": "0.0.0.0"}
    )
    offenders = {line.split(":")[0] for line in rules.non_loopback_ports(scale)}
    assert offenders == {"prometheus", "prometheus-b", "alertmanager", "grafana", "jaeger",
                         "vmauth"}
    agent = rules.render([REPO / "compose.agent.yaml"], env={"BIND_ADDRESS": "0.0.0.0"})
    assert [svc.get("ports") for svc in agent["services"].values() if svc.get("ports")] == []


# --- each rule catches its violation ---------------------------------------------------


def _svc(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["services"][name]


MUTATIONS = {
    "latest tag": (
        lambda d: _svc(d, "prometheus").update(image="prom/prometheus:latest"),
        rules.unpinned_images,
        "prometheus: image prom/prometheus:latest is not pinned",
    ),
    "no tag": (
        lambda d: _svc(d, "grafana").update(image="grafana/grafana"),
        rules.unpinned_images,
        "grafana: image grafana/grafana is not pinned",
    ),
    "no healthcheck": (
        lambda d: _svc(d, "blackbox-exporter").pop("healthcheck"),
        rules.missing_healthchecks,
        "blackbox-exporter: no healthcheck",
    ),
    "depends_on without service_healthy": (
        lambda d: _svc(d, "grafana").update(
            depends_on={"prometheus": {"condition": "service_started"}}
        ),
        rules.missing_healthchecks,
        "grafana: depends on prometheus with service_started",
    ),
    "port on all interfaces": (
        lambda d: _svc(d, "grafana").update(ports=["3000:3000"]),
        rules.non_loopback_ports,
        "grafana: port 3000->3000 published on 0.0.0.0",
    ),
    "missing bind-mounted file": (
        lambda d: _svc(d, "prometheus")["volumes"].append("./prometheus/missing.yml:/x.yml:ro"),
        rules.missing_bind_sources,
        "prometheus: mounted path prometheus/missing.yml does not exist",
    ),
    "writable host path": (
        lambda d: _svc(d, "cadvisor").update(volumes=["/sys:/sys"]),
        rules.missing_bind_sources,
        "cadvisor: host path /sys must be mounted read-only",
    ),
    "root without reason": (
        lambda d: _svc(d, "prometheus").update(user="0:0"),
        rules.root_without_reason,
        "prometheus: runs as 0:0 without a org.apollonia.root-reason label",
    ),
    "image default user": (
        lambda d: _svc(d, "blackbox-exporter").pop("user"),
        rules.root_without_reason,
        "blackbox-exporter: runs as the image default",
    ),
    "default admin password": (
        lambda d: _svc(d, "grafana")["environment"].update(GF_SECURITY_ADMIN_PASSWORD="admin"),
        rules.default_credentials,
        "grafana: GF_SECURITY_ADMIN_PASSWORD is a plain value",
    ),
    "anonymous grafana": (
        lambda d: _svc(d, "grafana")["environment"].update(GF_AUTH_ANONYMOUS_ENABLED="true"),
        rules.default_credentials,
        "grafana: anonymous access is on",
    ),
    "password in a DSN": (
        lambda d: _svc(d, "redis-exporter")["environment"].update(
            REDIS_ADDR="redis://default:hunter22@redis:6379"
        ),
        rules.default_credentials,
        "redis-exporter: REDIS_ADDR carries a password inside a URL",
    ),
    "capabilities kept": (
        lambda d: _svc(d, "jaeger").pop("cap_drop"),
        rules.weak_hardening,
        "jaeger: capabilities are not dropped",
    ),
    "no memory limit": (
        lambda d: _svc(d, "alertmanager").pop("deploy"),
        rules.weak_hardening,
        "alertmanager: no memory limit",
    ),
    "over the memory budget": (
        lambda d: _svc(d, "elasticsearch")["deploy"]["resources"]["limits"].update(memory="3g"),
        rules.weak_hardening,
        "memory limits add up to",
    ),
    "unrotated logs": (
        lambda d: _svc(d, "node-exporter").update(logging={"driver": "json-file"}),
        rules.weak_hardening,
        "node-exporter: logs not rotated",
    ),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_rule_catches_violation(case: str, mutated: Any, generated: set[Path]) -> None:
    mutate, rule, expected = MUTATIONS[case]
    cfg = mutated(mutate)
    found = rule(cfg, generated=generated) if rule is rules.missing_bind_sources else rule(cfg)
    assert any(expected in line for line in found), found


# The same rules, broken inside the scale overlay: they must see the overlay's services too.
SCALE_MUTATIONS = {
    "unpinned VictoriaMetrics image": (
        lambda d: _svc(d, "vmselect").update(image="victoriametrics/vmselect:latest"),
        rules.unpinned_images,
        "vmselect: image victoriametrics/vmselect:latest is not pinned",
    ),
    "store without healthcheck": (
        lambda d: _svc(d, "vminsert").pop("healthcheck"),
        rules.missing_healthchecks,
        "vminsert: no healthcheck",
    ),
    "gossip port published": (
        lambda d: _svc(d, "alertmanager-2").update(ports=["9094:9094"]),
        rules.non_loopback_ports,
        "alertmanager-2: port 9094->9094 published on 0.0.0.0",
    ),
    "vmstorage as root": (
        lambda d: _svc(d, "vmstorage-1").pop("user"),
        rules.root_without_reason,
        "vmstorage-1: runs as the image default",
    ),
    "store without memory limit": (
        lambda d: _svc(d, "vmauth").pop("deploy"),
        rules.weak_hardening,
        "vmauth: no memory limit",
    ),
    "agent password in the environment": (
        lambda d: _svc(d, "vmauth")["environment"].update(
            AGENT_REMOTE_WRITE_PASSWORD="hunter2hunter2"
        ),
        rules.default_credentials,
        "vmauth: AGENT_REMOTE_WRITE_PASSWORD is a plain value",
    ),
}


@pytest.mark.parametrize("case", sorted(SCALE_MUTATIONS))
def test_rule_catches_violation_in_the_scale_overlay(case: str, mutated_scale: Any) -> None:
    mutate, rule, expected = SCALE_MUTATIONS[case]
    cfg = mutated_scale(mutate)
    found = rule(cfg, budget=rules.SCALE_MEMORY_BUDGET_BYTES) if rule is rules.weak_hardening \
        else rule(cfg)
    assert any(expected in line for line in found), found


def test_env_example_rule_catches_two_pins_for_one_image() -> None:
    compose = ("image: ${BUSYBOX_IMAGE:-busybox:1.38.0-musl}\n"
               "image: ${BUSYBOX_IMAGE:-busybox:1.36.1-musl}\n")
    found = rules.env_example_mismatches(compose, "BUSYBOX_IMAGE=busybox:1.38.0-musl\n")
    assert any("pin both" in line for line in found), found


def test_inventory_rule_catches_unknown_service_and_port(
    local_config: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "node.yml").write_text(
        "- targets: [nosuch:9100, prometheus:9999]\n  labels: {service: node, env: compose}\n"
        "- targets: ['http://api:8000/health/ready']\n"
        "  labels: {service: api, env: compose, blackbox: blackbox-exporter:1234}\n"
    )
    found = rules.inventory_mismatches(local_config, tmp_path)
    assert found == [
        "node.yml: nosuch:9100 does not name a compose service",
        "node.yml: prometheus:9999: prometheus does not listen on port 9999",
        "node.yml: blackbox-exporter:1234: blackbox-exporter does not listen on port 1234",
    ]


def test_datasource_rule_catches_localhost(local_config: dict[str, Any], tmp_path: Path) -> None:
    ds = tmp_path / "datasources.yml"
    ds.write_text(
        "apiVersion: 1\ndatasources:\n"
        "  - {name: Prometheus, type: prometheus, url: 'http://localhost:9090'}\n"
        "  - {name: Jaeger, type: jaeger, url: 'http://jaeger:16686'}\n"
        "  - {name: Elasticsearch, type: elasticsearch, url: '${ELASTICSEARCH_URL}'}\n"
        "  - {name: Loki, type: loki, url: '${LOKI_URL}'}\n"
    )
    found = rules.datasource_mismatches(local_config, [ds])
    assert found == [
        "datasources.yml (Prometheus): http://localhost:9090 does not name a compose service",
        "datasources.yml (Loki): ${LOKI_URL}: LOKI_URL not set for grafana in compose",
    ]


def test_secret_rule_catches_values_and_shapes() -> None:
    hashed = "$2b$10$" + "a" * 22 + "b" * 31
    files = {
        "grafana/provisioning/datasources/es.yml": (
            "secureJsonData:\n  basicAuthPassword: s3cr3tValue99\n"
        ),
        "docs/notes.md": "the key is Zq8-random-value-Zq8 here",
        "prometheus/web-config.yml": f"basic_auth_users:\n  admin: {hashed}\n",
        "ok.yml": "password_file: /run/secrets/x\nbasicAuthPassword: $__file{/run/secrets/y}\n",
    }
    found = rules.secret_values(files, known_values=["Zq8-random-value-Zq8"])
    assert any(
        f.startswith("grafana/provisioning/datasources/es.yml: literal secret") for f in found
    )
    assert "docs/notes.md: contains the value of a file in secrets/" in found
    assert "prometheus/web-config.yml: contains a bcrypt hash" in found
    assert not any(f.startswith("ok.yml") for f in found), found


def test_env_example_rule_catches_drift() -> None:
    compose = "image: ${PROMETHEUS_IMAGE:-prom/prometheus:v3.13.0}\n"
    assert rules.env_example_mismatches(compose, "PROMETHEUS_IMAGE=prom/prometheus:v3.13.0\n") == []
    assert rules.env_example_mismatches(compose, "PROMETHEUS_IMAGE=prom/prometheus:v3.12.0\n") == [
        "PROMETHEUS_IMAGE: compose.yaml pins prom/prometheus:v3.13.0, .env.example has "
        "prom/prometheus:v3.12.0"
    ]


def test_dockerfile_base_image_rule(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11.14-slim AS build\nFROM build\nFROM python:latest\n"
    )
    found = rules.unpinned_base_images({"context": str(tmp_path)}, project_dir=tmp_path)
    assert found == ["base image python:latest in Dockerfile is not pinned"]


def test_prometheus_authenticates_where_staging_demands_it(staging_config: dict[str, Any]) -> None:
    """The staging overlay puts Prometheus and Alertmanager behind basic auth, so
    prometheus.yml must send it to both (else alerts never leave and the self-scrape
    fails). password_file is relative to prometheus.yml: compose mounts
    secrets/basic_auth_password at /etc/prometheus/secrets/basic_auth_password."""
    from tests import prometheus_config

    command = " ".join(staging_config["services"]["prometheus"]["command"])
    assert "--web.config.file=" in command
    doc = prometheus_config.load(REPO / "prometheus" / "prometheus.yml")
    wanted = {"username": "admin", "password_file": "secrets/basic_auth_password"}
    blocks = {
        "alerting.alertmanagers[0]": doc["alerting"]["alertmanagers"][0],
        **{f"job {j['job_name']}": j for j in doc["scrape_configs"]},
    }
    missing = [
        name
        for name in ("alerting.alertmanagers[0]", "job prometheus", "job alertmanager")
        if blocks.get(name, {}).get("basic_auth") != wanted
    ]
    assert missing == [], f"prometheus.yml: add `basic_auth: {wanted}` to {missing}"


def test_env_example_equals_the_defaults(local_config: dict[str, Any]) -> None:
    """Copying .env.example to .env changes nothing: it documents the defaults."""
    lines = (REPO / ".env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert "BIND_ADDRESS" in env and "PROMETHEUS_IMAGE" in env
    with_env = rules.render([REPO / "compose.yaml"], env=env)
    changed = [
        n
        for n in local_config["services"]
        if with_env["services"][n] != local_config["services"][n]
    ]
    assert changed == []


@pytest.mark.parametrize("name", ["local", "staging", "scale"])  # the agent runs no Grafana
def test_grafana_starts_offline_and_on_its_pinned_plugins(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Grafana 13 preinstalls and auto-updates its data source plugins from grafana.com
    at start (grafana issue #127760 with a read-only root): both off."""
    env = request.getfixturevalue(f"{name}_config")["services"]["grafana"]["environment"]
    assert env.get("GF_PLUGINS_PREINSTALL_DISABLED") == "true"
    assert env.get("GF_PLUGINS_PREINSTALL_AUTO_UPDATE") == "false"


def test_otlp_ingest_stays_on_loopback(compose_available: None) -> None:
    """Jaeger's OTLP receivers take spans without authentication: even with
    BIND_ADDRESS opened, 4317/4318 stay on 127.0.0.1 (like Fluent Bit's 24224)."""
    opened = rules.render([REPO / "compose.yaml"], env={"BIND_ADDRESS": "0.0.0.0"})
    ports = {
        int(p["target"]): p.get("host_ip")
        for p in opened["services"]["jaeger"]["ports"]
    }
    assert ports[4317] == ports[4318] == "127.0.0.1", ports
    assert ports[16686] == "0.0.0.0"
