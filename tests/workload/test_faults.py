"""Each fault knob moves the metric its alert watches; the admin API validates input."""

from __future__ import annotations

import math

import pytest
from apollonia.faults import APPLIES, KNOBS, FaultError, Faults

from .helpers import run, samples, stack, value


def test_every_contract_knob_exists() -> None:
    contract = {"error_ratio", "latency_seconds", "queue_backlog", "cache_hit_ratio",
                "db_connections", "db_latency_seconds", "ml_error_ratio", "metrics_enabled",
                "upload_rate", "consumer_paused"}
    assert set(KNOBS) == contract
    assert "consumer_paused" in APPLIES["analyzer"] and "consumer_paused" not in APPLIES["api"]
    assert "ml_error_ratio" in APPLIES["analyzer"] and "ml_error_ratio" not in APPLIES["api"]


def test_error_ratio_answers_500_and_counts_it() -> None:
    async def main() -> None:
        async with stack() as s:
            r = await s.api_client.post("/admin/faults", json={"error_ratio": 1.0})
            assert r.status_code == 200 and r.json()["error_ratio"] == 1.0
            for _ in range(5):
                assert (await s.api_client.get("/api/v1/media")).status_code == 500
            assert value(s.api, "http_requests_total", method="GET", endpoint="/api/v1/media",
                         status_code="500") == 5
            # probes and scrapes are never faulted
            assert (await s.api_client.get("/health/ready")).status_code == 200
            assert (await s.api_client.get("/metrics")).status_code == 200
            assert (await s.api_client.delete("/admin/faults")).json()["error_ratio"] == 0.0
            assert (await s.api_client.get("/api/v1/media")).status_code == 200

    run(main)


def test_latency_seconds_moves_the_latency_histogram() -> None:
    async def main() -> None:
        async with stack() as s:
            await s.api_client.post("/admin/faults", json={"latency_seconds": 0.3})
            await s.api_client.get("/api/v1/media")
            total = value(s.api, "http_request_duration_seconds_sum", method="GET",
                          endpoint="/api/v1/media")
            assert total >= 0.3
            assert value(s.api, "http_request_duration_seconds_bucket", method="GET",
                         endpoint="/api/v1/media", le="0.25") == 0

    run(main)


def test_gauge_knobs_force_their_gauges() -> None:
    async def main() -> None:
        async with stack() as s:
            assert value(s.api, "queue_messages_total", queue_name="analyzer_queue") == 0
            assert value(s.api, "database_connections_active") < 80
            await s.api_client.post("/admin/faults", json={
                "queue_backlog": 150, "db_connections": 95, "cache_hit_ratio": 0.5})
            assert value(s.api, "queue_messages_total", queue_name="analyzer_queue") == 150
            assert value(s.api, "database_connections_active") == 95
            assert value(s.api, "cache_hit_ratio") == 0.5
            # the scrape path reports them too (not just the registry)
            text = (await s.api_client.get("/metrics")).text
            assert 'queue_messages_total{queue_name="analyzer_queue"} 150.0' in text
            await s.api_client.post("/admin/faults", json={
                "queue_backlog": None, "db_connections": None})
            assert value(s.api, "queue_messages_total", queue_name="analyzer_queue") == 0
            assert value(s.api, "database_connections_active") < 80

    run(main)


def test_cache_hit_ratio_knob_moves_the_counters() -> None:
    async def main() -> None:
        async with stack() as s:
            assert math.isnan(value(s.api, "cache_hit_ratio"))  # undefined before any get
            for _ in range(20):
                await s.api_client.get("/api/v1/media")
            hits = value(s.api, "cache_operations_total", operation="get", result="hit")
            assert hits >= 18 and value(s.api, "cache_hit_ratio") >= 0.9
            await s.api_client.post("/admin/faults", json={"cache_hit_ratio": 0.0})
            for _ in range(20):
                await s.api_client.get("/api/v1/media")
            assert value(s.api, "cache_operations_total", operation="get", result="hit") == hits
            assert value(s.api, "cache_operations_total", operation="get", result="miss") >= 20

    run(main)


