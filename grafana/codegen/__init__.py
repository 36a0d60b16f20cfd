"""Dashboards as code: Python (grafana-foundation-sdk) -> bare classic dashboard JSON.

`python -m grafana.codegen` writes grafana/dashboards/<folder>/<uid>.json;
`python -m grafana.codegen --check` exits 1 if the committed JSON differs.
"""

from .registry import DASHBOARDS, DashboardSpec, generate

__all__ = ["DASHBOARDS", "DashboardSpec", "generate"]
