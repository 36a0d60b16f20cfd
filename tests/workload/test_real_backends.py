"""The PostgreSQL, Redis and RabbitMQ paths against real, throw-away servers on loopback.

The servers are the builds `make bootstrap` links into .tools/bin (dev/bootstrap-servers.sh:
Debian 12's PostgreSQL 15, Redis 7.0 and RabbitMQ 3.10, or usable installed ones), each
started here with its state in a temporary directory and stopped afterwards. Without one of
them the test skips with that reason; with CI=true that is a failure.

The last test runs the api and the analyzer as real processes against all three and receives
their spans over OTLP/HTTP: one trace holds the api's request span, its PostgreSQL and Redis
calls, the RabbitMQ publish, and the analyzer's consume and processing spans, the context
carried in the message headers (the OpenTelemetry instrumentation packages do all of it).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from apollonia.analyzer import AnalyzerConfig
from apollonia.api import ApiConfig

from native import deps

from .helpers import drain, run, samples, stack, upload, value

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
PASSWORD = "real-backend-test"


def _server(*progs: str) -> None:
    missing = [p for p in progs if not (TOOLS / p).exists()]
    if missing:
        reason = f".tools/bin/{', '.join(missing)} missing (make bootstrap says why)"
        if CI:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        time.sleep(0.2)
    pytest.fail(f"{what} did not listen on {port} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _server("postgres", "initdb", "pg_isready")
    base = tmp_path_factory.mktemp("pg")
    data, port = base / "data", _free_port()
    (base / "pw").write_text(PASSWORD + "\n")
    # As root PostgreSQL runs in a user namespace, as the native run does (native/deps.py).
    init = subprocess.run(deps._as_server_user([
        str(TOOLS / "initdb"), "-D", str(data), "-U", "apollonia", f"--pwfile={base / 'pw'}",
        "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions"]),
        capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    log = (base / "log").open("w")
    proc = subprocess.Popen(deps._as_server_user([
        str(TOOLS / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1",
        "-c", f"port={port}", "-c", "unix_socket_directories=", "-c", "fsync=off"]),
        stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, "postgres", 30)
        yield f"postgresql://apollonia:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _server("redis-server")
    base = tmp_path_factory.mktemp("redis")
    port = _free_port()
    (base / "redis.conf").write_text(
        f"bind 127.0.0.1\nport {port}\ndir {base}\nsave \"\"\nappendonly no\n"
        f"requirepass {PASSWORD}\n")
    proc = subprocess.Popen([str(TOOLS / "redis-server"), str(base / "redis.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "redis-server", 15)
        yield f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def rabbitmq_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _server("rabbitmq-server", "erl", "epmd")
    base = tmp_path_factory.mktemp("rabbitmq")
    port, dist_port, epmd_port = _free_port(), _free_port(), _free_port()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        f"default_user = apollonia\ndefault_pass = {PASSWORD}\n")
    (base / "enabled_plugins").write_text("[].\n")
    env = {
        "PATH": f"{TOOLS}:/usr/bin:/bin",
        "HOME": str(base),  # the Erlang cookie goes here, not in the real home
        "RABBITMQ_NODENAME": f"apollonia-test-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_CONFIG_FILES": str(base / "conf.d"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(epmd_port),
    }
    # A private epmd in its own process, stopped with the test (never another node's).
    epmd = subprocess.Popen([str(TOOLS / "epmd"), "-address", "127.0.0.1", "-port",
                             str(epmd_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = subprocess.Popen([os.path.realpath(TOOLS / "rabbitmq-server")], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "rabbitmq-server", 90)
        yield f"amqp://apollonia:{PASSWORD}@127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture started, nothing else
        try:
            # a throw-away node: no need to wait out its full graceful shutdown
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        epmd.terminate()
        epmd.wait(timeout=10)


def test_catalog_in_postgresql(postgres_url: str) -> None:
    config = ApiConfig(analyzer_url="http://analyzer.test", database_url=postgres_url)

    async def main() -> None:
        async with stack(api_config=config) as s:
            media = await upload(s.api_client, "ogg")
            await drain(s)
            r = await s.api_client.get(f"/api/v1/media/{media['id']}")
            assert r.status_code == 200 and r.json()["format"] == "ogg"
            listed = (await s.api_client.get("/api/v1/media")).json()["items"]
            assert media["id"] in {row["id"] for row in listed}
            health = (await s.api_client.get("/health")).json()["checks"]["database"]
            assert health["status"] == "healthy" and health["details"]["query_result"] == 1
            await s.api.state.db.refresh_counts()
            assert value(s.api, "media_files_total", format="ogg") == 1
            counts = {dict(k[1])["query_type"]: v for k, v in samples(s.api).items()
                      if k[0] == "database_query_duration_seconds_count"}
            assert counts["insert"] == 1 and counts["select"] >= 1 and counts["count"] >= 1

    run(main)


def test_db_faults_are_real_in_postgresql(postgres_url: str) -> None:
    """db_latency_seconds keeps the query's session busy in PostgreSQL (pg_sleep), and
    db_connections holds that many real connections, counted by the server itself."""
    import asyncpg

    config = ApiConfig(analyzer_url="http://analyzer.test", database_url=postgres_url)

    async def main() -> None:
        async with stack(api_config=config,
                         api_env={"APOLLONIA_FAULT_DB_LATENCY_SECONDS": "0.3"}) as s:
            watcher = await asyncpg.connect(postgres_url)
            clients = ("SELECT count(*) FROM pg_stat_activity"
                       " WHERE backend_type = 'client backend'")
            try:
                task = asyncio.create_task(s.api_client.get("/api/v1/media/nothing"))
                await asyncio.sleep(0.15)
                sleeping = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep($1)'"
                    " AND state = 'active'")
                assert (await task).status_code == 404
                assert sleeping >= 1, "the slow query was not running in PostgreSQL"
                before = await watcher.fetchval(clients)
                r = await s.api_client.post("/admin/faults", json={"db_connections": 5})
                assert r.status_code == 200, r.text
                await s.api.state.db.hold_connections()
                after = await watcher.fetchval(clients)
                assert after - before == 5, (before, after)
                assert value(s.api, "database_connections_active") >= 5
            finally:
                await watcher.close()

    run(main)


def test_cache_in_redis(redis_url: str) -> None:
    config = ApiConfig(analyzer_url="http://analyzer.test", redis_url=redis_url)

    async def main() -> None:
        async with stack(api_config=config) as s:
            for _ in range(5):
                assert (await s.api_client.get("/api/v1/media")).status_code == 200
            assert value(s.api, "cache_operations_total", operation="get", result="miss") == 1
            assert value(s.api, "cache_operations_total", operation="get", result="hit") == 4
            assert value(s.api, "cache_operations_total", operation="set", result="ok") == 1
            assert value(s.api, "cache_hit_ratio") == 0.8
            health = (await s.api_client.get("/health")).json()["checks"]["redis"]
            assert health["status"] == "healthy" and health["details"]["test_passed"] is True

    run(main)


def test_jobs_flow_through_rabbitmq_to_the_analyzer(rabbitmq_url: str) -> None:
    """The api publishes, the analyzer consumes (no HTTP between them); the consumer_paused
    knob leaves the jobs waiting in RabbitMQ, and the api's depth gauge shows them."""
    api_config = ApiConfig(analyzer_url="http://analyzer.test", rabbitmq_url=rabbitmq_url)
    analyzer_config = AnalyzerConfig(rabbitmq_url=rabbitmq_url)

    def predictions(s: Any) -> float:
        return sum(v for k, v in samples(s.analyzer).items()
                   if k[0] == "ml_model_prediction_duration_seconds_count")

    async def main() -> None:
        async with stack(api_config=api_config, analyzer_config=analyzer_config) as s:
            consumer = s.analyzer.state.consumer
            for _ in range(100):  # the consumer connects in the background
                if consumer.consuming:
                    break
                await asyncio.sleep(0.1)
            for _ in range(3):
                await upload(s.api_client, "wav")
            for _ in range(50):
                if predictions(s) >= 6:
                    break
                await asyncio.sleep(0.1)
            assert predictions(s) == 6, "3 queued jobs x 2 models should reach the analyzer"
            analyzer_requests = sum(v for k, v in samples(s.analyzer).items()
                                    if k[0] == "http_requests_total")
            assert analyzer_requests == 0, "jobs must not reach the analyzer over HTTP"
            for name, app in (("message_queue", s.api), ("message_queue", s.analyzer)):
                client = s.api_client if app is s.api else s.analyzer_client
                health = (await client.get("/health")).json()["checks"][name]
                assert health["status"] == "healthy", health
            # A stalled analyzer: the jobs wait in RabbitMQ.
            await s.analyzer_client.post("/admin/faults", json={"consumer_paused": True})
            for _ in range(50):
                if not consumer.consuming:
                    break
                await asyncio.sleep(0.1)
            for _ in range(4):
                await upload(s.api_client, "mp3")
            queue = s.api.state.queue
            for _ in range(100):
                if queue._depth == 4:
                    break
                await asyncio.sleep(0.1)
            assert value(s.api, "queue_messages_total", queue_name="analyzer_queue") == 4
            assert predictions(s) == 6
            await s.analyzer_client.post("/admin/faults", json={"consumer_paused": False})
            for _ in range(100):
                if predictions(s) >= 14:
                    break
                await asyncio.sleep(0.1)
            assert predictions(s) == 14, "the paused jobs are processed after the pause"

    # the api reads the depth every 5 s: speed that up for the test
    from apollonia import backends

    saved, backends.DEPTH_POLL_S = backends.DEPTH_POLL_S, 0.2
    try:
        run(main)
    finally:
        backends.DEPTH_POLL_S = saved


