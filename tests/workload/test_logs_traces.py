"""JSON log lines with request and trace context; traceparent carries one trace from the api
to the analyzer; a dead OTLP collector never slows or breaks a request."""

from __future__ import annotations

import io
import json
import logging
import socket
import time

import httpx
from apollonia.logs import setup_logging
from apollonia.tracing import make_tracer_provider
from opentelemetry.trace import SpanKind

from .helpers import drain, run, stack, upload

GUIDE_FIELDS = {"timestamp", "level", "service", "logger", "message", "module", "function",
                "line", "request_id", "user_id", "trace_id", "span_id"}


def _capture() -> io.StringIO:
    buf = io.StringIO()
    setup_logging("api", "INFO", stream=buf)
    return buf


def _restore() -> None:
    root = logging.getLogger()
    for h in root.handlers[:]:
        root.removeHandler(h)


def test_log_lines_are_json_with_request_and_trace_ids() -> None:
    buf = _capture()
    try:
        async def main() -> httpx.Response:
            async with stack() as s:
                r = await s.api_client.get("/api/v1/media", headers={
                    "X-Request-ID": "req-abc-123", "X-User-ID": "user-7"})
                assert r.status_code == 200
                return r

        response = run(main)
    finally:
        _restore()
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    assert lines, "nothing logged"
    for entry in lines:
        assert set(entry) >= GUIDE_FIELDS, f"missing fields: {GUIDE_FIELDS - set(entry)}"
    finished = [e for e in lines if e["message"] == "request finished"
                and e.get("route") == "/api/v1/media"]
    assert len(finished) == 1
    f = finished[0]
    assert f["method"] == "GET" and f["status"] == 200 and f["duration_ms"] >= 0
    assert f["request_id"] == "req-abc-123" and f["user_id"] == "user-7"
    assert len(f["trace_id"]) == 32 and len(f["span_id"]) == 16
    assert f["trace_id"] == response.headers["x-trace-id"]
    assert response.headers["x-request-id"] == "req-abc-123"
    started = [e for e in lines if e["message"] == "request started"
               and e.get("route") == "/api/v1/media"]
    assert started and started[0]["trace_id"] == f["trace_id"]


def test_request_id_generated_when_missing_or_invalid() -> None:
    async def main() -> None:
        async with stack() as s:
            r1 = await s.api_client.get("/health/live")
            r2 = await s.api_client.get("/health/live", headers={"X-Request-ID": "bad id\n{}"})
            for r in (r1, r2):
                assert len(r.headers["x-request-id"]) == 32
            assert r1.headers["x-request-id"] != r2.headers["x-request-id"]

    run(main)


def test_exception_is_logged_with_traceback_in_one_json_line() -> None:
    buf = _capture()
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("apollonia.test").exception("it failed")
    finally:
        _restore()
    entry = json.loads(buf.getvalue().strip())
    assert entry["level"] == "ERROR" and "RuntimeError: boom" in entry["exception"]


def test_traceparent_propagates_api_to_analyzer() -> None:
    async def main() -> None:
        async with stack() as s:
            media = await upload(s.api_client)
            await drain(s)
            s.api_spans.clear()
            s.analyzer_spans.clear()
            r = await s.api_client.post(f"/api/v1/media/{media['id']}/analyze")
            assert r.status_code == 200 and r.json()["status"] == "ok"
            api_spans = s.api_spans.get_finished_spans()
            an_spans = s.analyzer_spans.get_finished_spans()
            # The httpx instrumentation's client span ("POST", the method only, as the HTTP
            # semantic conventions name client spans) and the FastAPI instrumentation's spans
            # named by route template.
            client = next(sp for sp in api_spans if sp.kind == SpanKind.CLIENT
                          and sp.attributes["http.url"] == "http://analyzer.test/analyze")
            server = next(sp for sp in an_spans if sp.name == "POST /analyze")
            api_server = next(sp for sp in api_spans
                              if sp.name == "POST /api/v1/media/{media_id}/analyze")
            assert api_server.kind == SpanKind.SERVER and client.name == "POST"
            # one trace, and the analyzer's span is a child of the api's client span. In one
            # process the ASGI transport shares the caller's context, so the analyzer's span
            # is a local child (INTERNAL); across processes it is a SERVER span with a remote
            # parent (tests/workload/test_real_backends.py checks that on real processes).
            assert server.context.trace_id == client.context.trace_id
            assert server.context.trace_id == api_server.context.trace_id
            assert server.parent is not None and server.parent.span_id == client.context.span_id
            assert r.headers["x-trace-id"] == format(api_server.context.trace_id, "032x")
            # the analyzer's own work is inside the same trace
            assert {sp.context.trace_id for sp in an_spans} == {client.context.trace_id}
            assert {"decode", "feature_extraction", "inference"} <= {sp.name for sp in an_spans}

    run(main)


def test_queued_job_continues_the_upload_trace() -> None:
    async def main() -> None:
        async with stack() as s:
            r = await s.api_client.post("/api/v1/media", params={"format": "flac"},
                                        content=b"x" * 1000)
            await drain(s)
            trace_id = int(r.headers["x-trace-id"], 16)
            consumer = [sp for sp in s.api_spans.get_finished_spans()
                        if sp.name == "analyzer_queue process"]
            assert consumer and consumer[0].context.trace_id == trace_id
            assert any(sp.context.trace_id == trace_id
                       for sp in s.analyzer_spans.get_finished_spans())

    run(main)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dead_collector_never_blocks_requests() -> None:
    from apollonia import analyzer as analyzer_mod

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    prov = make_tracer_provider("analyzer", endpoint)
    app = analyzer_mod.create_app(tracer_provider=prov, env={})

    async def main() -> float:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://a.test") as c:
            start = time.perf_counter()
            for _ in range(10):
                r = await c.post("/analyze", json={"media_id": "m", "format": "mp3"})
                assert r.status_code == 200
            return time.perf_counter() - start

    elapsed = run(main)
    # 10 analyses take ~0.5 s of simulated work; export to a dead collector adds nothing here
    assert elapsed < 3.0, f"10 requests took {elapsed:.1f}s with the collector down"
    start = time.perf_counter()
    prov.shutdown()  # flushes to the dead collector: bounded by the exporter timeout
    assert time.perf_counter() - start < 10.0


def test_no_exporter_without_endpoint() -> None:
    prov = make_tracer_provider("api", None)
    assert not prov._active_span_processor._span_processors
    prov2 = make_tracer_provider("api", "http://127.0.0.1:4318")
    assert len(prov2._active_span_processor._span_processors) == 1
    prov2.shutdown()
