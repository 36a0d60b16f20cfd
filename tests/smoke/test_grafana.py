"""Grafana reports every provisioned data source healthy and has every dashboard of the repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[2]


def provisioned_datasource_uids() -> set[str]:
    path = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    with path.open(encoding="utf-8") as fh:
        return {ds["uid"] for ds in yaml.safe_load(fh)["datasources"]}


def repo_dashboard_uids() -> set[str]:
    return {
        json.loads(p.read_text(encoding="utf-8"))["uid"]
        for p in (ROOT / "grafana" / "dashboards").rglob("*.json")
    }


# Where to knock through Grafana's data source proxy when a plugin has no health check.
PROXY_PROBE = {
    "prometheus": "api/v1/status/buildinfo",
    "alertmanager": "api/v2/status",
    "jaeger": "api/services",
    "elasticsearch": "_cluster/health",
}


def test_every_provisioned_datasource_is_healthy(compose, grafana) -> None:
    compose.watch("grafana")
    expected = provisioned_datasource_uids()
    assert expected, "no data source provisioned in the repo"
    datasources = {
        ds["uid"]: ds for ds in grafana.get("/api/datasources").raise_for_status().json()
    }
    assert expected <= set(datasources), (
        f"not provisioned in Grafana: {expected - set(datasources)}"
    )
    unhealthy = {}
    for uid in sorted(expected):
        resp = grafana.get(f"/api/datasources/uid/{uid}/health")
        try:
            body = resp.json()
        except ValueError:
            body = {"text": resp.text[:200]}
        if resp.status_code == 200 and body.get("status") == "OK":
            continue
        if "not implemented" in str(body).lower():
            path = PROXY_PROBE.get(datasources[uid]["type"])
            proxied = grafana.get(f"/api/datasources/proxy/uid/{uid}/{path}") if path else None
            if proxied is not None and proxied.status_code == 200:
                continue
        unhealthy[uid] = f"HTTP {resp.status_code}: {body}"
    compose.watch(
        *(u for u in unhealthy if u in {"prometheus", "alertmanager", "jaeger", "elasticsearch"})
    )
    assert not unhealthy, unhealthy


def test_every_dashboard_is_present(compose, grafana) -> None:
    compose.watch("grafana")
    expected = repo_dashboard_uids()
    assert expected, "no dashboard JSON in grafana/dashboards"
    found = grafana.get("/api/search", params={"type": "dash-db", "limit": 5000})
    present = {d["uid"] for d in found.raise_for_status().json()}
    assert expected <= present, f"dashboards missing in Grafana: {sorted(expected - present)}"
    for uid in sorted(expected):
        dash = grafana.get(f"/api/dashboards/uid/{uid}")
        assert dash.status_code == 200, f"{uid}: HTTP {dash.status_code}"
        assert dash.json()["dashboard"]["panels"], f"{uid} has no panels"
