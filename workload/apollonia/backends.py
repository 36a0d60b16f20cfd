"""Database, cache and queue: the real service when its URL is configured, otherwise an
in-process simulation that behaves alike (latency, hits and misses, queue depth), so every
metric has live values on a laptop without PostgreSQL, Redis or RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from .faults import Faults
from .health import NotConfigured
from .metrics import FORMATS, QUEUE_NAME, ApiMetrics, exemplar

log = logging.getLogger("apollonia.backends")

SIM_MAX_ROWS = 10_000  # the simulated catalog forgets its oldest rows beyond this
# A real catalog keeps a day of demo uploads (~170,000 rows at 2 uploads/s), then forgets them.
RETENTION = timedelta(days=1)
SIM_POOL_BASELINE = 2  # connections a pool keeps busy (keepalive, listeners) in the simulation
HIT_WINDOW = 500  # cache gets the hit-ratio gauge looks back over
PUBLISH_WAIT_S = 2.0  # how long an upload waits for a (re)connecting RabbitMQ channel


class Database:
    """The media catalog: PostgreSQL through asyncpg when DATABASE_URL is set, else a dict."""

    def __init__(self, url: str | None, metrics: ApiMetrics, faults: Faults) -> None:
        self.url = url
        self.metrics = metrics
        self.faults = faults
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._rows: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._counts = dict.fromkeys(FORMATS, 0)
        self._in_flight = 0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    import asyncpg

                    pool = await asyncpg.create_pool(
                        self.url, min_size=1, max_size=10, timeout=5, command_timeout=5
                    )
                    async with pool.acquire() as conn:
                        await conn.execute(
                            "CREATE TABLE IF NOT EXISTS apollonia_media ("
                            " id text PRIMARY KEY, format text NOT NULL,"
                            " size_bytes bigint NOT NULL, user_id text NOT NULL DEFAULT '',"
                            " created_at timestamptz NOT NULL DEFAULT now())"
                        )
                        await conn.execute(
                            "CREATE INDEX IF NOT EXISTS apollonia_media_created_at"
                            " ON apollonia_media (created_at)"
                        )
                    self._pool = pool
        return self._pool

    async def _timed(self, query_type: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        self._in_flight += 1
        start = time.perf_counter()
        try:
            if self.faults.db_latency_seconds > 0:
                await asyncio.sleep(self.faults.db_latency_seconds)
            return await fn()
        finally:
            self._in_flight -= 1
            self.metrics.database_query_duration_seconds.labels(query_type, "media").observe(
                time.perf_counter() - start, exemplar=exemplar()
            )

    async def _sim_latency(self, base: float) -> None:
        await asyncio.sleep(random.uniform(0.5, 1.5) * base)

    async def insert_media(self, row: dict[str, Any]) -> None:
        async def sim() -> None:
            await self._sim_latency(0.004)
            self._rows[row["id"]] = row
            self._counts[row["format"]] += 1
            while len(self._rows) > SIM_MAX_ROWS:
                _, old = self._rows.popitem(last=False)
                self._counts[old["format"]] -= 1

        async def pg() -> None:
            pool = await self._get_pool()
            await pool.execute(
                "INSERT INTO apollonia_media (id, format, size_bytes, user_id)"
                " VALUES ($1, $2, $3, $4)",
                row["id"], row["format"], row["size_bytes"], row["user_id"],
            )
            self._counts[row["format"]] += 1

        await self._timed("insert", pg if self.url else sim)

    async def list_media(self, limit: int, offset: int) -> list[dict[str, Any]]:
        async def sim() -> list[dict[str, Any]]:
            await self._sim_latency(0.008)
            rows = list(reversed(self._rows.values()))
            return rows[offset : offset + limit]

        async def pg() -> list[dict[str, Any]]:
            pool = await self._get_pool()
            records = await pool.fetch(
                "SELECT id, format, size_bytes, user_id FROM apollonia_media"
                " ORDER BY created_at DESC LIMIT $1 OFFSET $2", limit, offset)
            return [dict(r) for r in records]

        return await self._timed("select", pg if self.url else sim)

    async def get_media(self, media_id: str) -> dict[str, Any] | None:
        async def sim() -> dict[str, Any] | None:
            await self._sim_latency(0.003)
            return self._rows.get(media_id)

        async def pg() -> dict[str, Any] | None:
            pool = await self._get_pool()
            record = await pool.fetchrow(
                "SELECT id, format, size_bytes, user_id FROM apollonia_media WHERE id = $1",
                media_id)
            return dict(record) if record else None

        return await self._timed("select", pg if self.url else sim)

    async def refresh_counts(self) -> None:
        """Apply retention, then re-count media by format (real DB only; the simulation caps
        its rows and counts as it goes)."""
        if not self.url:
            return

        async def retention() -> None:
            pool = await self._get_pool()
            await pool.execute(
                "DELETE FROM apollonia_media WHERE created_at < now() - $1::interval",
                RETENTION)

        async def pg() -> None:
            pool = await self._get_pool()
            records = await pool.fetch(
                "SELECT format, count(*) AS n FROM apollonia_media GROUP BY format")
            counts = dict.fromkeys(FORMATS, 0)
            for r in records:
                if r["format"] in counts:
                    counts[r["format"]] = r["n"]
            self._counts = counts

        await self._timed("delete", retention)
        await self._timed("count", pg)

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def connections_active(self) -> int:
        if self.faults.db_connections is not None:
            return self.faults.db_connections
        if self.url:
            pool = self._pool
            return pool.get_size() - pool.get_idle_size() if pool is not None else 0
        return SIM_POOL_BASELINE + self._in_flight

    async def health(self) -> dict[str, Any]:
        if not self.url:
            raise NotConfigured("DATABASE_URL not set; catalog simulated in-process")
        pool = await self._get_pool()
        value = await pool.fetchval("SELECT 1")
        return {"query_result": value, "pool_size": pool.get_size(),
                "pool_idle": pool.get_idle_size()}

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class Cache:
    """Redis when REDIS_URL is set, else an in-process TTL dict. Counts hits and misses."""

    def __init__(self, url: str | None, metrics: ApiMetrics, faults: Faults) -> None:
        self.url = url
        self.metrics = metrics
        self.faults = faults
        self._local: dict[str, tuple[float, str]] = {}
        self._window: deque[bool] = deque(maxlen=HIT_WINDOW)
        self._redis: Any = None
        if url:
            import redis.asyncio as aioredis

            # Short timeouts: a slow cache must cost a miss, not a slow request.
            self._redis = aioredis.from_url(
                url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
            )

    async def get(self, key: str) -> Any:
        forced = self.faults.cache_hit_ratio
        value = None
        if forced is None or random.random() < forced:
            value = await self._get(key)
        hit = value is not None
        self.metrics.cache_operations_total.labels("get", "hit" if hit else "miss").inc()
        self._window.append(hit)
        return json.loads(value) if hit else None

    async def _get(self, key: str) -> str | None:
        if self._redis is not None:
            try:
                return await self._redis.get(f"apollonia:{key}")
            except Exception as exc:
                log.warning("cache get failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                return None
        item = self._local.get(key)
        if item is None or item[0] < time.monotonic():
            self._local.pop(key, None)
            return None
        return item[1]

    async def set(self, key: str, value: Any, ttl: float) -> None:
        data = json.dumps(value, default=str)
        if self._redis is not None:
            try:
                await self._redis.set(f"apollonia:{key}", data, px=int(ttl * 1000))
            except Exception as exc:
                log.warning("cache set failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                return
        else:
            if len(self._local) > 50_000:
                self._local.clear()
            self._local[key] = (time.monotonic() + ttl, data)
        self.metrics.cache_operations_total.labels("set", "ok").inc()

    def hit_ratio(self) -> float:
        if self.faults.cache_hit_ratio is not None:
            return self.faults.cache_hit_ratio
        if not self._window:
            return float("nan")
        return sum(self._window) / len(self._window)

    async def health(self) -> dict[str, Any]:
        if self._redis is None:
            raise NotConfigured("REDIS_URL not set; cache simulated in-process")
        key = "apollonia:health_check"
        stamp = str(time.time())
        await self._redis.set(key, stamp, ex=60)
        ok = await self._redis.get(key) == stamp
        await self._redis.delete(key)
        info = await self._redis.info()
        return {"test_passed": ok, "connected_clients": info.get("connected_clients"),
                "used_memory_human": info.get("used_memory_human")}

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


Handler = Callable[[dict[str, Any]], Awaitable[None]]


class JobQueue:
    """Analysis jobs: RabbitMQ queue `analyzer_queue` when RABBITMQ_URL is set, else an
    asyncio.Queue. One consumer task hands jobs to `handler` (the analyzer call)."""

    def __init__(self, url: str | None, faults: Faults, handler: Handler,
                 workers: int = 2) -> None:
        self.url = url
        self.faults = faults
        self.handler = handler
        self.workers = workers
        self._local: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._connection: Any = None
        self._channel: Any = None
        self._depth = 0

    async def start(self) -> None:
        if self.url:
            self._tasks.append(asyncio.create_task(self._rabbit_loop()))
        else:
            for _ in range(self.workers):
                self._tasks.append(asyncio.create_task(self._local_worker()))

    async def publish(self, job: dict[str, Any]) -> None:
        if not self.url:
            self._local.put_nowait(job)
            return
        import aio_pika

        # Right after start-up (or during a reconnect) wait briefly for the channel.
        for _ in range(int(PUBLISH_WAIT_S / 0.1)):
            if self._channel is not None and not self._channel.is_closed:
                break
            await asyncio.sleep(0.1)
        else:
            raise ConnectionError("RabbitMQ not connected")
        await self._channel.default_exchange.publish(
            aio_pika.Message(json.dumps(job).encode(), content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=QUEUE_NAME,
        )

    async def _local_worker(self) -> None:
        while True:
            job = await self._local.get()
            try:
                await self.handler(job)
            except Exception as exc:
                log.warning("analysis job failed", extra={
                    "media_id": job.get("media_id"), "error": f"{type(exc).__name__}: {exc}"})
            finally:
                self._local.task_done()

    async def _rabbit_loop(self) -> None:
        import aio_pika

        while True:
            try:
                self._connection = await aio_pika.connect_robust(self.url, timeout=5)
                self._channel = await self._connection.channel()
                await self._channel.set_qos(prefetch_count=self.workers)
                queue = await self._channel.declare_queue(QUEUE_NAME, durable=True)

                async def on_message(message: Any) -> None:
                    async with message.process(requeue=False):
                        await self.handler(json.loads(message.body))

                await queue.consume(on_message)
                log.info("connected to RabbitMQ", extra={"queue": QUEUE_NAME})
                while True:
                    declared = await self._channel.declare_queue(QUEUE_NAME, passive=True)
                    self._depth = declared.declaration_result.message_count or 0
                    await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("RabbitMQ unavailable, retrying in 5 s",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
                self._channel = None
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                    self._connection = None
                await asyncio.sleep(5)

    def depth(self) -> int:
        if self.faults.queue_backlog is not None:
            return self.faults.queue_backlog
        return self._depth if self.url else self._local.qsize()

    async def health(self) -> dict[str, Any]:
        if not self.url:
            raise NotConfigured("RABBITMQ_URL not set; queue simulated in-process")
        if self._channel is None or self._channel.is_closed:
            raise ConnectionError("not connected to RabbitMQ")
        return {"queue": QUEUE_NAME, "messages": self._depth, "connection_status": "connected"}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
