"""The overlays on the engine.

  * staging (compose.staging.yaml, no demo): Prometheus and Alertmanager answer 401 without
    credentials and 200 with them; the engine publishes exactly the ports the rendered config
    asks for, all on 127.0.0.1.
  * scale (compose.scale.yaml): three Alertmanagers gossip over the compose network (one
    stopped: still exactly one notification per group); the Prometheus pair pages one
    ServiceDown with replica a stopped; the VictoriaMetrics cluster (a stand-in made of
    Debian's victoria-metrics, vmagent and vmauth) receives the pair's writes and answers
    queries.
  * agent (compose.agent.yaml): a second compose project, as a remote host, pushes through
    vmauth with its password; its series come back from the store labelled with its host.

The demo stack of the session is stopped first (its ports), and each overlay is taken down
at its end.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dev.engine import daemon
from tests.engine.conftest import (
    ALERTMANAGER,
    ENGINE_OVERRIDE,
    PROMETHEUS,
    ROOT,
    SINK,
    Compose,
    make,
    wait_for,
    wait_ports_free,
)

STAGING = [ROOT / "compose.yaml", ROOT / "compose.staging.yaml", ENGINE_OVERRIDE]
SCALE = [ROOT / "compose.yaml", ROOT / "compose.scale.yaml", ENGINE_OVERRIDE]
# The scale profile's own services and the demo's webhook sink (the pager); the api is left
# out on purpose: its target stays down, so ServiceDown fires on both replicas.
SCALE_SERVICES = ["volume-init", "prometheus", "prometheus-b", "alertmanager", "alertmanager-2",
                  "alertmanager-3", "vmstorage-init", "vmstorage-1", "vmstorage-2", "vminsert",
                  "vmselect", "vmauth", "webhook-sink", "node-exporter"]
REPLICAS = ["alertmanager", "alertmanager-2", "alertmanager-3"]
# Alertmanager's default --cluster.peer-timeout (prometheus/alertmanager@v0.33.1
# cmd/alertmanager/main.go): a replica at position n waits n peer timeouts before notifying.
PEER_TIMEOUT_S = 15


def _inside(compose: Compose, service: str, *argv: str) -> str:
    """Run argv in the service's container (its own busybox wget, amtool ...)."""
    proc = compose.engine.docker("exec", compose.container(service), *argv, timeout=60)
    return proc.stdout.decode()


def _get(compose: Compose, via: str, url: str) -> Any:
    return json.loads(_inside(compose, via, "wget", "-q", "-O", "-", url))


@pytest.fixture(scope="module")
def demo_stopped(bundle: Compose) -> Iterator[None]:
    bundle.run("down", "--timeout", "5")
    yield


def test_staging_needs_credentials_and_publishes_only_its_ports(
        engine: daemon.Engine, demo_stopped: None) -> None:
    staging = Compose(engine, STAGING, profiles=[])
    wait_ports_free(staging)
    proc = make(engine, "up", files=STAGING, profiles="")
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        password = (ROOT / "secrets" / "basic_auth_password").read_text().strip()
        for url in (f"{PROMETHEUS}/api/v1/status/buildinfo", f"{ALERTMANAGER}/api/v2/status"):
            assert httpx.get(url, timeout=10).status_code == 401, url
            assert httpx.get(url, auth=("admin", password), timeout=10).status_code == 200, url
            assert httpx.get(url, auth=("admin", password + "x"), timeout=10).status_code == 401
        config = json.loads(staging.run("config", "--format", "json").stdout)
        wanted = {(p.get("host_ip", ""), int(p["published"]), int(p["target"]))
                  for svc in config["services"].values() for p in svc.get("ports") or []}
        published = {(p["URL"], p["PublishedPort"], p["TargetPort"])
                     for c in staging.containers() for p in c.get("Publishers") or []
                     if p.get("PublishedPort")}
        assert published == wanted, f"published {sorted(published)}, compose asks {wanted}"
        assert {ip for ip, _, _ in published} == {"127.0.0.1"}, published
    finally:
        # With its volumes: a Prometheus keeps the last value of a target it no longer scrapes
        # for the lookback delta (5 min) after a restart, and staging's inventory is not the
        # scale profile's.
        staging.run("down", "--volumes", "--timeout", "5", check=False)


@pytest.fixture(scope="module")
def scale(engine: daemon.Engine, demo_stopped: None) -> Iterator[Compose]:
    compose = Compose(engine, SCALE)
    make(engine, "secrets", files=SCALE)  # agent_remote_write_password
    wait_ports_free(compose)
    compose.run("up", "--detach", "--wait", "--wait-timeout", "240", *SCALE_SERVICES,
                timeout=300)
    yield compose
    compose.run("down", "--timeout", "5", check=False)


@pytest.fixture(scope="module")
def agent(engine: daemon.Engine, scale: Compose) -> Iterator[Compose]:
    """compose.agent.yaml as a second project (a remote host), pushing from the start of the
    scale tests so its series are in the store by the time the agent's test looks."""
    central = scale.inspect("vmauth")["NetworkSettings"]["Networks"]
    network, address = next((n, v["IPAddress"]) for n, v in central.items())
    remote = Compose(engine, [ROOT / "compose.agent.yaml"], profiles=[],
                     project="apollonia-agent",
                     env={"AGENT_HOST": "engine-remote", "CENTRAL_STORE_ADDRESS": address})
    remote.run("up", "--detach", "volume-init", "node-exporter", "cadvisor", "prometheus-agent",
               timeout=240)
    # A remote host reaches the central one over the network; here the two projects share a
    # host, so the agent joins the central project's network to reach vmauth's address.
    engine.docker("network", "connect", network, remote.container("prometheus-agent"))
    yield remote
    remote.run("down", "--volumes", "--timeout", "5", check=False)


