"""In-process harness: real api and analyzer ASGI apps wired together over httpx's ASGI
transport (no sockets), with in-memory span exporters to inspect traces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from apollonia import analyzer as analyzer_mod
from apollonia import api as api_mod
from apollonia.tracing import make_tracer_provider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    prov = make_tracer_provider("test")
    prov.add_span_processor(SimpleSpanProcessor(exporter))
    return prov, exporter


@dataclass
class Stack:
    api: Any
    analyzer: Any
    api_client: httpx.AsyncClient
    analyzer_client: httpx.AsyncClient
    api_spans: InMemorySpanExporter
    analyzer_spans: InMemorySpanExporter


@contextlib.asynccontextmanager
async def stack(
    api_env: dict[str, str] | None = None,
    analyzer_env: dict[str, str] | None = None,
    api_config: api_mod.ApiConfig | None = None,
    analyzer_config: analyzer_mod.AnalyzerConfig | None = None,
) -> AsyncIterator[Stack]:
    an_prov, an_spans = provider()
    api_prov, api_spans = provider()
    analyzer = analyzer_mod.create_app(analyzer_config, tracer_provider=an_prov,
                                       env=analyzer_env or {})
    api = api_mod.create_app(
        api_config or api_mod.ApiConfig(analyzer_url="http://analyzer.test"),
        tracer_provider=api_prov,
        analyzer_transport=httpx.ASGITransport(app=analyzer),
        env=api_env or {},
    )
    async with (
        analyzer.router.lifespan_context(analyzer),
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                          base_url="http://api.test") as api_client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=analyzer),
                          base_url="http://analyzer.test") as analyzer_client,
    ):
        yield Stack(api, analyzer, api_client, analyzer_client, api_spans, an_spans)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())


def samples(app: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from the app's registry (text format)."""
    if hasattr(app.state, "refresh"):
        app.state.refresh()
    text = generate_latest(app.state.metrics.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(app: Any, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    got = samples(app)
    if key not in got:
        raise KeyError(f"no sample {name}{labels}")
    return got[key]


def families(app: Any) -> dict[str, Any]:
    if hasattr(app.state, "refresh"):
        app.state.refresh()
    text = generate_latest(app.state.metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


async def upload(client: httpx.AsyncClient, fmt: str = "mp3", size: int = 2048,
                 user: str = "user-001") -> dict[str, Any]:
    r = await client.post("/api/v1/media", params={"format": fmt}, content=b"\0" * size,
                          headers={"X-User-ID": user})
    assert r.status_code == 201, r.text
    return r.json()


async def drain(stack_: Stack, timeout: float = 5.0) -> None:
    """Wait until the in-process analysis queue is empty and its jobs are done."""
    await asyncio.wait_for(stack_.api.state.queue._local.join(), timeout)
