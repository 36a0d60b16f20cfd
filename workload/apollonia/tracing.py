"""OpenTelemetry: a tracer provider per service, and the ecosystem's instrumentation packages.

Spans come from the instrumentation libraries, not from our own code:
  FastAPI   server span per request, "GET /api/v1/media/{media_id}" (the route template),
            continuing an incoming W3C `traceparent`;
  httpx     client span for the api's calls to the analyzer, `traceparent` injected;
  asyncpg   a span per PostgreSQL query; redis: a span per Redis command;
  aio-pika  "<exchange>,<routing key> send" on publish (W3C context written into the message
            headers) and "<queue> receive" in the consumer (context read back from them).
What the libraries do not do stays here and small: the in-process stand-in queue carries the
context in the job itself (`inject`/`extract`), and the analyzer's stages are spans of ours.

Without OTEL_EXPORTER_OTLP_ENDPOINT no exporter is installed, but spans are still created so
trace ids appear in logs, exemplars and the traceparent header. With an endpoint, spans go
through a BatchSpanProcessor (a background thread with a bounded queue and short export
timeout), so a missing collector costs a warning in the log and dropped spans, never a
blocked request.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

# Why these numbers: the exporter gives up on a dead collector after 2 s per batch, and at
# the demo's ~10 req/s a 2048-span queue holds ~3 minutes of spans before dropping.
EXPORT_TIMEOUT_S = 2.0
MAX_QUEUE_SIZE = 2048
SCHEDULE_DELAY_MS = 2000
# Scrapes, probes and the fault API are not traced (they are logged at DEBUG only, too).
UNTRACED_URLS = "/metrics,/health,/admin"


def make_tracer_provider(
    service: str, otlp_endpoint: str | None = None, exporter: SpanExporter | None = None
) -> TracerProvider:
    """A provider for one service; `exporter` overrides OTLP (tests pass an in-memory one)."""
    resource = Resource.create({"service.name": service, "service.namespace": "apollonia"})
    provider = TracerProvider(resource=resource)
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=otlp_endpoint.rstrip("/") + "/v1/traces", timeout=EXPORT_TIMEOUT_S
        )
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=MAX_QUEUE_SIZE,
                schedule_delay_millis=SCHEDULE_DELAY_MS,
                export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000),
            )
        )
    return provider


def instrument_app(app: Any, provider: TracerProvider) -> None:
    """FastAPI server spans for one app, with its own provider (two apps share a test)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No per-request "http send"/"http receive" child spans: one server span per request.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       excluded_urls=UNTRACED_URLS,
                                       exclude_spans=["receive", "send"])


def instrument_client(client: Any, provider: TracerProvider) -> None:
    """httpx client spans (and `traceparent` on every request) for one client."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def use_process_wide(provider: TracerProvider) -> None:
    """Make `provider` the process's provider and instrument asyncpg, redis and aio-pika.

    Those three instrumentors patch the libraries' classes, so they serve the whole process:
    each service process (python -m apollonia api|analyzer) calls this once, for its own
    provider. In-process tests that run both apps never call it (their library calls stay
    untraced; the real-backend tests run real processes instead)."""
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    trace.set_tracer_provider(provider)
    for instrumentor in (AsyncPGInstrumentor(), RedisInstrumentor(), AioPikaInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current context (`traceparent`, `tracestate`) into `carrier`."""
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> Context:
    """The remote parent context from `carrier` (an empty context if none/invalid)."""
    return propagate.extract(carrier)


def current_trace_id() -> str:
    """32-hex trace id of the current span, or '' outside a span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
