"""Which dashboards exist, and in which Grafana folder (one folder per theme)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db

from . import apollonia, platform, slo
from .common import render, to_json


@dataclass(frozen=True)
class DashboardSpec:
    folder: str  # directory under grafana/dashboards/, one Grafana folder each
    build: Callable[[], db.Dashboard]
    # Spans several scrape targets: must carry job and instance variables.
    spans_instances: bool = False


DASHBOARDS: tuple[DashboardSpec, ...] = (
    DashboardSpec("apollonia", apollonia.overview),
    DashboardSpec("apollonia", apollonia.business),
    DashboardSpec("apollonia", apollonia.ml_pipeline),
    DashboardSpec("slo", slo.slo),
    DashboardSpec("platform", platform.infrastructure, spans_instances=True),
    DashboardSpec("platform", platform.stack_health, spans_instances=True),
)


def generate() -> dict[str, tuple[dict[str, Any], str]]:
    """Relative path (<folder>/<uid>.json) -> (model, canonical JSON text)."""
    out: dict[str, tuple[dict[str, Any], str]] = {}
    for spec in DASHBOARDS:
        model = render(spec.build())
        path = f"{spec.folder}/{model['uid']}.json"
        if path in out:
            raise ValueError(f"two dashboards generate {path}")
        out[path] = (model, to_json(model))
    return out
