"""OpenTelemetry setup: OTLP/HTTP export in the background, W3C trace context propagation.

Without OTEL_EXPORTER_OTLP_ENDPOINT no exporter is installed, but spans are still created so
trace ids appear in logs, exemplars and the traceparent header. With an endpoint, spans go
through a BatchSpanProcessor (a background thread with a bounded queue and short export
timeout), so a missing collector costs a warning in the log and dropped spans, never a
blocked request.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()

# Why these numbers: the exporter gives up on a dead collector after 2 s per batch, and at
# the demo's ~10 req/s a 2048-span queue holds ~3 minutes of spans before dropping.
EXPORT_TIMEOUT_S = 2.0
MAX_QUEUE_SIZE = 2048
SCHEDULE_DELAY_MS = 2000


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


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add `traceparent` (and `tracestate`) for the current span to outgoing headers."""
    _PROPAGATOR.inject(headers)
    return headers


def extract(headers: Mapping[str, str]) -> Context:
    """The remote parent context from incoming headers (empty context if none/invalid)."""
    return _PROPAGATOR.extract(headers)


def current_trace_id() -> str:
    """32-hex trace id of the current span, or '' outside a span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
