"""Automated diagnosis: the guide's troubleshooting queries, corrected, run against Prometheus.

    python -m tools.diagnose [--prometheus URL]      (or: make diagnose)

Prints one line per check (ok / warning / critical) with the measured value and,
for a finding, the follow-up breakdowns and what to look at next. Exits 1 when a
check is critical, 2 when Prometheus cannot be queried.

Changed from the guide: quantiles are aggregated `by (le, ...)`, the error rate is
a ratio of separately summed rates, and the memory check uses metrics the stack
really exports (process_resident_memory_bytes, python_gc_collections_total)
instead of the guide's memory_usage_bytes / gc_collections_total, which nothing
emits.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Diagnosis:
    name: str
    query: str  # one number (the worst series) is compared with the thresholds
    warning: float
    critical: float
    unit: str
    breakdowns: dict[str, str] = field(default_factory=dict)
    advice: tuple[str, ...] = ()


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(
        name="high_latency",
        query="max(service:http_request_duration_seconds:p95_rate5m)",
        warning=1.0,
        critical=2.0,
        unit="s",
        breakdowns={
            "p95 by endpoint": "topk(5, service_endpoint:http_request_duration_seconds:p95_rate5m)",
            "database p95": "service:database_query_duration_seconds:p95_rate5m",
        },
        advice=(
            "Check database query performance",
            "Review slow endpoints (Jaeger: sort by duration)",
            "Consider caching or scaling out",
        ),
    ),
    Diagnosis(
        name="high_error_rate",
        query="max(service:http_requests_error_ratio:rate5m)",
        warning=0.05,
        critical=0.10,
        unit="ratio",
        breakdowns={
            "5xx by endpoint": 'topk(5, sum by (service, endpoint, status_code) '
            '(rate(http_requests_total{status_code=~"5.."}[5m])))',
        },
        advice=(
            "Search the logs for level:ERROR with the failing route",
            "Check database and dependency connectivity",
            "Review recent deployments",
        ),
    ),
    Diagnosis(
        name="memory_pressure",
        query='max(process_resident_memory_bytes{job=~"apollonia-.*"})',
        warning=1.5e9,
        critical=2.0e9,
        unit="bytes",
        breakdowns={
            "growth per hour": "deriv(process_resident_memory_bytes"
            '{job=~"apollonia-.*"}[30m]) * 3600',
            "GC collections/s": "sum by (service, generation) "
            "(rate(python_gc_collections_total[10m]))",
        },
        advice=(
            "Look for leaks: steady growth with flat traffic",
            "Check container limits and OOM kills (cAdvisor)",
        ),
    ),
    Diagnosis(
        name="database",
        query="max(service:database_query_duration_seconds:p95_rate5m)",
        warning=0.5,
        critical=1.0,
        unit="s",
        breakdowns={
            "avg by table": "topk(5, service_table:database_query_duration_seconds:avg_rate5m)",
            "active connections": "database_connections_active",
        },
        advice=("Check slow query log and missing indexes", "Check connection pool saturation"),
    ),
    Diagnosis(
        name="queue_backlog",
        query='max(queue_messages_total{queue_name="analyzer_queue"})',
        warning=100,
        critical=500,
        unit="messages",
        breakdowns={"ML error ratio": "service:ml_processing_error_ratio:rate5m"},
        advice=("Check the analyzer is consuming (up, errors)", "Scale analyzer workers"),
    ),
)


def query(client: httpx.Client, promql: str) -> list[dict]:
    resp = client.get("/api/v1/query", params={"query": promql})
    resp.raise_for_status()
    body = resp.json()
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", "query failed"))
    return body["data"]["result"]


def run(client: httpx.Client) -> int:
    worst = 0
    for d in DIAGNOSES:
        result = query(client, d.query)
        if not result:
            print(f"{'no data':9} {d.name}: {d.query}")
            continue
        value = float(result[0]["value"][1])
        level = 2 if value >= d.critical else 1 if value >= d.warning else 0
        worst = max(worst, level)
        print(f"{('ok', 'warning', 'critical')[level]:9} {d.name}: {value:.4g} {d.unit}")
        if level:
            for title, promql in d.breakdowns.items():
                for series in query(client, promql):
                    labels = ",".join(f"{k}={v}" for k, v in sorted(series["metric"].items()))
                    print(f"          {title}: {{{labels}}} {float(series['value'][1]):.4g}")
            for line in d.advice:
                print(f"          - {line}")
    return 1 if worst == 2 else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    args = parser.parse_args(argv)
    try:
        with httpx.Client(base_url=args.prometheus, timeout=10) as client:
            return run(client)
    except (httpx.HTTPError, RuntimeError) as exc:
        print(f"diagnose: cannot query Prometheus at {args.prometheus}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