def _notes(receiver: str, **labels: str) -> list[dict[str, Any]]:
    notes = httpx.get(f"{SINK}/notifications", params={"receiver": receiver}, timeout=10).json()
    return [a for n in notes for a in n["payload"]["alerts"]
            if all(a["labels"].get(k) == v for k, v in labels.items())]


def test_alertmanagers_gossip_and_notify_each_group_once(scale: Compose, agent: Compose) -> None:
    wait_for("three Alertmanagers in one cluster", lambda: all(
        len(_get(scale, r, "http://127.0.0.1:9093/api/v2/status")["cluster"]["peers"]) == 3
        for r in REPLICAS), timeout=60)
    proof = uuid.uuid4().hex[:8]
    scale.run("stop", "--timeout", "5", "alertmanager")
    try:
        posted = time.monotonic()
        groups = [f"group-{i}" for i in range(3)]
        for replica in REPLICAS[1:]:  # what Prometheus does: every alert to every replica
            for group in groups:
                _inside(scale, replica, "amtool", "--alertmanager.url=http://127.0.0.1:9093",
                        "alert", "add", "alertname=EngineHaProof", f"service={group}",
                        "severity=critical", "env=compose", f"proof={proof}")
        # group_wait 10s (critical route), then up to two peer timeouts before the last
        # replica would send a duplicate.
        time.sleep(max(0.0, posted + 10 + 2 * PEER_TIMEOUT_S + 10 - time.monotonic()))
        per_group = Counter(a["labels"]["service"]
                            for a in _notes("critical", alertname="EngineHaProof", proof=proof))
        assert per_group == dict.fromkeys(groups, 1), per_group
    finally:
        scale.run("start", "alertmanager")


def _pair_state(scale: Compose) -> str:
    """What each hop holds when a page did not arrive: replica b's alerts and the Alertmanagers
    it sends to, each running replica's alerts (with inhibition and silences), the sink."""
    lines = []
    rules = _get(scale, "prometheus-b", "http://127.0.0.1:9090/api/v1/alerts")["data"]["alerts"]
    lines.append("replica b alerts: " + ", ".join(
        f"{a['labels']['alertname']}/{a['labels'].get('job', '')}:{a['state']}" for a in rules))
    ams = _get(scale, "prometheus-b", "http://127.0.0.1:9090/api/v1/alertmanagers")["data"]
    lines.append(f"replica b alertmanagers: {json.dumps(ams)}")
    for replica in REPLICAS[1:]:
        alerts = _get(scale, replica, "http://127.0.0.1:9093/api/v2/alerts")
        lines.append(f"{replica}: " + ", ".join(
            f"{a['labels']['alertname']}/{a['labels'].get('service', '')}:{a['status']}"
            for a in alerts))
        status = _get(scale, replica, "http://127.0.0.1:9093/api/v2/status")["cluster"]
        lines.append(f"{replica} cluster: {status['status']}, "
                     f"{len(status.get('peers') or [])} peers")
    notes = httpx.get(f"{SINK}/notifications", timeout=10).json()
    lines.append("sink: " + ", ".join(
        f"{n.get('receiver')}:"
        f"{[a['labels']['alertname'] for a in (n.get('payload') or {}).get('alerts') or []]}"
        for n in notes[-12:]))
    for service in ("prometheus-b", *REPLICAS):
        logs = scale.engine.docker("logs", "--tail", "15", scale.container(service), check=False)
        lines.append(f"--- {service} log:\n{(logs.stdout + logs.stderr).decode()[-3000:]}")
    return "\n".join(lines)


def test_pair_pages_service_down_once_with_replica_a_stopped(scale: Compose) -> None:
    # The previous test restarts an Alertmanager: this one proves the Prometheus pair, so it
    # starts from a settled cluster (every replica ready with its two peers), as in production.
    wait_for("three Alertmanagers in one settled cluster", lambda: all(
        (status := _get(scale, r, "http://127.0.0.1:9093/api/v2/status")["cluster"])["status"]
        == "ready" and len(status["peers"]) == 3 for r in REPLICAS), timeout=90)
    scale.run("stop", "--timeout", "5", "prometheus")
    try:
        labels = {"alertname": "ServiceDown", "job": "apollonia-api", "env": "compose"}
        try:
            wait_for("ServiceDown for the api from replica b",
                     lambda: _notes("critical", **labels), timeout=180, interval=5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_pair_state(scale)}") from None
        time.sleep(15)  # a duplicate from the other replica would arrive within this
        notes = _notes("critical", **labels)
        assert len(notes) == 1, notes
        assert "replica" not in notes[0]["labels"], "the pair's replica label reached a pager"
    finally:
        scale.run("start", "prometheus")


def test_store_receives_the_pair_and_answers(scale: Compose) -> None:
    query = "http://vmselect:8481/select/0/prometheus/api/v1/query?query="

    def series(expr: str) -> list[dict[str, Any]]:
        return _get(scale, "prometheus-b", query + expr)["data"]["result"]

    found = wait_for("the pair's samples in the store", lambda: series("up"), timeout=90)
    assert not [s for s in found if "replica" in s["metric"]], "replica was not dropped"
    jobs = {s["metric"]["job"] for s in found}
    assert {"prometheus", "node"} <= jobs, jobs


def test_remote_agent_pushes_through_vmauth(scale: Compose, agent: Compose) -> None:
    query = "http://vmselect:8481/select/0/prometheus/api/v1/query?query="
    found = wait_for("the remote host's series in the store", lambda: _get(
        scale, "prometheus-b", query + 'up{host="engine-remote"}')["data"]["result"],
        timeout=120, interval=5)
    assert {s["metric"]["job"] for s in found} >= {"node"}, found
