"""The api service: media uploads, catalog reads and analysis requests.

Uploads are stored in the catalog (PostgreSQL or simulated), cached reads go through Redis
(or a simulated cache), and each upload queues an analysis job: on RabbitMQ, which the
analyzer consumes, or on an in-process queue whose workers send it to the analyzer over HTTP.
Either way the W3C trace context travels with the job (message headers, or the job itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from . import tracing
from .backends import Cache, Database, JobQueue
from .faults import Faults
from .health import HealthCheck, HealthCheckManager, add_health_routes
from .logs import request_id_var
from .metrics import FORMATS, QUEUE_NAME, ApiMetrics, new_registry
from .web import add_ops_routes, install_observability, known_routes

log = logging.getLogger("apollonia.api")

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
ACTIVE_USER_WINDOW_S = 300
MAX_TRACKED_USERS = 100_000
CATALOG_TTL_S = 15.0  # catalog pages may be 15 s stale; keeps the demo hit ratio near 0.9
MEDIA_TTL_S = 120.0
ANALYZER_TIMEOUT_S = 10.0
REFRESH_INTERVAL_S = 15.0


@dataclass
class ApiConfig:
    analyzer_url: str = "http://127.0.0.1:8001"
    database_url: str | None = None
    redis_url: str | None = None
    rabbitmq_url: str | None = None
    otlp_endpoint: str | None = None


class ActiveUsers:
    """Distinct user ids seen in the last 5 minutes (bounded memory)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def seen(self, user_id: str) -> None:
        if len(self._seen) >= MAX_TRACKED_USERS and user_id not in self._seen:
            self.prune()
            if len(self._seen) >= MAX_TRACKED_USERS:
                return
        self._seen[user_id] = time.monotonic()

    def prune(self) -> int:
        cutoff = time.monotonic() - ACTIVE_USER_WINDOW_S
        for uid in [u for u, t in self._seen.items() if t < cutoff]:
            del self._seen[uid]
        return len(self._seen)


def media_format(request: Request) -> str | None:
    fmt = request.query_params.get("format", "")
    if not fmt:
        name = request.headers.get("x-filename", "")
        fmt = name.rsplit(".", 1)[-1] if "." in name else ""
    fmt = fmt.lower()
    return fmt if fmt in FORMATS else None


