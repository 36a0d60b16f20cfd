"""The workload emits exactly the contract's metrics (name, type, label names), from the
first scrape, and everything the rules and dashboards query exists with those labels."""

from __future__ import annotations

import re

import promql_parser
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from tests.metrics_catalog import ROOT, QueryError, grafana_to_promql, repo_queries

from .helpers import drain, families, run, stack, upload

HTTP = {
    "http_requests": ("counter", {"method", "endpoint", "status_code"}),
    "http_request_duration_seconds": ("histogram", {"method", "endpoint"}),
}
# family name (as the text parser reports it) -> (type, label names)
API = {
    **HTTP,
    "active_users": ("gauge", set()),
    "media_files_total": ("gauge", {"format"}),
    "media_upload_size_bytes": ("histogram", {"format"}),
    "queue_messages_total": ("gauge", {"queue_name"}),
    "database_query_duration_seconds": ("histogram", {"query_type", "table"}),
    "database_connections_active": ("gauge", set()),
    "cache_operations": ("counter", {"operation", "result"}),
    "cache_hit_ratio": ("gauge", set()),
}
ANALYZER = {
    **HTTP,
    "media_processing_duration_seconds": ("histogram", {"stage", "format"}),
    "ml_inference_duration_seconds": ("histogram", {"model_name", "batch_size"}),
    "ml_model_accuracy": ("gauge", {"model_name", "version"}),
    "ml_feature_extraction_duration_seconds": ("histogram", {"feature_type", "audio_format"}),
    "ml_model_prediction_duration_seconds": ("histogram", {"model_name", "input_size"}),
    "ml_processing_errors": ("counter", {"error_type", "stage"}),
    "ml_batch_size": ("histogram", {"model_name"}),
    "ml_memory_usage_bytes": ("gauge", {"stage"}),
}
DEFAULT_COLLECTORS = ("process_cpu_seconds", "process_resident_memory_bytes",
                      "python_gc_collections", "python_info")
FORBIDDEN_LABELS = {"service", "env", "job", "instance", "user_id"}
APP_PREFIXES = ("http_request", "media_", "ml_", "cache_", "database_", "queue_messages",
                "active_users")


def _check(app, spec) -> None:  # type: ignore[no-untyped-def]
    fams = families(app)
    for name, (kind, labels) in spec.items():
        assert name in fams, f"{name} not exposed"
        fam = fams[name]
        assert fam.type == kind, f"{name}: type {fam.type}, want {kind}"
        assert fam.samples, f"{name}: no series at start-up (rate()/absent() need them)"
        for sample in fam.samples:
            got = set(sample.labels) - {"le"}
            assert got == labels, f"{name}: labels {sorted(got)}, want {sorted(labels)}"
    for name in DEFAULT_COLLECTORS:
        assert name in fams, f"default collector metric {name} missing"
    for fam in fams.values():
        for sample in fam.samples:
            bad = FORBIDDEN_LABELS & set(sample.labels)
            assert not bad, f"{sample.name} carries {bad}: Prometheus adds/forbids these"
    ours = {n for n in fams if n.startswith(APP_PREFIXES)}
    assert ours == {n for n in spec if n.startswith(APP_PREFIXES)}, "metrics outside contract"


def test_contract_metrics_exist_at_startup() -> None:
    async def main() -> None:
        async with stack() as s:
            _check(s.api, API)
            _check(s.analyzer, ANALYZER)
            # 5xx series for known routes are there at 0 before any traffic
            fam = families(s.api)["http_requests"]
            errors = {(x.labels["method"], x.labels["endpoint"]) for x in fam.samples
                      if x.labels["status_code"] == "500"}
            assert ("POST", "/api/v1/media") in errors
            assert ("GET", "/api/v1/media/{media_id}") in errors
            assert ("POST", "/analyze") in {
                (x.labels["method"], x.labels["endpoint"])
                for x in families(s.analyzer)["http_requests"].samples}

    run(main)


def test_histogram_buckets_match_contract() -> None:
    async def main() -> None:
        async with stack() as s:
            fam = families(s.api)["http_request_duration_seconds"]
            les = sorted({float(x.labels["le"]) for x in fam.samples if "le" in x.labels})
            assert les == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")]

    run(main)


def test_openmetrics_exposition_has_trace_exemplars() -> None:
    async def main() -> None:
        async with stack() as s:
            await upload(s.api_client)
            await drain(s)
            r = await s.api_client.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            assert r.headers["content-type"].startswith("application/openmetrics-text")
            exemplars = [
                sample.exemplar for fam in om_parse(r.text) for sample in fam.samples
                if fam.name == "http_request_duration_seconds" and sample.exemplar]
            assert exemplars, "no exemplar on http_request_duration_seconds"
            assert all(re.fullmatch(r"[0-9a-f]{32}", e.labels["trace_id"]) for e in exemplars)
            plain = await s.api_client.get("/metrics")
            assert plain.headers["content-type"].startswith("text/plain")
            assert "# {" not in plain.text  # classic text format has no exemplars
            an = await s.analyzer_client.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            assert 'ml_inference_duration_seconds_bucket' in an.text and "trace_id" in an.text

    run(main)


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    ast = promql_parser.parse(grafana_to_promql(expr))
    out: list[tuple[str, set[str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            out.append((node.name, {m.name for m in node.matchers.matchers}))

    promql_parser.walk(ast, pre_visit=visit)
    return out


def test_every_app_metric_and_label_the_repo_queries_is_emitted() -> None:
    queries = repo_queries(ROOT)
    if not queries:
        pytest.skip("no rules or dashboards in the tree yet; nothing to cross-check")

    async def main() -> dict[str, set[str]]:
        async with stack() as s:
            await upload(s.api_client)
            await drain(s)
            emitted: dict[str, set[str]] = {}
            for app in (s.api, s.analyzer):
                for fam in families(app).values():
                    for sample in fam.samples:
                        emitted.setdefault(sample.name, set()).update(sample.labels)
            return emitted

    emitted = run(main)
    problems, checked = [], 0
    for q in queries:
        try:
            selectors = _selectors(q.expr)
        except (QueryError, ValueError):  # parse errors are the catalog test's job
            continue
        for name, labels in selectors:
            if not name.startswith(APP_PREFIXES):
                continue
            checked += 1
            if name not in emitted:
                problems.append(f"{q.source}: {name} is not emitted")
                continue
            unknown = labels - emitted[name] - {"__name__", "service", "env", "job", "instance"}
            if unknown:
                problems.append(f"{q.source}: {name} has no label(s) {sorted(unknown)}")
    assert checked >= 10, f"only {checked} workload selectors found in rules/dashboards"
    assert not problems, "\n".join(problems)


def test_metrics_endpoint_is_not_counted_as_traffic() -> None:
    async def main() -> None:
        async with stack() as s:
            for _ in range(3):
                assert (await s.api_client.get("/metrics")).status_code == 200
            endpoints = {x.labels["endpoint"] for x in families(s.api)["http_requests"].samples}
            assert "/metrics" not in endpoints

    run(main)
