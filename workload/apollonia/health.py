"""Health checks as in the guide: run concurrently with per-check timeouts; each check is
healthy, degraded or unhealthy; the summary counts them.

A dependency that is not configured (no DATABASE_URL, ...) is reported as degraded with
`configured: false`: the workload simulates it in-process, so it still serves. A configured
dependency that fails is unhealthy when the service cannot work without it (`critical`),
degraded otherwise. /health/ready answers 503 only when the overall status is unhealthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class NotConfigured(Exception):
    """The dependency is not configured; the service simulates it."""


class HealthCheck:
    def __init__(
        self,
        name: str,
        probe: Callable[[], Awaitable[dict[str, Any]]],
        *,
        timeout: float = 2.0,
        critical: bool = False,
    ) -> None:
        self.name = name
        self.probe = probe
        self.timeout = timeout
        self.critical = critical

    async def check(self) -> dict[str, Any]:
        start = time.perf_counter()
        failed = HealthStatus.UNHEALTHY if self.critical else HealthStatus.DEGRADED
        result: dict[str, Any] = {"name": self.name}
        try:
            details = await asyncio.wait_for(self.probe(), timeout=self.timeout)
            result.update(status=HealthStatus.HEALTHY.value, details=details)
        except NotConfigured as exc:
            result.update(
                status=HealthStatus.DEGRADED.value,
                details={"configured": False, "mode": str(exc) or "simulated in-process"},
            )
        except TimeoutError:
            result.update(status=failed.value, error=f"timeout after {self.timeout}s")
        except Exception as exc:  # a health check reports failures, it never raises
            result.update(status=failed.value, error=f"{type(exc).__name__}: {exc}")
        result["duration_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return result


class HealthCheckManager:
    def __init__(self, checks: list[HealthCheck] | None = None) -> None:
        self.checks = list(checks or [])

    def register(self, check: HealthCheck) -> None:
        self.checks.append(check)

    async def run_all(self) -> dict[str, Any]:
        results = await asyncio.gather(*(c.check() for c in self.checks))
        counts = {s.value: 0 for s in HealthStatus}
        for r in results:
            counts[r["status"]] += 1
        if counts["unhealthy"]:
            overall = HealthStatus.UNHEALTHY
        elif counts["degraded"]:
            overall = HealthStatus.DEGRADED
        else:
            overall = HealthStatus.HEALTHY
        return {
            "status": overall.value,
            "timestamp": time.time(),
            "checks": {r["name"]: r for r in results},
            "summary": {"total_checks": len(self.checks), **counts},
        }


def add_health_routes(router: FastAPI, manager: HealthCheckManager) -> None:
    """/health, /health/live and /health/ready (added on the app itself, so the metrics
    middleware sees their route templates)."""

    @router.get("/health")
    async def health() -> JSONResponse:
        report = await manager.run_all()
        # The full report always answers 200: it is for humans and dashboards; readiness
        # is the probe that fails.
        return JSONResponse(report)

    @router.get("/health/live")
    async def live() -> dict[str, Any]:
        return {"status": "alive", "timestamp": time.time()}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        report = await manager.run_all()
        code = 503 if report["status"] == HealthStatus.UNHEALTHY.value else 200
        body = {
            "status": "not ready" if code == 503 else "ready",
            "health": report["status"],
            "timestamp": report["timestamp"],
            "summary": report["summary"],
        }
        return JSONResponse(body, status_code=code)