def create_app(
    config: ApiConfig | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    analyzer_transport: httpx.AsyncBaseTransport | None = None,
    env: dict[str, str] | None = None,
) -> FastAPI:
    config = config or ApiConfig()
    owns_provider = tracer_provider is None
    provider = tracer_provider or tracing.make_tracer_provider("api", config.otlp_endpoint)
    tracer = provider.get_tracer("apollonia.api")
    faults = Faults("api", env)
    metrics = ApiMetrics(new_registry())
    db = Database(config.database_url, metrics, faults)
    cache = Cache(config.redis_url, metrics, faults)
    users = ActiveUsers()
    analyzer = httpx.AsyncClient(
        base_url=config.analyzer_url, timeout=ANALYZER_TIMEOUT_S, transport=analyzer_transport
    )
    tracing.instrument_client(analyzer, provider)
    if owns_provider:  # a service process: asyncpg, redis and aio-pika spans go to it too
        tracing.use_process_wide(provider)

    async def call_analyzer(job: dict[str, Any]) -> dict[str, Any]:
        # The httpx instrumentation makes the client span and sends `traceparent`.
        headers = {"X-Request-ID": request_id_var.get()} if request_id_var.get() else {}
        response = await analyzer.post("/analyze", json=job, headers=headers)
        response.raise_for_status()
        return response.json()

    async def handle_job(job: dict[str, Any]) -> None:
        """The in-process queue's worker: continue the upload's trace, call the analyzer."""
        carrier = job.pop("trace", {}) or {}
        token = request_id_var.set(job.pop("request_id", "") or "")
        try:
            with tracer.start_as_current_span(
                f"{QUEUE_NAME} process", context=tracing.extract(carrier), kind=SpanKind.CONSUMER
            ):
                result = await call_analyzer(job)
                log.info("analysis finished", extra={"media_id": job["media_id"],
                                                     "status": result.get("status")})
        finally:
            request_id_var.reset(token)

    queue = JobQueue(config.rabbitmq_url, faults, handle_job)

    def refresh() -> None:
        metrics.active_users.set(users.prune())
        for fmt, n in db.counts().items():
            metrics.media_files_total.labels(fmt).set(n)
        metrics.queue_messages_total.labels(QUEUE_NAME).set(queue.depth())
        metrics.database_connections_active.set(db.connections_active())
        metrics.cache_hit_ratio.set(cache.hit_ratio())

    async def refresh_loop() -> None:
        while True:
            try:
                await db.refresh_counts()
                if db.url:
                    await db.hold_connections()
            except Exception as exc:
                log.warning("media count refresh failed",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
            refresh()
            await asyncio.sleep(REFRESH_INTERVAL_S)

    async def analyzer_health() -> dict[str, Any]:
        response = await analyzer.get("/health/live", timeout=2.0)
        response.raise_for_status()
        return {"url": str(analyzer.base_url), "status_code": response.status_code}

    manager = HealthCheckManager([
        HealthCheck("database", db.health, critical=True),
        HealthCheck("redis", cache.health),
        HealthCheck("message_queue", queue.health),
        HealthCheck("analyzer", analyzer_health),
    ])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await queue.start()
        task = asyncio.create_task(refresh_loop())
        log.info("api started", extra={
            "analyzer_url": config.analyzer_url,
            "database": "postgresql" if config.database_url else "simulated",
            "cache": "redis" if config.redis_url else "simulated",
            "queue": "rabbitmq" if config.rabbitmq_url else "simulated",
            "otlp_endpoint": config.otlp_endpoint or "", "faults": faults.as_dict()})
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await queue.close()
            await analyzer.aclose()
            await cache.close()
            await db.close()
            if owns_provider:
                provider.shutdown()

    app = FastAPI(title="apollonia-api", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.faults = faults
    app.state.metrics = metrics
    app.state.db = db
    app.state.cache = cache
    app.state.queue = queue
    app.state.refresh = refresh
    app.state.call_analyzer = call_analyzer

    @app.post("/api/v1/media", status_code=201)
    async def upload(request: Request) -> JSONResponse:
        fmt = media_format(request)
        if fmt is None:
            return JSONResponse(
                {"detail": f"unsupported format; use ?format= one of {', '.join(FORMATS)}"},
                status_code=415)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            return JSONResponse({"detail": "upload too large"}, status_code=413)
        body = await request.body()
        if not body:
            return JSONResponse({"detail": "empty upload"}, status_code=400)
        if len(body) > MAX_UPLOAD_BYTES:
            return JSONResponse({"detail": "upload too large"}, status_code=413)
        user_id = request.headers.get("x-user-id", "")[:64]
        media_id = uuid.uuid4().hex
        row = {"id": media_id, "format": fmt, "size_bytes": len(body), "user_id": user_id}
        await db.insert_media(row)
        await cache.set(f"media:{media_id}", row, MEDIA_TTL_S)
        job = {"media_id": media_id, "format": fmt, "size_bytes": len(body),
               "request_id": request_id_var.get()}
        try:
            await queue.publish(job)
        except Exception as exc:
            log.error("could not queue the analysis job",
                      extra={"media_id": media_id, "error": f"{type(exc).__name__}: {exc}"})
            return JSONResponse({"detail": "analysis queue unavailable"}, status_code=503)
        metrics.media_upload_size_bytes.labels(fmt).observe(len(body))
        log.info("media uploaded", extra={"media_id": media_id, "format": fmt,
                                          "size_bytes": len(body)})
        return JSONResponse({"id": media_id, "format": fmt, "size_bytes": len(body),
                             "status": "queued"}, status_code=201)

    @app.get("/api/v1/media")
    async def catalog(limit: int = 20, offset: int = 0) -> dict[str, Any]:
        limit = max(1, min(limit, 100))
        offset = max(0, min(offset, 10_000))
        key = f"catalog:{offset}:{limit}"
        items = await cache.get(key)
        if items is None:
            items = await db.list_media(limit, offset)
            await cache.set(key, items, CATALOG_TTL_S)
        return {"items": items, "limit": limit, "offset": offset}

    async def lookup(media_id: str) -> dict[str, Any] | None:
        row = await cache.get(f"media:{media_id}")
        if row is None:
            row = await db.get_media(media_id)
            if row is not None:
                await cache.set(f"media:{media_id}", row, MEDIA_TTL_S)
        return row

    @app.get("/api/v1/media/{media_id}")
    async def get_media(media_id: str) -> JSONResponse:
        row = await lookup(media_id[:64])
        if row is None:
            return JSONResponse({"detail": "media not found"}, status_code=404)
        return JSONResponse(row)

    @app.post("/api/v1/media/{media_id}/analyze")
    async def analyze(media_id: str) -> JSONResponse:
        row = await lookup(media_id[:64])
        if row is None:
            return JSONResponse({"detail": "media not found"}, status_code=404)
        job = {"media_id": row["id"], "format": row["format"], "size_bytes": row["size_bytes"]}
        try:
            result = await call_analyzer(job)
        except httpx.HTTPError as exc:
            log.error("analyzer call failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return JSONResponse({"detail": "analyzer unavailable"}, status_code=502)
        return JSONResponse(result)

    add_health_routes(app, manager)
    add_ops_routes(app, metrics, faults, refresh)
    install_observability(app, metrics=metrics, provider=provider, faults=faults,
                          user_seen=users.seen)
    metrics.init_routes(known_routes(app))
    refresh()
    return app
