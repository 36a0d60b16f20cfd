"""The load generator: only loopback/compose targets, bounded rate, uploads keep flowing, and
the api's upload_rate knob stops them (how LowUploadRate is driven)."""

from __future__ import annotations

import httpx
import pytest
from apollonia.__main__ import loadgen_fault_upload_rate
from apollonia.faults import FaultError
from apollonia.loadgen import LoadGenerator, UnsafeTarget, check_target

from .helpers import run, stack, value


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000/",
                                 "http://api:8000", "http://[::1]:8000"])
def test_accepts_loopback_and_compose_names(url: str) -> None:
    assert check_target(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5:8000",
                                 "http://api.internal:8000", "ftp://127.0.0.1/", "127.0.0.1"])
def test_refuses_anything_else(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_target(url)


def _uploads(app) -> float:  # type: ignore[no-untyped-def]
    return sum(value(app, "media_upload_size_bytes_count", format=f)
               for f in ("mp3", "wav", "flac", "ogg", "m4a"))


def test_mixed_traffic_at_a_bounded_rate() -> None:
    async def main() -> None:
        async with stack() as s:
            seen: list[str] = []
            inner = httpx.ASGITransport(app=s.api)

            class Counting(httpx.AsyncBaseTransport):
                async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                    seen.append(f"{request.method} {request.url.host}")
                    return await inner.handle_async_request(request)

            gen = LoadGenerator("http://127.0.0.1:8000", rate=20, upload_rate=10,
                                transport=Counting())
            stats = await gen.run(duration=1.0)
            # 1 s at 30 req/s (+1 fault poll) is ~31 requests; Poisson noise stays far below 60
            assert 10 <= len(seen) <= 60, len(seen)
            assert {x.split()[1] for x in seen} == {"127.0.0.1"}
            assert stats["upload_2xx"] >= 3 and _uploads(s.api) == stats["upload_2xx"]
            assert sum(v for k, v in stats.items() if k.endswith("_5xx")) == 0
            assert value(s.api, "active_users") >= 2

    run(main)


def test_upload_rate_knob_stops_uploads() -> None:
    async def main() -> None:
        async with stack() as s:
            assert (await s.api_client.post("/admin/faults", json={"upload_rate": 0})
                    ).status_code == 200
            gen = LoadGenerator("http://127.0.0.1:8000", rate=5, upload_rate=20,
                                transport=httpx.ASGITransport(app=s.api))
            # 2 s at 5 reads/s: at least one read completes even on a loaded CI machine (0.8 s
            # once completed none while two suites ran on two cores).
            stats = await gen.run(duration=2.0)
            assert gen.effective_upload_rate == 0
            assert _uploads(s.api) == 0 and stats["catalog_2xx"] >= 1

    run(main)


def test_fault_env_var_stops_uploads_and_the_api_knob_wins() -> None:
    assert loadgen_fault_upload_rate({"APOLLONIA_FAULT_UPLOAD_RATE": "0"}) == 0.0
    assert loadgen_fault_upload_rate({}) is None
    with pytest.raises(FaultError, match="APOLLONIA_FAULT_UPLOAD_RATE"):
        loadgen_fault_upload_rate({"APOLLONIA_FAULT_UPLOAD_RATE": "-1"})

    async def main() -> None:
        async with stack() as s:
            gen = LoadGenerator("http://127.0.0.1:8000", rate=5, upload_rate=20,
                                fault_upload_rate=0.0, transport=httpx.ASGITransport(app=s.api))
            await gen.run(duration=0.6)
            assert _uploads(s.api) == 0
            await s.api_client.post("/admin/faults", json={"upload_rate": 20})
            stats = await gen.run(duration=0.6)
            assert gen.effective_upload_rate == 20 and stats["upload_2xx"] >= 1

    run(main)