def test_db_latency_seconds_moves_query_duration() -> None:
    async def main() -> None:
        async with stack() as s:
            await s.api_client.post("/admin/faults", json={"db_latency_seconds": 0.2})
            await s.api_client.get("/api/v1/media")  # cache miss -> one select
            total = value(s.api, "database_query_duration_seconds_sum", query_type="select",
                          table="media")
            assert total >= 0.2

    run(main)


def test_ml_error_ratio_counts_errors_and_predictions() -> None:
    async def main() -> None:
        async with stack() as s:
            r = await s.analyzer_client.post("/admin/faults", json={"ml_error_ratio": 1.0})
            assert r.status_code == 200
            for _ in range(3):
                r = await s.analyzer_client.post("/analyze", json={"media_id": "m",
                                                                   "format": "wav"})
                assert r.status_code == 200 and r.json()["status"] == "failed"
            errors = value(s.analyzer, "ml_processing_errors_total", error_type="ModelError",
                           stage="inference")
            predictions = sum(v for (name, _), v in samples(s.analyzer).items()
                              if name == "ml_model_prediction_duration_seconds_count")
            assert errors == 6 and predictions == 6  # 2 models x 3 jobs, all failed

    run(main)


def test_metrics_enabled_false_makes_scrapes_fail_while_serving() -> None:
    async def main() -> None:
        async with stack() as s:
            for client in (s.api_client, s.analyzer_client):
                await client.post("/admin/faults", json={"metrics_enabled": False})
                assert (await client.get("/metrics")).status_code == 503
                assert (await client.get("/health/live")).status_code == 200
                await client.delete("/admin/faults")
                assert (await client.get("/metrics")).status_code == 200

    run(main)


def test_admin_api_validates_and_applies_atomically() -> None:
    async def main() -> None:
        async with stack() as s:
            c = s.api_client
            bad = [{"nope": 1}, {"ml_error_ratio": 0.5}, {"error_ratio": 2},
                   {"error_ratio": "x"}, {"queue_backlog": 1.5}, {"metrics_enabled": "maybe"},
                   {"error_ratio": 0.5, "latency_seconds": -1}, [1, 2]]
            for body in bad:
                r = await c.post("/admin/faults", json=body)
                assert r.status_code == 400, body
                assert r.json()["detail"]
            r = await c.post("/admin/faults", content=b"{not json")
            assert r.status_code == 400
            assert (await c.get("/admin/faults")).json()["error_ratio"] == 0.0  # nothing applied
            r = await s.analyzer_client.post("/admin/faults", json={"queue_backlog": 5})
            assert r.status_code == 400 and "no effect on analyzer" in r.json()["detail"]

    run(main)


def test_env_vars_set_knobs_at_start_up() -> None:
    faults = Faults("api", {"APOLLONIA_FAULT_ERROR_RATIO": "0.25",
                            "APOLLONIA_FAULT_METRICS_ENABLED": "false",
                            "APOLLONIA_FAULT_QUEUE_BACKLOG": "500",
                            "APOLLONIA_FAULT_UPLOAD_RATE": "0"})
    assert faults.error_ratio == 0.25 and faults.metrics_enabled is False
    assert faults.queue_backlog == 500 and faults.upload_rate == 0.0
    assert faults.ml_error_ratio == 0.0  # not an api knob: neutral
    with pytest.raises(FaultError, match="APOLLONIA_FAULT_DB_CONNECTIONS"):
        Faults("api", {"APOLLONIA_FAULT_DB_CONNECTIONS": "lots"})

    async def main() -> None:
        async with stack(api_env={"APOLLONIA_FAULT_DB_CONNECTIONS": "90"}) as s:
            assert value(s.api, "database_connections_active") == 90

    run(main)
