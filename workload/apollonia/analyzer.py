"""The analyzer service: decodes a media file, extracts audio features and runs two models.

The work is simulated (sleeps sized like the real thing) but the instrumentation is real:
every stage is timed into the ML metrics, inside spans that continue the api's trace. Jobs
arrive from RabbitMQ's analyzer_queue when RABBITMQ_URL is set, and over HTTP (POST /analyze)
from the api's direct analysis requests and its in-process stand-in queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from . import tracing
from .backends import JobConsumer
from .faults import Faults
from .health import HealthCheck, HealthCheckManager, add_health_routes
from .logs import request_id_var
from .metrics import (
    FEATURE_TYPES,
    FORMATS,
    MODELS,
    AnalyzerMetrics,
    exemplar,
    new_registry,
    size_bucket,
)
from .web import add_ops_routes, install_observability, known_routes

log = logging.getLogger("apollonia.analyzer")

# Batch sizes the simulated scheduler picks, with weights: mostly small batches.
BATCH_CHOICES = ((1, 40), (4, 25), (16, 20), (48, 15))
DECODE_BYTES_PER_S = 200 * 1024 * 1024  # simulated decoder throughput


class ModelError(Exception):
    """A model failed to produce a prediction (driven by the ml_error_ratio fault)."""


@dataclass
class AnalyzerConfig:
    otlp_endpoint: str | None = None
    rabbitmq_url: str | None = None


def _pick_batch() -> int:
    sizes, weights = zip(*BATCH_CHOICES, strict=True)
    return random.choices(sizes, weights)[0]


def create_app(
    config: AnalyzerConfig | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    env: dict[str, str] | None = None,
) -> FastAPI:
    config = config or AnalyzerConfig()
    owns_provider = tracer_provider is None
    provider = tracer_provider or tracing.make_tracer_provider("analyzer", config.otlp_endpoint)
    tracer = provider.get_tracer("apollonia.analyzer")
    if owns_provider:  # a service process: the aio-pika consumer's spans go to it too
        tracing.use_process_wide(provider)
    faults = Faults("analyzer", env)
    metrics = AnalyzerMetrics(new_registry())
    jobs = {"processed": 0}

    async def run_stage(stage: str, fmt: str, seconds: float) -> None:
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        metrics.media_processing_duration_seconds.labels(stage, fmt).observe(
            time.perf_counter() - start, exemplar=exemplar())

    async def predict(model: str, batch: int, fmt: str) -> dict[str, Any]:
        version = MODELS[model][0]
        bucket = size_bucket(batch)
        with tracer.start_as_current_span(f"predict {model}") as span:
            span.set_attribute("ml.model", model)
            span.set_attribute("ml.batch_size", batch)
            metrics.ml_batch_size.labels(model).observe(batch)
            inference_start = time.perf_counter()
            await asyncio.sleep(random.uniform(0.001, 0.004))  # pre-processing
            prediction_start = time.perf_counter()
            try:
                await asyncio.sleep(random.uniform(0.005, 0.02) + 0.0008 * batch)
                if faults.ml_error_ratio > 0 and random.random() < faults.ml_error_ratio:
                    raise ModelError(f"{model} produced no output")
                label = random.choice(("rock", "jazz", "ambient", "classical", "electronic"))
                outcome = {"model": model, "version": version, "label": label,
                           "confidence": round(random.uniform(0.6, 0.99), 3)}
            except ModelError as exc:
                metrics.ml_processing_errors_total.labels("ModelError", "inference").inc()
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, "ModelError"))
                log.warning("prediction failed", extra={"model": model, "error": str(exc)})
                outcome = {"model": model, "version": version, "error": "ModelError"}
            finally:
                now = time.perf_counter()
                metrics.ml_model_prediction_duration_seconds.labels(model, bucket).observe(
                    now - prediction_start, exemplar=exemplar())
            await asyncio.sleep(random.uniform(0.001, 0.003))  # post-processing
            metrics.ml_inference_duration_seconds.labels(model, bucket).observe(
                time.perf_counter() - inference_start, exemplar=exemplar())
            return outcome

    async def analyze_job(job: dict[str, Any]) -> dict[str, Any]:
        fmt = job["format"]
        size = int(job.get("size_bytes", 0))
        total_start = time.perf_counter()
        with tracer.start_as_current_span("decode"):
            await run_stage("decode", fmt, 0.002 + size / DECODE_BYTES_PER_S)
            metrics.ml_memory_usage_bytes.labels("decode").set(size * 10)  # PCM ≈ 10× mp3
        features = {}
        with tracer.start_as_current_span("feature_extraction"):
            fe_start = time.perf_counter()
            for feature in FEATURE_TYPES:
                start = time.perf_counter()
                await asyncio.sleep(random.uniform(0.002, 0.012))
                metrics.ml_feature_extraction_duration_seconds.labels(feature, fmt).observe(
                    time.perf_counter() - start, exemplar=exemplar())
                features[feature] = round(random.random(), 4)
            metrics.media_processing_duration_seconds.labels("feature_extraction", fmt).observe(
                time.perf_counter() - fe_start, exemplar=exemplar())
            metrics.ml_memory_usage_bytes.labels("feature_extraction").set(
                len(FEATURE_TYPES) * 2 * 1024 * 1024 + size)
        batch = _pick_batch()
        with tracer.start_as_current_span("inference"):
            inf_start = time.perf_counter()
            predictions = [await predict(model, batch, fmt) for model in MODELS]
            metrics.media_processing_duration_seconds.labels("inference", fmt).observe(
                time.perf_counter() - inf_start, exemplar=exemplar())
            metrics.ml_memory_usage_bytes.labels("inference").set(
                64 * 1024 * 1024 + batch * 512 * 1024)
        metrics.media_processing_duration_seconds.labels("total", fmt).observe(
            time.perf_counter() - total_start, exemplar=exemplar())
        jobs["processed"] += 1
        failed = sum(1 for p in predictions if "error" in p)
        status = "ok" if not failed else ("failed" if failed == len(predictions) else "partial")
        log.info("media analyzed", extra={"media_id": job.get("media_id"), "format": fmt,
                                          "batch_size": batch, "status": status})
        return {"media_id": job.get("media_id"), "status": status, "batch_size": batch,
                "features": features, "predictions": predictions}

    async def models_health() -> dict[str, Any]:
        return {"models": {m: v for m, (v, _) in MODELS.items()},
                "jobs_processed": jobs["processed"]}

    async def consume(job: dict[str, Any]) -> None:
        """One job from analyzer_queue (inside the aio-pika instrumentation's CONSUMER span)."""
        token = request_id_var.set(str(job.get("request_id") or ""))
        try:
            if job.get("format") not in FORMATS:
                metrics.ml_processing_errors_total.labels("DecodeError", "decode").inc()
                log.warning("queued job with an unknown format dropped",
                            extra={"media_id": job.get("media_id")})
                return
            result = await analyze_job(job)
            log.info("analysis finished", extra={"media_id": job.get("media_id"),
                                                 "status": result["status"]})
        finally:
            request_id_var.reset(token)

    consumer = (JobConsumer(config.rabbitmq_url, faults, consume) if config.rabbitmq_url
                else None)
    checks = [HealthCheck("models", models_health, critical=True)]
    if consumer is not None:  # without RabbitMQ the analyzer is fed over HTTP only
        checks.append(HealthCheck("message_queue", consumer.health))
    manager = HealthCheckManager(checks)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if consumer is not None:
            await consumer.start()
        log.info("analyzer started", extra={"otlp_endpoint": config.otlp_endpoint or "",
                                            "queue": "rabbitmq" if consumer else "http only",
                                            "faults": faults.as_dict()})
        try:
            yield
        finally:
            if consumer is not None:
                await consumer.close()
            if owns_provider:
                provider.shutdown()

    app = FastAPI(title="apollonia-analyzer", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.faults = faults
    app.state.metrics = metrics
    app.state.consumer = consumer

    @app.post("/analyze")
    async def analyze(request: Request) -> JSONResponse:
        try:
            job = await request.json()
        except ValueError:
            return JSONResponse({"detail": "body must be JSON"}, status_code=400)
        if not isinstance(job, dict) or job.get("format") not in FORMATS:
            metrics.ml_processing_errors_total.labels("DecodeError", "decode").inc()
            return JSONResponse({"detail": f"format must be one of {', '.join(FORMATS)}"},
                                status_code=422)
        # The analysis itself answers 200 even when a model fails: the failure is reported
        # per prediction and counted in ml_processing_errors_total, not as an HTTP 5xx.
        return JSONResponse(await analyze_job(job))

    add_health_routes(app, manager)
    add_ops_routes(app, metrics, faults)
    install_observability(app, metrics=metrics, provider=provider, faults=faults)
    metrics.init_routes(known_routes(app))
    return app
