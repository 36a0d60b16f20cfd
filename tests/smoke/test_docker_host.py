"""What only a Docker engine can prove about how the stack sits on its host (`make smoke`).

make test checks compose.yaml against the image contracts (tests/policy); these check the
running stack: the staged secrets really carry each consumer's owner and mode, the
node-exporter sees every host disk once with its real flags, Grafana starts without error
lines or plugin downloads, OTLP is published on loopback only, and Elasticsearch runs with
the laptop watermarks.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

from tests.smoke.conftest import ComposeStack

PROMETHEUS_URL = "http://127.0.0.1:9090"


def _config(compose: ComposeStack) -> dict[str, Any]:
    proc = compose.run("--profile", "demo", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _in_volume(
    cfg: dict[str, Any], volume: str, user: str, *cmd: str
) -> subprocess.CompletedProcess[str]:
    """Run busybox (the stack's own pin) with a staged volume mounted read-only."""
    image = cfg["services"]["volume-init"]["image"]
    name = cfg["volumes"][volume]["name"]
    return subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            user,
            "-v",
            f"{name}:/s:ro",
            image,
            *cmd,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_staged_secrets_carry_each_consumers_owner_and_mode(compose: ComposeStack) -> None:
    cfg = _config(compose)
    env = cfg["services"]["volume-init"]["environment"]
    mounts = {m["target"]: m["source"] for m in cfg["services"]["volume-init"]["volumes"]}
    checked = 0
    for key, value in env.items():
        if not key.startswith("STAGE_"):
            continue
        owner = value.split()[0]
        volume = mounts[f"/staged/{key[len('STAGE_') :]}"]
        proc = _in_volume(cfg, volume, "0:0", "sh", "-c", "stat -c '%a %u:%g %n' /s /s/*")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.split("\n")
        assert lines[0] == f"500 {owner} /s", (volume, lines)
        assert all(line.startswith(f"400 {owner} ") for line in lines[1:] if line), (volume, lines)
        checked += 1
    assert checked >= 10
    # Another user cannot read Elasticsearch's copy (Grafana's UID here).
    denied = _in_volume(cfg, "secrets-elasticsearch", "472:0", "cat", "/s/elasticsearch_password")
    assert denied.returncode != 0


def test_node_exporter_sees_each_host_disk_once(compose: ComposeStack) -> None:
    compose.watch("node-exporter", "prometheus")
    result = httpx.get(
        f"{PROMETHEUS_URL}/api/v1/query",
        params={"query": 'node_filesystem_readonly{job="node"}'},
        timeout=15,
    ).json()["data"]["result"]
    mountpoints = [r["metric"]["mountpoint"] for r in result]
    assert "/" in mountpoints, mountpoints
    assert not [m for m in mountpoints if m.startswith("/etc/")], mountpoints
    assert len(mountpoints) == len(set(mountpoints)), mountpoints
    root = next(r for r in result if r["metric"]["mountpoint"] == "/")
    assert root["value"][1] == "0", "the host's / is reported read-only: host mount table not read"


def test_grafana_starts_without_errors_or_plugin_downloads(compose: ComposeStack, real) -> None:
    real("grafana", "a stand-in logs no plugin installer and no Grafana errors to look for")
    compose.watch("grafana")
    log = compose.logs("grafana", tail=5000)
    errors = [line for line in log.splitlines() if "level=error" in line]
    assert errors == [], errors[:10]
    assert "plugin.backgroundinstaller" not in log
    assert "Installing plugin" not in log


def test_otlp_is_published_on_loopback_only(compose: ComposeStack) -> None:
    for port in ("4317", "4318"):
        proc = compose.run("port", "jaeger", port)
        assert proc.stdout.strip() == f"127.0.0.1:{port}", proc.stdout + proc.stderr


def test_elasticsearch_runs_with_the_compose_watermarks(
    compose: ComposeStack, es: httpx.Client
) -> None:
    """The node took the watermarks compose sets (-E from the environment)."""
    nodes = es.get("/_nodes/settings", params={"flat_settings": "true"}).json()["nodes"]
    key = "cluster.routing.allocation.disk.watermark."
    want = {
        k: v
        for k, v in _config(compose)["services"]["elasticsearch"]["environment"].items()
        if k.startswith(key)
    }
    assert want, "compose sets no disk watermark"
    for node in nodes.values():
        got = {k: node["settings"].get(k) for k in want}
        assert got == want, got
