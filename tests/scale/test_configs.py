"""The scale and agent profiles' configs agree with each other (offline, no process started).

One source per concept: the HA replicas' config is prometheus.yml plus the HA settings, the
native run changes nothing but the store's address, and the few facts that must be equal in
several places (the dedup interval, the `replica` label, the `origin` label of remote hosts,
the ports) are compared here instead of being trusted.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from native import scale, stack
from tests import prometheus_config
from tests.rules.ruleset import seconds

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "prometheus"
HA = PROM / "prometheus-ha.yml"
AGENT = PROM / "agent.yml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_ha_config_is_the_single_config_plus_the_ha_settings() -> None:
    ha, single = load(HA), load(PROM / "prometheus.yml")
    assert ha["global"].pop("external_labels") == {"replica": "${PROMETHEUS_REPLICA}"}
    assert ha["alerting"].pop("alert_relabel_configs") == [
        {"action": "labeldrop", "regex": "replica"}
    ]
    assert len(ha.pop("remote_write")) == 1
    assert ha == single, "prometheus-ha.yml drifted from prometheus.yml beyond the HA settings"


def test_agent_config_scrapes_the_same_jobs_at_the_same_pace() -> None:
    agent, single = load(AGENT), load(PROM / "prometheus.yml")
    assert agent["scrape_config_files"] == single["scrape_config_files"]
    for key in ("scrape_interval", "scrape_timeout"):
        assert agent["global"][key] == single["global"][key], key
    # Agent mode refuses these (config.LoadFile with agentMode at v3.5.3).
    assert not {"rule_files", "alerting", "remote_read"} & set(agent)
    assert agent["global"]["external_labels"] == {"host": "${AGENT_HOST}"}


@pytest.mark.parametrize(
    ("config", "url"), [(HA, scale.STORE_WRITE_URL), (AGENT, scale.AGENT_WRITE_URL)]
)
def test_native_configs_differ_only_in_the_remote_write_url(config: Path, url: str) -> None:
    shipped = config.read_text().splitlines()
    native = scale.with_remote_write_url(config, url).splitlines()
    changed = [line for line in difflib.unified_diff(shipped, native, lineterm="", n=0)
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) == 2 and changed[1][1:].strip() == f"url: {url}", changed


def test_replicas_write_and_alert_without_their_replica_label() -> None:
    """The label the replicas differ by is the one the store drops on ingestion."""
    (label,) = load(HA)["global"]["external_labels"]
    relabel = load(ROOT / "victoriametrics/relabel.yml")
    assert {"action": "labeldrop", "regex": label} in relabel


def test_remote_hosts_are_tagged_read_back_and_not_written_twice() -> None:
    """vmauth tags what agents push origin="agent"; the remote-hosts job reads exactly that
    back from the store; the pair does not write those series a second time."""
    vmauth = load(ROOT / "victoriametrics/vmauth.yml")
    (user,) = vmauth["users"]
    (route,) = user["url_map"]
    assert route["src_paths"] == ["/api/v1/write"]
    tag = re.search(r"extra_label=(\w+)=(\w+)", route["url_prefix"])
    assert tag, route
    name, value = tag.groups()
    jobs = {j["job_name"]: j for j in prometheus_config.load()["scrape_configs"]}
    assert jobs["remote-hosts"]["params"] == {"match[]": [f'{{{name}="{value}"}}']}
    assert jobs["remote-hosts"]["honor_labels"] is True
    (write,) = load(HA)["remote_write"]
    assert {"source_labels": [name], "regex": value, "action": "drop"} in write[
        "write_relabel_configs"]


def _compose_flags(cfg: dict[str, Any], service: str) -> dict[str, str]:
    flags = {}
    for arg in cfg["services"][service]["command"]:
        key, _, value = arg.lstrip("-").partition("=")
        flags[key] = value
    return flags


@pytest.fixture(scope="module")
def scale_compose() -> dict[str, Any]:
    from tests.policy import rules

    if rules.compose_bin() is None:
        pytest.fail("docker-compose not found (make bootstrap installs it into .tools/bin)")
    return rules.render([ROOT / "compose.yaml", ROOT / "compose.scale.yaml"])


def test_dedup_interval_is_the_scrape_interval_everywhere(scale_compose: dict[str, Any]) -> None:
    """VictoriaMetrics keeps one sample per -dedup.minScrapeInterval, which must equal the
    scrape interval, and be the same on vmselect and vmstorage (Cluster-VictoriaMetrics.md)."""
    interval = load(PROM / "prometheus.yml")["global"]["scrape_interval"]
    found = {"native": scale.DEDUP_INTERVAL}
    for svc in ("vmselect", "vmstorage-1", "vmstorage-2"):
        found[svc] = _compose_flags(scale_compose, svc)["dedup.minScrapeInterval"]
    assert set(found.values()) == {interval}, found
    native = [f for f in scale.store_flags(Path("/data")) if "dedup" in f or "relabel" in f]
    assert native == [f"-dedup.minScrapeInterval={interval}",
                      f"-relabelConfig={ROOT / 'victoriametrics/relabel.yml'}"]
    assert _compose_flags(scale_compose, "vminsert")["relabelConfig"] == (
        "/etc/victoriametrics/relabel.yml")


def test_compose_replicas_are_identical(scale_compose: dict[str, Any]) -> None:
    svcs = scale_compose["services"]

    def without(svc: dict[str, Any], *keys: str) -> dict[str, Any]:
        out = copy.deepcopy(svc)
        for key in keys:
            out.pop(key, None)
        out["volumes"] = [v for v in out["volumes"] if v["type"] == "bind"]
        return out

    a, b = svcs["prometheus"], svcs["prometheus-b"]
    assert (a["environment"], b["environment"]) == (
        {"PROMETHEUS_REPLICA": "a"}, {"PROMETHEUS_REPLICA": "b"})
    differ = ("environment", "ports", "command")
    assert without(a, *differ) == without(b, *differ)
    flags_a, flags_b = _compose_flags(scale_compose, "prometheus"), _compose_flags(
        scale_compose, "prometheus-b")
    assert {k for k in flags_a if flags_a[k] != flags_b.get(k)} == {"web.external-url"}
    ams = [svcs[n] for n in ("alertmanager", "alertmanager-2", "alertmanager-3")]
    assert all(without(am, "ports") == without(ams[0], "ports") for am in ams)
    peers = [f.split("=", 1)[1] for f in ams[0]["command"] if f.startswith("--cluster.peer=")]
    assert sorted(peers) == sorted(f"{n}:9094" for n in ("alertmanager", "alertmanager-2",
                                                          "alertmanager-3"))
    inventory = yaml.safe_load((PROM / "targets/compose/scale/alertmanagers.yml").read_text())
    assert sorted(inventory[0]["targets"]) == sorted(f"{n}:9093" for n in (
        "alertmanager", "alertmanager-2", "alertmanager-3"))


def test_native_scale_ports_leave_the_base_run_alone() -> None:
    """The scale profile runs next to the base run (and the native demo dependencies)."""
    base = {c.port for c in stack.components() if c.port} | {9094}
    # PostgreSQL, Redis, RabbitMQ (+ management, metrics) and their exporters (native demo deps);
    # the notification benchmark's own processes.
    base |= {5432, 6379, 5672, 15672, 15692, 9187, 9121, 19090, 19093, 15001}
    ours = [c.port for c in scale.components()] + [g for _, g in scale.ALERTMANAGERS.values()]
    ours.append(scale.VMAUTH_PORT)
    assert len(ours) == len(set(ours)), ours
    assert not set(ours) & base, set(ours) & base
    inventory = {t for f in (PROM / "targets/native/scale").glob("*.yml")
                 for g in load(f) for t in g["targets"]}
    assert {int(t.rsplit(":", 1)[1]) for t in inventory} <= set(ours)


def test_remote_write_queue_settings_are_explained() -> None:
    """Every queue setting the HA and agent configs choose carries a reason in a comment."""
    for path in (HA, AGENT):
        text = path.read_text()
        (write,) = load(path)["remote_write"]
        queue = write["queue_config"]
        assert {"max_shards", "max_samples_per_send", "capacity", "max_backoff",
                "batch_send_deadline", "retry_on_http_429"} <= set(queue), path.name
        block = text[text.index("queue_config:"):]
        assert block.count("#") >= 3, f"{path.name}: queue_config without its reasons"
        assert "sample_age_limit" not in queue, "an age limit drops samples after an outage"
        assert seconds(queue["max_backoff"]) <= 5
