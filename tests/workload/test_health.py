"""Health semantics: concurrent checks with timeouts, per-check statuses, summary counts,
unconfigured dependencies degrade cleanly, a failing critical one makes readiness 503."""

from __future__ import annotations

import asyncio
import socket
import time

from apollonia.api import ApiConfig
from apollonia.health import HealthCheck, HealthCheckManager, NotConfigured

from .helpers import run, stack, value


def test_unconfigured_dependencies_are_degraded_not_unhealthy() -> None:
    async def main() -> None:
        async with stack() as s:
            r = await s.api_client.get("/health")
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == "degraded"
            checks = body["checks"]
            for name in ("database", "redis", "message_queue"):
                assert checks[name]["status"] == "degraded"
                assert checks[name]["details"]["configured"] is False
            assert checks["analyzer"]["status"] == "healthy"
            assert body["summary"] == {"total_checks": 4, "healthy": 1, "degraded": 3,
                                       "unhealthy": 0}
            ready = await s.api_client.get("/health/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            live = await s.api_client.get("/health/live")
            assert live.status_code == 200 and live.json()["status"] == "alive"
            an = (await s.analyzer_client.get("/health")).json()
            assert an["status"] == "healthy" and an["summary"]["healthy"] == 1

    run(main)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_configured_but_unreachable_database_makes_ready_503() -> None:
    port = _closed_port()
    config = ApiConfig(analyzer_url="http://analyzer.test",
                       database_url=f"postgresql://u@127.0.0.1:{port}/db",
                       redis_url=f"redis://127.0.0.1:{port}/0")

    async def main() -> None:
        async with stack(api_config=config) as s:
            body = (await s.api_client.get("/health")).json()
            assert body["status"] == "unhealthy"
            assert body["checks"]["database"]["status"] == "unhealthy"
            assert "error" in body["checks"]["database"]
            # redis is not critical: the api works without its cache
            assert body["checks"]["redis"]["status"] == "degraded"
            assert "error" in body["checks"]["redis"]
            assert body["summary"]["unhealthy"] == 1
            ready = await s.api_client.get("/health/ready")
            assert ready.status_code == 503
            assert (await s.api_client.get("/health/live")).status_code == 200
            # a request that needs the database fails cleanly, counted and traceable
            r = await s.api_client.get("/api/v1/media", headers={"X-Request-ID": "db-down-1"})
            assert r.status_code == 500 and r.json()["request_id"] == "db-down-1"
            assert r.headers["x-request-id"] == "db-down-1" and r.headers["x-trace-id"]
            assert value(s.api, "http_requests_total", method="GET", endpoint="/api/v1/media",
                         status_code="500") == 1

    run(main)


def test_checks_run_concurrently_and_time_out() -> None:
    async def slow() -> dict:
        await asyncio.sleep(0.3)
        return {}

    async def hang() -> dict:
        await asyncio.sleep(10)
        return {}

    async def missing() -> dict:
        raise NotConfigured("X_URL not set")

    manager = HealthCheckManager([
        HealthCheck("a", slow), HealthCheck("b", slow), HealthCheck("c", slow),
        HealthCheck("stuck", hang, timeout=0.2),
        HealthCheck("stuck_critical", hang, timeout=0.2, critical=True),
        HealthCheck("absent", missing),
    ])
    start = time.perf_counter()
    report = asyncio.run(manager.run_all())
    elapsed = time.perf_counter() - start
    assert elapsed < 0.6, f"checks ran one after another ({elapsed:.2f}s)"
    checks = report["checks"]
    assert checks["a"]["status"] == "healthy"
    assert checks["stuck"]["status"] == "degraded" and "timeout" in checks["stuck"]["error"]
    assert checks["stuck_critical"]["status"] == "unhealthy"
    assert checks["absent"]["details"] == {"configured": False, "mode": "X_URL not set"}
    assert report["status"] == "unhealthy"
    assert report["summary"] == {"total_checks": 6, "healthy": 3, "degraded": 2,
                                 "unhealthy": 1}