# --- one trace across both real processes ---------------------------------------------------


class _OtlpReceiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver (protobuf), like a collector's /v1/traces."""

    spans: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        type(self).spans.append({
                            "service": attrs.get("service.name"), "scope": scope.scope.name,
                            "name": span.name, "kind": span.kind,
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "attributes": {a.key: a.value for a in span.attributes},
                        })
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def otlp() -> Iterator[tuple[str, type[_OtlpReceiver]]]:
    receiver = type("Receiver", (_OtlpReceiver,), {"spans": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", receiver
    finally:
        server.shutdown()


def test_one_trace_from_upload_to_analysis(postgres_url: str, redis_url: str,
                                           rabbitmq_url: str, otlp, tmp_path: Path) -> None:  # noqa: ANN001
    endpoint, receiver = otlp
    api_port, analyzer_port = _free_port(), _free_port()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
           "DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "RABBITMQ_URL": rabbitmq_url}
    for key in ("DATABASE_URL_FILE", "REDIS_URL_FILE", "RABBITMQ_URL_FILE"):
        env.pop(key, None)
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("api", "analyzer")}
    procs = [
        subprocess.Popen([sys.executable, "-m", "apollonia", "analyzer", "--port",
                          str(analyzer_port)], env=env, stdout=logs["analyzer"],
                         stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "apollonia", "api", "--port", str(api_port),
                          "--analyzer-url", f"http://127.0.0.1:{analyzer_port}"], env=env,
                         stdout=logs["api"], stderr=subprocess.STDOUT),
    ]
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    health = client.get(f"http://127.0.0.1:{api_port}/health").json()
                    an = client.get(f"http://127.0.0.1:{analyzer_port}/health").json()
                    if health["status"] == an["status"] == "healthy" and \
                            an["checks"]["message_queue"]["details"]["consuming"]:
                        break
                except (httpx.HTTPError, KeyError):
                    pass
                time.sleep(0.3)
            else:
                pytest.fail("api/analyzer not healthy: " + (tmp_path / "api.log").read_text()[-800:]
                            + (tmp_path / "analyzer.log").read_text()[-800:])
            r = client.post(f"http://127.0.0.1:{api_port}/api/v1/media", params={"format": "flac"},
                            content=b"\0" * 4096, headers={"X-User-ID": "user-trace"})
            assert r.status_code == 201, r.text
            trace_id = r.headers["x-trace-id"]

        def trace() -> list[dict[str, Any]]:
            with receiver.lock:
                return [s for s in receiver.spans if s["trace_id"] == trace_id]

        deadline = time.monotonic() + 30
        # each process exports in its own batches (every 2 s): wait for both ends
        want = {("api", "POST /api/v1/media"), ("analyzer", "inference")}
        while time.monotonic() < deadline and not want <= {(s["service"], s["name"])
                                                           for s in trace()}:
            time.sleep(0.3)
        spans = trace()
        by_id = {s["span_id"]: s for s in spans}
        names = {(s["service"], s["name"]) for s in spans}

        def one(service: str, predicate: Any) -> dict[str, Any]:
            found = [s for s in spans if s["service"] == service and predicate(s)]
            assert found, f"no such {service} span; trace has {sorted(names)}"
            return found[0]

        server = one("api", lambda s: s["name"] == "POST /api/v1/media")
        db = one("api", lambda s: "asyncpg" in s["scope"]
                 and "INSERT" in s["attributes"]["db.statement"].string_value)
        cache = one("api", lambda s: "redis" in s["scope"] and s["name"] == "SET")
        publish = one("api", lambda s: "aio_pika" in s["scope"] and s["kind"] == 4)  # PRODUCER
        consume = one("analyzer", lambda s: "aio_pika" in s["scope"] and s["kind"] == 5)
        stages = {s["name"]: s for s in spans if s["service"] == "analyzer"
                  and s["name"] in ("decode", "feature_extraction", "inference")}
        for child in (db, cache, publish):
            assert child["parent"] == server["span_id"], (child["name"], server["name"])
        # The consumer continues the producer's context from the message headers ...
        assert consume["parent"] == publish["span_id"], (consume, publish)
        assert consume["name"] == "analyzer_queue receive"
        # ... and the analyzer's work happens inside it.
        assert set(stages) == {"decode", "feature_extraction", "inference"}, sorted(names)
        for stage in stages.values():
            assert by_id[stage["parent"]]["span_id"] == consume["span_id"], stage
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
        for log in logs.values():
            log.close()
