"""Dashboard queries as Grafana sends them: variables filled in, step and $__rate_interval
computed for a time range the way Grafana's Prometheus data source does.

Grafana (public/app/plugins/datasource/prometheus, documented under "$__rate_interval"):
  $__interval      = max(min interval, range / max data points), rounded to a nice value;
                     min interval = the query's min step, else the data source's timeInterval
  step             = $__interval
  $__rate_interval = max($__interval + scrape interval, 4 x scrape interval), where the
                     scrape interval is the query's min step if set, else timeInterval
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dev.benchmark_scale.workload import ENV

MAX_DATA_POINTS = 1000  # a panel about 1000 px wide
# Values for the dashboards' variables on the synthetic fleet.
VARIABLES = {"env": ENV, "service": ".*", "job": ".*", "instance": ".*", "model": ".*"}
SLO = ("api", "availability")
# Grafana's interval ladder (@grafana/data rangeutil roundInterval): an interval under the
# first number (ms) becomes the second.
_ROUND = ((10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
          (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000),
          (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000),
          (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
          (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
          (16200000, 10800000))


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str
    instant: bool
    min_step: float  # seconds, 0 when unset


def seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text.strip())
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def round_interval(ms: float) -> float:
    for upper, value in _ROUND:
        if ms < upper:
            return value
    return 21600000


def interval(range_s: float, min_step: float, time_interval: float) -> float:
    """Grafana's $__interval (and the query step), seconds."""
    auto = round_interval(range_s * 1000 / MAX_DATA_POINTS) / 1000
    return max(min_step or time_interval, auto)


def rate_interval(range_s: float, min_step: float, time_interval: float) -> float:
    scrape = min_step or time_interval
    return max(interval(range_s, min_step, time_interval) + scrape, 4 * scrape)


def concrete(q: Query, range_s: float, time_interval: float) -> tuple[str, float]:
    """(PromQL, step) of a panel query for a range ending now."""
    step = interval(range_s, q.min_step, time_interval)
    expr = q.expr.replace("$__rate_interval",
                          f"{rate_interval(range_s, q.min_step, time_interval):.0f}s")
    expr = expr.replace("$__interval", f"{step:.0f}s").replace("$__range", f"{range_s:.0f}s")
    if "$slo" in expr:  # the SLO dashboard's single-value service and slo
        expr = expr.replace("$service", SLO[0]).replace("$slo", SLO[1])
    expr = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: VARIABLES.get(m.group(1) or m.group(2), m.group(0)), expr)
    return expr, step


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out += _panels(p.get("panels", []))
    return out


def queries(dashboards: dict[str, str]) -> list[Query]:
    """Every Prometheus target of the given dashboards (path -> JSON text)."""
    out = []
    for path, text in sorted(dashboards.items()):
        model = json.loads(text)
        for panel in _panels(model.get("panels", [])):
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel.get("datasource") or {}
                if ds.get("type") != "prometheus" or not target.get("expr"):
                    continue
                step = target.get("interval") or ""
                out.append(Query(Path(path).stem, panel.get("title", "?"), target["expr"],
                                 bool(target.get("instant")), seconds(step) if step else 0.0))
    return out


def read_dashboards(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.json"))}
