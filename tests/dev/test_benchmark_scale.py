"""The pieces of `make benchmark-scale` that need no long run: the synthetic fleet, its
OpenMetrics backfill (checked with the real promtool), Grafana's step and $__rate_interval,
the 10 s extrapolation and the report tables."""

from __future__ import annotations

import subprocess
from pathlib import Path

import promql_parser
import pytest

from dev.benchmark_scale import panels, report, workload
from dev.benchmark_scale.__main__ import PROMTOOL, at_10s

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_sizes_are_the_issue_s() -> None:
    assert 900 <= workload.api_series(workload.fleet(workload.SMALL)) <= 1200
    large = workload.fleet(workload.LARGE)
    assert 18_000 <= workload.api_series(large) <= 23_000
    assert len({s.text() for s in large}) == len(large), "duplicate series"
    names = {s.name for s in large}
    # every family of the workload's contract is there, not only the HTTP ones
    assert {"media_upload_size_bytes_bucket", "ml_inference_duration_seconds_bucket",
            "cache_operations_total", "queue_messages_total"} <= names


def test_counters_grow_and_histograms_are_consistent() -> None:
    series = workload.fleet(workload.SMALL)
    t = [1.8e9 + 60 * i for i in range(24 * 60)]
    for s in series[:200]:
        values = [s.value(x) for x in t]
        if s.kind == "counter":
            assert all(b >= a for a, b in zip(values, values[1:], strict=False)), s.text()
        else:
            assert min(values) > 0, s.text()
    by = {s.text(): s for s in series}
    count = next(s for s in series if s.name == "http_request_duration_seconds_count")
    inf = by[count.text().replace("_count{", "_bucket{")[:-1] + ',le="+Inf"}']
    assert inf.value(t[-1]) == count.value(t[-1])
    buckets = sorted((float(dict(s.labels)["le"]), s.value(t[-1])) for s in series
                     if s.name == "http_request_duration_seconds_bucket"
                     and s.labels[:-1] == count.labels)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


@pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool not installed: run `make bootstrap`")
def test_openmetrics_backfill_is_accepted_by_promtool(tmp_path: Path) -> None:
    series = workload.fleet(workload.SMALL)[:20]
    text = tmp_path / "in.om"
    with text.open("w") as out:
        n = workload.openmetrics(series, [1.8e9 + 60 * i for i in range(10)], out)
    proc = subprocess.run([str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics",
                           str(text), str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert n == 200 and " 200 " in proc.stdout and " 20 " in proc.stdout, proc.stdout


def test_exposition_is_one_sample_per_series() -> None:
    series = workload.fleet(workload.SMALL)[:5]
    lines = workload.exposition(series, 1.8e9).splitlines()
    assert len(lines) == 5 and lines[0].startswith(series[0].text() + " ")


@pytest.mark.parametrize(("range_s", "min_step", "scrape", "step", "rate"), [
    (3600, 0, 15, 15, 60),        # 1h on the bundle's data source: 15s step, [1m] rates
    (86400, 0, 15, 60, 75),       # 24h: a 1000 px panel gets a 1m step (86.4 s rounded)
    (3600, 30, 15, 30, 120),      # an analyzer query's 30s min step
    (86400, 0, 60, 60, 240),      # the benchmark's 60 s data
    (7 * 86400, 0, 60, 600, 660),  # a week: 604.8 s -> 10m
])
def test_grafana_step_and_rate_interval(range_s: int, min_step: float, scrape: float,
                                        step: float, rate: float) -> None:
    assert panels.interval(range_s, min_step, scrape) == step
    assert panels.rate_interval(range_s, min_step, scrape) == rate


def test_every_dashboard_query_becomes_valid_promql() -> None:
    queries = panels.queries(panels.read_dashboards(ROOT / "grafana/dashboards"))
    assert len(queries) > 40
    for q in queries:
        expr, step = panels.concrete(q, 86400, 60)
        assert "$" not in expr, expr
        promql_parser.parse(expr)
        assert step >= 60


def test_extrapolation_to_the_10s_scrape() -> None:
    raw_long = {"query": "rate(x_total[1h])", "evaluationTime": 1.0}
    raw_5m = {"query": "sum(rate(x_total[5m]))", "evaluationTime": 1.0}
    recorded = {"query": "avg_over_time(slo:x:rate5m[3d])", "evaluationTime": 1.0}
    assert (at_10s(raw_long), at_10s(raw_5m), at_10s(recorded)) == (6.0, 1.0, 4.0)


def test_report_tables() -> None:
    run = {"size": "small", "config": "after", "series": 10, "api_series": 5,
           "groups": [{"group": "g", "interval": 15, "median": 0.15, "max": 0.2,
                       "median_10s": 0.3, "rules": 2}],
           "queries": [{"dashboard": "d", "panel": "p", "range": r, "expr": f"rate(x[{w}s])",
                        "p50": 0.01, "p95": 0.02, "series": 1}
                       for r, w in (("1h", 60), ("24h", 240))],
           "side_by_side": [{"what": "w", "kind": "rule", "raw_p50": 1.0, "recorded_p50": 0.01,
                             "raw_value": 0.5, "recorded_value": 0.5}]}
    text = report.render({"started": "now", "before": "main", "runs": [run]})
    assert "SMALL after: 5 api series" in text
    assert "1.0%" in text and "2.0%" in text  # 0.15 s and 0.3 s of 15 s
    assert "100x" in text and "0.00%" in text
    assert "slowest 24h query: d / p p95 20 ms" in text
