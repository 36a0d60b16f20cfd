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


def test_every_provisioned_datasource_is_healthy(compose, grafana) -> None:
    compose.watch("grafana")
    expected = provisioned_datasource_uids()
    assert expected, "no data source provisioned in the repo"
    present = {ds["uid"] for ds in grafana.get("/api/datasources").raise_for_status().json()}
    assert expected <= present, f"not provisioned in Grafana: {expected - present}"
    unhealthy = {}
    for uid in sorted(expected):
        resp = grafana.get(f"/api/datasources/uid/{uid}/health")
        body = (
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if resp.status_code != 200 or body.get("status") != "OK":
            unhealthy[uid] = f"HTTP {resp.status_code}: {body or resp.text[:200]}"
    compose.watch(*(u for u in unhealthy if u in {"prometheus", "jaeger", "elasticsearch"}))
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
