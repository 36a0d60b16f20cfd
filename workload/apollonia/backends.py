"""Database, cache and queue: the real service when its URL is configured, otherwise an
in-process simulation that behaves alike (latency, hits and misses, queue depth), so every
metric has live values on a laptop without PostgreSQL, Redis or RabbitMQ.

With RabbitMQ the api only publishes (JobQueue) and the analyzer consumes (JobConsumer); the
in-process stand-in queue lives in the api, whose workers call the analyzer over HTTP.
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

from . import tracing
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
# ... and for the publish itself: a broker in a memory or disk alarm blocks publishers, and an
# upload must then fail (503) instead of hanging.
PUBLISH_TIMEOUT_S = 2.0
DEPTH_POLL_S = 5.0  # how often the api reads analyzer_queue's depth from RabbitMQ
RECONNECT_S = 5.0


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
        self._held: list[Any] = []  # connections held open by the db_connections fault

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
            return await fn()
        finally:
            self._in_flight -= 1
            self.metrics.database_query_duration_seconds.labels(query_type, "media").observe(
                time.perf_counter() - start, exemplar=exemplar()
            )

    async def _sim_latency(self, base: float) -> None:
        await asyncio.sleep(random.uniform(0.5, 1.5) * base + self.faults.db_latency_seconds)

    async def _on_connection(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `fn(connection)` on a pooled connection. The db_latency_seconds fault makes the
        session really busy in PostgreSQL first (pg_sleep), the way a slow plan or a lock wait
        would: the server, pg_stat_activity and the exporter all see a slow query."""
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            if self.faults.db_latency_seconds > 0:
                await conn.execute("SELECT pg_sleep($1)", self.faults.db_latency_seconds)
            return await fn(conn)

    async def insert_media(self, row: dict[str, Any]) -> None:
        async def sim() -> None:
            await self._sim_latency(0.004)
            self._rows[row["id"]] = row
            self._counts[row["format"]] += 1
            while len(self._rows) > SIM_MAX_ROWS:
                _, old = self._rows.popitem(last=False)
                self._counts[old["format"]] -= 1

        async def pg() -> None:
            await self._on_connection(lambda conn: conn.execute(
                "INSERT INTO apollonia_media (id, format, size_bytes, user_id)"
                " VALUES ($1, $2, $3, $4)",
                row["id"], row["format"], row["size_bytes"], row["user_id"],
            ))
            self._counts[row["format"]] += 1

        await self._timed("insert", pg if self.url else sim)

    async def list_media(self, limit: int, offset: int) -> list[dict[str, Any]]:
        async def sim() -> list[dict[str, Any]]:
            await self._sim_latency(0.008)
            rows = list(reversed(self._rows.values()))
            return rows[offset : offset + limit]

        async def pg() -> list[dict[str, Any]]:
            records = await self._on_connection(lambda conn: conn.fetch(
                "SELECT id, format, size_bytes, user_id FROM apollonia_media"
                " ORDER BY created_at DESC LIMIT $1 OFFSET $2", limit, offset))
            return [dict(r) for r in records]

        return await self._timed("select", pg if self.url else sim)

    async def get_media(self, media_id: str) -> dict[str, Any] | None:
        async def sim() -> dict[str, Any] | None:
            await self._sim_latency(0.003)
            return self._rows.get(media_id)

        async def pg() -> dict[str, Any] | None:
            record = await self._on_connection(lambda conn: conn.fetchrow(
                "SELECT id, format, size_bytes, user_id FROM apollonia_media WHERE id = $1",
                media_id))
            return dict(record) if record else None

        return await self._timed("select", pg if self.url else sim)

    async def refresh_counts(self) -> None:
        """Apply retention, then re-count media by format (real DB only; the simulation caps
        its rows and counts as it goes)."""
        if not self.url:
            return

        async def retention() -> None:
            await self._on_connection(lambda conn: conn.execute(
                "DELETE FROM apollonia_media WHERE created_at < now() - $1::interval",
                RETENTION))

        async def pg() -> None:
            records = await self._on_connection(lambda conn: conn.fetch(
                "SELECT format, count(*) AS n FROM apollonia_media GROUP BY format"))
            counts = dict.fromkeys(FORMATS, 0)
            for r in records:
                if r["format"] in counts:
                    counts[r["format"]] = r["n"]
            self._counts = counts

        await self._timed("delete", retention)
        await self._timed("count", pg)

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    async def hold_connections(self) -> None:
        """The db_connections fault with a real database: hold that many extra connections
        open (outside the pool), so PostgreSQL, pg_stat_activity and the exporter's
        HighDatabaseConnections see a real pile-up. Called from the api's refresh loop."""
        import asyncpg

        want = self.faults.db_connections or 0
        while len(self._held) > want:
            with contextlib.suppress(Exception):
                await self._held.pop().close()
        self._held = [c for c in self._held if not c.is_closed()]
        while len(self._held) < want:
            self._held.append(await asyncpg.connect(self.url, timeout=5))

    def connections_active(self) -> int:
        if self.url:
            pool = self._pool
            in_use = pool.get_size() - pool.get_idle_size() if pool is not None else 0
            return in_use + len(self._held)
        if self.faults.db_connections is not None:
            return self.faults.db_connections
        return SIM_POOL_BASELINE + self._in_flight

    async def health(self) -> dict[str, Any]:
        if not self.url:
            raise NotConfigured("DATABASE_URL not set; catalog simulated in-process")
        pool = await self._get_pool()
        value = await pool.fetchval("SELECT 1")
        return {"query_result": value, "pool_size": pool.get_size(),
                "pool_idle": pool.get_idle_size()}

    async def close(self) -> None:
        for conn in self._held:
            with contextlib.suppress(Exception):
                await conn.close()
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
    """The api's side of the analysis jobs. With RABBITMQ_URL: publishes each job to the
    durable queue `analyzer_queue` (the analyzer consumes it, JobConsumer) and reads the
    queue's depth every few seconds. Without: an in-process asyncio.Queue whose workers hand
    each job to `handler` (the analyzer called over HTTP)."""

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
        self._depth: int | None = None  # None: unknown (not connected)

    async def start(self) -> None:
        if self.url:
            self._tasks.append(asyncio.create_task(self._rabbit_loop()))
        else:
            for _ in range(self.workers):
                self._tasks.append(asyncio.create_task(self._local_worker()))

    async def publish(self, job: dict[str, Any]) -> None:
        if not self.url:
            # No message headers in-process: the job itself carries the trace context.
            self._local.put_nowait({**job, "trace": tracing.inject({})})
            return
        import aio_pika

        # Right after start-up (or during a reconnect) wait briefly for the channel.
        for _ in range(int(PUBLISH_WAIT_S / 0.1)):
            if self._channel is not None and not self._channel.is_closed:
                break
            await asyncio.sleep(0.1)
        else:
            raise ConnectionError("RabbitMQ not connected")
        # The aio-pika instrumentation wraps this in a PRODUCER span and writes the W3C trace
        # context into the message headers; the analyzer's consumer continues it.
        await asyncio.wait_for(self._channel.default_exchange.publish(
            aio_pika.Message(json.dumps(job).encode(), content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=QUEUE_NAME,
        ), PUBLISH_TIMEOUT_S)

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
                # robust=False: aio-pika's robust channel answers a passive declare of a queue
                # it remembers from its cache (RobustChannel.declare_queue, aio-pika 10.2.1),
                # so the message count would never change.
                await self._channel.declare_queue(QUEUE_NAME, durable=True, robust=False)
                log.info("connected to RabbitMQ", extra={"queue": QUEUE_NAME, "role": "publisher"})
                while True:
                    declared = await self._channel.declare_queue(QUEUE_NAME, passive=True,
                                                                 robust=False)
                    self._depth = declared.declaration_result.message_count or 0
                    await asyncio.sleep(DEPTH_POLL_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("RabbitMQ unavailable, retrying in 5 s",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
                self._channel = None
                self._depth = None
                await _close(self._connection)
                self._connection = None
                await asyncio.sleep(RECONNECT_S)

    def depth(self) -> float:
        """Jobs waiting; NaN while RabbitMQ's count is unknown (a stale number could keep
        MLProcessingBacklog firing, or hide a backlog, during a broker outage)."""
        if self.faults.queue_backlog is not None:
            return self.faults.queue_backlog
        if not self.url:
            return self._local.qsize()
        return float("nan") if self._depth is None else self._depth

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
        await _close(self._connection)


class JobConsumer:
    """The analyzer's side: consumes `analyzer_queue` (prefetch = `workers`) and hands each
    job to `handler`. The aio-pika instrumentation runs each delivery in a CONSUMER span that
    continues the publisher's trace from the message headers. The consumer_paused fault
    cancels the consumer (RabbitMQ then shows the queue without consumers) until cleared."""

    def __init__(self, url: str, faults: Faults, handler: Handler, workers: int = 2) -> None:
        self.url = url
        self.faults = faults
        self.handler = handler
        self.workers = workers
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._channel: Any = None
        self.consuming = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _on_message(self, message: Any) -> None:
        async with message.process(requeue=False):
            await self.handler(json.loads(message.body))

    async def _loop(self) -> None:
        import aio_pika

        while True:
            try:
                self._connection = await aio_pika.connect_robust(self.url, timeout=5)
                self._channel = await self._connection.channel()
                await self._channel.set_qos(prefetch_count=self.workers)
                queue = await self._channel.declare_queue(QUEUE_NAME, durable=True)
                log.info("connected to RabbitMQ", extra={"queue": QUEUE_NAME, "role": "consumer"})
                tag = None
                while True:
                    if tag is None and not self.faults.consumer_paused:
                        tag = await queue.consume(self._on_message)
                        log.info("consuming", extra={"queue": QUEUE_NAME})
                    elif tag is not None and self.faults.consumer_paused:
                        await queue.cancel(tag)
                        tag = None
                        log.warning("consumer paused (fault injection)",
                                    extra={"queue": QUEUE_NAME})
                    self.consuming = tag is not None
                    await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("RabbitMQ unavailable, retrying in 5 s",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
                self.consuming = False
                self._channel = None
                await _close(self._connection)
                self._connection = None
                await asyncio.sleep(RECONNECT_S)

    async def health(self) -> dict[str, Any]:
        if self._channel is None or self._channel.is_closed:
            raise ConnectionError("not connected to RabbitMQ")
        return {"queue": QUEUE_NAME, "consuming": self.consuming,
                "connection_status": "connected"}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await _close(self._connection)


async def _close(connection: Any) -> None:
    if connection is not None:
        with contextlib.suppress(Exception):
            await connection.close()
