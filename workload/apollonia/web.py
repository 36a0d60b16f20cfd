"""Pieces both services share: the observability middleware, /metrics and /admin/faults."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.routing import Match

from . import tracing
from .faults import FaultError, Faults
from .logs import request_id_var, user_id_var
from .metrics import UNMATCHED, HttpMetrics, normalize_method, render

log = logging.getLogger("apollonia.http")

# Routes that faults never touch and that are logged at DEBUG only (scrapes and probes).
QUIET_PREFIXES = ("/metrics", "/health", "/admin")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_USER_ID_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def route_template(app: FastAPI, scope: dict[str, Any]) -> str:
    """The matching route's path template; a path that matches nothing is 'unmatched'.

    Matched before the app runs, so faults, span names and logs know the route. Every route
    is added on the app itself (no include_router): FastAPI 0.165 wraps included routers in
    objects without a `path`, which would all collapse into 'unmatched'."""
    partial = None
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", UNMATCHED)
        if match == Match.PARTIAL and partial is None:
            partial = getattr(route, "path", UNMATCHED)
    return partial or UNMATCHED


def known_routes(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, route template, success status code) of every route except /metrics."""
    out = []
    for route in app.router.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" and route.path != "/metrics":
                out.append((method, route.path, str(getattr(route, "status_code", None) or 200)))
    return out


class ObservabilityMiddleware:
    """Per request: request id, JSON start/finish log lines, RED metrics by route template, and
    the error/latency faults: what the OpenTelemetry FastAPI instrumentation does not do. It
    runs inside that instrumentation's server span (tracing.instrument_app), so logs, the
    X-Trace-ID header and the histograms' exemplars carry the request's trace id."""

    def __init__(
        self,
        app: Any,
        *,
        fastapi_app: FastAPI,
        metrics: HttpMetrics,
        faults: Faults,
        user_seen: Any = None,
    ) -> None:
        self.app = app
        self.user_seen = user_seen
        self.fastapi_app = fastapi_app
        self.metrics = metrics
        self.faults = faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        if not _REQUEST_ID_RE.match(request_id):
            request_id = uuid.uuid4().hex
        user_id = headers.get("x-user-id", "")
        if not _USER_ID_RE.match(user_id):
            user_id = ""
        elif self.user_seen is not None:
            self.user_seen(user_id)
        method = normalize_method(scope["method"])
        endpoint = route_template(self.fastapi_app, scope)
        quiet = scope["path"].startswith(QUIET_PREFIXES)
        level = logging.DEBUG if quiet else logging.INFO
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(user_id)
        status: dict[str, Any] = {"code": 500, "started": False}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"x-request-id", request_id.encode()),
                ]
                trace_id = tracing.current_trace_id()
                if trace_id:
                    message["headers"].append((b"x-trace-id", trace_id.encode()))
            await send(message)

        span = trace.get_current_span() if not quiet else None
        if span is not None:
            span.set_attribute("apollonia.request_id", request_id)
        try:
            log.log(level, "request started", extra={
                "method": method, "route": endpoint, "path": scope["path"][:256]})
            try:
                injected = False
                if not quiet and endpoint != UNMATCHED:
                    injected = await self._inject_faults(scope, send_wrapper, span)
                if not injected:
                    await self.app(scope, receive, send_wrapper)
            except Exception as exc:
                duration = time.perf_counter() - start
                if span is not None:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                log.error("request failed", exc_info=True, extra={
                    "method": method, "route": endpoint, "status": 500,
                    "duration_ms": round(duration * 1000, 2)})
                if endpoint != "/metrics":
                    self.metrics.observe_request(method, endpoint, 500, duration)
                if status["started"]:
                    raise  # too late for a clean answer: let the server drop it
                # Answer here, so even a crash carries X-Request-ID and X-Trace-ID.
                response = JSONResponse(
                    {"detail": "internal error", "request_id": request_id}, status_code=500)
                await response(scope, _empty_receive, send_wrapper)
                return
            duration = time.perf_counter() - start
            code = status["code"]
            if endpoint != "/metrics":
                self.metrics.observe_request(method, endpoint, code, duration)
            finished_level = logging.WARNING if code >= 500 and not quiet else level
            log.log(finished_level, "request finished", extra={
                "method": method, "route": endpoint, "status": code,
                "duration_ms": round(duration * 1000, 2)})
        finally:
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)

    async def _inject_faults(self, scope: Any, send: Any, span: Any) -> bool:
        """Apply latency/error faults; True when a 500 was sent instead of calling the app."""
        faults = self.faults
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if faults.error_ratio > 0 and random.random() < faults.error_ratio:
            if span is not None:
                span.set_attribute("apollonia.fault", "error_ratio")
            response = JSONResponse({"detail": "injected fault (error_ratio)"}, status_code=500)
            await response(scope, _empty_receive, send)
            return True
        return False


async def _empty_receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def install_observability(
    app: FastAPI, *, metrics: HttpMetrics, provider: Any, faults: Faults, user_seen: Any = None,
) -> None:
    from . import tracing as _tracing

    app.add_middleware(
        ObservabilityMiddleware, fastapi_app=app, metrics=metrics, faults=faults,
        user_seen=user_seen,
    )
    _tracing.instrument_app(app, provider)


def add_ops_routes(
    router: FastAPI, registry_metrics: HttpMetrics, faults: Faults, refresh: Any = None
) -> None:
    """/metrics (503 while metrics_enabled is false) and the /admin/faults API."""

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not faults.metrics_enabled:
            return Response("metrics disabled by fault injection (metrics_enabled=false)\n",
                            status_code=503, media_type="text/plain")
        if refresh is not None:
            refresh()
        body, content_type = render(registry_metrics.registry, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    @router.get("/admin/faults")
    async def get_faults() -> dict[str, Any]:
        return faults.as_dict()

    @router.post("/admin/faults")
    async def set_faults(request: Request) -> JSONResponse:
        try:
            changes = await request.json()
        except ValueError:
            return JSONResponse({"detail": "body must be JSON"}, status_code=400)
        try:
            return JSONResponse(faults.update(changes))
        except FaultError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)

    @router.delete("/admin/faults")
    async def reset_faults() -> dict[str, Any]:
        return faults.reset()

