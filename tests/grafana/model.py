"""Reading the committed dashboards and provisioning files, for the Grafana tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"


@dataclass(frozen=True)
class Target:
    dashboard: str  # file name relative to grafana/dashboards
    panel: str  # panel title
    panel_type: str
    ds_type: str
    expr: str  # PromQL (Prometheus targets) or Lucene (Elasticsearch)
    min_step: str  # the query's "interval" (Min step), "" when unset

    @property
    def where(self) -> str:
        return f"{self.dashboard}: panel {self.panel!r}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("**/*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel except row headers, including panels nested in collapsed rows."""
    for panel in model.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(model: dict[str, Any]) -> list[dict[str, Any]]:
    return model.get("templating", {}).get("list", [])


def targets(path: Path) -> Iterator[Target]:
    model = load(path)
    rel = path.relative_to(DASHBOARD_DIR).as_posix()
    for panel in panels(model):
        for t in panel.get("targets", []):
            ds = t.get("datasource") or panel.get("datasource") or {}
            expr = t.get("expr") if ds.get("type") == "prometheus" else t.get("query", "")
            yield Target(rel, panel.get("title", ""), panel.get("type", ""), ds.get("type", ""),
                         expr or "", t.get("interval", ""))


def all_targets() -> list[Target]:
    return [t for path in dashboard_files() for t in targets(path)]


def provisioned_datasources() -> list[dict[str, Any]]:
    return yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]


_DURATION = re.compile(r"^(\d+)([smhd])$")


def seconds(duration: str) -> int:
    m = _DURATION.match(duration)
    if not m:
        raise ValueError(f"not a simple duration: {duration!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
