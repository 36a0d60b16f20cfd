"""A synthetic Apollonia fleet: every series the workload exports, at any scale and time.

The label sets come from the workload's own metric definitions (workload/apollonia/
metrics.py: names, types, label values, buckets), multiplied by instances and, for the
HTTP metrics, by synthetic routes. Values are functions of time, the same for the backfill
and for the live exporter, so the history and the scrapes join without a step:

    counter(t) = rate x D(t),  D(t) = (t - T0) - A/w (cos wt - cos wT0)

a daily wave of +-A around the mean rate (never negative for A < 1); a histogram's buckets
are fixed shares of its count; gauges wave around a level.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from apollonia import metrics as contract
from prometheus_client import CollectorRegistry

ENV = "bench"
T0 = 1_600_000_000.0  # counters start here (any time before the history)
WAVE = 0.3  # +-30% daily traffic wave
OMEGA = 2 * math.pi / 86400
ERROR_SHARE = 0.002  # 0.2% of requests answer 500
# Share of requests at or under each latency bucket (cumulative): p95 ~0.3 s, 0.5% over 0.5 s.
LATENCY_SHARE = (0.02, 0.05, 0.12, 0.25, 0.45, 0.85, 0.995, 0.998, 0.9995, 0.9999, 1.0)
SKIP_FAMILIES = ("http_",)  # generated per route below


@dataclass(frozen=True)
class Scale:
    name: str
    api_instances: int
    routes: int = 25
    analyzers: int = 2


SMALL = Scale("small", api_instances=2)
LARGE = Scale("large", api_instances=40)
SCALES = {s.name: s for s in (SMALL, LARGE)}


@dataclass(frozen=True)
class Series:
    name: str
    labels: tuple[tuple[str, str], ...]
    kind: str  # counter | gauge
    level: float  # counter: mean events/s; gauge: mean value

    def value(self, t: float) -> float:
        if self.kind == "counter":
            return self.level * ((t - T0) - WAVE / OMEGA * (math.cos(OMEGA * t)
                                                            - math.cos(OMEGA * T0)))
        return self.level * (1 + 0.1 * math.sin(OMEGA * t))

    def text(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"


def _routes(n: int) -> list[tuple[str, str, str]]:
    """(method, route template, success code): health and metrics routes (not user
    traffic for the SLOs) plus resource routes."""
    fixed = [("GET", "/health/ready", "200"), ("GET", "/metrics", "200")]
    rest = [("POST" if k % 5 == 0 else "GET", f"/api/v1/resource{k}", "201" if k % 5 == 0
             else "200") for k in range(n - len(fixed))]
    return (fixed + rest)[:n]


def _http(target: tuple[tuple[str, str], ...], routes: list[tuple[str, str, str]],
          rate: float) -> Iterator[Series]:
    for k, (method, endpoint, ok) in enumerate(routes):
        r = rate * (1 + k % 3)
        base = (*target, ("method", method), ("endpoint", endpoint))
        yield Series("http_requests_total", (*base, ("status_code", ok)), "counter",
                     r * (1 - ERROR_SHARE))
        yield Series("http_requests_total", (*base, ("status_code", "500")), "counter",
                     r * ERROR_SHARE)
        yield from _histogram("http_request_duration_seconds", base, contract.LATENCY_BUCKETS,
                              r, 0.2)


def _histogram(name: str, labels: tuple[tuple[str, str], ...], buckets: tuple[float, ...],
               rate: float, mean: float) -> Iterator[Series]:
    shares = LATENCY_SHARE if len(buckets) == len(LATENCY_SHARE) else [
        (i + 1) / len(buckets) for i in range(len(buckets))]
    for le, share in zip(buckets, shares, strict=True):
        yield Series(f"{name}_bucket", (*labels, ("le", _le(le))), "counter", rate * share)
    yield Series(f"{name}_bucket", (*labels, ("le", "+Inf")), "counter", rate)
    yield Series(f"{name}_count", labels, "counter", rate)
    yield Series(f"{name}_sum", labels, "counter", rate * mean)


def _le(v: float) -> str:
    """The workload's bucket label (prometheus_client writes floats: 0.5, 1.0, 16384.0)."""
    return repr(float(v))


def _contract(registry: CollectorRegistry, target: tuple[tuple[str, str], ...],
              rate: float) -> Iterator[Series]:
    """Every pre-created series of a workload registry except the HTTP ones."""
    for family in registry.collect():
        if family.name.startswith(SKIP_FAMILIES):
            continue
        if family.type == "histogram":
            seen = set()
            for sample in family.samples:
                labels = tuple((k, v) for k, v in sample.labels.items() if k != "le")
                if labels in seen:
                    continue
                seen.add(labels)
                buckets = tuple(float(s.labels["le"]) for s in family.samples
                                if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
                                and tuple((k, v) for k, v in s.labels.items()
                                          if k != "le") == labels)
                yield from _histogram(family.name, (*target, *labels), buckets, rate, 0.1)
            continue
        for sample in family.samples:
            labels = (*target, *sample.labels.items())
            if family.type == "counter":
                yield Series(sample.name, labels, "counter", rate)
            else:
                level = sample.value if sample.value == sample.value and sample.value else 7.0
                yield Series(sample.name, labels, "gauge", float(level))


def fleet(scale: Scale) -> list[Series]:
    """Every series of the synthetic fleet: api and analyzer instances."""
    out: list[Series] = []
    api_routes = _routes(scale.routes)
    for i in range(scale.api_instances):
        target = (("job", "apollonia-api"), ("instance", f"api-{i:02d}:8000"),
                  ("service", "api"), ("env", ENV))
        out += _http(target, api_routes, 0.2)
        out += _contract(_registry(contract.ApiMetrics), target, 0.5)
    analyzer_routes = [("POST", "/analyze", "200"), ("GET", "/health/ready", "200"),
                       ("GET", "/metrics", "200")]
    for i in range(scale.analyzers):
        target = (("job", "apollonia-analyzer"), ("instance", f"analyzer-{i}:8001"),
                  ("service", "analyzer"), ("env", ENV))
        out += _http(target, analyzer_routes, 1.0)
        out += _contract(_registry(contract.AnalyzerMetrics), target, 2.0)
    return out


def _registry(kind: type) -> CollectorRegistry:
    registry = CollectorRegistry()
    kind(registry)
    return registry


def api_series(series: list[Series]) -> int:
    return sum(1 for s in series if ("service", "api") in s.labels)


# --- text formats ----------------------------------------------------------------------------


def exposition(series: list[Series], t: float) -> str:
    """Prometheus text format at time t (no timestamps: the scrape time is used)."""
    return "".join(f"{s.text()} {s.value(t):.6f}\n" for s in series)


def openmetrics(series: list[Series], times: list[float], out) -> int:  # noqa: ANN001 - file
    """OpenMetrics with timestamps for `promtool tsdb create-blocks-from openmetrics`: one
    untyped family per metric name (samples of a family must be contiguous), each series'
    samples in time order. Returns the number of samples written."""
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    n = 0
    for name, group in by_name.items():
        out.write(f"# TYPE {name} unknown\n")
        for s in group:
            head = s.text()
            out.write("".join(f"{head} {s.value(t):.6f} {t:.0f}\n" for t in times))
            n += len(times)
    out.write("# EOF\n")
    return n
