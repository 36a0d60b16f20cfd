"""Load generator: a steady, bounded mix of uploads, catalog reads and analysis requests.

It talks only to the one configured api URL (a loopback address or a single-label compose
service name; anything else is refused) and never follows redirects. Requests that would
exceed the concurrency limit are skipped, not queued, so the rate stays bounded even when the
api is slow. Every few seconds it reads the api's `upload_rate` fault knob, which can slow or
stop uploads at run time (that is how LowUploadRate is driven); APOLLONIA_FAULT_UPLOAD_RATE in
its own environment does the same from start-up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("apollonia.loadgen")

MAX_IN_FLIGHT = 16
POLL_FAULTS_S = 5.0
REPORT_S = 30.0
USERS = 50  # a fixed pool keeps active_users bounded and believable
HOT_SET = 50  # catalog entries the readers focus on (keeps the cache hit ratio high)
# Share of non-upload requests: catalog pages, single items, analysis, health.
READ_MIX = (("catalog", 55), ("item", 30), ("analyze", 10), ("health", 5))
FORMAT_WEIGHTS = (("mp3", 40), ("wav", 15), ("flac", 20), ("ogg", 10), ("m4a", 15))


class UnsafeTarget(ValueError):
    pass


def check_target(url: str) -> str:
    """Accept http(s) URLs to loopback addresses, localhost or a one-label service name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"--api-url {url!r}: expected http://host:port")
    host = parts.hostname
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise UnsafeTarget(f"--api-url {url!r}: only loopback addresses are allowed")
    except ValueError:
        if host != "localhost" and "." in host:
            raise UnsafeTarget(
                f"--api-url {url!r}: only loopback, localhost or a compose service name"
            ) from None
    return url.rstrip("/")


@dataclass
class LoadGenerator:
    api_url: str
    rate: float = 6.0  # non-upload requests per second
    upload_rate: float = 2.0  # uploads per second unless the upload_rate knob says else
    # APOLLONIA_FAULT_UPLOAD_RATE in the load generator's own environment; the api's knob,
    # when set (non-null), wins over it.
    fault_upload_rate: float | None = None
    transport: httpx.AsyncBaseTransport | None = None
    stats: Counter[str] = field(default_factory=Counter)
    _ids: deque[str] = field(default_factory=lambda: deque(maxlen=HOT_SET))
    _override: float | None = None

    def __post_init__(self) -> None:
        self.api_url = check_target(self.api_url)
        self._sem = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def effective_upload_rate(self) -> float:
        if self._override is not None:
            return self._override
        if self.fault_upload_rate is not None:
            return self.fault_upload_rate
        return self.upload_rate

    async def run(self, duration: float | None = None) -> Counter[str]:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=10.0, transport=self.transport,
                                     follow_redirects=False) as client:
            self._client = client
            log.info("load generator started", extra={
                "api_url": self.api_url, "rate": self.rate, "upload_rate": self.upload_rate})
            await self._read_faults()  # honour upload_rate=0 before the first upload
            loops = [
                asyncio.create_task(self._ticker(lambda: self.effective_upload_rate, self._upload)),
                asyncio.create_task(self._ticker(lambda: self.rate, self._read)),
                asyncio.create_task(self._poll_faults()),
                asyncio.create_task(self._report()),
            ]
            try:
                if duration is None:
                    await asyncio.gather(*loops)
                else:
                    await asyncio.sleep(duration)
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                log.info("load generator stopped", extra={"counts": dict(self.stats)})
        return self.stats

    async def _ticker(self, rate_fn, action) -> None:  # type: ignore[no-untyped-def]
        next_at = time.monotonic()
        while True:
            rate = rate_fn()
            if rate <= 0:
                await asyncio.sleep(1.0)
                next_at = time.monotonic()
                continue
            next_at += random.expovariate(rate)  # Poisson arrivals, mean = rate
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()  # fell behind: don't burst to catch up
            if self._sem.locked():
                self.stats["skipped"] += 1
                continue
            task = asyncio.create_task(self._guarded(action))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _guarded(self, action) -> None:  # type: ignore[no-untyped-def]
        async with self._sem:
            try:
                await action()
            except httpx.HTTPError as exc:
                self.stats["transport_error"] += 1
                log.debug("request failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    def _headers(self) -> dict[str, str]:
        return {"X-User-ID": f"user-{random.randrange(USERS):03d}",
                "X-Request-ID": uuid.uuid4().hex}

    def _count(self, kind: str, response: httpx.Response) -> None:
        self.stats[f"{kind}_{response.status_code // 100}xx"] += 1

    async def _upload(self) -> None:
        formats, weights = zip(*FORMAT_WEIGHTS, strict=True)
        fmt = random.choices(formats, weights)[0]
        size = int(random.lognormvariate(11.5, 0.8))  # median ~100 KiB
        size = max(4096, min(size, 1024 * 1024))
        response = await self._client.post(
            "/api/v1/media", params={"format": fmt}, content=random.randbytes(size),
            headers={**self._headers(), "Content-Type": "application/octet-stream"})
        self._count("upload", response)
        if response.status_code == 201:
            self._ids.append(response.json()["id"])

    async def _read(self) -> None:
        kinds, weights = zip(*READ_MIX, strict=True)
        kind = random.choices(kinds, weights)[0]
        if kind in ("item", "analyze") and not self._ids:
            kind = "catalog"
        if kind == "catalog":
            offset = random.choice((0, 0, 0, 20, 40))
            response = await self._client.get("/api/v1/media", params={"offset": offset},
                                              headers=self._headers())
        elif kind == "item":
            response = await self._client.get(f"/api/v1/media/{random.choice(self._ids)}",
                                              headers=self._headers())
        elif kind == "analyze":
            response = await self._client.post(
                f"/api/v1/media/{random.choice(self._ids)}/analyze", headers=self._headers())
        else:
            response = await self._client.get("/health/ready", headers=self._headers())
        self._count(kind, response)

    async def _read_faults(self) -> None:
        try:
            response = await self._client.get("/admin/faults")
            if response.status_code == 200:
                value = response.json().get("upload_rate")
                if value != self._override:
                    log.info("upload rate override changed", extra={"upload_rate": value})
                self._override = value
        except (httpx.HTTPError, ValueError):
            pass  # api not up yet: keep the current rate

    async def _poll_faults(self) -> None:
        while True:
            await asyncio.sleep(POLL_FAULTS_S)
            await self._read_faults()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(REPORT_S)
            log.info("load generator progress", extra={
                "counts": dict(self.stats), "rate": self.rate,
                "upload_rate": self.effective_upload_rate})
